"""Diagnostics on a tagged table: does the outcome move with things that are not the text's quality?

Four checks, each a result object with a one-sentence plain-language `verdict`, `summary()` and `to_dict()`,
shared by the CLI (`deconfound diagnose`) and the Diagnostics page:

- `time_patterns`: outcome by weekday and by calendar month with confidence intervals, one-way F-tests
  and the share of variance each explains (paper Fig. 1–2). Aggregated inside DuckDB.
- `scan_markers`: words and 2–3-word phrases above a support threshold; the outcome lift when present,
  their association with each confounder, the lift left after controlling for the confounders, with
  Benjamini–Hochberg control. Phrases whose lift mostly vanishes are flagged "spurious" (team names in
  the demo: they raise the outcome only through popularity). Large tables are sampled, and say so.
- `entanglement`: how well the text predicts each confounder (cross-validated R² from text embeddings),
  beyond what the instruments explain, and the confounder's correlation with the truth column when
  there is one. Entangled confounders are the case where naive corrections fail (paper §4.1).
- `temporal_leakage`: correlation of the monthly means of any score column with the monthly outcome
  (paper Fig. 4d), to audit reward models and corrected outcomes.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from ..data import Roles, Store, is_numeric, quote_ident
from ..errors import DeconfoundError, NotFoundError
from ..jsonio import jsonable as _jsonable
from .estimators import WEEKDAYS


@dataclass
class DiagnosticsConfig:
    """Thresholds and sample sizes of the diagnostics (defaults return in seconds on a million rows)."""

    alpha: float = field(default=0.01, metadata={"help": "significance level (after Benjamini–Hochberg for markers)"})
    min_time_share: float = field(default=0.001, metadata={
        "help": "time patterns: a significant weekday/month effect explaining less than this share of the "
                "outcome's variance is reported as negligible (huge tables make tiny effects significant)"})
    min_support: float = field(default=0.005, metadata={"help": "markers: minimum share of rows containing the phrase"})
    min_count: int = field(default=30, metadata={"help": "markers: minimum number of rows containing the phrase"})
    max_ngram: int = field(default=3, metadata={"help": "markers: longest phrase, in words"})
    max_markers: int = field(default=5000, metadata={"help": "markers: keep at most this many most frequent phrases"})
    marker_rows: int = field(default=50_000, metadata={"help": "markers: scan a random sample of at most this many rows"})
    adjustment: str = field(default="auto", metadata={
        "help": "markers: how the confounders are controlled for: 'iv' (lift on the outcome minus the IV estimate "
                "of the confounder effect), 'regression' (the confounders as covariates), or 'auto' (IV when an "
                "instrument is tagged and strong)"})
    vanish_share: float = field(default=0.75, metadata={
        "help": "a significant marker is 'spurious' when controlling for the confounders leaves no significant "
                "lift or removes at least this share of it (a marker keeping a real but smaller effect is not)"})
    embeddings: str = field(default="tfidf", metadata={
        "help": "entanglement: 'tfidf' (sparse TF-IDF, fast) or 'minilm' (sentence embeddings; ~100 headlines/s "
                "on 2 CPU cores the first time, cached afterwards)"})
    entanglement_rows: int | None = field(default=None, metadata={
        "help": "entanglement: random sample size (default 5,000 with tfidf, 3,000 with minilm)"})
    folds: int = field(default=5, metadata={"help": "entanglement: cross-validation folds"})
    entangled_r2: float = field(default=0.05, metadata={
        "help": "entanglement: flag when the text predicts at least this share of the confounder's variance "
                "beyond the instruments"})
    entangled_corr: float = field(default=0.1, metadata={
        "help": "entanglement: flag when |corr(confounder, truth)| is at least this (truth column tagged)"})
    leakage_corr: float = field(default=0.5, metadata={
        "help": "temporal leakage: flag a score whose monthly means correlate at least this with the outcome's"})
    seed: int = field(default=0, metadata={"help": "sampling and cross-validation seed"})


# ================================================================== a. time patterns
@dataclass
class TimePatternsResult:
    """Outcome by weekday and by month, with F-tests and variance shares."""

    applicable: bool
    reason: str = ""
    outcome: str = ""
    timestamp: str = ""
    by_weekday: pd.DataFrame | None = None  # level, n, mean, sd, ci_low, ci_high
    by_month: pd.DataFrame | None = None
    tests: dict = field(default_factory=dict)  # weekday/month -> {f_stat, df1, df2, pvalue, share, significant, material}
    alpha: float = 0.01

    @property
    def verdict(self) -> str:
        """One plain-language sentence."""
        if not self.applicable:
            return f"Time patterns were not checked: {self.reason}."
        found = [(k, t) for k, t in self.tests.items() if t.get("material")]
        if not found:
            tiny = [k for k, t in self.tests.items() if t.get("significant")]
            parts = ", ".join(f"{k} p = {t['pvalue']:.2g}, {t.get('share', 0):.2%} of variance"
                              for k, t in self.tests.items() if "pvalue" in t)
            if tiny:
                return (f"The {' and '.join(tiny)} pattern in {self.outcome} is statistically detectable but "
                        f"negligible ({parts}): time is unlikely to leak into the reward.")
            return (f"No clear weekday or month pattern in {self.outcome} ({parts}): time is unlikely to "
                    "leak into the reward.")
        parts = " and ".join(f"the {k} explains {t['share']:.1%} of its variance (F = {t['f_stat']:.1f}, "
                             f"p = {t['pvalue']:.1g})" for k, t in found)
        return (f"{self.outcome} moves with time — {parts}: phrases tied to a day or season can look good "
                "without being good, so consider time as a confounder or control.")

    def summary(self) -> str:
        """Verdict plus the group tables."""
        if not self.applicable:
            return self.verdict
        lines = [self.verdict]
        for name, frame in (("weekday", self.by_weekday), ("month", self.by_month)):
            lines += ["", f"outcome by {name}:", frame.to_string(index=False, float_format=lambda v: f"{v:.4f}")]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """JSON-ready dict."""
        return _jsonable({"kind": "time_patterns", "applicable": self.applicable, "reason": self.reason,
                          "verdict": self.verdict, "outcome": self.outcome, "timestamp": self.timestamp,
                          "by_weekday": _records(self.by_weekday), "by_month": _records(self.by_month),
                          "tests": self.tests})


def time_patterns(store: Store, table: str, roles: Roles, config: DiagnosticsConfig | None = None) -> TimePatternsResult:
    """Outcome by weekday and calendar month (GROUP BY inside DuckDB), with one-way ANOVA F-tests."""
    config = config or DiagnosticsConfig()
    if not roles.timestamp:
        return TimePatternsResult(applicable=False, reason="no timestamp column is tagged", alpha=config.alpha)
    y, ts, t = quote_ident(roles.outcome), quote_ident(roles.timestamp), quote_ident(table)
    base = f"FROM {t} WHERE {y} IS NOT NULL AND {ts} IS NOT NULL"
    stats = f"count(*) AS n, avg({y}) AS mean, stddev_samp({y}) AS sd"
    with store.connect() as con:
        weekday = con.execute(f"SELECT isodow({ts}) AS k, {stats} {base} GROUP BY k ORDER BY k").df()
        month = con.execute(f"SELECT strftime(date_trunc('month', {ts}), '%Y-%m') AS k, {stats} {base} "
                            "GROUP BY k ORDER BY k").df()
    if weekday.empty:
        return TimePatternsResult(applicable=False, reason="the outcome or timestamp is empty", alpha=config.alpha)
    weekday["level"] = [WEEKDAYS[int(k) - 1] for k in weekday["k"]]
    month["level"] = month["k"].astype(str)
    result = TimePatternsResult(applicable=True, outcome=roles.outcome, timestamp=roles.timestamp, alpha=config.alpha)
    result.by_weekday = _with_ci(weekday)
    result.by_month = _with_ci(month)
    result.tests = {"weekday": anova_from_groups(weekday, config.alpha),
                    "month": anova_from_groups(month, config.alpha)}
    for test in result.tests.values():
        test["material"] = bool(test.get("significant") and test.get("share", 0) >= config.min_time_share)
    return result


def _with_ci(groups: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    from scipy import stats
    n = groups["n"].astype(float)
    sd = groups["sd"].astype(float)
    half = stats.t.ppf(0.5 + level / 2, np.maximum(n - 1, 1)) * sd / np.sqrt(n)
    return pd.DataFrame({"level": groups["level"], "n": groups["n"].astype(int), "mean": groups["mean"].astype(float),
                         "sd": sd, "ci_low": groups["mean"] - half, "ci_high": groups["mean"] + half})


def anova_from_groups(groups: pd.DataFrame, alpha: float = 0.01) -> dict:
    """One-way ANOVA from per-group count, mean and sd: F, p-value and eta² (share of variance explained)."""
    from scipy import stats
    n = groups["n"].to_numpy(dtype=float)
    mean = groups["mean"].to_numpy(dtype=float)
    var = np.nan_to_num(groups["sd"].to_numpy(dtype=float) ** 2)
    total_n, k = n.sum(), len(n)
    if k < 2 or total_n <= k:
        return {"reason": "needs at least two groups with data", "significant": False}
    grand = (n * mean).sum() / total_n
    between = float((n * (mean - grand) ** 2).sum())
    within = float(((n - 1) * var).sum())
    df1, df2 = k - 1, int(total_n - k)
    f_stat = (between / df1) / (within / df2) if within > 0 else math.inf
    pvalue = float(stats.f.sf(f_stat, df1, df2))
    return {"f_stat": f_stat, "df1": df1, "df2": df2, "pvalue": pvalue,
            "share": between / (between + within) if between + within > 0 else 0.0,
            "significant": bool(pvalue < alpha)}


# ================================================================== b. marker scan
@dataclass
class MarkerScanResult:
    """Frequent phrases with their raw and confounder-adjusted outcome lift."""

    markers: pd.DataFrame  # marker, n, support, lift, lift_q, adjusted_lift, adjusted_q, retained, assoc_*, status
    rows_scanned: int
    rows_total: int
    confounders: list[str]
    min_count: int
    alpha: float
    adjustment: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def sampled(self) -> bool:
        """Whether the scan used a sample of the table."""
        return self.rows_scanned < self.rows_total

    def spurious(self) -> pd.DataFrame:
        """Markers flagged spurious, largest lift first."""
        return self._ranked(self.markers[self.markers["status"] == "spurious"])

    def robust(self) -> pd.DataFrame:
        """Significant markers whose lift survives controlling for the confounders."""
        return self._ranked(self.markers[self.markers["status"] == "robust"])

    @staticmethod
    def _ranked(frame: pd.DataFrame) -> pd.DataFrame:
        """Strongest evidence first (smallest p-value of the raw lift, then the largest lift)."""
        order = np.lexsort((-frame["lift"].abs().to_numpy(), frame["lift_p"].to_numpy()))
        return frame.iloc[order]

    @property
    def verdict(self) -> str:
        """One plain-language sentence."""
        sample = f" (a random sample of {self.rows_scanned:,} of {self.rows_total:,} rows)" if self.sampled else ""
        if not self.confounders:
            return (f"Scanned {len(self.markers):,} frequent phrases{sample}; no confounder is tagged, so none can "
                    "be checked for spurious lift.")
        spurious, robust = self.spurious(), self.robust()
        if spurious.empty:
            return (f"None of {len(self.markers):,} frequent phrases{sample} owes its lift to "
                    f"{', '.join(self.confounders)}; {len(robust)} keep a significant lift after controlling.")
        examples = ", ".join(f"'{m}'" for m in _distinct(spurious["marker"], 4))
        return (f"{len(spurious)} of {len(self.markers):,} frequent phrases{sample} lift the outcome mostly because "
                f"they travel with {', '.join(self.confounders)} (e.g. {examples}): a model trained on the raw "
                f"outcome would learn to write them; {len(robust)} keep their lift after controlling.")

    def summary(self, top: int = 10) -> str:
        """Verdict plus the top spurious and robust markers."""
        lines = [self.verdict, f"controlled by: {self.adjustment}"]
        for title, frame in (("spurious (lift vanishes after controlling)", self.spurious()),
                             ("robust (lift survives controlling)", self.robust())):
            if len(frame):
                lines += ["", f"top {title}:"]
                lines += [f"  {r.marker:32s} lift {r.lift:+.4f} → {r.adjusted_lift:+.4f}  (n = {r.n:,})"
                          for r in frame.head(top).itertuples()]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def to_dict(self, top: int | None = 200) -> dict:
        """JSON-ready dict (all flagged markers, plus the `top` others by |lift|)."""
        flagged = self.markers["status"].isin(["spurious", "robust", "masked"])
        frame = self.markers[flagged]
        if top is not None:
            others = self.markers[~flagged]
            frame = pd.concat([frame, others.reindex(others["lift"].abs().sort_values(ascending=False).index)
                               .head(max(0, top - len(frame)))])
        return _jsonable({"kind": "markers", "verdict": self.verdict, "rows_scanned": self.rows_scanned,
                          "rows_total": self.rows_total, "sampled": self.sampled, "confounders": self.confounders,
                          "min_count": self.min_count, "alpha": self.alpha, "adjustment": self.adjustment,
                          "n_markers": len(self.markers),
                          "n_spurious": int((self.markers["status"] == "spurious").sum()),
                          "n_robust": int((self.markers["status"] == "robust").sum()),
                          "markers": _records(frame), "notes": self.notes})


def scan_markers(data: pd.DataFrame, roles: Roles, config: DiagnosticsConfig | None = None,
                 rows_total: int | None = None) -> MarkerScanResult:
    """Outcome lift of frequent phrases, raw and after controlling for the confounders (IV-deconfounded
    outcome when an instrument is tagged, else the confounders as covariates)."""
    from .estimators import blas_threads
    with blas_threads():
        return _scan_markers(data, roles, config or DiagnosticsConfig(), rows_total)


def _scan_markers(data: pd.DataFrame, roles: Roles, config: DiagnosticsConfig,
                  rows_total: int | None) -> MarkerScanResult:
    from scipy import sparse, stats
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, CountVectorizer
    from statsmodels.stats.multitest import multipletests
    data = data[data[roles.outcome].notna()]
    n = len(data)
    if n < 20:
        raise DeconfoundError(f"only {n} rows have an outcome: the marker scan needs at least 20")
    min_count = max(config.min_count, int(math.ceil(config.min_support * n)))
    vectorizer = CountVectorizer(ngram_range=(1, config.max_ngram), binary=True, min_df=min(min_count, n),
                                 max_features=config.max_markers, token_pattern=r"(?u)\b[^\W\d_][\w'’-]*\b",
                                 dtype=np.float64)
    try:
        x = vectorizer.fit_transform(data[roles.text].fillna("").astype(str)).tocsc()
    except ValueError:  # no phrase reaches the support threshold
        x = sparse.csc_matrix((n, 0))
    vocab = vectorizer.get_feature_names_out() if x.shape[1] else np.array([], dtype=str)
    keep = np.array([not all(w in ENGLISH_STOP_WORDS for w in m.split()) for m in vocab], dtype=bool)
    x, vocab = x[:, keep], vocab[keep]
    y = data[roles.outcome].to_numpy(dtype=np.float64)
    count = np.asarray(x.sum(axis=0)).ravel()

    # Raw lift: OLS of y on [1, x] per marker, i.e. mean(y | present) − mean(y | absent).
    ones = np.ones((n, 1))
    raw_lift, raw_se = _marker_ols(x, y, ones, count)
    controls, confounder_blocks = _confounder_matrix(data, roles.confounders)
    adjusted_y, adjustment, notes = _adjusted_outcome(data, roles, config)
    if adjusted_y is not None:
        # Lift on y − ĥ(C): what a reward trained on the IV-deconfounded outcome would still pay for.
        adj_lift, adj_se = _marker_ols(x, adjusted_y, ones, count)
    else:
        # Regression adjustment: the confounder terms as covariates (Frisch–Waugh: residualise on [1, C]).
        adj_lift, adj_se = _marker_ols(x, y, np.hstack([ones, controls]), count)
    df_resid = max(1, n - 2 - controls.shape[1])
    raw_p = 2 * stats.t.sf(np.abs(raw_lift / raw_se), df_resid)
    adj_p = 2 * stats.t.sf(np.abs(adj_lift / adj_se), df_resid)

    frame = pd.DataFrame({"marker": vocab, "n": count.astype(int), "support": count / n,
                          "lift": raw_lift, "lift_se": raw_se, "lift_p": raw_p,
                          "adjusted_lift": adj_lift, "adjusted_se": adj_se, "adjusted_p": adj_p})
    frame["lift_q"] = _bh(raw_p, multipletests)
    frame["adjusted_q"] = _bh(adj_p, multipletests)
    for name, block in confounder_blocks.items():
        assoc, p = _association(x, block, count)
        frame[f"assoc_{name}"] = assoc
        frame[f"assoc_{name}_q"] = _bh(p, multipletests)
    with np.errstate(divide="ignore", invalid="ignore"):
        frame["retained"] = np.where(frame["lift"] != 0, frame["adjusted_lift"] / frame["lift"], np.nan)
    frame["status"] = _marker_status(frame, config, bool(roles.confounders))
    total = rows_total if rows_total is not None else n
    if total > n:
        notes.append(f"the scan used a random sample of {n:,} of {total:,} rows (raise marker_rows to scan more)")
    if x.shape[1] >= config.max_markers:
        notes.append(f"only the {config.max_markers:,} most frequent phrases were tested")
    return MarkerScanResult(markers=frame.sort_values("lift_p").reset_index(drop=True), rows_scanned=n,
                            rows_total=total, confounders=list(roles.confounders), min_count=min_count,
                            alpha=config.alpha, adjustment=adjustment, notes=notes)


def _adjusted_outcome(data: pd.DataFrame, roles: Roles, config: DiagnosticsConfig) -> tuple[np.ndarray | None, str, list[str]]:
    """The outcome minus the IV estimate of the confounder part (when chosen and possible), else None.

    Why IV: when the confounder is entangled with quality, adding it as a covariate is not enough — it is a
    collider of the instrument and the quality-related part, and conditioning on it gives team names a
    lift of their own again. Removing the causally estimated confounder effect does not.
    """
    from .estimators import EstimatorConfig, deconfounded_outcome, fit_iv
    if not roles.confounders:
        return None, "none", []
    regression = f"regression on {', '.join(roles.confounders)}"
    want_iv = config.adjustment == "iv" or (config.adjustment == "auto" and roles.instruments)
    if not want_iv:
        return None, regression, []
    try:
        est = fit_iv(data, roles, EstimatorConfig(time_effects=False))
    except DeconfoundError as exc:
        return None, regression, [f"IV adjustment unavailable ({exc}); controlled by regression instead"]
    if est.warnings and any("weak instrument" in w for w in est.warnings) and config.adjustment == "auto":
        return None, regression, ["the instrument is weak, so the markers were controlled by regression instead of IV"]
    values, _ = deconfounded_outcome(data, est)
    values = np.where(np.isfinite(values), values, np.nanmean(values))
    coefs = ", ".join(f"{t} {est.coef[t]:+.4g}" for t in est.terms)
    return values, f"IV: the outcome minus the instrumented confounder effect ({coefs})", []


def _marker_ols(x, y: np.ndarray, base: np.ndarray, count: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Coefficient and SE of each binary column of x in y ~ base + x_j, for all j at once.

    With M the annihilator of `base`: β_j = x_j'My / x_j'Mx_j, and x_j'Mx_j = x_j'x_j − (B'x_j)'(B'B)⁻¹(B'x_j).
    """
    gram_inv = np.linalg.pinv(base.T @ base)
    y_res = y - base @ (gram_inv @ (base.T @ y))
    bx = np.asarray((x.T @ base)).T  # k × m
    sxx = count - np.einsum("km,km->m", bx, gram_inv @ bx)
    sxy = np.asarray(x.T @ y_res).ravel()
    with np.errstate(divide="ignore", invalid="ignore"):
        beta = np.where(sxx > 1e-9, sxy / sxx, 0.0)
        dof = max(1, len(y) - base.shape[1] - 1)
        sigma2 = np.maximum(float(y_res @ y_res) - beta * sxy, 0) / dof
        se = np.where(sxx > 1e-9, np.sqrt(sigma2 / sxx), np.inf)
    return beta, se


def _confounder_matrix(data: pd.DataFrame, confounders: Sequence[str]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """All confounder terms (numeric as is, categorical as dummies) and each confounder's own block."""
    from .estimators import column_terms
    blocks = {}
    for name in confounders:
        terms, _ = column_terms(data, [name])
        values = terms.to_numpy(dtype=np.float64)
        # Missing numbers are replaced by the mean so a few gaps do not drop the whole scan.
        col_mean = np.nanmean(values, axis=0)
        values = np.where(np.isnan(values), col_mean, values)
        blocks[name] = values
    stacked = np.hstack(list(blocks.values())) if blocks else np.zeros((len(data), 0))
    return stacked, blocks


def _association(x, block: np.ndarray, count: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Association of each marker with one confounder: the correlation (signed, numeric confounder) or the
    multiple correlation R (categorical), with the F-test p-value."""
    from scipy import stats
    n, k = block.shape
    centred = block - block.mean(axis=0)
    gram_inv = np.linalg.pinv(centred.T @ centred)
    cx = np.asarray(x.T @ centred).T  # k × m: centred cross-products (x'(c − c̄))
    explained = np.einsum("km,km->m", cx, gram_inv @ cx)
    total = count - count ** 2 / n
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.clip(np.where(total > 0, explained / total, 0.0), 0, 1)
        f_stat = (r2 / k) / np.maximum(1 - r2, 1e-12) * (n - k - 1)
    p = stats.f.sf(f_stat, k, max(1, n - k - 1))
    r = np.sqrt(r2)
    if k == 1:
        r = r * np.sign(cx[0])
    return r, p


def _bh(pvalues: np.ndarray, multipletests) -> np.ndarray:
    if len(pvalues) == 0:
        return np.array([])
    return multipletests(np.nan_to_num(pvalues, nan=1.0), method="fdr_bh")[1]


def _marker_status(frame: pd.DataFrame, config: DiagnosticsConfig, has_confounders: bool) -> np.ndarray:
    """spurious: a significant lift that mostly vanishes after controlling (no significant lift left, or at
    most `1 − vanish_share` of it in the same direction) — so it came through the confounders (a lift that
    vanishes once they are removed implies the association; its own test is weaker and only reported);
    robust: a significant lift that survives; masked: a real effect that the confounder hides or reverses."""
    significant = frame["lift_q"].to_numpy() < config.alpha
    adj_significant = frame["adjusted_q"].to_numpy() < config.alpha
    lift, adj = frame["lift"].to_numpy(), frame["adjusted_lift"].to_numpy()
    same_sign = np.sign(adj) == np.sign(lift)
    vanished = ~adj_significant | (same_sign & (np.abs(adj) <= (1 - config.vanish_share) * np.abs(lift)))
    status = np.full(len(frame), "", dtype=object)
    if not has_confounders:
        status[significant] = "significant"
        return status
    status[significant & vanished] = "spurious"
    status[(status == "") & significant & adj_significant & same_sign] = "robust"
    status[(status == "") & adj_significant & (~significant | ~same_sign)] = "masked"
    return status


def _distinct(markers: pd.Series, k: int) -> list[str]:
    """Up to k examples, skipping phrases contained in one already chosen ('omaha' after 'omaha ironmen')."""
    chosen: list[str] = []
    for m in markers:
        if not any(m in c or c in m for c in chosen):
            chosen.append(m)
        if len(chosen) == k:
            break
    return chosen


# ================================================================== c. entanglement
@dataclass
class EntanglementResult:
    """How much of each confounder the text predicts, and whether it moves with quality."""

    confounders: pd.DataFrame  # confounder, r2_text, r2_instruments, r2_text_beyond_instruments, corr_truth, ...
    rows: int
    rows_total: int
    embeddings: str
    truth: str | None
    instruments: list[str]
    notes: list[str] = field(default_factory=list)
    reason: str = ""

    @property
    def entangled(self) -> bool:
        """Whether any confounder is flagged entangled."""
        return bool(len(self.confounders)) and bool(self.confounders["entangled"].any())

    @property
    def verdict(self) -> str:
        """One plain-language sentence."""
        if self.reason:
            return f"Entanglement was not checked: {self.reason}."
        sample = f" (random sample of {self.rows:,} of {self.rows_total:,} rows)" if self.rows < self.rows_total else ""
        flagged = self.confounders[self.confounders["entangled"]]
        if flagged.empty:
            names = ", ".join(self.confounders["confounder"])
            beyond = " beyond the instruments" if self.instruments else ""
            return (f"{names} is not entangled with the text's quality{sample}: the text predicts little of it{beyond}"
                    + (f" and it does not move with {self.truth}" if self.truth else "")
                    + ", so simple corrections are safe.")
        row = flagged.iloc[0]
        why = []
        if np.isfinite(row.get("corr_truth", np.nan)) and row["truth_flag"]:
            why.append(f"it correlates with {self.truth} (r = {row['corr_truth']:+.2f})")
        if row["text_flag"]:
            beyond = " beyond the instruments" if self.instruments else ""
            why.append(f"the text predicts {row['r2_text_beyond_instruments']:.0%} of its variance{beyond}")
        return (f"{row['confounder']} is entangled with the text{sample}: {' and '.join(why)}. Naive fixes (adding it "
                "to the prompt or the reward model) will not remove it; use IV with a valid instrument.")

    def summary(self) -> str:
        """Verdict plus the per-confounder table."""
        lines = [self.verdict]
        if len(self.confounders):
            lines += ["", self.confounders.to_string(index=False, float_format=lambda v: f"{v:.3f}")]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """JSON-ready dict."""
        return _jsonable({"kind": "entanglement", "verdict": self.verdict, "entangled": self.entangled,
                          "rows": self.rows, "rows_total": self.rows_total, "embeddings": self.embeddings,
                          "truth": self.truth, "instruments": self.instruments,
                          "confounders": _records(self.confounders), "notes": self.notes, "reason": self.reason})


def entanglement(data: pd.DataFrame, roles: Roles, config: DiagnosticsConfig | None = None,
                 rows_total: int | None = None, progress=None) -> EntanglementResult:
    """Cross-validated R² of each numeric confounder from text embeddings (ridge), overall and beyond the
    instruments, plus its correlation with the truth column."""
    from .estimators import blas_threads, column_terms, text_features
    config = config or DiagnosticsConfig()
    total = rows_total if rows_total is not None else len(data)
    numeric = [c for c in roles.confounders if pd.api.types.is_numeric_dtype(data[c])]
    empty = EntanglementResult(confounders=pd.DataFrame(), rows=len(data), rows_total=total,
                               embeddings=config.embeddings, truth=roles.truth, instruments=list(roles.instruments))
    if not roles.confounders:
        empty.reason = "no confounder is tagged"
        return empty
    if not numeric:
        empty.reason = "entanglement is measured for numeric confounders only"
        return empty
    notes = [f"text features: {config.embeddings}; R² from {config.folds}-fold cross-validated ridge regression"]
    if total > len(data):
        notes.append(f"measured on a random sample of {len(data):,} of {total:,} rows")
    skipped = [c for c in roles.confounders if c not in numeric]
    if skipped:
        notes.append(f"categorical confounders skipped: {', '.join(skipped)}")
    emb = text_features(data[roles.text], config.embeddings, progress=progress)
    instruments = None
    if roles.instruments:
        instruments, _ = column_terms(data, roles.instruments)
        instruments = instruments.fillna(instruments.mean()).to_numpy(dtype=np.float64)
    rows = []
    for name in numeric:
        with blas_threads():
            rows.append(_entanglement_row(name, data, roles, emb, instruments, config))
    if roles.truth:
        notes.append(f"corr_truth: correlation of the confounder{' (net of the instruments)' if roles.instruments else ''}"
                     f" with {roles.truth}")
    return EntanglementResult(confounders=pd.DataFrame(rows), rows=len(data), rows_total=total,
                              embeddings=config.embeddings, truth=roles.truth, instruments=list(roles.instruments),
                              notes=notes)


def _entanglement_row(name: str, data: pd.DataFrame, roles: Roles, emb, instruments: np.ndarray | None,
                      config: DiagnosticsConfig) -> dict:
    """R² of one confounder from the text, overall and beyond the instruments; correlation with the truth."""
    from scipy import stats
    target = data[name].to_numpy(dtype=np.float64)
    ok = np.isfinite(target)
    c, e = target[ok], emb[np.flatnonzero(ok)]
    row = {"confounder": name, "r2_text": _cv_r2(e, c, config)}
    if instruments is not None:
        z = np.column_stack([np.ones(ok.sum()), instruments[ok]])
        coef, *_ = np.linalg.lstsq(z, c, rcond=None)
        resid = c - z @ coef
        row["r2_instruments"] = 1 - resid.var() / c.var() if c.var() > 0 else np.nan
        row["r2_text_beyond_instruments"] = _cv_r2(e, resid, config)
    else:
        resid = c - c.mean()
        row["r2_instruments"] = np.nan
        row["r2_text_beyond_instruments"] = row["r2_text"]
    row["corr_truth"] = row["corr_truth_p"] = np.nan
    if roles.truth:
        truth = data[roles.truth].to_numpy(dtype=np.float64)[ok]
        both = np.isfinite(truth)
        if both.sum() > 3 and np.std(truth[both]) > 0:
            r, p = stats.pearsonr(resid[both], truth[both])
            row["corr_truth"], row["corr_truth_p"] = float(r), float(p)
    row["truth_flag"] = bool(np.isfinite(row["corr_truth"]) and abs(row["corr_truth"]) >= config.entangled_corr
                             and row["corr_truth_p"] < config.alpha)
    row["text_flag"] = bool(row["r2_text_beyond_instruments"] >= config.entangled_r2)
    row["entangled"] = row["truth_flag"] or row["text_flag"]
    return row


def _cv_r2(features, target: np.ndarray, config: DiagnosticsConfig) -> float:
    """Out-of-fold R² of a ridge regression of the target on the text features (the DML nuisance model)."""
    from .estimators import cross_fit_residuals
    if len(target) < 2 * config.folds or np.var(target) == 0:
        return float("nan")
    return cross_fit_residuals(features, target, config.folds, config.seed)[1]


# ================================================================== d. temporal leakage
@dataclass
class LeakageResult:
    """Correlation between a score's monthly means and the outcome's monthly means (paper Fig. 4d)."""

    score: str
    outcome: str
    months: pd.DataFrame  # month, n, score_mean, outcome_mean
    corr: float
    pvalue: float
    threshold: float
    reason: str = ""

    @property
    def leaks(self) -> bool:
        """Whether the score tracks the monthly outcome."""
        return bool(np.isfinite(self.corr) and abs(self.corr) >= self.threshold and self.pvalue < 0.05)

    @property
    def verdict(self) -> str:
        """One plain-language sentence."""
        if self.reason:
            return f"Temporal leakage of {self.score} was not checked: {self.reason}."
        if self.leaks:
            return (f"Monthly means of {self.score} track the monthly {self.outcome} (r = {self.corr:+.2f} over "
                    f"{len(self.months)} months): unless those monthly swings reflect quality, the score has "
                    "picked up the time pattern.")
        return (f"{self.score} does not track the monthly {self.outcome} (r = {self.corr:+.2f} over "
                f"{len(self.months)} months, p = {self.pvalue:.2g}).")

    def summary(self) -> str:
        """The verdict."""
        return self.verdict

    def to_dict(self) -> dict:
        """JSON-ready dict."""
        return _jsonable({"kind": "temporal_leakage", "verdict": self.verdict, "score": self.score,
                          "outcome": self.outcome, "corr": self.corr, "pvalue": self.pvalue, "leaks": self.leaks,
                          "months": _records(self.months), "reason": self.reason})


def temporal_leakage(store: Store, table: str, roles: Roles, score: str,
                     config: DiagnosticsConfig | None = None) -> LeakageResult:
    """Pearson correlation, across calendar months, of the monthly means of `score` and of the outcome."""
    from scipy import stats
    config = config or DiagnosticsConfig()
    schema = store.schema(table)
    empty = pd.DataFrame(columns=["month", "n", "score_mean", "outcome_mean"])
    result = LeakageResult(score=score, outcome=roles.outcome or "", months=empty, corr=np.nan, pvalue=np.nan,
                           threshold=config.leakage_corr)
    if score not in schema:
        raise NotFoundError(f"table '{table}' has no column {score!r} to audit")
    if not is_numeric(schema[score]):
        result.reason = f"'{score}' is not numeric"
        return result
    if not roles.timestamp:
        result.reason = "no timestamp column is tagged"
        return result
    s, y, ts = quote_ident(score), quote_ident(roles.outcome), quote_ident(roles.timestamp)
    with store.connect() as con:
        months = con.execute(
            f"SELECT strftime(date_trunc('month', {ts}), '%Y-%m') AS month, count(*) AS n, avg({s}) AS score_mean, "
            f"avg({y}) AS outcome_mean FROM {quote_ident(table)} WHERE {s} IS NOT NULL AND {y} IS NOT NULL "
            f"AND {ts} IS NOT NULL GROUP BY month ORDER BY month").df()
    result.months = months
    if len(months) < 3:
        result.reason = f"only {len(months)} month(s) of data; at least 3 are needed"
        return result
    if months["score_mean"].std() == 0 or months["outcome_mean"].std() == 0:
        result.reason = "the monthly means do not vary"
        return result
    r, p = stats.pearsonr(months["score_mean"], months["outcome_mean"])
    result.corr, result.pvalue = float(r), float(p)
    return result


# ================================================================== all of them
@dataclass
class DiagnosticsReport:
    """Every diagnostic of one table."""

    table: str
    rows: int
    time_patterns: TimePatternsResult
    markers: MarkerScanResult | None
    entanglement: EntanglementResult | None
    leakage: list[LeakageResult]
    seconds: dict[str, float] = field(default_factory=dict)

    def findings(self) -> list[tuple[str, bool]]:
        """(verdict, needs attention) per diagnostic, in reading order."""
        tp = self.time_patterns
        out = [(tp.verdict, tp.applicable and any(t.get("material") for t in tp.tests.values()))]
        if self.markers is not None:
            out.append((self.markers.verdict, not self.markers.spurious().empty))
        if self.entanglement is not None:
            out.append((self.entanglement.verdict, self.entanglement.entangled))
        out += [(r.verdict, r.leaks) for r in self.leakage]
        if not self.leakage:
            out.append(("No score column was audited for temporal leakage yet: write a deconfounded outcome or "
                        "score the table with a reward model, then check whether its monthly means track the "
                        "outcome.", False))
        return out

    def verdicts(self) -> list[str]:
        """One sentence per diagnostic, in reading order."""
        return [verdict for verdict, _ in self.findings()]

    def summary(self, top: int = 10) -> str:
        """Verdicts, then the top markers."""
        lines = [f"Diagnostics of '{self.table}' ({self.rows:,} rows)", ""] + [f"- {v}" for v in self.verdicts()]
        if self.markers is not None:
            for title, frame in (("spurious markers", self.markers.spurious()),
                                 ("robust markers", self.markers.robust())):
                if len(frame):
                    lines += ["", f"top {title}:"]
                    lines += [f"  {r.marker:32s} lift {r.lift:+.4f} → {r.adjusted_lift:+.4f} after controlling"
                              for r in frame.head(top).itertuples()]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """All result dicts."""
        return {"table": self.table, "rows": self.rows, "verdicts": self.verdicts(),
                "time_patterns": self.time_patterns.to_dict(),
                "markers": self.markers.to_dict() if self.markers else None,
                "entanglement": self.entanglement.to_dict() if self.entanglement else None,
                "leakage": [r.to_dict() for r in self.leakage], "seconds": self.seconds}


def default_scores(store: Store, table: str, roles: Roles) -> list[str]:
    """Score columns audited for temporal leakage by default: the derived columns (corrected outcomes,
    reward scores) that exist in the table."""
    schema = store.schema(table)
    return [c for c in store.column_meta(table) if c in schema]


def diagnose(store: Store, table: str, config: DiagnosticsConfig | None = None, scores: Sequence[str] | None = None,
             progress=None) -> DiagnosticsReport:
    """Run every diagnostic on a tagged table (large tables are sampled for the text-based checks)."""
    config = config or DiagnosticsConfig()
    roles = store.require_roles(table)
    rows = store.row_count(table)
    seconds: dict[str, float] = {}

    def timed(name, fn):
        start = time.perf_counter()
        out = fn()
        seconds[name] = round(time.perf_counter() - start, 3)
        if progress:
            progress(name)
        return out

    times = timed("time_patterns", lambda: time_patterns(store, table, roles, config))
    markers = timed("markers", lambda: scan_markers_table(store, table, roles, config))
    tangle = timed("entanglement", lambda: entanglement_table(store, table, roles, config))
    audit = scores if scores is not None else default_scores(store, table, roles)
    leakage = timed("leakage", lambda: [temporal_leakage(store, table, roles, s, config) for s in audit])
    return DiagnosticsReport(table=table, rows=rows, time_patterns=times, markers=markers, entanglement=tangle,
                             leakage=leakage, seconds=seconds)


def scan_markers_table(store: Store, table: str, roles: Roles, config: DiagnosticsConfig | None = None) -> MarkerScanResult:
    """`scan_markers` on the table, sampled to `marker_rows` rows."""
    config = config or DiagnosticsConfig()
    rows = store.row_count(table)
    cols = list(dict.fromkeys([roles.text, roles.outcome, *roles.confounders, *roles.instruments, *roles.controls]))
    sample = config.marker_rows if rows > config.marker_rows else None
    data = store.read_frame(table, cols, sample_rows=sample, seed=config.seed)
    return scan_markers(data, roles, config, rows_total=rows)


def entanglement_table(store: Store, table: str, roles: Roles, config: DiagnosticsConfig | None = None,
                       progress=None) -> EntanglementResult:
    """`entanglement` on a random sample of the table."""
    config = config or DiagnosticsConfig()
    rows = store.row_count(table)
    limit = config.entanglement_rows or (3000 if config.embeddings == "minilm" else 5000)
    cols = list(dict.fromkeys(c for c in [roles.text, *roles.confounders, *roles.instruments, roles.truth] if c))
    data = store.read_frame(table, cols, sample_rows=limit if rows > limit else None, seed=config.seed)
    return entanglement(data, roles, config, rows_total=rows, progress=progress)


# ------------------------------------------------------------------ helpers
def _records(frame: pd.DataFrame | None) -> list[dict]:
    if frame is None:
        return []
    return frame.to_dict(orient="records")
