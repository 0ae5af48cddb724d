"""Steps 3–4 of the flow: what moves the outcome besides the text, and how much of it to remove.

Owns: regression terms and calendar (weekday/month) effects, design matrices, the estimators (naive OLS, IV
2SLS, DML) and their result objects, weak-instrument-robust inference (`weak_iv`, on the partialled arrays of
`iv_arrays`), sensitivity analyses (`sensitivity`, `dml_doubleml`), refutations (`refute`), the words the
Deconfound step says about them (`guidance`), the deconfounded outcome column y − ĥ(C), the diagnostics (time
patterns, spurious markers, entanglement, temporal leakage; one module each under `diagnostics/`), the text features they
share (sparse TF-IDF, LSA, MiniLM) and the charts of the Diagnostics and Deconfound pages.
May import: `data`, `errors`, `paths`, `jsonio`. No torch except MiniLM embeddings, imported lazily.
"""

from .calendar import WEEKDAYS, absorb_fixed_effects, time_codes, time_effects
from .calendar_effects import (calendar_labels, calendar_parts, calendar_terms, from_model_scale, is_time, row_weights,
                               time_marker_groups, to_model_scale)
from .charts import (entanglement_chart, estimates_chart, leakage_chart, marker_chart, outcome_density_chart,
                     sensitivity_chart, time_chart)
from .corrected import (confounder_part, corrected_columns_table, corrected_sample, deconfounded_outcome,
                        default_column_name, latest_corrected_column, truth_correlations, write_deconfounded_column)
from .design import Design, build_design, required_columns
from .diagnostics.config import DiagnosticsConfig, pvalue_phrase, pvalue_text, readable_pvalues
from .diagnostics.entanglement import EntanglementResult, entanglement
from .diagnostics.leakage import (LeakageResult, default_score, default_scores, leakage_candidates, looks_like_id,
                                  standardised_months, temporal_leakage)
from .diagnostics.markers import (MarkerScanResult, distinct_phrases, marker_chart_rows, marker_table,
                                  scan_markers)
from .diagnostics.report import (NO_SCORE_AUDITED, DiagnosticsReport, diagnose, entanglement_table, record_diagnostics,
                                 scan_markers_table)
from .diagnostics.time_patterns import TimePatternsResult, anova_from_groups, time_patterns, time_tests_table
from .estimators import (blas_threads, cross_fit_residuals, estimate, estimator_choices, fit_dml, fit_iv, fit_ols,
                         text_matrix)
from .guidance import (baseline_note, mark_recommended, page_verdict, recommended, refutations_table, robust_ci_table,
                       robustness_lines, save_warning, saved_column_sentence)
from .iv_arrays import IVArrays, iv_arrays, tsls
from .refute import refutations_from_store, refute
from .results import (ESTIMATOR_LABELS, ESTIMATORS, WEAK_F, EstimateResult, EstimatorConfig, compare_estimates,
                      explain_test, spec_tests_table)
from .sensitivity import conley_sensitivity, sensitivity_verdict
from .weak_iv import MOP_CRITICAL_10PCT, ar_set, ar_statistic, describe_set, effective_f
from .terms import column_terms
from .text_features import TfidfEmbedder, embed_texts, fit_tfidf, minilm_path
