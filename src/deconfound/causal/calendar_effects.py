"""Time as the confounder, heavy-tailed counts and impression-weighted rates.

A timestamp tagged as a confounder enters as its calendar: one dummy per level of each calendar part (weekday,
hour, calendar month, month of the year, year, decade; `Roles.calendar`, default weekday + month), so ĥ(C) is the
calendar effect on the outcome. DML estimates it with the text features partialled out of the outcome and of
every calendar dummy (the partially linear model), so months that happened to carry better texts are not
charged to the calendar; naive OLS on the same dummies is the comparison. The term records keep the part
({"calendar": "weekday"}), so the corrected outcome rebuilds ĥ from the raw timestamp.

`Roles.outcome_scale = "log1p"` estimates effects on log(1 + y) (retweets, views: a few huge counts would
dominate a linear fit); the corrected outcome returns to the outcome's scale: expm1(log1p(y) − (ĥ − mean ĥ)).
`Roles.weight` (impressions) weights each row of a rate outcome (DML and OLS); zero impressions are refused.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..data import CALENDAR_PARTS, DEFAULT_CALENDAR, Roles
from ..errors import DeconfoundError
from .calendar import WEEKDAYS
from .terms import categorical_terms, is_time_series

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# Full names of the calendar's levels, for counting them in generated texts ("Happy Monday!").
LEVEL_WORDS = {"weekday": dict(zip(WEEKDAYS, ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday",
                                              "Sunday"))),
               "month_of_year": dict(zip(MONTHS, ("January", "February", "March", "April", "May", "June", "July",
                                                  "August", "September", "October", "November", "December")))}


def is_time(series: pd.Series) -> bool:
    """Whether a column is a date/time (it then enters a model as its calendar), DATE columns read back from
    Parquet (Python dates) included."""
    return is_time_series(series)


def calendar_parts(calendar: str | None) -> list[str]:
    """'weekday+month' -> ['weekday', 'month'] (checked against `data.CALENDAR_PARTS`)."""
    parts = [p.strip() for p in str(calendar or DEFAULT_CALENDAR).split("+") if p.strip()]
    bad = [p for p in parts if p not in CALENDAR_PARTS]
    if bad or not parts:
        raise DeconfoundError(f"calendar {calendar!r} is unknown: join parts of {', '.join(CALENDAR_PARTS)} with '+'")
    return parts


def calendar_labels(stamps: pd.Series, part: str) -> pd.Series:
    """The calendar level of each time (e.g. 'Tue' for weekday, '2024-03' for month); missing where the time is."""
    stamps = pd.to_datetime(stamps, errors="coerce")
    if part == "weekday":
        labels = stamps.dt.dayofweek.map(dict(enumerate(WEEKDAYS)))
    elif part == "hour":
        labels = stamps.dt.hour.map(lambda h: f"{int(h):02d}h" if pd.notna(h) else None)
    elif part == "month":
        labels = stamps.dt.strftime("%Y-%m")
    elif part == "month_of_year":
        labels = stamps.dt.month.map(lambda m: MONTHS[int(m) - 1] if pd.notna(m) else None)
    elif part == "year":
        labels = stamps.dt.year.map(lambda y: str(int(y)) if pd.notna(y) else None)
    elif part == "decade":
        labels = stamps.dt.year.map(lambda y: f"{int(y) // 10 * 10}s" if pd.notna(y) else None)
    else:
        raise DeconfoundError(f"unknown calendar part {part!r}: use one of {', '.join(CALENDAR_PARTS)}")
    return labels.astype("string")


def _reference(labels: pd.Series, part: str) -> str | None:
    """The level left out: Monday, January, else the earliest level (so effects read 'relative to the start')."""
    present = set(labels.dropna().unique())
    first = {"weekday": "Mon", "month_of_year": "Jan"}.get(part)
    if first in present:
        return first
    return min(present) if present else None


def calendar_terms(stamps: pd.Series, name: str, calendar: str | None = None) -> tuple[pd.DataFrame, list[dict]]:
    """Dummies of each calendar part's levels (but a reference level each) and their term records
    ({"term": "created_at:weekday[Tue]", "column": "created_at", "level": "Tue", "calendar": "weekday"})."""
    frames, records = [], []
    for part in calendar_parts(calendar):
        labels = calendar_labels(stamps, part)
        frame, terms = categorical_terms(labels, f"{name}:{part}", reference=_reference(labels, part))
        frames.append(frame)
        records += [t | {"column": name, "calendar": part} for t in terms]
    return (pd.concat(frames, axis=1) if frames else pd.DataFrame(index=stamps.index)), records


def term_values(column: pd.Series, term: dict) -> np.ndarray:
    """The 0/1 values of one calendar term, rebuilt from the raw timestamp column."""
    from .terms import MISSING_LEVEL
    labels = calendar_labels(column, term["calendar"]).fillna(MISSING_LEVEL)
    return (labels == term["level"]).to_numpy(dtype=np.float64)


# ------------------------------------------------------------------ outcome scale and weights
def to_model_scale(values, scale: str | None, name: str = "the outcome") -> np.ndarray:
    """The outcome on the scale effects are estimated on: as is ('raw') or log(1 + y) ('log1p'; negative values
    are refused with a sentence that says so)."""
    y = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=np.float64)
    if scale in (None, "", "raw"):
        return y
    if scale != "log1p":
        raise DeconfoundError(f"outcome scale {scale!r} is unknown: use raw or log1p")
    negative = int(np.sum(y < 0))
    if negative:
        raise DeconfoundError(f"{name} has {negative:,} negative values (lowest {np.nanmin(y):g}) and log1p needs "
                              "values ≥ 0: keep the raw scale, or choose a count outcome")
    return np.log1p(y)


def from_model_scale(values, scale: str | None) -> np.ndarray:
    """Back from the estimation scale to the outcome's own (expm1 for log1p)."""
    z = np.asarray(values, dtype=np.float64)
    return np.expm1(z) if scale == "log1p" else z


def row_weights(data: pd.DataFrame, roles: Roles) -> np.ndarray | None:
    """The weight of each row (impressions behind a rate), or None when no weight is tagged. Zero, negative or
    missing impressions are refused: a rate with no impressions carries no information."""
    if not roles.weight:
        return None
    w = pd.to_numeric(data[roles.weight], errors="coerce").to_numpy(dtype=np.float64)
    bad = int(np.sum(~(w > 0)))
    if bad:
        raise DeconfoundError(f"weight: '{roles.weight}' is zero, negative or missing in {bad:,} rows, and a rate "
                              "with no impressions has no weight: filter those rows out first, or tag no weight")
    return w


def weighted_final_stage(y_res: np.ndarray, d_res: np.ndarray, weights: np.ndarray, names: list[str], level: float,
                         cov_type: str = "robust", clusters: np.ndarray | None = None) -> dict[str, dict]:
    """DML's final stage for impression-weighted rows: WLS of the outcome residuals on the confounder residuals;
    per term {coef, std_err, conf_int, pvalue} (as `dml_doubleml.doubleml_final_stage` gives them)."""
    import statsmodels.api as sm
    if cov_type == "clustered" and clusters is not None:
        args = {"cov_type": "cluster", "cov_kwds": {"groups": clusters}}
    else:
        args = {"cov_type": "HC1" if cov_type == "robust" else "nonrobust"}
    fitted = sm.WLS(y_res, d_res, weights=weights).fit(**args)
    ci = np.asarray(fitted.conf_int(alpha=1 - level))
    return {name: {"coef": float(fitted.params[j]), "std_err": float(fitted.bse[j]),
                   "conf_int": [float(ci[j, 0]), float(ci[j, 1])], "pvalue": float(fitted.pvalues[j])}
            for j, name in enumerate(names)}


def result_settings(roles: Roles) -> dict:
    """What an estimate records about the scale, calendar and weight it used (read back by `corrected`)."""
    return {"outcome_scale": roles.outcome_scale or "raw", "calendar": roles.calendar or DEFAULT_CALENDAR,
            "weight": roles.weight}


def time_marker_groups(roles: Roles, data: pd.DataFrame) -> dict[str, list[str]]:
    """Marker groups of a time confounder: the weekday and month names its calendar is made of (a model that
    learned the calendar writes them: "Happy Monday!")."""
    groups: dict[str, list[str]] = {}
    for column in roles.confounders:
        if column not in data.columns or not is_time(data[column]):
            continue
        for part in calendar_parts(roles.calendar):
            words = LEVEL_WORDS.get("month_of_year" if part == "month" else part)
            if words:
                groups.update({name: [name] for name in words.values()})
    return groups
