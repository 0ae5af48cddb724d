"""Thresholds and sample sizes shared by the diagnostics, the one way their results turn tables into JSON, and the
one way a p-value is written for people (`pvalue_text`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd


@dataclass
class DiagnosticsConfig:
    """Thresholds and sample sizes of the diagnostics (defaults return in seconds on a million rows)."""

    alpha: float = field(default=0.01, metadata={"help": "significance level (after Benjamini–Hochberg for markers)"})
    min_time_share: float = field(default=0.001, metadata={
        "help": "time patterns: a significant weekday/month effect explaining less than this share of the "
                "outcome's variance is reported as negligible (huge tables make tiny effects significant)"})
    min_support: float = field(default=0.005, metadata={"help": "markers: minimum share of rows containing the phrase"})
    min_count: int = field(default=30, metadata={"help": "markers: minimum number of rows containing the phrase"})
    max_ngram: int = field(default=3, metadata={"help": "markers: longest phrase, in words"})
    max_markers: int = field(default=5000, metadata={"help": "markers: keep at most this many most frequent phrases"})
    marker_rows: int = field(default=50_000, metadata={"help": "markers: scan a random sample of at most this many rows"})
    adjustment: str = field(default="auto", metadata={
        "help": "markers: how the confounders are controlled for: 'iv' (lift on the outcome minus the IV estimate "
                "of the confounder effect), 'regression' (the confounders as covariates), or 'auto' (IV when an "
                "instrument is tagged and strong)"})
    vanish_share: float = field(default=0.75, metadata={
        "help": "a significant marker is 'spurious' when controlling for the confounders leaves no significant "
                "lift or removes at least this share of it (a marker keeping a real but smaller effect is not)"})
    embeddings: str = field(default="tfidf", metadata={
        "help": "entanglement: 'tfidf' (sparse TF-IDF, fast) or 'minilm' (sentence embeddings; ~100 headlines/s "
                "on 2 CPU cores the first time, cached afterwards)"})
    entanglement_rows: int | None = field(default=None, metadata={
        "help": "entanglement: random sample size (default 5,000 with tfidf, 3,000 with minilm)"})
    folds: int = field(default=5, metadata={"help": "entanglement: cross-validation folds"})
    entangled_r2: float = field(default=0.05, metadata={
        "help": "entanglement: flag when the text predicts at least this share of the confounder's variance "
                "beyond the instruments"})
    entangled_corr: float = field(default=0.1, metadata={
        "help": "entanglement: flag when |corr(confounder, truth)| is at least this (truth column tagged)"})
    leakage_corr: float = field(default=0.5, metadata={
        "help": "temporal leakage: flag a score whose monthly means correlate at least this with the outcome's"})
    seed: int = field(default=0, metadata={"help": "sampling and cross-validation seed"})


def records(frame: pd.DataFrame | None) -> list[dict]:
    """A result table as JSON-ready records (none when the check did not produce it)."""
    if frame is None:
        return []
    return frame.to_dict(orient="records")


def pvalue_text(p) -> str:
    """A p-value as people read it: '0.043', '0.0012', '3.1e-08'; a p-value below the smallest float (computed
    as exactly 0) is '< 1e-300', never a row of zeros; '–' when there is none."""
    try:
        p = float(p)
    except (TypeError, ValueError):
        return "–"
    if not math.isfinite(p):
        return "–"
    if p <= 0:
        return "< 1e-300"
    return f"{p:.2g}" if p >= 0.001 else f"{p:.1e}"


def pvalue_phrase(p) -> str:
    """'p = 0.043' or, below the smallest float, 'p < 1e-300' (for sentences)."""
    text = pvalue_text(p)
    return f"p {text}" if text.startswith("<") else f"p = {text}"


def readable_pvalues(frame: pd.DataFrame, columns=("p-value", "lift_q", "adjusted_q")) -> pd.DataFrame:
    """A copy of a result table for display with its p-/q-value columns written by `pvalue_text` (the numeric
    table stays what `to_dict()` and the CLI give)."""
    out = frame.copy()
    for column in columns:
        if column in out.columns:
            out[column] = out[column].map(pvalue_text)
    return out
