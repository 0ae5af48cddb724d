"""Which covariance an estimate uses: robust (HC0), unadjusted or clustered by a column, and what happens
when clustering cannot apply (a single cluster: robust errors instead, said in a sentence and in the JSON,
while the rest of the estimate stands).

`resolve_covariance` is read by every estimator so the coefficient's errors, the first-stage F, the
weak-instrument-robust sets and the sensitivity all use the same covariance.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .design import Design
from .results import EstimatorConfig

FEW_CLUSTERS = 20  # below this, cluster-robust errors are known to understate the noise (Cameron & Miller 2015)


def resolve_covariance(design: Design, config: EstimatorConfig) -> tuple[Design, str, dict, list[str]]:
    """(design, cov_type, covariance entry for the JSON, warnings). A single cluster falls back to robust."""
    if design.clusters is None:
        label = {"robust": "heteroskedasticity-robust (HC0)", "unadjusted": "homoskedastic"}.get(
            config.cov_type, config.cov_type)
        return design, config.cov_type, {"type": config.cov_type, "label": label}, []
    groups = int(len(np.unique(design.clusters)))
    if groups < 2:
        reason = (f"does not apply, because the cluster column '{config.cluster}' takes a single value in the "
                  "estimation sample: heteroskedasticity-robust errors are used instead")
        entry = {"type": "robust", "requested": f"clustered by {config.cluster}", "reason": reason}
        return replace(design, clusters=None), "robust", entry, [
            f"clustered errors need at least two clusters, but '{config.cluster}' has one value in the estimation "
            "sample, so robust errors are used"]
    entry = {"type": "clustered", "cluster": config.cluster, "clusters": groups,
             "label": f"clustered by {config.cluster} ({groups:,} clusters)"}
    warns = []
    if groups < FEW_CLUSTERS:
        warns.append(f"only {groups} clusters in '{config.cluster}': clustered standard errors are unreliable with "
                     f"fewer than about {FEW_CLUSTERS} clusters, so read the intervals as too narrow")
    return design, "clustered", entry, warns


def statsmodels_fit_args(cov_type: str, design: Design) -> dict:
    """Keyword arguments of statsmodels' `fit` for a covariance type (clustered without a small-sample factor,
    like linearmodels' default, so the first stage and naive OLS match the IV fit's errors)."""
    if cov_type == "clustered" and design.clusters is not None:
        return {"cov_type": "cluster", "cov_kwds": {"groups": design.clusters, "use_correction": False}}
    return {"cov_type": "HC0" if cov_type == "robust" else "nonrobust"}
