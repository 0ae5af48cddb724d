"""How far the assumptions can bend before the conclusion changes (the `sensitivity` of a result).

IV — the exclusion restriction (Conley, Hansen & Rossi 2012, "Plausibly exogenous"). Let the instruments
have a direct effect on the outcome. Only its component along the instruments' push on confounder term j,
X̂ⱼ = P_Z Xⱼ, moves 2SLS, so it is measured by one number γ: the outcome's direct shift per standard
deviation of X̂ⱼ. Then β̂ⱼ(γ) = β̂ⱼ − γ/sd(X̂ⱼ) exactly, the other terms do not move, and the residuals move
linearly in γ, so the robust (or clustered) variance is a quadratic in γ. From that:
  - union of confidence intervals (UCI) over a range of γ,
  - local-to-zero (LTZ) interval for γ uniform over the range: β̂ − μ/s ± z·√(se² + σ²_γ/s²),
  - the γ at which the point estimate changes sign (β̂ⱼ·sd(X̂ⱼ), i.e. the instrument's whole reduced-form
    effect) and the γ at which the interval first reaches zero (significance lost), solved exactly.
DML — omitted-variable bias bounds and robustness values of Chernozhukov, Cinelli, Newey, Sharma & Syrgkanis
("Long story short", 2022), computed by DoubleML's `sensitivity_analysis` on the DML fit (see `dml_doubleml`).
"""

from __future__ import annotations

import math

import numpy as np
from .iv_arrays import IVArrays, TSLS, meat


def _variance_in_gamma(arrays: IVArrays, fit: TSLS, term: int) -> tuple[float, float, float, float]:
    """(sd(X̂ⱼ), v0, v1, v2) with Var β̂ⱼ(γ) = v0 + 2 t v1 + t² v2 at t = γ / sd(X̂ⱼ)."""
    fitted, resid = fit.fitted, fit.resid
    scale = float(np.std(fitted[:, term]))
    shift = arrays.X[:, term] - fitted[:, term]           # u(γ) = u₀ + t·(Xⱼ − X̂ⱼ)
    bread = np.linalg.inv(fitted.T @ fitted)[:, term]
    a = fitted @ bread                                    # row weights of β̂ⱼ
    if arrays.cov_type == "unadjusted" and arrays.clusters is None:
        n = arrays.n
        aa = float(a @ a)
        return scale, aa * float(resid @ resid) / n, aa * float(resid @ shift) / n, aa * float(shift @ shift) / n
    s0, s1 = a * resid, a * shift
    v0 = float(meat(s0[:, None], clusters=arrays.clusters)[0, 0])
    v1 = float(meat(s0[:, None], s1[:, None], clusters=arrays.clusters)[0, 0])
    v2 = float(meat(s1[:, None], clusters=arrays.clusters)[0, 0])
    return scale, v0, v1, v2


def conley_sensitivity(arrays: IVArrays, fit: TSLS, level: float = 0.95,
                       gamma_range: tuple[float, float] | None = None, gamma_share: float = 0.25,
                       grid: int = 21) -> dict:
    """Conley–Hansen–Rossi UCI and LTZ intervals and the breakdown γ, per confounder term."""
    from scipy import stats
    z = float(stats.norm.ppf(0.5 + level / 2))
    out: dict = {"kind": "exclusion restriction (Conley, Hansen & Rossi 2012)", "level": level,
                 "gamma_units": "outcome units per standard deviation of the instruments' push on the confounder "
                                "term (its first-stage fitted value)", "terms": {}}
    if gamma_range is not None:
        lo_g, hi_g = (float(v) for v in gamma_range)
        if not (np.isfinite(lo_g) and np.isfinite(hi_g)) or lo_g > hi_g:
            out["reason"] = (f"does not apply, because the range of the direct effect γ is empty "
                             f"(low {lo_g:g} > high {hi_g:g}, or not a number): give a low end at most the high end")
            return out
    for j, term in enumerate(arrays.terms):
        scale, v0, v1, v2 = _variance_in_gamma(arrays, fit, j)
        beta = float(fit.coef[j])
        if scale <= 0:
            out["terms"][term] = {"reason": "does not apply, because the instruments do not move this term"}
            continue
        reduced_form = beta * scale                        # the instruments' whole effect on y via term j
        lo, hi = gamma_range if gamma_range is not None else (-gamma_share * abs(reduced_form),
                                                              gamma_share * abs(reduced_form))
        gammas = np.linspace(lo, hi, grid) if hi > lo else np.array([lo])
        t = gammas / scale
        coefs = beta - t
        ses = np.sqrt(np.maximum(v0 + 2 * t * v1 + t ** 2 * v2, 0.0))
        uci = [float((coefs - z * ses).min()), float((coefs + z * ses).max())]
        mean_t, var_t = (lo + hi) / 2 / scale, (hi - lo) ** 2 / 12 / scale ** 2   # γ uniform on the range
        ltz_se = math.sqrt(v0 + var_t)
        ltz = [beta - mean_t - z * ltz_se, beta - mean_t + z * ltz_se]
        flip_sig = significance_breakdown(beta, v0, v1, v2, z)
        out["terms"][term] = {
            "gamma_range": [float(lo), float(hi)], "instrument_index_sd": scale, "reduced_form_effect": reduced_form,
            "uci": uci, "ltz": [float(v) for v in ltz],
            "uci_excludes_zero": bool(uci[0] > 0 or uci[1] < 0), "ltz_excludes_zero": bool(ltz[0] > 0 or ltz[1] < 0),
            "gamma_sign_flip": reduced_form,
            "gamma_significance_lost": None if flip_sig is None else flip_sig * scale,
            "grid": [{"gamma": float(g), "coef": float(c), "lo": float(c - z * s), "hi": float(c + z * s)}
                     for g, c, s in zip(gammas, coefs, ses)],
        }
    return out


def significance_breakdown(beta: float, v0: float, v1: float, v2: float, z: float) -> float | None:
    """Smallest t ≥ 0 (toward zero, in β units) at which the interval of β − t·sign(β) reaches 0; 0.0 when it
    already contains 0, None when no shift reaches it (cannot happen with finite variance)."""
    sign = 1.0 if beta >= 0 else -1.0
    b, w1 = abs(beta), sign * v1   # shift s = t·sign(β): |β| − s, var v0 + 2 s·(sign v1) + s² v2
    if b - z * math.sqrt(max(v0, 0.0)) <= 0:
        return 0.0
    # (b − s)² = z²(v0 + 2 s w1 + s² v2)  →  (1 − z²v2) s² − 2(b + z² w1) s + b² − z² v0 = 0
    qa, qb, qc = 1 - z * z * v2, -2 * (b + z * z * w1), b * b - z * z * v0
    roots = [-qc / qb] if abs(qa) < 1e-15 else np.roots([qa, qb, qc])
    real = sorted(float(r.real) for r in np.atleast_1d(roots) if abs(complex(r).imag) < 1e-12 and r.real >= 0)
    return sign * real[0] if real else None


def sensitivity_verdict(result) -> str | None:
    """One plain sentence about the sensitivity of the first confounder term, or None when there is none."""
    sens = result.sensitivity or {}
    if "reason" in sens or not sens.get("terms"):
        return None
    term = result.terms[0] if result.terms else None
    entry = sens["terms"].get(term) or {}
    if "reason" in entry:
        return None
    if result.method == "iv":
        lost = entry.get("gamma_significance_lost")
        if lost is None:
            return None
        if lost == 0:
            return f"the effect of {term} is not significant even with a valid instrument"
        share = abs(lost / entry["reduced_form_effect"]) if entry["reduced_form_effect"] else math.nan
        return (f"the correction is robust to a direct effect of the instrument up to γ = {abs(lost):.3g} "
                f"({share:.0%} of its whole effect on the outcome) before the effect of {term} loses significance")
    if result.method == "dml":
        rv = entry.get("rva")
        if rv is None:
            return None
        return (f"an omitted confounder would have to explain {rv:.1%} of the residual variation of both the "
                f"outcome and {term} to make the effect insignificant (robustness value RVa)")
    return None
