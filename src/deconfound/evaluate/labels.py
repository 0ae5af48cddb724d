"""How the models of a run are named and ordered in tables, charts, cards and sentences.

A run's models are 'base', 'sft', 'rl_<method>' and 'dpo_<method>'; the method labels and the paper's method
order come from the reward-method registry (`rewards.METHOD_LABELS`, `rewards.METHODS`).
"""

from __future__ import annotations

from pathlib import Path

from ..jsonio import read_json
from ..rewards import METHOD_LABELS, METHODS


def model_label(name: str, run_dir: str | Path | None = None) -> str:
    """Readable name of a model of a run: 'sft' → 'SFT', 'rl_naive' → 'RL: observed outcome (naive)'.
    With `run_dir`, a run that started from a model fine-tuned earlier calls its 'base' the starting model."""
    if name == "base" and run_dir is not None and starts_from_fine_tuned(run_dir):
        return "Starting model (fine-tuned earlier)"
    fixed = {"base": "Base (pre-trained)", "sft": "SFT"}
    if name in fixed:
        return fixed[name]
    kind, _, method = name.partition("_")
    if kind in ("rl", "dpo") and method:
        return f"{kind.upper()}: {METHOD_LABELS.get(method, method.replace('_', ' '))}"
    return name


def starts_from_fine_tuned(run_dir: str | Path) -> bool:
    """Whether the run's starting model is a folder this product trained (it holds a training summary),
    e.g. a run that reuses another run's SFT model: then its 'base' is not a pre-trained model."""
    config = read_json(Path(run_dir) / "config.json") or {}
    name = (config.get("model") or {}).get("name") if isinstance(config.get("model"), dict) else None
    return bool(name) and (Path(str(name)) / "training_summary.json").is_file()


def model_sort_key(name: str) -> tuple:
    """Table-1 order: base, SFT, RL per method in the paper's order, DPO likewise, then anything else."""
    if name == "base":
        return (0, 0, name)
    if name == "sft":
        return (1, 0, name)
    kind, _, method = name.partition("_")
    if kind in ("rl", "dpo") and method in METHODS:
        return (2 if kind == "rl" else 3, METHODS.index(method), name)
    return (4, 0, name)


def method_sort_key(method: str) -> tuple:
    """Reward methods in the paper's order (as their RL models sort), then anything else."""
    return model_sort_key("rl_" + method)
