"""The marker scan: words and 2–3-word phrases above a support threshold; the outcome lift when present, their
association with each confounder, the lift left after controlling for the confounders, with Benjamini–Hochberg
control. Phrases whose lift mostly vanishes are flagged "spurious" (team names in the demo: they raise the
outcome only through popularity). Large tables are sampled, and say so.

`distinct_phrases` is the one rule for showing overlapping phrases once (in the verdict's examples and in the
rows of the marker chart, `marker_chart_rows`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from ...data import Roles
from ...errors import DeconfoundError
from ...jsonio import jsonable as _jsonable
from ..calendar_effects import to_model_scale
from ..corrected import deconfounded_outcome
from ..estimators import blas_threads, fit_iv
from ..results import EstimatorConfig
from ..terms import column_terms
from .config import DiagnosticsConfig, records


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
        examples = ", ".join(f"'{m}'" for m in distinct_phrases(spurious["marker"], 4))
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
                          "markers": records(frame), "notes": self.notes})


def scan_markers(data: pd.DataFrame, roles: Roles, config: DiagnosticsConfig | None = None,
                 rows_total: int | None = None) -> MarkerScanResult:
    """Outcome lift of frequent phrases, raw and after controlling for the confounders (IV-deconfounded
    outcome when an instrument is tagged, else the confounders as covariates)."""
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
    y = to_model_scale(data[roles.outcome], roles.outcome_scale, f"outcome '{roles.outcome}'")
    count = np.asarray(x.sum(axis=0)).ravel()

    # Raw lift: OLS of y on [1, x] per marker, i.e. mean(y | present) − mean(y | absent).
    ones = np.ones((n, 1))
    raw_lift, raw_se = _marker_ols(x, y, ones, count)
    controls, confounder_blocks = _confounder_matrix(data, roles.confounders, roles.calendar)
    adjusted_y, adjustment, notes = _adjusted_outcome(data, roles, config)
    if adjusted_y is not None:  # y − ĥ comes back on the outcome's scale: compare lifts on the model's
        adjusted_y = to_model_scale(adjusted_y, roles.outcome_scale)
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


def _confounder_matrix(data: pd.DataFrame, confounders: Sequence[str],
                       calendar: str | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """All confounder terms (numeric as is, categorical as dummies, a time as its calendar) and each
    confounder's own block."""
    blocks = {}
    for name in confounders:
        terms, _ = column_terms(data, [name], calendar)
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



def distinct_phrases(phrases: Iterable[str], k: int) -> list[str]:
    """Up to k phrases in the order given, skipping any contained in or containing one already chosen
    ('omaha' after 'omaha ironmen')."""
    chosen: list[str] = []
    for phrase in phrases:
        if len(chosen) >= k:
            break
        if not any(phrase in c or c in phrase for c in chosen):
            chosen.append(phrase)
    return chosen


def marker_chart_rows(result: MarkerScanResult, top: int = 30) -> pd.DataFrame:
    """The markers the Diagnostics chart shows, at most `top`: half spurious (strongest evidence first), the
    rest robust or masked (largest |lift| first), overlapping phrases once (`distinct_phrases`), sorted by
    lift, with the status 'masked' spelled 'hidden by confounder'."""
    spurious = result.spurious()
    spurious = spurious[spurious["marker"].isin(distinct_phrases(spurious["marker"], top // 2))]
    others = result.markers[result.markers["status"].isin(["robust", "masked"])]
    others = others.reindex(others["lift"].abs().sort_values(ascending=False).index)
    others = others[others["marker"].isin(distinct_phrases(others["marker"], top - len(spurious)))]
    ranked = pd.concat([spurious, others]).sort_values("lift", ascending=False)
    return ranked.assign(status=ranked["status"].replace({"masked": "hidden by confounder"}))


def marker_table(result: MarkerScanResult) -> pd.DataFrame:
    """Every scanned marker with its raw and adjusted lift, q-values, status and association with each
    confounder (the table behind the marker chart)."""
    cols = ["marker", "n", "lift", "adjusted_lift", "lift_q", "adjusted_q", "status"] + \
           [c for c in result.markers.columns if c.startswith("assoc_") and not c.endswith("_q")]
    return result.markers[cols]
