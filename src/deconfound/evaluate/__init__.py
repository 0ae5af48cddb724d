"""Step 6 of the flow: compare the models of a run, in numbers, charts and words, and export them.

Owns: per-model metrics with bootstrap intervals and tests against SFT (`comparison`, `stats`), marker groups
and their matches (`markers`), model names and order (`labels`), the conclusion in words (`conclusions`),
reward–truth checks and the reward probe (`reward_checks`), what a run is judged by by default (`defaults`),
the colours of models and marker groups (`palette`, one definition for every chart, highlight and report), the
charts (`charts`: one altair definition each, also rendered to inline SVG), the self-contained HTML report
(`report`), and exports (`exports`: CSV, JSON, a Hugging Face folder with a model card, also as a zip). May
import: every subpackage below it (`runs`, `rewards`, `models`, `causal`, `data`) and `sim` through `defaults`
only. No torch unless a reward model scores or a model is exported.
"""

from ..rewards import METHOD_LABELS
from ..text_measures import distinct_n, ngrams, repetition_rate, tokens
from .charts import (REWARD_TITLE, chart_svg, correlation_chart, marker_chart, quality_chart, reward_curves_chart,
                     run_curves_chart, scatter_chart)
from .comparison import (GENERATION_COLUMNS, REFERENCE, ComparisonResult, EvalConfig, ModelMetrics, compare,
                         load_generations, reward_truth_correlations, run_info, score_generations)
from .defaults import (GENERIC_PROBE_TEMPLATES, SCORER_LABELS, default_markers, default_scorer, is_simulation_run,
                       marker_phrase, probe_templates, quality_scorer)
from .exports import (export_generations, export_metrics, export_model, export_model_zip, generations_csv,
                      last_training_metrics, metrics_json, metrics_payload, model_card, run_model_folders,
                      scored_generations, zip_folder)
from .labels import method_sort_key, model_label, model_sort_key, starts_from_fine_tuned
from .markers import compile_markers, highlight_spans, marker_hits, parse_marker_groups
from .palette import GROUP_COLORS, METHOD_COLORS, group_colors, highlight_color, model_color, model_colors
from .report import generations_table_html, highlight_html, render_report, training_curves, write_report
from .reward_checks import (cached_reward_points, probe_contexts, reward_marker_preference,
                            reward_marker_preferences, reward_truth_points)
from .stats import bootstrap_ci, bootstrap_diff_pvalue, bootstrap_indices, proportion_pvalue, stars, welch_pvalue
