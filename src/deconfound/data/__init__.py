"""Step 1–2 of the flow: the user's tables and what their columns mean.

Owns: the DuckDB store (ingest, describe, preview, derived columns, snapshots), column roles and their
validation, role guessing from column names, the train/reward/RL/test splits, and the steps recorded per table
(which step ran on which roles). May import: `errors`, `paths`, `jsonio` only — every other subpackage builds
on this one.
"""

from .role_guess import guess_roles
from .roles import MULTI_ROLES, SINGLE_ROLES, Roles, is_numeric, is_temporal, training_blockers, validate
from .splits import PAPER_SPLITS, SPLITS, assign_splits, split_counts
from .steps import record_step, step_record, table_fingerprint
from .store import (IngestResult, Store, TableDescription, check_table_name, next_free_name, quote_ident,
                    safe_table_name)
