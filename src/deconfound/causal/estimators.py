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

Categorical columns enter as dummies with a reference level ('None' when present, else the most
frequent level); a tagged timestamp adds weekday and calendar-month fixed effects, which OLS and IV
absorb by within-group demeaning (identical coefficients and robust errors to explicit dummies, a test
checks it, at a fraction of the cost on a million rows).

`deconfounded_outcome` computes y − (ĥ(C) − mean ĥ(C)), where ĥ(C) = Σ β̂ₖ·Cₖ over the confounder terms
only. Centring at the mean of ĥ keeps the corrected outcome on the raw outcome's scale (same mean);
ranks, which is all the reward model uses, are unaffected. `write_deconfounded_column` adds it to the
table as a new column (the original is never altered) with its method and estimate in the column meta.
"""

from __future__ import annotations

import math
import warnings as pywarnings
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Sequence

import numpy as np
import pandas as pd

from ..data import Roles
from ..errors import DeconfoundError, NotFoundError
from ..jsonio import jsonable as _clean_json

ESTIMATORS = ("ols", "iv", "dml")
WEAK_F = 10.0
REFERENCE_NAMES = ("None", "none", "NONE", "no team", "")
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
MISSING_LEVEL = "(missing)"


@dataclass
class EstimatorConfig:
    """Options shared by the estimators (defaults work for the demo and most logs)."""

    time_effects: bool = field(default=True, metadata={
        "help": "add weekday and calendar-month fixed effects when a timestamp is tagged"})
    cov_type: str = field(default="robust", metadata={
        "help": "standard errors: 'robust' (heteroskedasticity-robust) or 'unadjusted'"})
    level: float = field(default=0.95, metadata={"help": "confidence level of the intervals"})
    weak_f: float = field(default=WEAK_F, metadata={"help": "first-stage F below this warns of a weak instrument"})
    folds: int = field(default=5, metadata={"help": "DML: cross-fitting folds"})
    embeddings: str = field(default="tfidf", metadata={
        "help": "DML nuisance text features: 'tfidf' (sparse TF-IDF words+bigrams, fast) or 'minilm' "
                "(sentence embeddings, slower on CPU, cached)"})
    use_context: bool = field(default=False, metadata={
        "help": "DML: also use the context (prompt) text as nuisance features (slower; only needed when the "
                "outcome's text part depends on the context too)"})
    ridge_alpha: float = field(default=1.0, metadata={"help": "DML: ridge penalty of the nuisance regressions"})
    dml_max_rows: int = field(default=50_000, metadata={
        "help": "DML fits on a random sample of at most this many rows (the estimate applies to all rows)"})
    seed: int = field(default=0, metadata={"help": "random seed (DML folds, sampling)"})

    def to_dict(self) -> dict:
        """JSON-ready dict."""
        return asdict(self)


@dataclass
class EstimateResult:
    """A fitted estimate of the confounders' effect; `to_dict()` is the CLI's `--json` payload."""

    method: str
    n: int
    outcome: str
    coef: dict[str, float]
    std_err: dict[str, float]
    conf_int: dict[str, list[float]]
    pvalues: dict[str, float]
    confounder_terms: list[dict]  # [{"term", "column", "level"}]: the terms that make up h(C)
    first_stage: dict[str, dict] = field(default_factory=dict)
    tests: dict[str, dict] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    formula: str = ""
    nuisance: dict | None = None
    table: str | None = None
    config: dict = field(default_factory=dict)

    @property
    def terms(self) -> list[str]:
        """Names of the confounder terms (e.g. 'popularity', 'region[East]')."""
        return [t["term"] for t in self.confounder_terms]

    def confounder_coef(self) -> dict[str, float]:
        """β̂ of the confounder terms only (what ĥ(C) is made of)."""
        return {t: self.coef[t] for t in self.terms}

    def verdict(self) -> str:
        """One plain-language sentence about the confounder effect."""
        label = ESTIMATOR_LABELS[self.method]
        parts = []
        for term in self.terms:
            lo, hi = self.conf_int[term]
            parts.append(f"{term} {self.coef[term]:+.4g} per unit ({int(self.config.get('level', 0.95) * 100)}% CI "
                         f"{lo:.4g} to {hi:.4g})")
        text = f"{label} on {self.n:,} rows: " + "; ".join(parts) + "."
        if any("weak instrument" in w for w in self.warnings):
            text += " The instrument is weak, so do not trust this estimate."
        return text

    def summary(self) -> str:
        """A readable multi-line report."""
        lines = [self.verdict(), "", f"model: {self.formula}", "",
                 f"{'term':32s} {'coef':>10s} {'std err':>10s} {'CI low':>10s} {'CI high':>10s}"]
        fixed = [t for t in self.coef if t.startswith(("weekday[", "month["))]
        for term, value in self.coef.items():
            if term in fixed:
                continue
            lo, hi = self.conf_int.get(term, [math.nan, math.nan])
            mark = " *" if term in self.terms else ""
            lines.append(f"{term[:32]:32s} {value:10.4f} {self.std_err.get(term, math.nan):10.4f} "
                         f"{lo:10.4f} {hi:10.4f}{mark}")
        if fixed:
            lines.append(f"(+ {len(fixed)} weekday/month fixed effects, in to_dict())")
        lines.append("(* = confounder term, removed by the deconfounded outcome)")
        if self.first_stage:
            lines += ["", "first stage:"]
            lines += [f"  {k}: F = {v['f_stat']:.1f}, partial R² = {v['partial_r2']:.3f}"
                      for k, v in self.first_stage.items()]
        if self.nuisance:
            lines += ["", "nuisance fit (cross-fitted R²): " + ", ".join(
                f"{k} {v:.3f}" for k, v in self.nuisance.get("r2", {}).items())]
        if self.tests:
            lines += ["", "tests:"]
            for name, test in self.tests.items():
                if "reason" in test:
                    lines.append(f"  {name}: n/a ({test['reason']})")
                else:
                    lines.append(f"  {name}: stat {test['stat']:.3f}, p = {test['pvalue']:.3g}")
        lines += [f"warning: {w}" for w in self.warnings]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """JSON-ready dict (method, n, coef, std_err, conf_int, first_stage, tests, warnings, ...)."""
        return _clean_json(asdict(self))

    @classmethod
    def from_dict(cls, data: dict) -> "EstimateResult":
        """Rebuild from `to_dict()` output (e.g. a run folder's estimate.json)."""
        names = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in names})


ESTIMATOR_LABELS = {"ols": "Naive OLS", "iv": "IV (2SLS)", "dml": "DML (partially linear)"}


# ------------------------------------------------------------------ design matrices
@dataclass
class Design:
    """Numeric matrices of one model, aligned on the rows kept (rows with missing numbers are dropped)."""

    y: pd.Series
    exog: pd.DataFrame        # const + controls
    endog: pd.DataFrame       # confounder terms
    instruments: pd.DataFrame | None
    confounder_terms: list[dict]
    dropped: int
    formula: str
    absorb: list[np.ndarray] = field(default_factory=list)  # group codes of fixed effects to absorb
    absorbed_params: int = 0  # parameters absorbed (constant + fixed-effect levels), for degrees of freedom


def required_columns(roles: Roles, method: str, time_effects: bool = True) -> list[str]:
    """Columns an estimator reads from the table."""
    cols = [roles.outcome, *roles.confounders, *roles.controls]
    if roles.timestamp and time_effects:
        cols.append(roles.timestamp)
    if method == "iv":
        cols += roles.instruments
    if method == "dml":
        cols += [c for c in (roles.text, roles.context) if c]
    return list(dict.fromkeys(c for c in cols if c))


def is_categorical(series: pd.Series) -> bool:
    """Text-like columns (object, string, category) become dummies; numbers and booleans stay numeric."""
    return not (pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series))


def reference_level(series: pd.Series) -> str:
    """The dummy left out: a 'None'-like level when present (e.g. 'no team'), else the most frequent."""
    counts = series.value_counts()
    for name in REFERENCE_NAMES:
        if name in counts.index:
            return name
    return str(counts.index[0])


def categorical_terms(series: pd.Series, name: str, reference: str | None = None) -> tuple[pd.DataFrame, list[dict]]:
    """Dummies `name[level]` for every level but the reference, and their term records."""
    labels = series.astype("string").fillna(MISSING_LEVEL)
    ref = reference if reference is not None else reference_level(labels)
    levels = sorted(lv for lv in labels.unique() if lv != ref)
    frame = pd.DataFrame({f"{name}[{lv}]": (labels == lv).to_numpy(dtype=np.float64) for lv in levels},
                         index=series.index)
    return frame, [{"term": f"{name}[{lv}]", "column": name, "level": lv, "reference": ref} for lv in levels]


def column_terms(frame: pd.DataFrame, columns: Sequence[str]) -> tuple[pd.DataFrame, list[dict]]:
    """Numeric columns as they are, categorical ones as dummies."""
    parts, terms = [], []
    for col in columns:
        series = frame[col]
        if is_categorical(series):
            dummies, dummy_terms = categorical_terms(series, col)
            parts.append(dummies)
            terms += dummy_terms
        else:
            parts.append(pd.DataFrame({col: pd.to_numeric(series, errors="coerce").astype(np.float64)},
                                      index=frame.index))
            terms.append({"term": col, "column": col, "level": None})
    out = pd.concat(parts, axis=1) if parts else pd.DataFrame(index=frame.index)
    return out, terms


def time_effects(stamps: pd.Series) -> pd.DataFrame:
    """Weekday (reference Monday) and calendar-month (reference the first month) dummies."""
    stamps = pd.to_datetime(stamps, errors="coerce")
    weekday = pd.Series(pd.Categorical.from_codes(stamps.dt.dayofweek.fillna(-1).astype(int), WEEKDAYS, validate=False),
                        index=stamps.index).astype("string")
    month = stamps.dt.year * 100 + stamps.dt.month
    labels = {code: f"{int(code) // 100}-{int(code) % 100:02d}" for code in month.dropna().unique()}
    month = month.map(labels).astype("string")
    wd, _ = categorical_terms(weekday, "weekday", reference="Mon")
    mo, _ = categorical_terms(month, "month", reference=min(labels.values()) if labels else MISSING_LEVEL)
    return pd.concat([wd, mo], axis=1)


def time_codes(stamps: pd.Series) -> list[np.ndarray]:
    """Integer group codes of weekday and calendar month (a missing time is a group of its own)."""
    stamps = pd.to_datetime(stamps, errors="coerce")
    weekday = stamps.dt.dayofweek.fillna(7).to_numpy(dtype=np.int64)
    month, _ = pd.factorize(stamps.dt.year * 12 + stamps.dt.month)
    month = np.where(month < 0, month.max() + 1, month).astype(np.int64)
    return [weekday, month]


def absorb_fixed_effects(matrix: np.ndarray, groups: Sequence[np.ndarray], tol: float = 1e-10,
                         max_sweeps: int = 500) -> np.ndarray:
    """Remove additive fixed effects (and the constant) from every column by alternating projections:
    demean within each grouping in turn until nothing is left to remove.

    By Frisch–Waugh–Lovell, regressing absorbed variables on each other gives the same coefficients, residuals
    and heteroskedasticity-robust (HC0) errors as including every dummy, at the cost of a few group means
    instead of a million-row matrix with dozens of dummy columns.
    """
    out = np.array(matrix, dtype=np.float64, copy=True)
    out -= out.mean(axis=0)
    scale = np.maximum(out.std(axis=0), 1e-12)
    counts = [np.maximum(np.bincount(g), 1) for g in groups]
    for _ in range(max_sweeps):
        largest = 0.0
        for g, n in zip(groups, counts):
            for j in range(out.shape[1]):
                means = np.bincount(g, weights=out[:, j], minlength=len(n)) / n
                out[:, j] -= means[g]
                largest = max(largest, float(np.abs(means).max() / scale[j]))
        if largest < tol or len(groups) < 2:
            break
    return out


def build_design(data: pd.DataFrame, roles: Roles, config: EstimatorConfig, with_instruments: bool) -> Design:
    """Turn a table's columns into y, exogenous, endogenous and instrument matrices (time effects as groups
    to absorb, plus their dummies for DML)."""
    _check_roles(data, roles, with_instruments, config.time_effects)
    y = pd.to_numeric(data[roles.outcome], errors="coerce").astype(np.float64)
    endog, confounder_terms = column_terms(data, roles.confounders)
    controls, _ = column_terms(data, roles.controls)
    exog = pd.concat([pd.DataFrame({"const": 1.0}, index=data.index), controls], axis=1)
    use_time = bool(config.time_effects and roles.timestamp)
    instruments = None
    if with_instruments:
        instruments, _ = column_terms(data, roles.instruments)

    keep = y.notna() & endog.notna().all(axis=1) & exog.notna().all(axis=1)
    if instruments is not None:
        keep &= instruments.notna().all(axis=1)
    dropped = int((~keep).sum())
    if keep.sum() < 10:
        raise DeconfoundError(f"only {int(keep.sum())} rows have the outcome, confounders and controls filled in: "
                              "an estimate needs more complete rows")
    pick = keep.to_numpy()
    y, endog, exog = y[pick], endog[pick], exog[pick]
    exog = _drop_constant(exog, keep_const=True)
    absorb = time_codes(data.loc[pick, roles.timestamp]) if use_time else []
    if instruments is not None:
        instruments = _drop_constant(instruments[pick], keep_const=False)
        if instruments.shape[1] == 0:
            raise DeconfoundError("the instrument takes a single value in every row: it cannot move the "
                                  "confounder, so IV is impossible; tag another instrument or use DML")
        if instruments.shape[1] < endog.shape[1]:
            raise DeconfoundError(f"IV needs at least as many instrument terms ({instruments.shape[1]}) as "
                                  f"confounder terms ({endog.shape[1]}): tag more instruments or fewer confounders")
    for col in endog:
        if endog[col].std() == 0:
            raise DeconfoundError(f"confounder term '{col}' is constant: its effect cannot be estimated")
    formula = (f"{roles.outcome} ~ " + " + ".join(endog.columns)
               + (" + " + " + ".join(roles.controls) if roles.controls else "")
               + (" + weekday + month fixed effects (absorbed)" if use_time else ""))
    if with_instruments:
        formula += " | instruments: " + ", ".join(roles.instruments)
    return Design(y=y, exog=exog, endog=endog, instruments=instruments, confounder_terms=confounder_terms,
                  dropped=dropped, formula=formula, absorb=absorb)


def absorbed(design: Design) -> Design:
    """The design with its fixed effects (and the constant) absorbed from every variable; a no-op without."""
    if not design.absorb:
        return design
    blocks = {"y": design.y.to_frame(), "exog": design.exog, "endog": design.endog}
    if design.instruments is not None:
        blocks["instruments"] = design.instruments
    stacked = np.column_stack([b.to_numpy(dtype=np.float64) for b in blocks.values()])
    demeaned = absorb_fixed_effects(stacked, design.absorb)
    out, start = {}, 0
    for name, block in blocks.items():
        width = block.shape[1]
        out[name] = pd.DataFrame(demeaned[:, start:start + width], index=block.index, columns=block.columns)
        start += width
    # The constant and any control that only varies between the fixed-effect groups are absorbed too.
    exog = out["exog"].loc[:, out["exog"].std() > 1e-9 * np.maximum(design.exog.std(), 1e-12)]
    exog = exog.drop(columns="const", errors="ignore")
    levels = 1 + sum(len(np.unique(g)) - 1 for g in design.absorb)
    return Design(y=out["y"].iloc[:, 0], exog=exog, endog=out["endog"], instruments=out.get("instruments"),
                  confounder_terms=design.confounder_terms, dropped=design.dropped, formula=design.formula,
                  absorbed_params=levels)


def _check_roles(data: pd.DataFrame, roles: Roles, with_instruments: bool, time_effects: bool = True) -> None:
    if not roles.outcome:
        raise DeconfoundError("no outcome tagged: tag the outcome column on Roles first")
    if not roles.confounders:
        raise DeconfoundError("no confounder tagged: tag the column whose effect should be removed "
                              "(e.g. popularity, price) on Roles first")
    if with_instruments and not roles.instruments:
        raise DeconfoundError("IV needs an instrument (a column that moves the confounder but affects the "
                              "outcome only through it): tag one on Roles, or use DML instead")
    needed = required_columns(roles, "iv" if with_instruments else "ols", time_effects)
    missing = [c for c in needed if c not in data.columns]
    if missing:
        raise NotFoundError(f"the data has no column(s) {', '.join(map(repr, missing))}")


def _drop_constant(frame: pd.DataFrame, keep_const: bool) -> pd.DataFrame:
    """Drop columns without variation (a dummy of a level absent after dropping rows)."""
    std = frame.std(axis=0)
    keep = [c for c in frame.columns if (keep_const and c == "const") or std[c] > 0]
    return frame[keep]


# ------------------------------------------------------------------ estimators
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
    regressors = pd.concat([design.exog, design.endog], axis=1)
    with blas_threads():
        fitted = sm.OLS(design.y, regressors).fit(cov_type="HC0" if config.cov_type == "robust" else "nonrobust")
    ci = fitted.conf_int(alpha=1 - config.level)
    result = EstimateResult(
        method="ols", n=int(fitted.nobs), outcome=roles.outcome,
        coef={k: float(v) for k, v in fitted.params.items()},
        std_err={k: float(v) for k, v in fitted.bse.items()},
        conf_int={k: [float(ci.loc[k, 0]), float(ci.loc[k, 1])] for k in fitted.params.index},
        pvalues={k: float(v) for k, v in fitted.pvalues.items()},
        confounder_terms=design.confounder_terms, warnings=_dropped_warning(design), formula=design.formula,
        config=config.to_dict())
    result.tests = {"sargan": {"reason": "over-identification tests apply to IV only"},
                    "wu_hausman": {"reason": "the endogeneity test compares OLS with IV; run IV to see it"}}
    return result


def fit_iv(data: pd.DataFrame, roles: Roles, config: EstimatorConfig | None = None) -> EstimateResult:
    """2SLS: confounders endogenous, instruments excluded, controls exogenous; robust SEs and diagnostics."""
    from linearmodels.iv import IV2SLS
    config = config or EstimatorConfig()
    design = absorbed(build_design(data, roles, config, with_instruments=True))
    exog = design.exog if design.exog.shape[1] else None
    with blas_threads():
        fitted = IV2SLS(design.y, exog, design.endog, design.instruments).fit(cov_type=config.cov_type)
        result = _result_from_linearmodels("iv", fitted, design, roles, config)
        result.first_stage = first_stage_diagnostics(design, config.cov_type)
        result.tests = {"sargan": _test_dict(fitted.sargan), "wu_hausman": wu_hausman(design)}
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
        first = sm.OLS(x, full).fit(cov_type="HC0" if cov_type == "robust" else "nonrobust")
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
    (+ context, controls, time effects), then OLS of outcome residuals on confounder residuals."""
    import statsmodels.api as sm
    from scipy import stats
    config = config or EstimatorConfig()
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
    with blas_threads():
        y_res, y_r2 = cross_fit_residuals(features, y, config.folds, config.seed, config.ridge_alpha)
        d_res = np.empty_like(treatments)
        r2 = {roles.outcome: y_r2}
        for j, term in enumerate(design.endog.columns):
            d_res[:, j], r2[term] = cross_fit_residuals(features, treatments[:, j], config.folds, config.seed,
                                                        config.ridge_alpha)
        cov = "HC1" if config.cov_type == "robust" else "nonrobust"
        final = sm.OLS(y_res, d_res).fit(cov_type=cov)
    z = stats.norm.ppf(0.5 + config.level / 2)
    names = list(design.endog.columns)
    coef = dict(zip(names, map(float, final.params)))
    se = dict(zip(names, map(float, final.bse)))
    warns = [f"{design.dropped:,} rows with a missing outcome, confounder or control were left out"] if design.dropped else []
    for term in names:
        if r2[term] > 0.95:
            warns.append(f"the text predicts {term} almost perfectly (R² {r2[term]:.2f}): little variation is left "
                         "to estimate its effect, so the DML interval is wide")
    notes.append("DML removes what the text features predict from both the outcome and the confounder; it is "
                 "unbiased only if the features capture every channel linking text and confounder")
    return EstimateResult(
        method="dml", n=len(y), outcome=roles.outcome, coef=coef, std_err=se,
        conf_int={k: [coef[k] - z * se[k], coef[k] + z * se[k]] for k in names},
        pvalues=dict(zip(names, map(float, final.pvalues))), confounder_terms=design.confounder_terms,
        tests={"sargan": {"reason": "over-identification tests apply to IV only"},
               "wu_hausman": {"reason": "the endogeneity test needs an instrument"}},
        warnings=warns, notes=notes,
        formula=f"{roles.outcome} ~ θ·({', '.join(names)}) + g(text features), {config.folds}-fold cross-fitted",
        nuisance={"features": config.embeddings, "r2": r2, "folds": config.folds},
        config=config.to_dict())


def nuisance_features(data: pd.DataFrame, roles: Roles, controls: pd.DataFrame, config: EstimatorConfig,
                      progress=None):
    """Text (and optionally context) features + standardised controls, as one sparse matrix."""
    from scipy import sparse
    text_cols = [roles.text] + ([roles.context] if config.use_context and roles.context else [])
    blocks = [text_features(data[col], config.embeddings, progress=progress) for col in text_cols]
    if controls.shape[1]:
        values = controls.to_numpy(dtype=np.float64)
        values = (values - values.mean(0)) / np.where(values.std(0) > 0, values.std(0), 1.0)
        blocks.append(sparse.csr_matrix(values))
    return sparse.hstack(blocks).tocsr()


def text_features(texts: pd.Series | Sequence[str], embeddings: str = "tfidf", progress=None):
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


def cross_fit_residuals(features, target: np.ndarray, folds: int, seed: int,
                        alpha: float = 1.0) -> tuple[np.ndarray, float]:
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
            model.fit(features[train], target[train])
        predicted[test] = model.predict(features[test])
    resid = target - predicted
    total = float(((target - target.mean()) ** 2).sum())
    return resid, (1.0 - float(resid @ resid) / total) if total > 0 else math.nan


# ------------------------------------------------------------------ one call from a table
FITTERS = {"ols": fit_ols, "iv": fit_iv, "dml": fit_dml}


def estimate(store, table: str, method: str, config: EstimatorConfig | None = None, progress=None) -> EstimateResult:
    """Read the tagged table from a `Store` (DML reads a sample when the table is large) and fit."""
    if method not in FITTERS:
        raise DeconfoundError(f"unknown method {method!r}: choose one of {', '.join(ESTIMATORS)}")
    config = config or EstimatorConfig()
    roles = store.require_roles(table)
    if method == "iv":
        _check_roles(pd.DataFrame(columns=required_columns(roles, "iv")), roles, with_instruments=True)
    columns = required_columns(roles, method, config.time_effects)
    rows = store.row_count(table)
    sample = config.dml_max_rows if method == "dml" and rows > config.dml_max_rows else None
    data = store.read_frame(table, columns, sample_rows=sample, seed=config.seed)
    result = fit_dml(data, roles, config, progress=progress) if method == "dml" else FITTERS[method](data, roles, config)
    if sample:
        result.notes.insert(0, f"DML was fitted on a random sample of {sample:,} of {rows:,} rows "
                               "(the estimate is applied to every row)")
    result.table = table
    return result


# ------------------------------------------------------------------ the deconfounded outcome
def confounder_part(data: pd.DataFrame, result: EstimateResult) -> np.ndarray:
    """ĥ(C) = Σ β̂ₖ·Cₖ over the confounder terms (dummies rebuilt from each term's level); NaN where missing."""
    h = np.zeros(len(data))
    for term in result.confounder_terms:
        beta = result.coef[term["term"]]
        column = data[term["column"]]
        if term.get("level") is None:
            values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64)
        else:
            labels = column.astype("string").fillna(MISSING_LEVEL)
            values = (labels == term["level"]).to_numpy(dtype=np.float64)
        h = h + beta * values
    return h


def deconfounded_outcome(data: pd.DataFrame, result: EstimateResult, centre: bool = True) -> tuple[np.ndarray, float]:
    """y − (ĥ(C) − offset), with offset = mean ĥ(C) when `centre` (keeps the raw mean), else 0.

    Returns (values, offset); rows with a missing outcome or confounder give NaN.
    """
    y = pd.to_numeric(data[result.outcome], errors="coerce").to_numpy(dtype=np.float64)
    h = confounder_part(data, result)
    offset = float(np.nanmean(h)) if centre and np.isfinite(h).any() else 0.0
    return y - (h - offset), offset


def default_column_name(result: EstimateResult) -> str:
    """e.g. outcome_deconf_iv."""
    return f"{result.outcome}_deconf_{result.method}"[:63]


def latest_corrected_column(store, table: str, outcome: str | None) -> tuple[str | None, dict]:
    """The newest deconfounded-outcome column saved for this table's outcome (Deconfound step), if any."""
    best, meta = None, {}
    for name, info in store.column_meta(table).items():
        if info.get("kind") == "deconfounded_outcome" and info.get("source_outcome") in (None, outcome):
            if best is None or str(info.get("created_at", "")) >= str(meta.get("created_at", "")):
                best, meta = name, info
    return best, meta


def write_deconfounded_column(store, table: str, result: EstimateResult, name: str | None = None,
                              centre: bool = True, replace: bool = False) -> dict:
    """Add y − ĥ(C) to the table as a new column, with the method and estimate in its column meta.

    Refuses to overwrite any column that it did not create itself, so the source columns never change.
    Returns the meta that was recorded (plus the column's name under "column").
    """
    name = name or default_column_name(result)
    schema = store.schema(table)
    derived = store.column_meta(table)
    if name in schema and name not in derived:
        raise DeconfoundError(f"'{name}' is an original column of '{table}' and is never overwritten: "
                              "choose another name for the corrected outcome")
    if name in derived and not replace:
        raise DeconfoundError(f"column '{name}' already exists in '{table}': choose another name or replace it")
    columns = list(dict.fromkeys([result.outcome] + [t["column"] for t in result.confounder_terms]))
    data = store.read_frame(table, columns, with_rowid=True)
    values, offset = deconfounded_outcome(data, result, centre=centre)
    terms = result.terms
    meta = {
        "kind": "deconfounded_outcome",
        "method": result.method,
        "coef": {t: result.coef[t] for t in terms},
        "std_err": {t: result.std_err[t] for t in terms},
        "conf_int": {t: result.conf_int[t] for t in terms},
        "formula": f"{name} = {result.outcome} - (" + " + ".join(f"{result.coef[t]:.6g}*{t}" for t in terms)
                   + (f" - {offset:.6g})" if centre else ")"),
        "model": result.formula,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "source_outcome": result.outcome,
        "confounders": sorted({t["column"] for t in result.confounder_terms}),
        "centred": centre,
        "offset": offset,
        "n": result.n,
        "warnings": list(result.warnings),
        "estimate": result.to_dict(),
    }
    store.write_column(table, name, values, data["_rowid"].to_numpy(), meta=meta, replace=replace)
    return {"column": name, **meta}
