"""How well a reward model does (the paper's Table 2): Pearson and R² helpers, one split's numbers
(`evaluate_reward`, written into metrics.json) and the table over methods (`reward_table`)."""

from __future__ import annotations

from typing import Iterable, Mapping

import numpy as np
import pandas as pd

from .methods import METHODS
from .model import RewardModel


def pearson(a, b) -> float | None:
    """Pearson correlation over rows where both are finite; None when undefined (constant or < 3 rows)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or np.std(a[ok]) == 0 or np.std(b[ok]) == 0:
        return None
    return float(np.corrcoef(a[ok], b[ok])[0, 1])


def r_squared(actual, predicted) -> float | None:
    """1 − SSE/SST over finite rows; None when undefined."""
    actual, predicted = np.asarray(actual, dtype=float), np.asarray(predicted, dtype=float)
    ok = np.isfinite(actual) & np.isfinite(predicted)
    if ok.sum() < 3 or np.var(actual[ok]) == 0:
        return None
    return float(1.0 - np.sum((actual[ok] - predicted[ok]) ** 2) / np.sum((actual[ok] - actual[ok].mean()) ** 2))


def evaluate_reward(model: RewardModel, frame: pd.DataFrame, target: np.ndarray | None = None,
                    scores: np.ndarray | None = None, text_only: bool = True) -> dict:
    """Table 2's numbers for one split: Pearson of the reward with the truth, R² against the raw outcome
    and against the method's own target, the reward's correlation with the confounder, and (for methods
    that read the confounder) the truth correlation with the confounder held at its training mean — the
    part of the reward that RL can move by changing the text; `text_only=False` skips that second scoring
    pass)."""
    columns = model.columns
    if scores is None:
        scores = model.score_frame(frame)
    out = {"pearson_truth": None, "r2_outcome": None, "r2_target": None}
    if columns.truth and columns.truth in frame.columns:
        out["pearson_truth"] = pearson(scores, pd.to_numeric(frame[columns.truth], errors="coerce"))
    if columns.outcome in frame.columns:
        out["r2_outcome"] = r_squared(pd.to_numeric(frame[columns.outcome], errors="coerce"), scores)
    if target is not None:
        out["r2_target"] = r_squared(target, scores)
    if columns.confounder and columns.confounder in frame.columns:
        out["pearson_confounder"] = pearson(scores, pd.to_numeric(frame[columns.confounder], errors="coerce"))
    if text_only and model.needs_confounder and columns.truth and columns.truth in frame.columns:
        texts, contexts, _ = model.frame_args(frame)
        held = model.score(texts, contexts, np.full(len(frame), model.state["confounder_mean"]))
        out["pearson_truth_text_only"] = pearson(held, pd.to_numeric(frame[columns.truth], errors="coerce"))
    return out


def reward_table(results: Mapping[str, RewardModel | dict] | Iterable[RewardModel | dict]) -> pd.DataFrame:
    """Table 2: one row per method with the Pearson correlation of its reward with the truth on the train
    and validation splits (plus the valid R² on the outcome, λ/lr and seconds). Accepts reward models or
    their metrics dicts (metrics.json)."""
    items = results.values() if isinstance(results, Mapping) else results
    rows = []
    for item in items:
        metrics = item.metrics if isinstance(item, RewardModel) else dict(item)
        train, valid = metrics.get("train") or {}, metrics.get("valid") or {}
        rows.append({"method": metrics.get("method"), "backbone": metrics.get("backbone"),
                     "train_pearson_truth": train.get("pearson_truth"),
                     "valid_pearson_truth": valid.get("pearson_truth"),
                     "valid_pearson_truth_text_only": valid.get("pearson_truth_text_only"),
                     "valid_r2_outcome": valid.get("r2_outcome"),
                     "lambda": metrics.get("lambda"), "lr": metrics.get("lr"), "seconds": metrics.get("seconds")})
    order = {m: i for i, m in enumerate(METHODS)}
    table = pd.DataFrame(rows, columns=["method", "backbone", "train_pearson_truth", "valid_pearson_truth",
                                        "valid_pearson_truth_text_only", "valid_r2_outcome", "lambda", "lr",
                                        "seconds"])
    return table.sort_values("method", key=lambda s: s.map(order).fillna(len(order)),
                             kind="stable").reset_index(drop=True)
