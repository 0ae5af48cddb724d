"""The statistics of a comparison: seeded percentile-bootstrap intervals, two-sample tests and significance stars.

Means are tested with Welch's t-test, marker rates with a two-proportion z-test (Fisher's exact test for small
counts), distinct-n with a bootstrap test on its replicates. Every resampling is seeded, so a comparison
repeats exactly. scipy and statsmodels are imported inside the tests that need them.
"""

from __future__ import annotations

import math
import warnings
from typing import Callable

import numpy as np

from ..text_measures import ngrams


def finite(value) -> float | None:
    """A finite float, or None (missing, NaN, infinite or not a number)."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def number_text(value, digits: int = 3) -> str:
    """A number with `digits` decimals for tables and cards; '—' when it is missing or not finite."""
    value = finite(value)
    return "—" if value is None else f"{value:.{digits}f}"


def bootstrap_indices(n: int, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n) row indices drawn with replacement (seeded)."""
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def bootstrap_ci(values, n_boot: int = 1000, level: float = 0.95, seed: int = 0,
                 statistic: Callable[[np.ndarray], np.ndarray] | None = None) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean (or of `statistic`, applied row-wise to resamples)."""
    values = np.asarray(values, dtype=float)
    if len(values) == 0:
        return (math.nan, math.nan)
    resamples = values[bootstrap_indices(len(values), n_boot, seed)]
    stats = statistic(resamples) if statistic else resamples.mean(axis=1)
    tail = (1 - level) / 2 * 100
    lo, hi = np.nanpercentile(stats, [tail, 100 - tail])
    return (float(lo), float(hi))


def percentile_ci(replicates: np.ndarray, level: float) -> list[float]:
    """[lo, hi] percentile interval of bootstrap replicates (non-finite replicates ignored; NaNs when none)."""
    finite_reps = replicates[np.isfinite(replicates)]
    if len(finite_reps) == 0:
        return [math.nan, math.nan]
    tail = (1 - level) / 2 * 100
    return [float(x) for x in np.percentile(finite_reps, [tail, 100 - tail])]


def welch_pvalue(a, b) -> float:
    """Two-sided Welch t-test p-value; 1.0 when both samples are constant and equal, NaN if too small."""
    from scipy import stats
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < 2 or len(b) < 2:
        return math.nan
    if np.ptp(a) == 0 and np.ptp(b) == 0:
        return 1.0 if a[0] == b[0] else 0.0
    with warnings.catch_warnings():  # near-identical samples: scipy warns, the p-value is still right
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def proportion_pvalue(k1: int, n1: int, k2: int, n2: int) -> float:
    """Two-sided test of equal proportions: two-proportion z-test, or Fisher's exact test when an
    expected cell count is below 5 (the z-test's normal approximation is poor there)."""
    from scipy import stats
    from statsmodels.stats.proportion import proportions_ztest
    if n1 == 0 or n2 == 0:
        return math.nan
    pooled = (k1 + k2) / (n1 + n2)
    if pooled in (0.0, 1.0):
        return 1.0
    expected = np.array([n1, n2]) * min(pooled, 1 - pooled)
    if expected.min() < 5:
        return float(stats.fisher_exact([[k1, n1 - k1], [k2, n2 - k2]]).pvalue)
    return float(proportions_ztest([k1, k2], [n1, n2])[1])


def bootstrap_diff_pvalue(replicates_a: np.ndarray, replicates_b: np.ndarray) -> float:
    """Two-sided p-value of 'no difference' from independent bootstrap replicates of two statistics."""
    diff = np.asarray(replicates_a) - np.asarray(replicates_b)
    diff = diff[np.isfinite(diff)]
    if len(diff) == 0:
        return math.nan
    return float(min(1.0, 2 * min((diff <= 0).mean(), (diff >= 0).mean())))


def stars(p: float | None) -> str:
    """Significance stars: *** p<0.001, ** p<0.01, * p<0.05."""
    if p is None or not np.isfinite(p):
        return ""
    return "***" if p < 0.001 else "**" if p < 0.01 else "*" if p < 0.05 else ""


def distinct_replicates(token_lists: list[list[str]], n: int, idx: np.ndarray, chunk: int = 100) -> np.ndarray:
    """Distinct-n of each bootstrap resample (rows of `idx`), via a sparse generation × n-gram matrix."""
    from scipy import sparse
    vocab: dict[tuple, int] = {}
    rows, cols = [], []
    for i, words in enumerate(token_lists):
        for g in ngrams(words, n):
            rows.append(i)
            cols.append(vocab.setdefault(g, len(vocab)))
    if not vocab:
        return np.full(len(idx), math.nan)
    counts = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(token_lists), len(vocab)))
    per_text = np.asarray(counts.sum(axis=1)).ravel()
    out = np.empty(len(idx))
    for start in range(0, len(idx), chunk):
        block = idx[start:start + chunk]
        flat = (np.arange(len(block))[:, None] * len(token_lists) + block).ravel()  # how often each text is drawn
        weights = np.bincount(flat, minlength=len(block) * len(token_lists)).reshape(len(block), -1).astype(float)
        drawn = (counts.T @ weights.T).T  # resample × n-gram occurrence counts
        total = weights @ per_text
        with np.errstate(invalid="ignore", divide="ignore"):
            out[start:start + chunk] = (np.asarray(drawn) > 0).sum(axis=1) / total
    return out
