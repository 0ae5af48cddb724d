"""Steps 3–4 of the flow: what moves the outcome besides the text, and how much of it to remove.

Owns: design matrices and calendar (weekday/month) effects, the estimators (naive OLS, IV 2SLS, DML) and
their result objects, the deconfounded outcome column y − ĥ(C), the diagnostics (time patterns, spurious
markers, entanglement, temporal leakage) and the text features they share (sparse TF-IDF, LSA, MiniLM).
May import: `data`, `errors`, `paths`, `jsonio`. No torch except MiniLM embeddings, imported lazily.
"""

from .diagnostics import (DiagnosticsConfig, DiagnosticsReport, EntanglementResult, LeakageResult, MarkerScanResult,
                          TimePatternsResult, anova_from_groups, default_scores, diagnose, entanglement,
                          entanglement_table, scan_markers, scan_markers_table, temporal_leakage, time_patterns)
from .estimators import (ESTIMATOR_LABELS, ESTIMATORS, WEAK_F, WEEKDAYS, Design, EstimateResult, EstimatorConfig,
                         absorb_fixed_effects, blas_threads, build_design, column_terms, confounder_part,
                         cross_fit_residuals, deconfounded_outcome, default_column_name, estimate, fit_dml, fit_iv,
                         fit_ols, latest_corrected_column, required_columns, text_features, time_effects,
                         write_deconfounded_column)
from .text_features import TfidfEmbedder, embed_texts, fit_tfidf, minilm_path
