"""What runs inside a trainer's loop: progress and cancel, the RL guards, and the reward wrapper.

Progress: progress(stage, step, total, metrics) is called after every optimiser step; raising
`Cancelled` from it stops the trainer cleanly (a checkpoint is saved first, so `resume=True` continues).

Guards against reward hacking in RL (FIELD-NOTES saw "superb playoff superb friendly..." with KL 14-30):
rewards are z-scored and clipped, repeated words are penalised, β > 0 anchors the policy to its
starting (SFT) model, and training stops early with a clear message when KL, repetition or completion
length leave their bounds. Under `accelerate launch` the main process decides and tells the others.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import DeconfoundError
from ..text_measures import completion_text, repetition_rate
from .settings import RLSettings

REWARD_STATS_FILE = "reward_stats.json"


class Cancelled(Exception):
    """Raised by a progress callback to stop training; re-raised by the stage after a clean stop."""


# trl/transformers log keys → our metric names (what the pipeline writes to metrics.jsonl).
_METRIC_KEYS = {
    "loss": "loss", "learning_rate": "lr", "grad_norm": "grad_norm", "epoch": "epoch",
    "mean_token_accuracy": "token_accuracy", "reward": "reward", "reward_std": "reward_std", "kl": "kl",
    "completions/mean_length": "completion_length", "completions/clipped_ratio": "clipped_ratio",
    "entropy": "entropy", "reward_raw": "reward_raw", "repetition": "repetition",
    "empty_share": "empty_share", "rewards/chosen": "reward_chosen", "rewards/rejected": "reward_rejected",
    "rewards/accuracies": "reward_accuracy", "rewards/margins": "reward_margin",
}


_CONTINUE, _GUARD_STOP, _CANCEL = 0, 1, 2


def _broadcast_from_main(value: int) -> int:
    """The main process's value on every process (unchanged without torch.distributed)."""
    import torch
    import torch.distributed as dist
    if not (dist.is_available() and dist.is_initialized()):
        return value
    device = f"cuda:{torch.cuda.current_device()}" if dist.get_backend() == "nccl" else "cpu"
    tensor = torch.tensor([value], dtype=torch.int64, device=device)
    dist.broadcast(tensor, src=0)
    return int(tensor.item())


def _make_progress_callback(stage: str, progress, guards: "_Guards | None" = None):
    """A TrainerCallback that times steps, forwards each step's metrics to `progress`, applies the RL
    guards and turns a `Cancelled` from `progress` into a clean stop (checkpoint saved)."""
    from transformers import TrainerCallback

    class ProgressCallback(TrainerCallback):
        def __init__(self):
            self.history: list[dict] = []
            self.cancelled: str | None = None
            self._step_start = None
            self._last_step_seconds = None

        def on_step_begin(self, args, state, control, **kwargs):
            self._step_start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            if self._step_start is not None:
                self._last_step_seconds = time.perf_counter() - self._step_start

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not logs or "train_runtime" in logs:
                return
            # The main process decides (guards, progress, cancel) and tells the others, so every process
            # of an `accelerate launch` run stops at the same step.
            decision = _CONTINUE
            if state.is_world_process_zero:
                decision = self._decide(state, logs)
            decision = _broadcast_from_main(decision)
            if decision != _CONTINUE:
                control.should_training_stop = True
                control.should_save = True
            if decision == _CANCEL and self.cancelled is None:
                self.cancelled = "cancelled"

        def _decide(self, state, logs) -> int:
            metrics = {ours: float(logs[key]) for key, ours in _METRIC_KEYS.items()
                       if isinstance(logs.get(key), (int, float))}
            metrics["step"] = state.global_step
            metrics["step_seconds"] = self._last_step_seconds
            self.history.append(metrics)
            decision = _CONTINUE
            if guards is not None:
                reason = guards.check(metrics)
                if reason:
                    metrics["stopped_early"] = reason
                    decision = _GUARD_STOP
            if progress is not None and self.cancelled is None:
                try:
                    progress(stage, state.global_step, state.max_steps, dict(metrics))
                except Cancelled as exc:
                    self.cancelled = str(exc) or "cancelled"
                    decision = _CANCEL
            return decision

    return ProgressCallback()


@dataclass
class _Guards:
    """Stop rules for RL: KL explosion, repeated words, collapsing completions."""

    settings: RLSettings
    strikes: dict = field(default_factory=dict)
    stop_reason: str | None = None
    warnings: list[str] = field(default_factory=list)

    def check(self, metrics: dict) -> str | None:
        s = self.settings
        rules = {
            "kl": (metrics.get("kl", 0.0) > s.max_kl,
                   f"KL to the reference model reached {metrics.get('kl', 0):.2f} > {s.max_kl} "
                   f"(the policy is drifting away from fluent text): lower the learning rate or raise beta"),
            "repetition": (metrics.get("repetition", 0.0) > s.max_repetition,
                           f"{metrics.get('repetition', 0):.0%} of completion words are repeats "
                           f"(> {s.max_repetition:.0%}): the policy is gaming the reward; lower the learning rate"),
            "length": (metrics.get("completion_length", 99.0) < s.min_completion_tokens,
                       f"completions shrank to {metrics.get('completion_length', 0):.1f} tokens on average"),
        }
        for name, (failed, message) in rules.items():
            self.strikes[name] = self.strikes.get(name, 0) + 1 if failed else 0
            if self.strikes[name] >= s.guard_patience and self.stop_reason is None:
                self.stop_reason = f"step {metrics.get('step')}: {message}"
                return self.stop_reason
        if metrics.get("clipped_ratio", 0.0) > 0.9 and not self.warnings:
            self.warnings.append("over 90% of completions hit max_completion_length: texts may be cut off")
        return None


_TRL_REWARD_KWARGS = ("trainer_state", "log_extra", "log_metric", "environments", "completion_ids")


class GuardedReward:
    """The user's reward callable, made safe for RL: texts in, z-scored and clipped rewards out, minus
    a penalty for repeated words. `prompts` given to the user's callable are the raw contexts; every
    other dataset column arrives as a keyword (e.g. a confounder for 'confounder_text')."""

    __name__ = "reward"

    def __init__(self, reward_fn: Callable, settings: RLSettings, stats: tuple[float, float] | None = None,
                 stats_path: Path | None = None):
        self.reward_fn, self.settings, self.stats_path = reward_fn, settings, stats_path
        self.stats = stats
        if self.stats is None and stats_path is not None and stats_path.exists():
            saved = json.loads(stats_path.read_text())
            self.stats = (saved["mean"], saved["sd"])

    def __call__(self, prompts=None, completions=None, **kwargs) -> list[float]:
        log_metric = kwargs.get("log_metric")
        columns = {k: v for k, v in kwargs.items() if k not in _TRL_REWARD_KWARGS}
        texts = [completion_text(c).strip() for c in completions]
        contexts = columns.get("context")
        raw = np.asarray(self.reward_fn(texts, prompts=contexts, **columns), dtype=float).reshape(-1)
        if raw.shape[0] != len(texts):
            raise DeconfoundError(f"the reward function returned {raw.shape[0]} rewards for {len(texts)} texts")
        raw = np.where(np.isfinite(raw), raw, np.nan)
        if self.stats is None:
            self._calibrate(raw)
        mean, sd = self.stats
        clip = self.settings.reward_clip
        scaled = np.clip((np.nan_to_num(raw, nan=mean) - mean) / sd, -clip, clip)
        repeats = np.array([repetition_rate(t) for t in texts])
        rewards = scaled - self.settings.repetition_penalty * repeats
        if log_metric is not None:
            log_metric("reward_raw", float(np.nanmean(raw)))
            log_metric("repetition", float(repeats.mean()))
            log_metric("empty_share", float(np.mean([not t for t in texts])))
        return rewards.tolist()

    def _calibrate(self, raw: np.ndarray) -> None:
        """Without the reward model's train mean/sd, scale by the starting policy's first batch (pooled
        over processes under `accelerate launch`, so every process uses the same scale)."""
        finite = raw[np.isfinite(raw)]
        sums = np.array([finite.sum(), (finite ** 2).sum(), finite.size], dtype=float)
        sums = _all_reduce_sum(sums)
        count = max(sums[2], 1.0)
        mean = sums[0] / count
        sd = math.sqrt(max(sums[1] / count - mean ** 2, 0.0))
        self.stats = (float(mean), sd if sd > 1e-8 else 1.0)
        if self.stats_path is not None:
            self.stats_path.parent.mkdir(parents=True, exist_ok=True)
            self.stats_path.write_text(json.dumps({"mean": self.stats[0], "sd": self.stats[1],
                                                   "source": "first batch of the starting policy"}))


def _all_reduce_sum(values: np.ndarray) -> np.ndarray:
    """Sum an array over processes when torch.distributed runs (all ranks score their first batch together)."""
    import torch
    import torch.distributed as dist
    if not (dist.is_available() and dist.is_initialized()):
        return values
    device = f"cuda:{torch.cuda.current_device()}" if dist.get_backend() == "nccl" else "cpu"
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.cpu().numpy()
