"""Thresholds and sample sizes shared by the diagnostics, and the one way their results turn tables into JSON."""

from __future__ import annotations

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
