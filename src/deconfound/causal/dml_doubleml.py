"""The final stage of DML done by DoubleML (`DoubleMLPLR`, partialling-out score), from our cross-fitted
nuisance predictions, with DoubleML's omitted-variable sensitivity analysis (Chernozhukov, Cinelli, Newey,
Sharma & Syrgkanis 2022: bounds on θ and robustness values RV / RVa).

Why the nuisances stay ours: DoubleML's data object takes dense covariates only, and the nuisance features here
are a sparse TF-IDF matrix (20,000 word and bigram columns; 50,000 rows would be 8 GB dense, and a dense SVD
basis lost most of the sentiment signal). DoubleML accepts external predictions for both learners, so our
cross-fitted ridge predictions go in and the score, its standard error and the sensitivity elements come out
of the library. With one treatment DoubleML's θ is exactly the old residual-on-residual OLS (its SE is HC0
where statsmodels' was HC1: a factor √(n/(n−1))). With several confounder terms each term's predictions are
made from the joint fit (Frisch–Waugh: the other terms' residuals partialled out), so the coefficients are
those of the joint residual regression, as before.
"""

from __future__ import annotations

import warnings as pywarnings

import numpy as np
from scipy import stats

from .iv_arrays import meat


def doubleml_final_stage(y: np.ndarray, treatments: np.ndarray, y_res: np.ndarray, d_res: np.ndarray,
                         names: list[str], level: float = 0.95, cov_type: str = "robust",
                         clusters: np.ndarray | None = None, cf_y: float = 0.03, cf_d: float = 0.03,
                         rho: float = 1.0) -> tuple[dict, dict]:
    """θ, SE, interval and p-value per term, and the sensitivity entry (`EstimateResult.sensitivity`)."""
    import doubleml
    from sklearn.linear_model import LinearRegression
    m = treatments.shape[1]
    ell, em = {}, {}
    for j, name in enumerate(names):
        u, v = y_res, d_res[:, j]
        if m > 1:  # Frisch–Waugh: partial the other terms' residuals out of both
            others = np.delete(d_res, j, axis=1)
            coef, *_ = np.linalg.lstsq(others, np.column_stack([u, v]), rcond=None)
            resid = np.column_stack([u, v]) - others @ coef
            u, v = resid[:, 0], resid[:, 1]
        ell[name], em[name] = y - u, treatments[:, j] - v
    data = doubleml.DoubleMLData.from_arrays(x=np.zeros((len(y), 1)), y=y, d=treatments if m > 1 else treatments[:, 0])
    data_cols = list(data.d_cols)
    model = doubleml.DoubleMLPLR(data, LinearRegression(), LinearRegression(), n_folds=2, n_rep=1)
    external = {col: {"ml_l": ell[name][:, None], "ml_m": em[name][:, None]} for col, name in zip(data_cols, names)}
    with pywarnings.catch_warnings():
        pywarnings.simplefilter("ignore")
        model.fit(external_predictions=external)
        model.sensitivity_analysis(cf_y=cf_y, cf_d=cf_d, rho=rho, level=level)
    theta = np.asarray(model.coef, dtype=float)
    se = np.asarray(model.se, dtype=float)
    if clusters is not None or cov_type == "unadjusted":
        se = _other_se(y, treatments, ell, em, names, theta, cov_type, clusters)
    z = float(stats.norm.ppf(0.5 + level / 2))
    pvalues = 2 * stats.norm.sf(np.abs(theta / se))
    estimates = {name: {"coef": float(theta[j]), "std_err": float(se[j]),
                        "conf_int": [float(theta[j] - z * se[j]), float(theta[j] + z * se[j])],
                        "pvalue": float(pvalues[j])} for j, name in enumerate(names)}
    params = model.sensitivity_params
    terms = {}
    for j, name in enumerate(names):
        terms[name] = {"theta_bounds": [float(params["theta"]["lower"][j]), float(params["theta"]["upper"][j])],
                       "ci_bounds": [float(params["ci"]["lower"][j]), float(params["ci"]["upper"][j])],
                       "rv": float(params["rv"][j]), "rva": float(params["rva"][j])}
    sensitivity = {"kind": "omitted-variable bias (Chernozhukov, Cinelli, Newey, Sharma & Syrgkanis 2022; "
                           "DoubleML sensitivity_analysis)",
                   "level": level, "cf_y": cf_y, "cf_d": cf_d, "rho": rho, "terms": terms,
                   "meaning": (f"an omitted confounder explaining {cf_y:.0%} of the outcome's and {cf_d:.0%} of the "
                               "confounder's residual variation moves θ within theta_bounds (its interval within "
                               "ci_bounds); RV / RVa: the equal shares that would explain the effect away / make "
                               "it insignificant"),
                   "library": f"doubleml {doubleml.__version__}"}
    if clusters is not None:
        sensitivity["note"] = "the bounds use DoubleML's independent-rows variance; the θ interval is clustered"
    return estimates, sensitivity


def _other_se(y, treatments, ell, em, names, theta, cov_type, clusters) -> np.ndarray:
    """Clustered (as linearmodels) or homoskedastic SEs of the partialling-out θ."""
    out = []
    for j, name in enumerate(names):
        u, v = y - ell[name], treatments[:, j] - em[name]
        e = u - theta[j] * v
        vv = float(v @ v)
        if clusters is not None:
            out.append(np.sqrt(float(meat((v * e)[:, None], clusters=clusters)[0, 0])) / vv)
        else:
            out.append(np.sqrt(float(e @ e) / (len(y) - 1) / vv))
    return np.asarray(out)
