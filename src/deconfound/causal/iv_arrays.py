"""The IV model as plain arrays, with the controls, the constant and the calendar effects partialled out
(Frisch–Waugh–Lovell), and the sandwich covariances every IV check shares.

Weak-instrument-robust inference (`weak_iv`), the exclusion-restriction sensitivity (`sensitivity`) and the
refutations (`refute`) all work on these arrays: 2SLS on them gives the same coefficients, residuals and
robust / clustered errors as linearmodels' IV2SLS on the full design (a test checks it), at the cost of a few
n × k products, so a million rows take a fraction of a second per refit.

Covariances: "robust" is HC0 (linearmodels' default for IV), "clustered" sums the scores within clusters with
no small-sample factor (linearmodels' one-way clustered estimator with its default debiased=False),
"unadjusted" is σ²(X'X)⁻¹.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import DeconfoundError
from .design import Design


@dataclass
class IVArrays:
    """y, X (confounder terms), Z (instruments) with the controls W partialled out of each."""

    y: np.ndarray
    X: np.ndarray
    Z: np.ndarray
    W: np.ndarray                    # the controls as they were absorbed (not partialled), for refits
    terms: list[str]
    instruments: list[str]
    clusters: np.ndarray | None      # integer cluster codes, or None
    strata: np.ndarray | None        # weekday × month cells (permutations stay inside them)
    dof: int                         # residual degrees of freedom of the outcome equation
    cov_type: str = "robust"

    @property
    def n(self) -> int:
        """Rows."""
        return len(self.y)

    def cov_label(self) -> str:
        """e.g. 'clustered (24 clusters)'."""
        if self.clusters is not None:
            return f"clustered ({len(np.unique(self.clusters)):,} clusters)"
        return "heteroskedasticity-robust (HC0)" if self.cov_type == "robust" else "homoskedastic"


def iv_arrays(design: Design, cov_type: str = "robust") -> IVArrays:
    """Partial the controls (and the constant, when it was not absorbed) out of an absorbed design."""
    W = design.exog.to_numpy(dtype=np.float64) if design.exog.shape[1] else np.empty((len(design.y), 0))
    blocks = [design.y.to_numpy(dtype=np.float64)[:, None], design.endog.to_numpy(dtype=np.float64),
              design.instruments.to_numpy(dtype=np.float64)]
    m, k = design.endog.shape[1], design.instruments.shape[1]
    stacked = partial_out(W, np.column_stack(blocks))
    strata = design.strata
    dof = len(design.y) - k - W.shape[1] - design.absorbed_params
    return IVArrays(y=stacked[:, 0], X=stacked[:, 1:1 + m], Z=stacked[:, 1 + m:], W=W,
                    terms=[str(c) for c in design.endog.columns],
                    instruments=[str(c) for c in design.instruments.columns],
                    clusters=design.clusters, strata=strata, dof=max(dof, 1),
                    cov_type="clustered" if design.clusters is not None else cov_type)


def partial_out(W: np.ndarray, values: np.ndarray) -> np.ndarray:
    """values − W(W'W)⁻¹W'values (columnwise); values unchanged when W has no columns."""
    if W.shape[1] == 0:
        return np.array(values, dtype=np.float64, copy=True)
    q, _ = np.linalg.qr(W)
    return values - q @ (q.T @ values)


def independent_columns(matrix: np.ndarray, tol: float = 1e-9) -> list[int]:
    """Indices of a maximal set of linearly independent columns (pivoted QR), in their original order."""
    from scipy.linalg import qr
    if matrix.shape[1] == 0:
        return []
    scale = np.sqrt((matrix ** 2).sum(axis=0))
    ok = scale > tol * max(1.0, float(scale.max()))
    normed = matrix[:, ok] / scale[ok]
    _, r, piv = qr(normed, mode="economic", pivoting=True)
    diag = np.abs(np.diag(r))
    rank = int((diag > 1e-8 * diag.max()).sum()) if len(diag) else 0
    kept = np.flatnonzero(ok)[np.sort(piv[:rank])]
    return [int(i) for i in kept]


def group_sums(values: np.ndarray, clusters: np.ndarray) -> np.ndarray:
    """Column sums within each cluster (G × columns)."""
    groups = int(clusters.max()) + 1
    values = values.reshape(len(values), -1)
    return np.column_stack([np.bincount(clusters, weights=values[:, j], minlength=groups)
                            for j in range(values.shape[1])])


def meat(scores_left: np.ndarray, scores_right: np.ndarray | None = None,
         clusters: np.ndarray | None = None) -> np.ndarray:
    """Σ sᵢ tᵢ' (robust) or Σ_g s_g t_g' (clustered), for row scores s (and t, default s)."""
    right = scores_left if scores_right is None else scores_right
    if clusters is None:
        return scores_left.T @ right
    return group_sums(scores_left, clusters).T @ group_sums(right, clusters)


@dataclass
class TSLS:
    """A 2SLS fit on partialled arrays: coefficients, covariance, fitted first stage and residuals."""

    coef: np.ndarray
    cov: np.ndarray
    fitted: np.ndarray        # X̂ = P_Z X
    resid: np.ndarray         # u = y − Xβ̂
    first_stage: np.ndarray   # Π̂ (k × m)

    @property
    def se(self) -> np.ndarray:
        """Standard errors."""
        return np.sqrt(np.maximum(np.diag(self.cov), 0.0))


def tsls(y: np.ndarray, X: np.ndarray, Z: np.ndarray, cov_type: str = "robust",
         clusters: np.ndarray | None = None, dof: int | None = None) -> TSLS:
    """Two-stage least squares of y on X instrumented by Z (all already partialled), with its covariance."""
    pi, *_ = np.linalg.lstsq(Z, X, rcond=None)
    fitted = Z @ pi
    gram = fitted.T @ fitted
    if np.linalg.matrix_rank(gram) < X.shape[1]:
        raise DeconfoundError("the first stage is rank-deficient: the instruments do not move every confounder "
                              "term, so IV cannot separate their effects")
    bread = np.linalg.inv(gram)
    coef = bread @ (fitted.T @ y)
    resid = y - X @ coef
    if cov_type == "unadjusted" and clusters is None:
        sigma2 = float(resid @ resid) / (dof or len(y))  # linearmodels' default: u'u / n
        cov = sigma2 * bread
    else:
        scores = fitted * resid[:, None]
        cov = bread @ meat(scores, clusters=clusters) @ bread
    return TSLS(coef=coef, cov=cov, fitted=fitted, resid=resid, first_stage=pi)


def fit_arrays(arrays: IVArrays) -> TSLS:
    """2SLS of the arrays with their own covariance type."""
    return tsls(arrays.y, arrays.X, arrays.Z, arrays.cov_type, arrays.clusters)


def independent_instruments(design: Design) -> tuple[Design, list[str]]:
    """Drop instrument terms that are constant or a linear combination of the controls, the calendar effects
    and the other instruments (a rank-deficient first stage); say which, in a sentence each."""
    from dataclasses import replace
    Z = design.instruments.to_numpy(dtype=np.float64)
    W = design.exog.to_numpy(dtype=np.float64) if design.exog.shape[1] else np.empty((len(Z), 0))
    residual = partial_out(W, Z)
    small = np.sqrt((residual ** 2).sum(axis=0)) <= 1e-7 * np.maximum(np.sqrt((Z ** 2).sum(axis=0)), 1e-300)
    candidates = [j for j in range(Z.shape[1]) if not small[j]]
    keep = [candidates[i] for i in independent_columns(residual[:, candidates])] if candidates else []
    names = list(design.instruments.columns)
    notes = []
    for j, name in enumerate(names):
        if j in keep:
            continue
        why = ("does not vary once the controls and the weekday/month effects are removed" if small[j]
               else "is a linear combination of the other instruments and the controls")
        notes.append(f"instrument term '{name}' {why}, so it was left out of the first stage")
    if len(keep) < design.endog.shape[1]:
        raise DeconfoundError(
            f"the first stage is rank-deficient: after leaving out instrument terms that carry no information of "
            f"their own ({', '.join(repr(names[j]) for j in range(len(names)) if j not in keep)}), "
            f"{len(keep)} remain for {design.endog.shape[1]} confounder term(s); tag more instruments or fewer "
            "confounders")
    if len(keep) == len(names):
        return design, []
    return replace(design, instruments=design.instruments.iloc[:, keep]), notes
