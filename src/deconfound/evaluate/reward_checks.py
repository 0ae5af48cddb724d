"""Does a reward follow true quality, and does it favour a marker group? Checks of a run's saved reward models.

- `reward_truth_points`: each reward's score vs the true quality on the run's validation rows (the scatter
  behind the paper's Table 2), cached in run_dir/outputs/reward_points.csv because scoring loads every model;
- `reward_marker_preference(s)`: the probe — the same neutral texts with each marker group's names filled in,
  scored by each reward; a reward that learned the confounder carried by the markers scores one group higher.

Both load reward models, so they import torch for the MiniLM and fine-tuned backbones.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..jsonio import read_json
from ..rewards import METHOD_LABELS
from .comparison import load_generations
from .defaults import probe_templates, quality_scorer
from .labels import method_sort_key

REWARD_POINTS_FILE = "reward_points.csv"


def reward_truth_points(run_dir: str | Path, methods: Sequence[str] | None = None, n: int = 300,
                        seed: int = 0, split: str = "rm_valid") -> pd.DataFrame:
    """Each saved reward model's score vs the true quality on a sample of the run's validation rows
    (the `split` rows as the pipeline assigns them: the table's split column or the run's seeded split).

    Returns columns method, reward, truth; cached in run_dir/outputs/reward_points.csv. Methods whose
    model cannot score the rows (no truth column, missing confounder) are left out. Loads reward models,
    so this imports torch for the MiniLM and fine-tuned backbones.
    """
    run_dir = Path(run_dir)
    cache = run_dir / "outputs" / REWARD_POINTS_FILE
    root = run_dir / "rewards"
    available = sorted((p.parent.name for p in root.glob("*/config.json")), key=method_sort_key)
    wanted = [m for m in (methods or available) if m in available]
    cached = cached_reward_points(run_dir)
    if cached is not None and set(wanted) <= set(cached["method"]):
        return cached[cached["method"].isin(wanted)].reset_index(drop=True)
    data_path = run_dir / "data.parquet"
    if not wanted or not data_path.is_file():
        return pd.DataFrame(columns=["method", "reward", "truth"])
    from ..data import assign_splits
    from ..rewards import RewardModel
    data = pd.read_parquet(data_path)
    config = read_json(run_dir / "config.json", default={}) or {}
    splits, _ = assign_splits(data, int(config.get("seed", 0) or 0))  # the rows the run validated on
    if (splits == split).any():
        data = data[(splits == split).to_numpy()]
    data = data.sample(min(n, len(data)), random_state=seed).reset_index(drop=True)
    frames = []
    for method in wanted:
        model = RewardModel.load(root / method)
        cols = model.columns
        if not cols.truth or cols.truth not in data.columns:
            continue
        confounder = None
        if model.needs_confounder:
            if not cols.confounder or cols.confounder not in data.columns:
                continue
            confounder = pd.to_numeric(data[cols.confounder], errors="coerce").to_numpy(dtype=float)
        contexts = data[cols.context].astype(str).tolist() if cols.context and cols.context in data.columns else None
        scores = model.score(data[cols.text].astype(str).tolist(), contexts, confounder)
        frames.append(pd.DataFrame({"method": method, "reward": np.asarray(scores, dtype=float),
                                    "truth": pd.to_numeric(data[cols.truth], errors="coerce").to_numpy(dtype=float)}))
    points = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["method", "reward", "truth"])
    if len(points):
        cache.parent.mkdir(parents=True, exist_ok=True)
        points.to_csv(cache, index=False)
    return points


def cached_reward_points(run_dir: str | Path) -> pd.DataFrame | None:
    """The reward-vs-truth points saved by `reward_truth_points`, or None."""
    cache = Path(run_dir) / "outputs" / REWARD_POINTS_FILE
    return pd.read_csv(cache) if cache.is_file() else None


def probe_contexts(run_dir: str | Path, n: int = 4) -> list[str]:
    """Prompts for the probe: the run's first `n` held-out contexts (rewards that read the prompt need one),
    else one empty context."""
    if not (Path(run_dir) / "generations.csv").is_file():
        return [""]
    return load_generations(run_dir)["context"].astype(str).drop_duplicates().head(n).tolist() or [""]


def reward_marker_preference(run_dir: str | Path, method: str, marker_groups: dict[str, list[str]],
                             templates: Sequence[str] | None = None, max_names: int = 40,
                             contexts: Sequence[str] | None = None) -> dict[str, float]:
    """Mean reward of the same headlines with each group's names filled in (per group, up to `max_names`
    names × `templates`, default `defaults.probe_templates`; `contexts` default to `probe_contexts`). A reward
    that learned a confounder carried by the markers (popular teams) scores one group's names higher; a
    deconfounded one scores them alike."""
    score = quality_scorer(f"reward:{method}", run_dir)
    templates = list(templates) if templates else list(probe_templates(run_dir))
    contexts = list(contexts) if contexts else probe_contexts(run_dir, len(templates))
    out = {}
    for group, names in marker_groups.items():
        pairs = [(t.format(name=name), contexts[i % len(contexts)]) for name in list(names)[:max_names]
                 for i, t in enumerate(templates)]
        out[group] = float(np.mean(score([t for t, _ in pairs], [c for _, c in pairs]))) if pairs else math.nan
    return out


def reward_marker_preferences(run_dir: str | Path, marker_groups: dict[str, list[str]],
                              methods: Sequence[str] | None = None) -> pd.DataFrame:
    """`reward_marker_preference` for every reward model of the run: one row per method, one column per
    marker group, plus `spread` (highest minus lowest group) in the reward's own units."""
    folder = Path(run_dir) / "rewards"
    methods = list(methods) if methods is not None else sorted(
        (p.parent.name for p in folder.glob("*/config.json")), key=method_sort_key)
    contexts = probe_contexts(run_dir)  # read once for every method
    rows = []
    for method in methods:
        prefs = reward_marker_preference(run_dir, method, marker_groups, contexts=contexts)
        rows.append({"method": method, "label": METHOD_LABELS.get(method, method), **prefs,
                     "spread": max(prefs.values()) - min(prefs.values()) if prefs else math.nan})
    return pd.DataFrame(rows, columns=["method", "label", *marker_groups, "spread"])
