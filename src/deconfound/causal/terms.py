"""How a table's columns become regression terms: numbers as they are, categories as dummies.

Categorical columns enter as dummies with a reference level ('None' when present, else the most frequent
level); each term keeps a record ({"term", "column", "level"}) so the confounder part ĥ(C) can be rebuilt
from a fitted coefficient and the raw column later. Shared by the design matrices, the calendar effects,
the corrected outcome and the marker scan.
"""

from __future__ import annotations

import datetime
from typing import Sequence

import numpy as np
import pandas as pd

REFERENCE_NAMES = ("None", "none", "NONE", "no team", "")
MISSING_LEVEL = "(missing)"


def is_time_series(series: pd.Series) -> bool:
    """A date/time column: datetime64, or Python dates (a DATE column read back from Parquet)."""
    if pd.api.types.is_datetime64_any_dtype(series):
        return True
    if series.dtype == object:
        first = series.dropna().head(1)
        return bool(len(first)) and isinstance(first.iloc[0], (datetime.date, datetime.datetime))
    return False


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


def column_terms(frame: pd.DataFrame, columns: Sequence[str],
                 calendar: str | None = None) -> tuple[pd.DataFrame, list[dict]]:
    """Numeric columns as they are, categorical ones as dummies, a date/time as its calendar's dummies
    (`calendar_effects`: weekday + month unless `calendar` says otherwise)."""
    parts, terms = [], []
    for col in columns:
        series = frame[col]
        if is_time_series(series):
            from .calendar_effects import calendar_terms  # it builds on this module
            dummies, dummy_terms = calendar_terms(series, col, calendar)
            parts.append(dummies)
            terms += dummy_terms
        elif is_categorical(series):
            dummies, dummy_terms = categorical_terms(series, col)
            parts.append(dummies)
            terms += dummy_terms
        else:
            parts.append(pd.DataFrame({col: pd.to_numeric(series, errors="coerce").astype(np.float64)},
                                      index=frame.index))
            terms.append({"term": col, "column": col, "level": None})
    out = pd.concat(parts, axis=1) if parts else pd.DataFrame(index=frame.index)
    return out, terms
