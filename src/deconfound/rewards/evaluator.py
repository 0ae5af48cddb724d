"""The independent evaluator: a reward model that judges generated texts of a table without a truth column.

It regresses the deconfounded outcome (the raw outcome when the run estimated no confounder effect) on rows and
with a backbone that no RL reward of the run saw — the held-out test split, and MiniLM sentence embeddings when
the run's rewards used TF-IDF (TF-IDF when they used MiniLM) — so a model that learned its own reward's quirks
is not graded by the same quirks. Its honesty is measured, not assumed: the Pearson correlation of its score
with the target on rows it was neither fitted nor tuned on (`metrics["holdout"]`), shown beside its label.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DeconfoundError
from .config import RewardColumns, RewardConfig
from .metrics import pearson
from .model import RewardModel
from .training import train_reward

EVALUATOR_LABEL = "estimated by an independent deconfounded reward model"
EVALUATOR_MIN_ROWS = 30


def evaluator_backbone(reward_backbone: str) -> str:
    """A backbone the run's rewards did not use: MiniLM, or TF-IDF when the rewards read MiniLM features."""
    return "tfidf" if reward_backbone == "minilm" else "minilm"


def train_evaluator(rows: pd.DataFrame, columns: RewardColumns, out_dir, backbone: str = "minilm", seed: int = 0,
                    max_rows: int = 4000, progress=None) -> RewardModel:
    """Fit the evaluator on `rows` (the run's held-out rows): 60% to fit, 20% to choose the ridge λ, 20% held out
    for its correlation with the target. Saved in out_dir like any reward model, with metrics["holdout"]."""
    method = "deconfounded" if columns.corrected else "naive"
    target = columns.corrected or columns.outcome
    data = rows.dropna(subset=[columns.text, target])
    data = data[data[columns.text].astype(str).str.strip() != ""]
    if len(data) < EVALUATOR_MIN_ROWS:
        raise DeconfoundError(f"the evaluator needs at least {EVALUATOR_MIN_ROWS} held-out rows with a text and "
                              f"'{target}' (got {len(data)}): the table is too small to judge generations without "
                              "a truth column")
    if len(data) > max_rows:
        data = data.sample(n=max_rows, random_state=seed)
    order = np.random.default_rng(seed).permutation(len(data))
    cut1, cut2 = int(0.6 * len(data)), int(0.8 * len(data))
    train, valid, holdout = (data.iloc[order[:cut1]], data.iloc[order[cut1:cut2]], data.iloc[order[cut2:]])
    config = RewardConfig(method=method, backbone=backbone, seed=seed)
    model = train_reward(config, train, valid, columns, Path(out_dir), progress=progress)
    scores = model.score_frame(holdout)
    model.metrics["holdout"] = {"pearson_target": pearson(scores, pd.to_numeric(holdout[target], errors="coerce")),
                                "n": len(holdout), "target": target}
    model.metrics["evaluator"] = {"label": EVALUATOR_LABEL, "backbone": backbone, "rows": len(data),
                                  "target": target, "deconfounded": bool(columns.corrected)}
    model.write_metrics(out_dir)
    return model


def evaluator_label(metrics: dict) -> str:
    """'estimated by an independent deconfounded reward model (MiniLM, held-out r = 0.41 with the corrected
    outcome)' from an evaluator's metrics.json."""
    info, holdout = metrics.get("evaluator") or {}, metrics.get("holdout") or {}
    r = holdout.get("pearson_target")
    target = "the corrected outcome" if info.get("deconfounded", True) else "the raw outcome (no confounder effect "\
        "was estimated)"
    backbone = {"minilm": "MiniLM", "tfidf": "TF-IDF"}.get(info.get("backbone"), info.get("backbone") or "?")
    fit = f"held-out r = {r:.2f} with {target}" if r is not None else f"no held-out correlation with {target}"
    label = EVALUATOR_LABEL if info.get("deconfounded", True) else EVALUATOR_LABEL.replace(" deconfounded", "")
    return f"{label} ({backbone}, {fit})"
