"""Estimating the confounder part h(C) of the outcome (paper eq. 1: y = g(T, F) + h(C) + noise).

Three estimators, each `fit_*(data, roles, config) -> EstimateResult`:

- `fit_ols`: naive OLS of the outcome on the confounders and controls (statsmodels). Biased whenever the
  confounder moves with the text's quality (the paper's *entangled* case); shown as the baseline.
- `fit_iv`: two-stage least squares (linearmodels `IV2SLS`), confounders endogenous, instruments as
  excluded instruments, controls exogenous; heteroskedasticity-robust (HC0) errors, first-stage F and
  partial R² per endogenous term, Sargan (over-identified models only) and Wu–Hausman tests. A first-stage
  F below 10 adds a loud "weak instrument" warning.
- `fit_dml`: double machine learning for the partially linear model (Chernozhukov et al. 2018) for data
  without an instrument: the outcome and each confounder are predicted from the text's features (sparse
  TF-IDF by default, MiniLM optional; + controls and time effects) by ridge regressions with K-fold
  cross-fitting, and the residuals are regressed on each other. It removes the part of the confounder
  that the text predicts, so it is unbiased only when the outcome's non-confounder part is a function of
  those features (no hidden channel between text and confounder). Large tables are sampled (said so).

`estimate` fits one of them on a stored table; `estimator_choices` says which a table's roles allow. The
design matrices come from `design` (columns as terms, see `terms`; calendar effects absorbed, see `calendar`),
the options and answers live in `results`, and the corrected outcome y − ĥ(C) in `corrected`.
"""

from __future__ import annotations

import math
import warnings as pywarnings
from contextlib import contextmanager
from typing import Sequence

import numpy as np
import pandas as pd

from ..data import Roles
from ..errors import DeconfoundError
from .calendar import time_effects
from .calendar_effects import result_settings, weighted_final_stage
from .covariance import resolve_covariance, statsmodels_fit_args
from .design import Design, _check_roles, absorbed, build_design, required_columns
from .results import ESTIMATORS, EstimateResult, EstimatorConfig

NO_INSTRUMENT = ("does not apply, because weak-instrument-robust inference concerns IV and this estimate has no "
                 "instrument")


@contextmanager
def blas_threads(limit: int = 1):
    """Cap BLAS threads for tall-skinny least squares. They are memory-bound, and extra BLAS threads only
    thrash when the cores are shared (an SVD of a 20,000 × 31 matrix ran 14× slower with 2 OpenBLAS threads
    than with 1 on a busy 2-core machine)."""
    from threadpoolctl import threadpool_limits
    with threadpool_limits(limits=limit, user_api="blas"):
        yield


def fit_ols(data: pd.DataFrame, roles: Roles, config: EstimatorConfig | None = None) -> EstimateResult:
    """Naive OLS of the outcome on confounders + controls (+ time fixed effects), with the same
    heteroskedasticity-robust (HC0) errors as the IV fit. statsmodels here: linearmodels' data wrappers
    cost seconds per million rows and add nothing to a plain OLS."""
    import statsmodels.api as sm
    config = config or EstimatorConfig()
    design = absorbed(build_design(data, roles, config, with_instruments=False))
    design, cov_type, covariance, cov_warnings = resolve_covariance(design, config)
    regressors = pd.concat([design.exog, design.endog], axis=1)
    with blas_threads():
        model = (sm.OLS(design.y, regressors) if design.weights is None
                 else sm.WLS(design.y, regressors, weights=design.weights))
        fitted = model.fit(**statsmodels_fit_args(cov_type, design))
    ci = fitted.conf_int(alpha=1 - config.level)
    result = EstimateResult(
        method="ols", n=int(fitted.nobs), outcome=roles.outcome,
        coef={k: float(v) for k, v in fitted.params.items()},
        std_err={k: float(v) for k, v in fitted.bse.items()},
        conf_int={k: [float(ci.loc[k, 0]), float(ci.loc[k, 1])] for k in fitted.params.index},
        pvalues={k: float(v) for k, v in fitted.pvalues.items()},
        confounder_terms=design.confounder_terms, warnings=_dropped_warning(design), formula=design.formula,
        config=config.to_dict() | result_settings(roles))
    result.tests = {"sargan": {"reason": "over-identification tests apply to IV only"},
                    "wu_hausman": {"reason": "the endogeneity test compares OLS with IV; run IV to see it"}}
    result.warnings += cov_warnings
    result.robust_ci = {"reason": NO_INSTRUMENT, "covariance": covariance}
    result.sensitivity = {"reason": "does not apply, because naive OLS assumes the confounder is unrelated to the "
                                    "text's quality; the sensitivity analyses belong to IV and DML"}
    return result


def fit_iv(data: pd.DataFrame, roles: Roles, config: EstimatorConfig | None = None) -> EstimateResult:
    """2SLS: confounders endogenous, instruments excluded, controls exogenous; robust SEs and diagnostics."""
    from linearmodels.iv import IV2SLS

    from .iv_arrays import fit_arrays, independent_instruments, iv_arrays
    from .sensitivity import conley_sensitivity
    from .weak_iv import robust_inference
    config = config or EstimatorConfig()
    design = absorbed(build_design(data, roles, config, with_instruments=True))
    design, dropped_instruments = independent_instruments(design)
    design, cov_type, covariance, cov_warnings = resolve_covariance(design, config)
    exog = design.exog if design.exog.shape[1] else None
    clusters = {"clusters": design.clusters} if cov_type == "clustered" else {}
    with blas_threads():
        fitted = IV2SLS(design.y, exog, design.endog, design.instruments).fit(cov_type=cov_type, **clusters)
        result = _result_from_linearmodels("iv", fitted, design, roles, config)
        result.first_stage = first_stage_diagnostics(design, cov_type)
        result.tests = {"sargan": _test_dict(fitted.sargan), "wu_hausman": wu_hausman(design)}
        result.warnings += cov_warnings
        result.notes += dropped_instruments
        if config.robust_inference:
            arrays = iv_arrays(design, cov_type)
            result.robust_ci = robust_inference(arrays, design, config.level, cov_type) | {"covariance": covariance}
            result.sensitivity = conley_sensitivity(arrays, fit_arrays(arrays), config.level, config.gamma_range,
                                                    config.gamma_share)
        else:
            result.robust_ci = result.sensitivity = {"reason": "not computed (robust_inference is off)"}
        result.config |= result_settings(roles)
        if design.weights is not None:
            result.warnings.append(f"IV is fitted unweighted: the weight column '{roles.weight}' is used by DML "
                                   "and OLS")
    for term, stage in result.first_stage.items():
        if not stage["f_stat"] >= config.weak_f:
            result.warnings.insert(0, (
                f"weak instrument: the first-stage F for {term} is {stage['f_stat']:.1f} (below {config.weak_f:g}); "
                "the instrument barely moves the confounder, so the IV estimate is unreliable and biased toward "
                "naive OLS. Find a stronger instrument or use DML."))
    return result


def first_stage_diagnostics(design: Design, cov_type: str = "robust") -> dict[str, dict]:
    """Per endogenous term: first-stage F (Wald test of the excluded instruments / their number, with the
    model's covariance type, like R's `ivreg`), its p-value, and the partial R² of the instruments.

    statsmodels OLS on arrays: linearmodels' own first-stage objects copy a million-element row index
    several times, which took ~10 s at a million rows here.
    """
    import statsmodels.api as sm
    from scipy import stats
    exog = design.exog.to_numpy(dtype=np.float64)
    instr = design.instruments.to_numpy(dtype=np.float64)
    q = instr.shape[1]
    full = np.column_stack([exog, instr])
    out: dict[str, dict] = {}
    for name in design.endog.columns:
        x = design.endog[name].to_numpy(dtype=np.float64)
        first = sm.OLS(x, full).fit(**statsmodels_fit_args(cov_type, design))
        params = first.params[-q:]
        wald = float(params @ np.linalg.solve(first.cov_params()[-q:, -q:], params))
        f_stat = wald / q
        rss_restricted = _rss(exog, x)
        df_denom = max(1, len(x) - full.shape[1] - design.absorbed_params)
        out[str(name)] = {"f_stat": f_stat, "pvalue": float(stats.f.sf(f_stat, q, df_denom)),
                          "partial_r2": float(1.0 - first.ssr / rss_restricted) if rss_restricted > 0 else math.nan,
                          "instruments": q}
    return out


def wu_hausman(design: Design) -> dict:
    """Wu–Hausman test that the confounders are exogenous (so OLS would do), in its regression form: the F-test
    of the first-stage residuals added to the OLS regression. Equals linearmodels' `wu_hausman()`; computed on
    arrays for speed (see `first_stage_diagnostics`)."""
    from scipy import stats
    exog = design.exog.to_numpy(dtype=np.float64)
    endog = design.endog.to_numpy(dtype=np.float64)
    instr = np.column_stack([exog, design.instruments.to_numpy(dtype=np.float64)])
    y = design.y.to_numpy(dtype=np.float64)
    coef, *_ = np.linalg.lstsq(instr, endog, rcond=None)
    resid_first = endog - instr @ coef
    base = np.column_stack([exog, endog])
    rss_restricted = _rss(base, y)
    rss_full = _rss(np.column_stack([base, resid_first]), y)
    q = endog.shape[1]
    df_denom = len(y) - exog.shape[1] - design.absorbed_params - 2 * q
    if df_denom < 1 or rss_full <= 0:
        return {"reason": "too few rows for the endogeneity test"}
    f_stat = ((rss_restricted - rss_full) / q) / (rss_full / df_denom)
    return {"stat": float(f_stat), "pvalue": float(stats.f.sf(f_stat, q, df_denom)), "df": q,
            "name": "Wu-Hausman test of exogeneity", "null": "All endogenous variables are exogenous"}


def _rss(matrix: np.ndarray, target: np.ndarray) -> float:
    if matrix.shape[1] == 0:  # everything absorbed: the variables are already demeaned
        return float(target @ target)
    coef, *_ = np.linalg.lstsq(matrix, target, rcond=None)
    resid = target - matrix @ coef
    return float(resid @ resid)


def _test_dict(test) -> dict:
    """A linearmodels test statistic as {stat, pvalue, df, name} or {reason} when it does not apply."""
    reason = getattr(test, "_reason", None)
    if reason or not np.isfinite(getattr(test, "stat", np.nan)):
        return {"reason": reason or "not applicable to this model"}
    return {"stat": float(test.stat), "pvalue": float(test.pval), "df": int(test.df), "name": test._name or "",
            "null": test.null}


def _result_from_linearmodels(method: str, fitted, design: Design, roles: Roles,
                              config: EstimatorConfig) -> EstimateResult:
    ci = fitted.conf_int(level=config.level)
    return EstimateResult(
        method=method, n=int(fitted.nobs), outcome=roles.outcome,
        coef={k: float(v) for k, v in fitted.params.items()},
        std_err={k: float(v) for k, v in fitted.std_errors.items()},
        conf_int={k: [float(ci.loc[k, "lower"]), float(ci.loc[k, "upper"])] for k in fitted.params.index},
        pvalues={k: float(v) for k, v in fitted.pvalues.items()},
        confounder_terms=design.confounder_terms, warnings=_dropped_warning(design), formula=design.formula,
        config=config.to_dict())


def _dropped_warning(design: Design) -> list[str]:
    if not design.dropped:
        return []
    return [f"{design.dropped:,} rows with a missing outcome, confounder, control or instrument were left out"]


def fit_dml(data: pd.DataFrame, roles: Roles, config: EstimatorConfig | None = None, progress=None) -> EstimateResult:
    """Partially linear DML: cross-fitted nuisance models of outcome and confounders on text features
    (+ context, controls, time effects), then the partialling-out score solved by DoubleML (θ, its error and
    the omitted-variable sensitivity; see `dml_doubleml`)."""
    from .dml_doubleml import doubleml_final_stage
    config = config or EstimatorConfig()
    pieces = dml_pieces(data, roles, config, progress=progress)
    design, names, r2 = pieces["design"], pieces["names"], pieces["r2"]
    design, cov_type, covariance, cov_warnings = resolve_covariance(design, config)
    if design.weights is not None:  # impression-weighted: WLS of the residuals (DoubleML's final stage is unweighted)
        estimates = weighted_final_stage(pieces["y_res"], pieces["d_res"], design.weights, names, config.level,
                                         cov_type, design.clusters)
        sensitivity = {"reason": "the omitted-variable sensitivity is computed for unweighted fits only"}
    else:
        with blas_threads():
            estimates, sensitivity = doubleml_final_stage(
                pieces["y"], pieces["treatments"], pieces["y_res"], pieces["d_res"], names, config.level, cov_type,
                design.clusters, config.cf_y, config.cf_d)
    warns = [f"{design.dropped:,} rows with a missing outcome, confounder or control were left out"] if design.dropped else []
    for term in names:
        if r2[term] > 0.95:
            warns.append(f"the text predicts {term} almost perfectly (R² {r2[term]:.2f}): little variation is left "
                         "to estimate its effect, so the DML interval is wide")
    notes = pieces["notes"] + [
        "DML removes what the text features predict from both the outcome and the confounder; it is "
        "unbiased only if the features capture every channel linking text and confounder"]
    return EstimateResult(
        method="dml", n=len(pieces["y"]), outcome=roles.outcome,
        coef={k: estimates[k]["coef"] for k in names}, std_err={k: estimates[k]["std_err"] for k in names},
        conf_int={k: estimates[k]["conf_int"] for k in names}, pvalues={k: estimates[k]["pvalue"] for k in names},
        confounder_terms=design.confounder_terms,
        tests={"sargan": {"reason": "over-identification tests apply to IV only"},
               "wu_hausman": {"reason": "the endogeneity test needs an instrument"}},
        warnings=warns + cov_warnings, notes=notes,
        formula=(f"{'log1p(' + roles.outcome + ')' if roles.outcome_scale == 'log1p' else roles.outcome} ~ "
                 f"θ·({', '.join(names)}) + g(text features), {config.folds}-fold cross-fitted"
                 + (f", weighted by {roles.weight}" if design.weights is not None else "")),
        nuisance={"features": config.embeddings, "r2": r2, "folds": config.folds,
                  "final_stage": "WLS" if design.weights is not None else "DoubleMLPLR"},
        config=config.to_dict() | result_settings(roles), robust_ci={"reason": NO_INSTRUMENT, "covariance": covariance},
        sensitivity=sensitivity if config.robust_inference else {"reason": "not computed (robust_inference is off)"})


def dml_pieces(data: pd.DataFrame, roles: Roles, config: EstimatorConfig, progress=None) -> dict:
    """The cross-fitted nuisance step of DML: features, outcome and confounder terms, their out-of-fold
    residuals and R² (kept together so the refutations can refit parts of it)."""
    if not roles.text:
        raise DeconfoundError("DML uses the text as nuisance features: tag the text column on Roles first")
    notes = []
    if len(data) > config.dml_max_rows:
        notes.append(f"DML was fitted on a random sample of {config.dml_max_rows:,} of {len(data):,} rows "
                     "(the estimate is applied to every row)")
        data = data.sample(n=config.dml_max_rows, random_state=config.seed)
    design = build_design(data, roles, config, with_instruments=False)
    data = data.loc[design.y.index]
    covariates = design.exog.drop(columns="const")
    if design.absorb:
        covariates = pd.concat([covariates, time_effects(data[roles.timestamp])], axis=1)
    features = nuisance_features(data, roles, covariates, config, progress=progress)
    y = design.y.to_numpy()
    treatments = design.endog.to_numpy(dtype=np.float64)
    w = design.weights
    with blas_threads():
        y_res, y_r2 = cross_fit_residuals(features, y, config.folds, config.seed, config.ridge_alpha, sample_weight=w)
        d_res = np.empty_like(treatments)
        r2 = {roles.outcome: y_r2}
        for j, term in enumerate(design.endog.columns):
            d_res[:, j], r2[term] = cross_fit_residuals(features, treatments[:, j], config.folds, config.seed,
                                                        config.ridge_alpha, sample_weight=w)
    return {"design": design, "features": features, "y": y, "treatments": treatments, "y_res": y_res,
            "d_res": d_res, "r2": r2, "names": [str(c) for c in design.endog.columns], "notes": notes}


def nuisance_features(data: pd.DataFrame, roles: Roles, controls: pd.DataFrame, config: EstimatorConfig,
                      progress=None):
    """Text (and optionally context) features + standardised controls, as one sparse matrix."""
    from scipy import sparse
    text_cols = [roles.text] + ([roles.context] if config.use_context and roles.context else [])
    blocks = [text_matrix(data[col], config.embeddings, progress=progress) for col in text_cols]
    if controls.shape[1]:
        values = controls.to_numpy(dtype=np.float64)
        values = (values - values.mean(0)) / np.where(values.std(0) > 0, values.std(0), 1.0)
        blocks.append(sparse.csr_matrix(values))
    return sparse.hstack(blocks).tocsr()


def text_matrix(texts: pd.Series | Sequence[str], embeddings: str = "tfidf", progress=None):
    """Features of a text column for the nuisance/prediction regressions, as a sparse matrix.

    "tfidf": sparse TF-IDF of words and bigrams (kept sparse: individual words carry lexicon-like quality
    signals such as sentiment linearly; a dense SVD basis lost most of it in our tests). "minilm" or a
    model folder: sentence embeddings from `embeddings.embed_texts` (cached on disk).
    """
    from scipy import sparse

    from .text_features import embed_texts, fit_tfidf
    texts = pd.Series(texts).fillna("").astype(str).tolist()
    if embeddings == "tfidf":
        return fit_tfidf(texts, max_features=20_000, min_df=3, min_df_from=100)[1]
    return sparse.csr_matrix(embed_texts(texts, model=embeddings, progress=progress))


def cross_fit_residuals(features, target: np.ndarray, folds: int, seed: int, alpha: float = 1.0,
                        sample_weight: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """Out-of-fold residuals target − ĝ(features) from ridge regressions, and the cross-fitted R².

    Ridge on sparse TF-IDF via LSQR: a lexicon-like quality signal stays linear in the word features,
    and the solver takes seconds at 100k rows (a dense SVD basis lost most of the sentiment signal)."""
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import KFold
    predicted = np.empty_like(target)
    for train, test in KFold(n_splits=folds, shuffle=True, random_state=seed).split(target):
        # tol 1e-3: half the LSQR iterations of 1e-4, same estimate (0.0991 vs 0.0992 on 50k demo rows)
        model = Ridge(alpha=alpha, solver="lsqr", tol=1e-3)
        with pywarnings.catch_warnings():
            pywarnings.simplefilter("ignore")
            model.fit(features[train], target[train],
                      sample_weight=None if sample_weight is None else sample_weight[train])
        predicted[test] = model.predict(features[test])
    resid = target - predicted
    total = float(((target - target.mean()) ** 2).sum())
    return resid, (1.0 - float(resid @ resid) / total) if total > 0 else math.nan


# ------------------------------------------------------------------ one call from a table
FITTERS = {"ols": fit_ols, "iv": fit_iv, "dml": fit_dml}


def estimator_choices(roles: Roles) -> tuple[list[str], str]:
    """The estimators a tagged table can use, and the one recommended by default.

    Naive OLS always (the baseline), IV when an instrument is tagged, DML when the text is tagged (it uses
    the text as nuisance features). IV is the default (the paper's method), else DML, else OLS.
    """
    available = ["ols"] + (["iv"] if roles.instruments else []) + (["dml"] if roles.text else [])
    default = "iv" if "iv" in available else "dml" if "dml" in available else "ols"
    return available, default


def estimate(store, table: str, method: str, config: EstimatorConfig | None = None, progress=None,
             refutations: bool = False) -> EstimateResult:
    """Read the tagged table from a `Store` (DML reads a sample when the table is large) and fit; with
    `refutations`, also run the refutations on the same rows (`refute`)."""
    if method not in FITTERS:
        raise DeconfoundError(f"unknown method {method!r}: choose one of {', '.join(ESTIMATORS)}")
    config = config or EstimatorConfig()
    roles = store.require_roles(table)
    if method == "iv":
        _check_roles(pd.DataFrame(columns=required_columns(roles, "iv")), roles, with_instruments=True)
    columns = required_columns(roles, method, config.time_effects, cluster=config.cluster)
    rows = store.row_count(table)
    sample = config.dml_max_rows if method == "dml" and rows > config.dml_max_rows else None
    data = store.read_frame(table, columns, sample_rows=sample, seed=config.seed)
    result = fit_dml(data, roles, config, progress=progress) if method == "dml" else FITTERS[method](data, roles, config)
    if sample:
        result.notes.insert(0, f"DML was fitted on a random sample of {sample:,} of {rows:,} rows "
                               "(the estimate is applied to every row)")
    if refutations:
        from .refute import refute
        result.refutations = refute(data, roles, method, config)
    result.table = table
    return result
