"""Step 1–2 of the flow: the user's tables and what their columns mean.

Owns: the DuckDB store (ingest, describe, preview, derived columns, snapshots), column roles and their
validation, role guessing from column names, the train/reward/RL/test splits, and the steps recorded per table
(which step ran on which roles). May import: `errors`, `paths`, `jsonio` only — every other subpackage builds
on this one.
"""

from .csv_import import BadLinesError, rejects_table_name
from .prompt_text import NO_CONTEXT_PROMPT, constant_prompt, prompt_mode, prompt_texts, render_template
from .role_guess import guess_roles
from .roles import (CALENDAR_PARTS, DEFAULT_CALENDAR, MULTI_ROLES, OUTCOME_SCALES, SINGLE_ROLES, Roles, is_numeric,
                    is_temporal, prompt_columns, prompt_description, template_fields, training_blockers, validate)
from .splits import PAPER_SPLITS, SPLITS, assign_splits, split_counts
from .steps import record_step, step_record, table_fingerprint
from .store import (IngestResult, Store, TableDescription, check_table_name, next_free_name, quote_ident,
                    safe_table_name)
