"""Design matrices of one model: the tagged roles of a table turned into y, exogenous, endogenous and
instrument matrices, with the rows that miss a number dropped and the calendar effects absorbed.

Confounders are the endogenous terms (what ĥ(C) is made of), controls are exogenous with the constant,
instruments are excluded; a tagged timestamp adds weekday and month groups (see `calendar`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..data import Roles
from ..errors import DeconfoundError, NotFoundError
from .calendar import absorb_fixed_effects, time_codes
from .calendar_effects import row_weights, to_model_scale
from .results import EstimatorConfig
from .terms import column_terms


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
    clusters: np.ndarray | None = None  # integer cluster codes of the kept rows (clustered errors), else None
    strata: np.ndarray | None = None    # weekday × month cell of each row once absorbed (refutations permute in it)
    weights: np.ndarray | None = None  # impressions behind a rate (Roles.weight), aligned with y


def required_columns(roles: Roles, method: str, time_effects: bool = True, cluster: str | None = None) -> list[str]:
    """Columns an estimator reads from the table (plus the cluster column of clustered errors)."""
    cols = [roles.outcome, *roles.confounders, *roles.controls, roles.weight, cluster]
    if roles.timestamp and time_effects:
        cols.append(roles.timestamp)
    if method == "iv":
        cols += roles.instruments
    if method == "dml":
        cols += [c for c in (roles.text, roles.context) if c]
    return list(dict.fromkeys(c for c in cols if c))


def build_design(data: pd.DataFrame, roles: Roles, config: EstimatorConfig, with_instruments: bool) -> Design:
    """Turn a table's columns into y, exogenous, endogenous and instrument matrices (time effects as groups
    to absorb, plus their dummies for DML)."""
    _check_roles(data, roles, with_instruments, config.time_effects)
    y = pd.Series(to_model_scale(data[roles.outcome], roles.outcome_scale, f"outcome '{roles.outcome}'"),
                  index=data.index)
    endog, confounder_terms = column_terms(data, roles.confounders, roles.calendar)
    controls, _ = column_terms(data, roles.controls)
    exog = pd.concat([pd.DataFrame({"const": 1.0}, index=data.index), controls], axis=1)
    # When the timestamp is the confounder its calendar is the effect to estimate, not a control.
    use_time = bool(config.time_effects and roles.timestamp and roles.timestamp not in roles.confounders)
    weights = row_weights(data, roles)
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
    weights = None if weights is None else weights[pick]
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
    clusters = cluster_codes(data.loc[pick], config)
    outcome = f"log1p({roles.outcome})" if roles.outcome_scale == "log1p" else roles.outcome
    formula = (f"{outcome} ~ " + " + ".join(endog.columns)
               + (" + " + " + ".join(roles.controls) if roles.controls else "")
               + (" + weekday + month fixed effects (absorbed)" if use_time else ""))
    if with_instruments:
        formula += " | instruments: " + ", ".join(roles.instruments)
    if weights is not None:
        formula += f", weighted by {roles.weight}"
    return Design(y=y, exog=exog, endog=endog, instruments=instruments, confounder_terms=confounder_terms,
                  dropped=dropped, formula=formula, absorb=absorb, clusters=clusters, weights=weights)


def cluster_codes(data: pd.DataFrame, config: EstimatorConfig) -> np.ndarray | None:
    """Integer codes of the cluster column (a missing value is a cluster of its own), or None when errors are
    not clustered. One cluster is answered later, where the rest of the estimate can still stand."""
    if not config.cluster:
        if config.cov_type == "clustered":
            raise DeconfoundError("clustered standard errors need a cluster column: name one (e.g. the context, "
                                  "an experiment id or the month)")
        return None
    if config.cluster not in data.columns:
        raise NotFoundError(f"the data has no column {config.cluster!r} to cluster the standard errors by")
    codes, _ = pd.factorize(data[config.cluster].astype("string").fillna("(missing)"))
    return codes.astype(np.int64)


def absorbed(design: Design) -> Design:
    """The design with its fixed effects (and the constant) absorbed from every variable; a no-op without."""
    if not design.absorb:
        return design
    blocks = {"y": design.y.to_frame(), "exog": design.exog, "endog": design.endog}
    if design.instruments is not None:
        blocks["instruments"] = design.instruments
    stacked = np.column_stack([b.to_numpy(dtype=np.float64) for b in blocks.values()])
    demeaned = absorb_fixed_effects(stacked, design.absorb, weights=design.weights)
    out, start = {}, 0
    for name, block in blocks.items():
        width = block.shape[1]
        out[name] = pd.DataFrame(demeaned[:, start:start + width], index=block.index, columns=block.columns)
        start += width
    # The constant and any control that only varies between the fixed-effect groups are absorbed too.
    exog = out["exog"].loc[:, out["exog"].std() > 1e-9 * np.maximum(design.exog.std(), 1e-12)]
    exog = exog.drop(columns="const", errors="ignore")
    instruments = out.get("instruments")
    if instruments is not None:  # an instrument the fixed effects explain is set to exactly zero (then dropped)
        gone = instruments.std() <= 1e-8 * np.maximum(design.instruments.std(), 1e-12)
        if gone.any():
            instruments = instruments.copy()
            instruments.loc[:, gone.to_numpy()] = 0.0
    levels = 1 + sum(len(np.unique(g)) - 1 for g in design.absorb)
    return Design(y=out["y"].iloc[:, 0], exog=exog, endog=out["endog"], instruments=instruments,
                  confounder_terms=design.confounder_terms, dropped=design.dropped, formula=design.formula,
                  absorbed_params=levels, clusters=design.clusters, weights=design.weights,
                  strata=pd.factorize(design.absorb[0] * (int(design.absorb[-1].max()) + 1) + design.absorb[-1])[0])


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
