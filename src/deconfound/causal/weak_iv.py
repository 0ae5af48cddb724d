"""Inference on the IV estimate that stays valid when the instrument is weak (the `robust_ci` of an IV result).

- Anderson–Rubin (AR) test of β = β₀ under the estimate's own covariance (robust or clustered): the Wald
  test that the instruments do not move y − Xβ₀. Its confidence set is every β₀ the test does not reject,
  found exactly: with one confounder term AR(β₀) ≤ c is det[[A(β₀), g(β₀)], [g(β₀)', c]] ≥ 0 for a g linear
  and an A quadratic in β₀, so the boundary points are the real eigenvalues of a quadratic eigenvalue
  problem. The set can be bounded, unbounded (the instrument cannot rule out arbitrarily large effects,
  which happens exactly when its first stage is insignificant) or disjoint. Under homoskedastic errors it
  equals ivmodels' `inverse_anderson_rubin_test` (a test checks it).
- Conditional likelihood-ratio (CLR, Moreira 2003) set from ivmodels (homoskedastic errors only: that is
  the form the library implements; said so in the entry). With as many instruments as confounder terms it
  coincides with AR.
- Effective first-stage F (Montiel Olea & Pflueger 2013) under the estimate's covariance; with one
  instrument it is the robust first-stage F, under homoskedastic errors the classic F.
- LIML (linearmodels IVLIML) with the same covariance, beside 2SLS.
With several confounder terms the AR and CLR sets are ivmodels' subvector sets (the other terms partialled
out by LIML; homoskedastic), and the effective F does not apply.
"""

from __future__ import annotations

import math

import numpy as np
from .iv_arrays import IVArrays, meat

# Montiel Olea–Pflueger simplified critical value: worst-case Nagar bias of 10% at the 5% level (any number
# of instruments); their Table 1 / Stata `weakivtest`.
MOP_CRITICAL_10PCT = 23.109


def _pieces(arrays: IVArrays, term: int = 0):
    """The ingredients of the AR statistic for one confounder term: g_y = Z'y, g_x = Z'x and the meat
    matrices of the reduced-form residuals, scaled by 1/n (the statistic is scale-free)."""
    Z, n = arrays.Z, arrays.n
    y, x = arrays.y, arrays.X[:, term]
    coef, *_ = np.linalg.lstsq(Z, np.column_stack([y, x]), rcond=None)
    resid = np.column_stack([y, x]) - Z @ coef
    e_y, e_x = resid[:, 0], resid[:, 1]
    g_y, g_x = Z.T @ y / n, Z.T @ x / n
    if arrays.cov_type == "unadjusted" and arrays.clusters is None:
        zz = Z.T @ Z / n
        s_yy, s_yx, s_xx = (float(a @ b) / arrays.dof for a, b in ((e_y, e_y), (e_y, e_x), (e_x, e_x)))
        return g_y, g_x, s_yy * zz / n, s_yx * zz / n, s_xx * zz / n
    zy, zx = Z * e_y[:, None], Z * e_x[:, None]
    m_yy = meat(zy, clusters=arrays.clusters) / n ** 2
    m_xx = meat(zx, clusters=arrays.clusters) / n ** 2
    m_yx = meat(zy, zx, clusters=arrays.clusters) / n ** 2
    return g_y, g_x, m_yy, (m_yx + m_yx.T) / 2, m_xx


def ar_statistic(arrays: IVArrays, beta0: float, term: int = 0) -> float:
    """AR(β₀) as a χ²(k) statistic (one confounder term)."""
    g_y, g_x, m_yy, m_yx, m_xx = _pieces(arrays, term)
    return _ar_from_pieces(beta0, g_y, g_x, m_yy, m_yx, m_xx)


def _ar_from_pieces(beta0, g_y, g_x, m_yy, m_yx, m_xx) -> float:
    if not np.isfinite(beta0):
        return float(g_x @ np.linalg.solve(m_xx, g_x))  # the limit: the first stage's own Wald statistic
    g = g_y - beta0 * g_x
    a = m_yy - 2 * beta0 * m_yx + beta0 ** 2 * m_xx
    return float(g @ np.linalg.solve(a, g))


def ar_set(arrays: IVArrays, level: float = 0.95, term: int = 0) -> dict:
    """The AR confidence set of one confounder term by exact test inversion, with its shape in words."""
    from scipy import linalg, stats
    k = arrays.Z.shape[1]
    crit = float(stats.chi2.ppf(level, k))
    pieces = _pieces(arrays, term)
    g_y, g_x, m_yy, m_yx, m_xx = pieces
    # det M(β) = 0 with M(β) = M0 + β M1 + β² M2, M = [[A(β), g(β)], [g(β)', c]]
    size = k + 1
    m0, m1, m2 = np.zeros((size, size)), np.zeros((size, size)), np.zeros((size, size))
    m0[:k, :k], m0[:k, k], m0[k, :k], m0[k, k] = m_yy, g_y, g_y, crit
    m1[:k, :k], m1[:k, k], m1[k, :k] = -2 * m_yx, -g_x, -g_x
    m2[:k, :k] = m_xx
    eye, zero = np.eye(size), np.zeros((size, size))
    left = np.block([[zero, eye], [-m0, -m1]])
    right = np.block([[eye, zero], [zero, m2]])
    with np.errstate(all="ignore"):
        values = linalg.eig(left, right, right=False)
    finite = values[np.isfinite(values)]
    roots = np.sort(finite.real[np.abs(finite.imag) <= 1e-7 * np.maximum(1.0, np.abs(finite.real))])
    roots = _dedupe(roots)

    # no root inside a segment: AR − c keeps its sign there, so one probe per segment decides it
    cuts = [-math.inf, *roots, math.inf]
    pieces_in: list[list[float]] = []
    for lo, hi in zip(cuts[:-1], cuts[1:]):
        if math.isinf(lo) and math.isinf(hi):
            probe = 0.0
        elif math.isinf(lo):
            probe = hi - 1.0 - abs(hi)
        elif math.isinf(hi):
            probe = lo + 1.0 + abs(lo)
        else:
            probe = (lo + hi) / 2
        if _ar_from_pieces(probe, *pieces) <= crit:
            if pieces_in and pieces_in[-1][1] == lo:
                pieces_in[-1][1] = hi
            else:
                pieces_in.append([lo, hi])
    stat0 = _ar_from_pieces(0.0, *pieces)
    return {"set": [[float(a), float(b)] for a, b in pieces_in], "shape": set_shape(pieces_in),
            "stat": stat0, "pvalue": float(stats.chi2.sf(stat0, k)), "df": k, "critical_value": crit,
            "first_stage_wald": _ar_from_pieces(math.inf, *pieces),
            "covariance": arrays.cov_label(), "null": "the confounder term has no effect (β = 0)"}


def _dedupe(roots: np.ndarray) -> list[float]:
    out: list[float] = []
    for r in roots:
        if not out or abs(r - out[-1]) > 1e-10 * max(1.0, abs(r)):
            out.append(float(r))
    return out


def set_shape(intervals) -> str:
    """'bounded', 'unbounded', 'disjoint' (several pieces, all finite), 'whole line' or 'empty'."""
    if not intervals:
        return "empty"
    if len(intervals) == 1 and math.isinf(intervals[0][0]) and math.isinf(intervals[0][1]):
        return "whole line"
    if any(math.isinf(v) for piece in intervals for v in piece):
        return "unbounded"
    return "disjoint" if len(intervals) > 1 else "bounded"


def describe_set(entry: dict, name: str = "AR") -> str:
    """The set in words, e.g. 'AR set [0.097, 0.105] (bounded)'."""
    if "reason" in entry:
        return f"{name}: does not apply ({entry['reason']})"
    return f"{name} set {set_text(entry)}"


def set_text(entry: dict) -> str:
    """'[0.097, 0.105] (bounded)', '(−∞, −2] ∪ [3, ∞) (unbounded: …)'."""
    text = " ∪ ".join(f"[{_fmt(lo)}, {_fmt(hi)}]" for lo, hi in entry["set"]) or "∅"
    meaning = {"bounded": "bounded", "unbounded": "unbounded: the instrument cannot rule out any effect size",
               "disjoint": "disjoint pieces", "whole line": "every value: the data say nothing",
               "empty": "empty: every effect is rejected, so the model itself is doubtful"}[entry["shape"]]
    return f"{text} ({meaning})"


def _fmt(v: float) -> str:
    return "−∞" if v == -math.inf else "∞" if v == math.inf else f"{v:.4g}"


def effective_f(arrays: IVArrays, term: int = 0) -> dict:
    """Montiel Olea–Pflueger effective F: π̂'Z'Zπ̂ / tr(Ω̂ (Z'Z)⁻¹) with Ω̂ the meat of the first stage under
    the estimate's covariance."""
    Z, x = arrays.Z, arrays.X[:, term]
    zz = Z.T @ Z
    pi = np.linalg.solve(zz, Z.T @ x)
    e = x - Z @ pi
    if arrays.cov_type == "unadjusted" and arrays.clusters is None:
        omega = float(e @ e) / arrays.dof * zz
    else:
        omega = meat(Z * e[:, None], clusters=arrays.clusters)
    stat = float(pi @ zz @ pi) / float(np.trace(np.linalg.solve(zz, omega)))
    return {"stat": stat, "critical_value_10pct_bias": MOP_CRITICAL_10PCT, "instruments": Z.shape[1],
            "covariance": arrays.cov_label(),
            "meaning": ("strong: worst-case 2SLS bias below 10% of OLS's (Montiel Olea–Pflueger, 5% test)"
                        if stat >= MOP_CRITICAL_10PCT else
                        "weak by the rule of thumb (below 10)" if stat < 10 else
                        "above the rule of thumb of 10 but below Montiel Olea–Pflueger's 23.1 for a worst-case "
                        "bias under 10%: rely on the AR set")}


def liml(design, cov_type: str, level: float) -> dict:
    """LIML (linearmodels IVLIML) on the absorbed design with the estimate's covariance."""
    from linearmodels.iv import IVLIML
    exog = design.exog if design.exog.shape[1] else None
    kwargs = {"clusters": design.clusters} if design.clusters is not None else {}
    fitted = IVLIML(design.y, exog, design.endog, design.instruments).fit(
        cov_type="clustered" if design.clusters is not None else cov_type, **kwargs)
    ci = fitted.conf_int(level=level)
    terms = [str(c) for c in design.endog.columns]
    return {"coef": {t: float(fitted.params[t]) for t in terms},
            "std_err": {t: float(fitted.std_errors[t]) for t in terms},
            "conf_int": {t: [float(ci.loc[t, "lower"]), float(ci.loc[t, "upper"])] for t in terms},
            "kappa": float(fitted.kappa)}


def clr_set(arrays: IVArrays, level: float = 0.95, term: int = 0) -> dict:
    """ivmodels' CLR confidence set (homoskedastic errors), subvector when there are other terms."""
    from ivmodels.confidence_set import ConfidenceSet
    from ivmodels.tests import inverse_conditional_likelihood_ratio_test
    X = arrays.X[:, [term]]
    W = np.delete(arrays.X, term, axis=1) if arrays.X.shape[1] > 1 else None
    found = inverse_conditional_likelihood_ratio_test(Z=arrays.Z, X=X, y=arrays.y, W=W, alpha=1 - level,
                                                      fit_intercept=False)
    if not isinstance(found, ConfidenceSet):  # k = m: the CLR set is the AR set (a quadric)
        found = ConfidenceSet.from_quadric(found)
    intervals = [[float(a), float(b)] for a, b in sorted(found.boundaries)]
    return {"set": intervals, "shape": set_shape(intervals), "covariance": "homoskedastic (ivmodels)",
            "note": "ivmodels' CLR assumes homoskedastic errors; the AR set above uses the estimate's covariance"}


def ar_subvector_set(arrays: IVArrays, level: float, term: int) -> dict:
    """ivmodels' subvector AR set (other confounder terms partialled out by LIML; homoskedastic errors)."""
    from ivmodels.confidence_set import ConfidenceSet
    from ivmodels.tests import anderson_rubin_test, inverse_anderson_rubin_test
    X, W = arrays.X[:, [term]], np.delete(arrays.X, term, axis=1)
    quadric = inverse_anderson_rubin_test(Z=arrays.Z, X=X, y=arrays.y, W=W, alpha=1 - level,
                                          critical_values="chi2", fit_intercept=False)
    found = ConfidenceSet.from_quadric(quadric)
    intervals = [[float(a), float(b)] for a, b in sorted(found.boundaries)]
    stat, pvalue = anderson_rubin_test(Z=arrays.Z, X=X, y=arrays.y, beta=np.zeros(1), W=W, fit_intercept=False)
    return {"set": intervals, "shape": set_shape(intervals), "stat": float(stat), "pvalue": float(pvalue),
            "df": arrays.Z.shape[1] - W.shape[1], "covariance": "homoskedastic (ivmodels, subvector)",
            "null": "the confounder term has no effect (β = 0)"}


def robust_inference(arrays: IVArrays, design, level: float, cov_type: str) -> dict:
    """Every weak-instrument-robust piece of an IV result (`EstimateResult.robust_ci`), per confounder term;
    a piece that cannot be computed gives its reason instead."""
    out: dict = {"level": level, "covariance": arrays.cov_label(), "terms": {}}
    several = arrays.X.shape[1] > 1
    for j, term in enumerate(arrays.terms):
        entry: dict = {}
        entry["anderson_rubin"] = _guard(lambda: ar_subvector_set(arrays, level, j) if several
                                         else ar_set(arrays, level, j))
        entry["conditional_lr"] = _guard(lambda: clr_set(arrays, level, j))
        entry["effective_f"] = ({"reason": "does not apply, because the effective F (Montiel Olea–Pflueger) is "
                                           "defined for one confounder term; see the first-stage F per term"}
                                if several else _guard(lambda: effective_f(arrays, j)))
        out["terms"][term] = entry
    lm = _guard(lambda: liml(design, cov_type, level))
    out["liml"] = lm
    return out


def _guard(compute) -> dict:
    """Run one piece; numerical failures become a reason (the rest of the estimate still stands)."""
    try:
        return compute()
    except (np.linalg.LinAlgError, ValueError, ZeroDivisionError, FloatingPointError) as exc:
        return {"reason": f"does not apply, because the computation failed ({exc})"}
