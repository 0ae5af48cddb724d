"""Step 6 of the flow: compare the models of a run, in numbers, charts and words, and export them.

Owns: per-model metrics with bootstrap intervals and tests against SFT, marker rates, the conclusion in words,
reward–truth checks and the reward probe, what a run is judged by by default (`defaults`), the charts (one
altair definition each), the self-contained HTML report, and exports (CSV, JSON, a Hugging Face folder with a
model card). May import: every subpackage below it (`runs`, `rewards`, `models`, `causal`, `data`) and `sim`
through `defaults` only. No torch unless a reward model scores or a model is exported.
"""

from ..text_measures import distinct_n, ngrams, repetition_rate, tokens
from .defaults import (GENERIC_PROBE_TEMPLATES, SCORER_LABELS, default_markers, default_scorer, is_simulation_run,
                       marker_phrase, probe_templates, quality_scorer)
from .evaluation import (GENERATION_COLUMNS, METHOD_LABELS, REFERENCE, ComparisonResult, EvalConfig, ModelMetrics,
                         bootstrap_ci, bootstrap_diff_pvalue, bootstrap_indices, cached_reward_points, compare,
                         compile_markers, highlight_spans, load_generations, marker_hits, model_label, model_sort_key,
                         probe_contexts, proportion_pvalue, reward_marker_preference, reward_marker_preferences,
                         reward_truth_correlations, reward_truth_points, run_info, score_generations, stars,
                         starts_from_fine_tuned, welch_pvalue)
from .report import (export_generations, export_metrics, export_model, generations_table_html, highlight_html,
                     last_training_metrics, marker_chart, metrics_payload, model_card, quality_chart, render_report,
                     run_model_folders, scatter_chart, training_curves, write_report)
