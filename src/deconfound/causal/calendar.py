"""Calendar effects of a tagged timestamp: weekday and calendar-month groups.

`time_effects` gives their dummies (DML's nuisance features); `time_codes` their integer group codes, which
OLS and IV absorb with `absorb_fixed_effects` (within-group demeaning: identical coefficients and robust
errors to explicit dummies, a test checks it, at a fraction of the cost on a million rows). `WEEKDAYS` is
the one list of weekday labels (the time-pattern diagnostics use it too).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from .terms import MISSING_LEVEL, categorical_terms

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def time_effects(stamps: pd.Series) -> pd.DataFrame:
    """Weekday (reference Monday) and calendar-month (reference the first month) dummies."""
    stamps = pd.to_datetime(stamps, errors="coerce")
    weekday = pd.Series(pd.Categorical.from_codes(stamps.dt.dayofweek.fillna(-1).astype(int), WEEKDAYS, validate=False),
                        index=stamps.index).astype("string")
    month = stamps.dt.year * 100 + stamps.dt.month
    labels = {code: f"{int(code) // 100}-{int(code) % 100:02d}" for code in month.dropna().unique()}
    month = month.map(labels).astype("string")
    wd, _ = categorical_terms(weekday, "weekday", reference="Mon")
    mo, _ = categorical_terms(month, "month", reference=min(labels.values()) if labels else MISSING_LEVEL)
    return pd.concat([wd, mo], axis=1)


def time_codes(stamps: pd.Series) -> list[np.ndarray]:
    """Integer group codes of weekday and calendar month (a missing time is a group of its own)."""
    stamps = pd.to_datetime(stamps, errors="coerce")
    weekday = stamps.dt.dayofweek.fillna(7).to_numpy(dtype=np.int64)
    month, _ = pd.factorize(stamps.dt.year * 12 + stamps.dt.month)
    month = np.where(month < 0, month.max() + 1, month).astype(np.int64)
    return [weekday, month]


def absorb_fixed_effects(matrix: np.ndarray, groups: Sequence[np.ndarray], tol: float = 1e-10,
                         max_sweeps: int = 500, weights: np.ndarray | None = None) -> np.ndarray:
    """Remove additive fixed effects (and the constant) from every column by alternating projections:
    demean within each grouping in turn until nothing is left to remove.

    By Frisch–Waugh–Lovell, regressing absorbed variables on each other gives the same coefficients, residuals
    and heteroskedasticity-robust (HC0) errors as including every dummy, at the cost of a few group means
    instead of a million-row matrix with dozens of dummy columns.
    """
    out = np.array(matrix, dtype=np.float64, copy=True)
    w = np.ones(len(out)) if weights is None else np.asarray(weights, dtype=np.float64)  # weighted: WLS's FWL
    out -= np.average(out, axis=0, weights=w)
    scale = np.maximum(out.std(axis=0), 1e-12)
    counts = [np.maximum(np.bincount(g, weights=w), 1e-300) for g in groups]
    for _ in range(max_sweeps):
        largest = 0.0
        for g, n in zip(groups, counts):
            for j in range(out.shape[1]):
                means = np.bincount(g, weights=w * out[:, j], minlength=len(n)) / n
                out[:, j] -= means[g]
                largest = max(largest, float(np.abs(means).max() / scale[j]))
        if largest < tol or len(groups) < 2:
            break
    return out
