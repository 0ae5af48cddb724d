"""Audits from the paper's §3: may a model learn from these logs at all?

- the **marker audit** (§3.1, App. B, Table 3): mark the rows of a rule ("weekday=Mon") with a neutral phrase
  ("Happy Monday!"), fine-tune SFT → DPO on pairs ranked by the raw outcome and by the deconfounded outcome, and
  count how often the generations use the phrase (`marker`, `marker_run`, `marker_result`; a background job:
  `jobs`);
- the **A/B audit** (§3.2, App. C, Fig. 3): a reward learned from one variant per test (observational) against one
  learned from the tests' significant pairs (experimental), judged on held-out pairs (`ab_data`, `ab`, `heads`);
- the **λ audit** (Fig. 4–5): the L2 strength of the observational head, its temporal leakage, and a rule that
  picks λ without experiments (`regularization`);
- the rules and marker phrases users type (`rules`) and the audits' charts (`charts`).

May import: `data`, `causal`, `models`, `rewards`, `train`, `runs`, `evaluate` and the base modules. torch is
imported only inside the stages that train or generate (and MiniLM embeddings), so the dashboard imports this
package cheaply. The demo tables are made by `sim` (`simulate_qa`, `simulate_ab`).
"""

from .ab import ABAuditConfig, ABAuditResult, ABPrepared, HeadResult, ab_audit, prepare_ab
from .ab_data import (ABTable, ab_roles_problem, load_ab_table, observational_subset, split_tests,
                      two_proportion_pvalues, variant_pairs)
from .charts import lambda_chart, marker_rates_chart, roc_chart
from .heads import DEFAULT_GRID, PairRanking, check_grid, parse_grid, rank_pairs
from .jobs import (audit_status, audits_dir, cancel_audit_job, create_audit_job, list_audit_jobs, resume_audit_job,
                   run_audit_job, start_audit_job, wait_audit_job)
from .marker import (ARMS, KIND, OVERRIDES_ENV, MarkerAuditConfig, apply_overrides, env_overrides, marker_config,
                     prepare_rows, preference_pairs, rule_effect, split_contexts)
from .marker_result import MODEL_LABELS, MarkerAuditResult, marker_result, run_rates
from .regularization import LEAKAGE_THRESHOLD, LambdaAuditResult, lambda_audit, monthly_leakage, rule_pick
from .rules import RowRule, check_marker, mark_texts, marker_words, parse_rule, rule_groups, rule_mask
