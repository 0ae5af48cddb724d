"""Fine-tuning the generator with trl: SFT, RL (GRPO or RLOO with a reward callable) and DPO.

Every stage takes a model folder and returns a model folder that `generation.generate` and
`models.load_generator` understand (a full folder, or a LoRA adapter folder beside its base), with
`training_summary.json` (per-step metrics, guards that fired) and the prompt style it was trained with.

Progress: progress(stage, step, total, metrics) is called after every optimiser step; raising
`Cancelled` from it stops the trainer cleanly (a checkpoint is saved first, so `resume=True` continues).

Guards against reward hacking in RL (FIELD-NOTES saw "superb playoff superb friendly..." with KL 14-30):
rewards are z-scored and clipped, repeated words are penalised, β > 0 anchors the policy to its
starting (SFT) model, and training stops early with a clear message when KL, repetition or completion
length leave their bounds.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
import warnings
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable, ClassVar

import numpy as np
import pandas as pd

from ..errors import DeconfoundError
from ..models import (PromptStyle, build_messages, is_adapter_folder, load_generator, lora_config, pick_device,
                      record_adapter_base, save_merged, set_torch_threads)
from ..presets import PRESET_NAMES as PRESETS
from ..presets import PRESETS as PRESET_TABLE
from ..text_measures import completion_text, repetition_rate

log = logging.getLogger(__name__)
# trl 1.16 calls a transformers-5 deprecated property on every step; the warning says nothing to users.
warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)

SUMMARY_FILE = "training_summary.json"
REWARD_STATS_FILE = "reward_stats.json"


class Cancelled(Exception):
    """Raised by a progress callback to stop training; re-raised by the stage after a clean stop."""


# ------------------------------------------------------------------ settings
@dataclass
class _Settings:
    """Shared behaviour: JSON round trip and presets."""

    _PRESET_BLOCK: ClassVar[str] = ""  # which block of presets.PRESETS holds this class's values

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict | None):
        data = data or {}
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise DeconfoundError(f"unknown {cls.__name__} fields: {', '.join(sorted(unknown))}")
        return cls(**data)

    @classmethod
    def for_preset(cls, preset: str, **overrides):
        """Settings of a size preset ('smoke': tiny model in minutes, 'cpu': SmolLM2 with LoRA on a
        laptop, 'gpu': paper scale), with `overrides` applied."""
        if preset not in PRESET_TABLE:
            raise DeconfoundError(f"unknown preset {preset!r}: choose one of {', '.join(PRESETS)}")
        return cls(**(getattr(PRESET_TABLE[preset], cls._PRESET_BLOCK) | overrides))


@dataclass
class SFTSettings(_Settings):
    """Supervised fine-tuning on (context → text) rows; loss on the completion (the text) only."""

    _PRESET_BLOCK: ClassVar[str] = "sft"

    epochs: float = field(default=1.0, metadata={"help": "passes over the rows (ignored when max_steps > 0)"})
    max_steps: int = field(default=60, metadata={"help": "optimiser steps; -1 trains for `epochs`"})
    learning_rate: float = field(default=2e-4, metadata={"help": "AdamW learning rate (paper: 2e-4 with LoRA)"})
    batch_size: int = field(default=8, metadata={"help": "rows per device per step (paper: 8)"})
    grad_accum: int = field(default=1, metadata={"help": "gradient accumulation steps"})
    max_length: int = field(default=160, metadata={"help": "longest prompt + text in tokens (longer are cut)"})
    max_rows: int | None = field(default=None, metadata={"help": "use at most this many rows (None: all)"})
    use_lora: bool = field(default=True, metadata={"help": "LoRA adapters merged after training (False: full fine-tune)"})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank (paper: 16)"})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha (paper: 32)"})
    lora_dropout: float = field(default=0.1, metadata={"help": "LoRA dropout (paper: 0.1)"})
    lora_target_modules: str = field(default="all-linear", metadata={"help": "'all-linear' or comma-separated module names"})
    warmup_ratio: float = field(default=0.05, metadata={"help": "share of steps with a linear warm-up"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    system_prompt: str | None = field(default=None, metadata={"help": "system message; None keeps the model's (editor prompt)"})
    max_context_words: int | None = field(default=40, metadata={
        "help": "truncate contexts to N words (saved with the model; generation uses it); None keeps them whole"})
    save_steps: int = field(default=20, metadata={"help": "checkpoint every N steps (resume)"})
    seed: int = field(default=0, metadata={"help": "seed of shuffling, LoRA init and dropout"})
    torch_threads: int | None = field(default=None, metadata={"help": "CPU threads (None: min(2, cores))"})


@dataclass
class RLSettings(_Settings):
    """RL with a reward callable (trl GRPO or RLOO), KL-anchored to the starting (SFT) model."""

    _PRESET_BLOCK: ClassVar[str] = "rl"

    algorithm: str = field(default="grpo", metadata={"help": "'grpo' or 'rloo' (trl trainers)"})
    max_steps: int = field(default=30, metadata={"help": "optimiser steps; -1 runs `epochs` over the prompts"})
    epochs: float = field(default=1.0, metadata={"help": "passes over the prompts when max_steps is -1"})
    learning_rate: float = field(default=2e-5, metadata={"help": "AdamW learning rate (lower for bigger models)"})
    beta: float = field(default=0.05, metadata={"help": "KL coefficient to the reference model; must be > 0"})
    prompts_per_step: int = field(default=2, metadata={"help": "prompts per device per step"})
    num_generations: int = field(default=4, metadata={"help": "completions sampled per prompt (group size)"})
    max_completion_length: int = field(default=20, metadata={"help": "tokens per completion (headlines are short)"})
    temperature: float = field(default=1.0, metadata={"help": "sampling temperature during RL"})
    top_p: float = field(default=1.0, metadata={"help": "nucleus sampling during RL"})
    use_lora: bool = field(default=True, metadata={"help": "LoRA on the policy (False: full fine-tune, tiny models)"})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank"})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha"})
    lora_dropout: float = field(default=0.0, metadata={"help": "LoRA dropout (dropout is off in RL anyway)"})
    lora_target_modules: str = field(default="all-linear", metadata={"help": "'all-linear' or comma-separated names"})
    merge: bool = field(default=False, metadata={"help": "save a merged full model instead of the LoRA adapter"})
    reward_clip: float = field(default=3.0, metadata={"help": "z-scored rewards are clipped to ±this"})
    repetition_penalty: float = field(default=1.0, metadata={
        "help": "subtracted from the z-scored reward times the share of repeated words in a completion"})
    max_kl: float = field(default=8.0, metadata={"help": "stop early when the KL to the reference exceeds this"})
    max_repetition: float = field(default=0.5, metadata={"help": "stop early when the share of repeated words exceeds this"})
    min_completion_tokens: float = field(default=1.5, metadata={"help": "stop early when mean completion length falls below"})
    guard_patience: int = field(default=2, metadata={"help": "consecutive steps a guard must fail before stopping"})
    max_prompts: int | None = field(default=None, metadata={"help": "use at most this many prompts (None: all)"})
    save_steps: int = field(default=10, metadata={"help": "checkpoint every N steps (resume)"})
    keep_checkpoints: bool = field(default=False, metadata={"help": "keep checkpoints after a finished run"})
    seed: int = field(default=0, metadata={"help": "seed of prompt order, sampling and LoRA init"})
    torch_threads: int | None = field(default=None, metadata={"help": "CPU threads (None: min(2, cores))"})


@dataclass
class DPOSettings(_Settings):
    """DPO on (prompt, chosen, rejected) pairs with an SFT term that keeps the text fluent."""

    _PRESET_BLOCK: ClassVar[str] = "dpo"

    epochs: float = field(default=1.0, metadata={"help": "passes over the pairs (ignored when max_steps > 0)"})
    max_steps: int = field(default=30, metadata={"help": "optimiser steps; -1 trains for `epochs`"})
    learning_rate: float = field(default=5e-5, metadata={"help": "AdamW learning rate"})
    beta: float = field(default=0.1, metadata={"help": "DPO β (paper: 0.1)"})
    loss_type: list[str] = field(default_factory=lambda: ["sigmoid", "sft"], metadata={
        "help": "trl loss terms; the 'sft' term kept a tiny model fluent (0.97 vs 0.79 without)"})
    batch_size: int = field(default=4, metadata={"help": "pairs per device per step (paper: 8)"})
    grad_accum: int = field(default=1, metadata={"help": "gradient accumulation steps"})
    max_length: int = field(default=160, metadata={"help": "longest prompt + completion in tokens"})
    use_lora: bool = field(default=True, metadata={"help": "LoRA adapters (paper: rank 8)"})
    lora_r: int = field(default=8, metadata={"help": "LoRA rank (paper: 8 for DPO)"})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA alpha"})
    lora_dropout: float = field(default=0.1, metadata={"help": "LoRA dropout"})
    lora_target_modules: str = field(default="all-linear", metadata={"help": "'all-linear' or comma-separated names"})
    merge: bool = field(default=False, metadata={"help": "save a merged full model instead of the adapter"})
    warmup_ratio: float = field(default=0.05, metadata={"help": "share of steps with a linear warm-up"})
    save_steps: int = field(default=10, metadata={"help": "checkpoint every N steps (resume)"})
    keep_checkpoints: bool = field(default=False, metadata={"help": "keep checkpoints after a finished run"})
    seed: int = field(default=0, metadata={"help": "seed"})
    torch_threads: int | None = field(default=None, metadata={"help": "CPU threads (None: min(2, cores))"})


# ------------------------------------------------------------------ summaries
@dataclass
class TrainingSummary:
    """What one training stage did, saved as `training_summary.json` in its model folder."""

    kind: str
    stage: str
    model_path: str
    base_path: str
    steps: int = 0
    total_steps: int = 0
    seconds: float = 0.0
    history: list[dict] = field(default_factory=list)
    stopped_early: str | None = None
    warnings: list[str] = field(default_factory=list)
    resumed_from: str | None = None
    settings: dict = field(default_factory=dict)

    def mean_of(self, key: str, first: bool, window: int = 5) -> float:
        """Mean of a logged metric over the first (or last) `window` steps that logged it."""
        values = [h[key] for h in self.history if h.get(key) is not None]
        values = values[:window] if first else values[-window:]
        return float(np.mean(values)) if values else float("nan")

    @property
    def median_step_seconds(self) -> float:
        values = [h["step_seconds"] for h in self.history if h.get("step_seconds")]
        return float(np.median(values)) if values else float("nan")

    def summary(self) -> str:
        lines = [f"{self.kind.upper()} {self.stage}: {self.steps}/{self.total_steps} steps in {self.seconds:.0f} s "
                 f"({self.median_step_seconds:.2f} s/step median) → {self.model_path}"]
        for key in ("loss", "reward", "kl", "repetition", "completion_length"):
            start, end = self.mean_of(key, True), self.mean_of(key, False)
            if not math.isnan(start):
                lines.append(f"  {key}: {start:.3f} → {end:.3f}")
        if self.stopped_early:
            lines.append(f"  stopped early: {self.stopped_early}")
        lines += [f"  warning: {w}" for w in self.warnings]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return asdict(self)

    def save(self, folder) -> None:
        (Path(folder) / SUMMARY_FILE).write_text(json.dumps(self.to_dict(), indent=2, default=str))

    @classmethod
    def load(cls, folder) -> "TrainingSummary":
        return cls(**json.loads((Path(folder) / SUMMARY_FILE).read_text()))


# ------------------------------------------------------------------ callbacks and guards
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


# ------------------------------------------------------------------ reward wrapper
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


# ------------------------------------------------------------------ shared plumbing
def _device_args(settings) -> dict:
    """TrainingArguments that depend on the hardware: bf16 on CUDA where supported, else float32 on CPU
    (trl's bf16 default made CPU runs 38% slower); gradient checkpointing off (faster on small models)."""
    device, dtype = pick_device()
    import torch
    if device == "cpu":
        set_torch_threads(settings.torch_threads)
    from transformers import TrainingArguments
    # transformers 5 renamed gradient_checkpointing (trl defaults it to True) to activation_checkpointing.
    checkpointing = ("activation_checkpointing" if "activation_checkpointing" in TrainingArguments.__dataclass_fields__
                     else "gradient_checkpointing")
    return {"bf16": dtype == torch.bfloat16, "fp16": False, "use_cpu": device == "cpu", checkpointing: False}


def _common_args(settings, checkpoint_dir: Path, max_steps: int, epochs: float, warmup: float = 0.0) -> dict:
    return dict(output_dir=str(checkpoint_dir), max_steps=max_steps, num_train_epochs=epochs,
                learning_rate=settings.learning_rate, warmup_steps=warmup, logging_steps=1,
                save_strategy="steps", save_steps=settings.save_steps, save_total_limit=1, report_to="none",
                seed=settings.seed, data_seed=settings.seed, disable_tqdm=True, dataloader_num_workers=0,
                **_device_args(settings))


def _prepare_checkpoints(checkpoint_dir: Path, resume: bool) -> str | None:
    """The checkpoint to resume from (None to start fresh, clearing stale checkpoints)."""
    from transformers.trainer_utils import get_last_checkpoint
    if resume and checkpoint_dir.is_dir():
        last = get_last_checkpoint(str(checkpoint_dir))
        if last:
            return last
    if checkpoint_dir.exists() and not resume:
        shutil.rmtree(checkpoint_dir)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    return None


def _require_full_model(path: Path, dest: Path) -> Path:
    """Trainers start from a full model folder: an adapter folder is merged into one first."""
    if is_adapter_folder(path):
        if not (dest / "config.json").exists():
            save_merged(path, dest)
        return dest
    return path


def _quiet(trainer):
    """Drop transformers' stdout printer (disable_tqdm adds it): metrics go to `progress` instead."""
    from transformers.trainer_callback import PrinterCallback
    trainer.remove_callback(PrinterCallback)
    return trainer


def _lora(settings):
    if not settings.use_lora:
        return None
    return lora_config(settings.lora_r, settings.lora_alpha, settings.lora_dropout, settings.lora_target_modules)


def _save_trained(trainer, out_dir: Path, base_path: Path, tokenizer, style: PromptStyle, merge: bool) -> None:
    """Save the trained policy: a merged full folder, or the LoRA adapter beside a note of its base."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if trainer.accelerator.is_main_process:
        _write_model(trainer, out_dir, base_path, tokenizer, style, merge)
    trainer.accelerator.wait_for_everyone()  # other processes must not read a half-written folder


def _write_model(trainer, out_dir: Path, base_path: Path, tokenizer, style: PromptStyle, merge: bool) -> None:
    model = trainer.accelerator.unwrap_model(trainer.model)
    is_peft = hasattr(model, "peft_config")
    if is_peft and merge:
        model = model.merge_and_unload()
    if is_peft and not merge:
        model.save_pretrained(out_dir)
        record_adapter_base(out_dir, base_path)
    else:
        model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    style.save(out_dir)


def _earlier_history(checkpoint_dir: Path, resume_from: str | None) -> tuple[list[dict], float]:
    """The metrics (and seconds) logged before a cancelled run stopped, so a resumed summary is whole."""
    path = checkpoint_dir / SUMMARY_FILE
    if not resume_from or not path.exists():
        return [], 0.0
    earlier = TrainingSummary(**json.loads(path.read_text()))
    resumed_step = int(Path(resume_from).name.rsplit("-", 1)[-1])
    return [h for h in earlier.history if h.get("step", 0) <= resumed_step], earlier.seconds


def _train_save_finish(trainer, callback, summary: TrainingSummary, resume_from, *, base_path, tokenizer, style,
                       merge: bool, out_dir: Path, checkpoint_dir: Path, keep_checkpoints: bool, guards=None):
    """Train (resuming if asked), save the model unless cancelled, then write the summary: the tail that
    SFT, RL and DPO share."""
    start = time.perf_counter()
    trainer.train(resume_from_checkpoint=resume_from)
    summary.seconds = time.perf_counter() - start
    if callback.cancelled is None:
        _save_trained(trainer, out_dir, base_path, tokenizer, style, merge=merge)
    return _finish(trainer, callback, summary, out_dir, checkpoint_dir, keep_checkpoints, guards)


def _finish(trainer, callback, summary: TrainingSummary, out_dir: Path, checkpoint_dir: Path,
            keep_checkpoints: bool, guards: _Guards | None = None) -> Path:
    earlier, earlier_seconds = _earlier_history(checkpoint_dir, summary.resumed_from)
    summary.history = earlier + callback.history
    summary.seconds += earlier_seconds
    summary.steps = trainer.state.global_step
    summary.total_steps = trainer.state.max_steps
    if guards is not None:
        summary.stopped_early, summary.warnings = guards.stop_reason, list(guards.warnings)
    if callback.cancelled is not None:
        if trainer.accelerator.is_main_process:
            summary.save(checkpoint_dir)
        raise Cancelled(f"{summary.stage} cancelled at step {summary.steps}/{summary.total_steps}; "
                        f"resume continues from {checkpoint_dir}")
    if trainer.accelerator.is_main_process:
        summary.save(out_dir)
        if not keep_checkpoints:
            shutil.rmtree(checkpoint_dir, ignore_errors=True)
    if summary.stopped_early:
        log.warning("%s stopped early: %s", summary.stage, summary.stopped_early)
    return out_dir


def _style_for(model_path: Path, system_prompt=None, max_context_words=None) -> PromptStyle:
    return PromptStyle.load(model_path).with_overrides(system_prompt, max_context_words)


def _check_room(tokenizer, contexts: list[str], style: PromptStyle, max_length: int, what: str) -> None:
    """Fail early (instead of trl silently dropping every row) when prompts leave no room for the text."""
    from ..models import format_prompt
    sample = contexts[:64]
    lengths = [len(tokenizer(format_prompt(tokenizer, c, style), add_special_tokens=False)["input_ids"])
               for c in sample]
    if lengths and float(np.median(lengths)) + 4 > max_length:
        raise DeconfoundError(
            f"{what}: prompts take {int(np.median(lengths))} tokens (median) but max_length is {max_length}, "
            "leaving no room for the text. Raise max_length, or lower max_context_words, or shorten the "
            "system prompt.")


def _require_columns(frame: pd.DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DeconfoundError(f"{what} needs the column(s) {', '.join(missing)}; it has {', '.join(frame.columns)}")
    if len(frame) == 0:
        raise DeconfoundError(f"{what} got no rows: check the split and the filters")


# ------------------------------------------------------------------ SFT
def run_sft(model_path, rows: pd.DataFrame, settings: SFTSettings, out_dir, progress=None, resume: bool = False,
            *, stage: str = "sft", checkpoint_dir=None) -> Path:
    """Supervised fine-tuning on rows[context, text] (loss on the text only). With LoRA the adapter is
    merged into the base, so the result is a full folder (the KL reference of RL). Returns out_dir."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    _require_columns(rows, ["context", "text"], "SFT")
    model_path, out_dir = Path(model_path), Path(out_dir)
    checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else out_dir / "checkpoints"
    resume_from = _prepare_checkpoints(checkpoint_dir, resume)
    model_path = _require_full_model(model_path, checkpoint_dir / "start_model")
    style = _style_for(model_path, settings.system_prompt, settings.max_context_words)
    rows = rows.dropna(subset=["context", "text"])
    if settings.max_rows:
        rows = rows.sample(n=min(settings.max_rows, len(rows)), random_state=settings.seed)
    dataset = Dataset.from_dict({
        "prompt": [build_messages(c, style) for c in rows["context"].astype(str)],
        "completion": [[{"role": "assistant", "content": str(t).strip()}] for t in rows["text"]],
    })
    args = SFTConfig(**_common_args(settings, checkpoint_dir, settings.max_steps, settings.epochs,
                                    settings.warmup_ratio),
                     per_device_train_batch_size=settings.batch_size,
                     gradient_accumulation_steps=settings.grad_accum, weight_decay=settings.weight_decay,
                     max_length=settings.max_length, packing=False, completion_only_loss=True,
                     dataset_num_proc=None, shuffle_dataset=True)
    model, tokenizer = load_generator(model_path, for_training=True)
    _check_room(tokenizer, rows["context"].astype(str).tolist(), style, settings.max_length, "SFT")
    callback = _make_progress_callback(stage, progress)
    trainer = _quiet(SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                                peft_config=_lora(settings), callbacks=[callback]))
    summary = TrainingSummary(kind="sft", stage=stage, model_path=str(out_dir), base_path=str(model_path),
                              resumed_from=resume_from, settings=settings.to_dict())
    return _train_save_finish(trainer, callback, summary, resume_from, base_path=model_path, tokenizer=tokenizer,
                              style=style, merge=True, out_dir=out_dir, checkpoint_dir=checkpoint_dir,
                              keep_checkpoints=False)


# ------------------------------------------------------------------ RL
def rl_config(settings: RLSettings, checkpoint_dir: Path):
    """The trl GRPOConfig / RLOOConfig for `settings` (also used by the bench's bare-trainer baseline)."""
    if settings.beta <= 0:
        raise DeconfoundError("RL needs beta > 0: the KL anchor to the SFT model is what keeps texts fluent")
    if settings.algorithm not in ("grpo", "rloo"):
        raise DeconfoundError(f"unknown RL algorithm {settings.algorithm!r}: use 'grpo' or 'rloo'")
    from trl import GRPOConfig, RLOOConfig
    config_cls = GRPOConfig if settings.algorithm == "grpo" else RLOOConfig
    return config_cls(**_common_args(settings, checkpoint_dir, settings.max_steps, settings.epochs),
                      per_device_train_batch_size=settings.prompts_per_step * settings.num_generations,
                      gradient_accumulation_steps=1, num_generations=settings.num_generations,
                      max_completion_length=settings.max_completion_length, temperature=settings.temperature,
                      top_p=settings.top_p, beta=settings.beta, disable_dropout=True, log_completions=False,
                      remove_unused_columns=False, shuffle_dataset=True)


def rl_dataset(prompts: pd.DataFrame, style: PromptStyle, settings: RLSettings):
    """A trl prompt dataset: conversational `prompt` plus every other column (passed to the reward)."""
    from datasets import Dataset
    reserved = sorted({"prompts", "completion", "completions", "completion_ids"} & set(prompts.columns))
    if reserved:
        raise DeconfoundError(f"rename the prompt column(s) {', '.join(reserved)}: trl uses these names itself")
    prompts = prompts.reset_index(drop=True)
    if settings.max_prompts and len(prompts) > settings.max_prompts:
        prompts = prompts.sample(n=settings.max_prompts, random_state=settings.seed).reset_index(drop=True)
    columns = {c: _plain_list(prompts[c]) for c in prompts.columns if c != "prompt"}
    columns["context"] = [str(c) for c in prompts["context"]]
    return Dataset.from_dict({"prompt": [build_messages(c, style) for c in columns["context"]], **columns})


def _plain_list(series: pd.Series) -> list:
    """Column values as plain Python objects (datasets cannot take pandas' NA or numpy scalars)."""
    values = series.astype(object).where(series.notna(), None).tolist()
    return [v.item() if isinstance(v, np.generic) else v for v in values]


def run_rl(policy_path, reward_fn: Callable, prompts: pd.DataFrame, settings: RLSettings, out_dir, progress=None,
           resume: bool = False, *, stage: str = "rl", reward_stats: tuple[float, float] | None = None,
           checkpoint_dir=None) -> Path:
    """RL-fine-tune the policy (a full folder, normally the SFT model, which is also the KL reference)
    on `reward_fn(texts, prompts=contexts, **columns) -> list[float]` over prompts[context, ...].

    Rewards are z-scored with `reward_stats` (the reward model's train mean and sd; else the first
    batch's), clipped to ±settings.reward_clip, and penalised for repeated words. Per step, progress
    gets reward, reward_raw, kl, loss, completion_length, repetition. Guards stop training early with
    the reason in training_summary.json. `resume=True` continues from the last checkpoint."""
    from trl import GRPOTrainer, RLOOTrainer

    _require_columns(prompts, ["context"], "RL")
    policy_path, out_dir = Path(policy_path), Path(out_dir)
    checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else out_dir / "checkpoints"
    resume_from = _prepare_checkpoints(checkpoint_dir, resume)
    policy_path = _require_full_model(policy_path, checkpoint_dir / "start_model")
    style = PromptStyle.load(policy_path)
    args = rl_config(settings, checkpoint_dir)
    dataset = rl_dataset(prompts, style, settings)
    reward = GuardedReward(reward_fn, settings, reward_stats, checkpoint_dir / REWARD_STATS_FILE)
    guards = _Guards(settings)
    callback = _make_progress_callback(stage, progress, guards)
    model, tokenizer = load_generator(policy_path, for_training=True)
    trainer_cls = GRPOTrainer if settings.algorithm == "grpo" else RLOOTrainer
    trainer = _quiet(trainer_cls(model=model, reward_funcs=[reward], args=args, train_dataset=dataset,
                                 processing_class=tokenizer, peft_config=_lora(settings), callbacks=[callback]))
    summary = TrainingSummary(kind="rl", stage=stage, model_path=str(out_dir), base_path=str(policy_path),
                              resumed_from=resume_from, settings=settings.to_dict())
    return _train_save_finish(trainer, callback, summary, resume_from, base_path=policy_path, tokenizer=tokenizer,
                              style=style, merge=settings.merge, out_dir=out_dir, checkpoint_dir=checkpoint_dir,
                              keep_checkpoints=settings.keep_checkpoints, guards=guards)


# ------------------------------------------------------------------ DPO
def run_dpo(policy_path, pairs: pd.DataFrame, settings: DPOSettings, out_dir, progress=None, resume: bool = False,
            *, stage: str = "dpo", checkpoint_dir=None) -> Path:
    """DPO of the policy (normally the SFT model, also the reference) on pairs[prompt, chosen, rejected],
    where `prompt` is the raw context (prompted with the model's editor prompt) and chosen/rejected
    are texts. Returns out_dir (a LoRA adapter folder unless `merge` or a full fine-tune)."""
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    _require_columns(pairs, ["prompt", "chosen", "rejected"], "DPO")
    policy_path, out_dir = Path(policy_path), Path(out_dir)
    checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else out_dir / "checkpoints"
    resume_from = _prepare_checkpoints(checkpoint_dir, resume)
    policy_path = _require_full_model(policy_path, checkpoint_dir / "start_model")
    style = PromptStyle.load(policy_path)
    pairs = pairs.dropna(subset=["prompt", "chosen", "rejected"])
    dataset = Dataset.from_dict({
        "prompt": [build_messages(str(c), style) for c in pairs["prompt"]],
        "chosen": [[{"role": "assistant", "content": str(t).strip()}] for t in pairs["chosen"]],
        "rejected": [[{"role": "assistant", "content": str(t).strip()}] for t in pairs["rejected"]],
    })
    args = DPOConfig(**_common_args(settings, checkpoint_dir, settings.max_steps, settings.epochs,
                                    settings.warmup_ratio),
                     per_device_train_batch_size=settings.batch_size,
                     gradient_accumulation_steps=settings.grad_accum, beta=settings.beta,
                     loss_type=list(settings.loss_type), max_length=settings.max_length)
    model, tokenizer = load_generator(policy_path, for_training=True)
    _check_room(tokenizer, pairs["prompt"].astype(str).tolist(), style, settings.max_length, "DPO")
    callback = _make_progress_callback(stage, progress)
    trainer = _quiet(DPOTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                                peft_config=_lora(settings), callbacks=[callback]))
    summary = TrainingSummary(kind="dpo", stage=stage, model_path=str(out_dir), base_path=str(policy_path),
                              resumed_from=resume_from, settings=settings.to_dict())
    return _train_save_finish(trainer, callback, summary, resume_from, base_path=policy_path, tokenizer=tokenizer,
                              style=style, merge=settings.merge, out_dir=out_dir, checkpoint_dir=checkpoint_dir,
                              keep_checkpoints=settings.keep_checkpoints)


# ------------------------------------------------------------------ preference pairs
def build_preference_pairs(rows: pd.DataFrame, *, outcome: str = "outcome", context: str = "context",
                           text: str = "text", group: str | None = None, min_gap: float | None = None,
                           max_pairs_per_group: int = 4, min_pairs: int = 8, policy_path=None,
                           reward_fn: Callable | None = None, samples_per_prompt: int = 4,
                           max_prompts: int = 500, seed: int = 0, generate_kwargs: dict | None = None) -> pd.DataFrame:
    """DPO pairs (prompt = context, chosen, rejected), built one of two ways (df.attrs["source"]):

    (a) "observed": texts that share a context (or an experiment id, `group`) are ranked by the
        `outcome` column (raw or corrected); the best is paired with the worst, the second best with
        the second worst, ...; near-ties (gap < min_gap, default 0.1 sd of the outcome) are skipped and
        each group gives at most `max_pairs_per_group` pairs. Used when it yields ≥ `min_pairs` pairs.
    (b) "sampled": otherwise (observational logs usually have one text per context), the policy
        (normally SFT) writes `samples_per_prompt` texts per context, `reward_fn` scores them, and the
        best is paired with the worst (distinct texts, gap above min_gap).
    """
    _require_columns(rows, [context, text, outcome] if reward_fn is None else [context], "preference pairs")
    if {text, outcome} <= set(rows.columns):
        observed = _observed_pairs(rows, outcome, context, text, group, min_gap, max_pairs_per_group)
        if len(observed) >= min_pairs:
            observed.attrs["source"] = "observed"
            return observed
    if policy_path is None or reward_fn is None:
        raise DeconfoundError(
            f"fewer than {min_pairs} pairs of texts share a context{' or ' + group if group else ''}: give "
            "policy_path and reward_fn so pairs can be sampled from the model and ranked by the reward")
    sampled = _sampled_pairs(rows, context, text, outcome, policy_path, reward_fn, samples_per_prompt,
                             max_prompts, seed, min_gap, generate_kwargs or {})
    sampled.attrs["source"] = "sampled"
    return sampled


def _observed_pairs(rows, outcome, context, text, group, min_gap, max_pairs) -> pd.DataFrame:
    data = rows.dropna(subset=[context, text, outcome])
    key = group or context
    gap = min_gap if min_gap is not None else 0.1 * float(data[outcome].std(ddof=0) or 0.0)
    out = []
    for _, members in data.groupby(key, sort=False):
        if len(members) < 2:
            continue
        members = members.sort_values(outcome, ascending=False)
        for i in range(min(len(members) // 2, max_pairs)):
            best, worst = members.iloc[i], members.iloc[len(members) - 1 - i]
            if best[outcome] - worst[outcome] < gap or str(best[text]) == str(worst[text]):
                continue
            out.append({"prompt": str(best[context]), "chosen": str(best[text]), "rejected": str(worst[text]),
                        "chosen_score": float(best[outcome]), "rejected_score": float(worst[outcome]),
                        "group": str(best[key])})
    return pd.DataFrame(out, columns=["prompt", "chosen", "rejected", "chosen_score", "rejected_score", "group"])


def _sampled_pairs(rows, context, text, outcome, policy_path, reward_fn, k, max_prompts, seed, min_gap,
                   generate_kwargs):
    from ..models import generate_with_stats
    data = rows.dropna(subset=[context]).drop_duplicates(subset=[context])
    if len(data) > max_prompts:
        data = data.sample(n=max_prompts, random_state=seed)
    contexts = data[context].astype(str).tolist()
    extra = {c: _plain_list(data[c]) for c in data.columns if c not in (context, text, outcome)}
    model, tokenizer = load_generator(policy_path)
    samples = [generate_with_stats(policy_path, contexts, seed=seed + j, model=model, tokenizer=tokenizer,
                                   **generate_kwargs).texts for j in range(k)]
    scores = np.stack([np.asarray(reward_fn(s, prompts=contexts, context=contexts, **extra), dtype=float)
                       for s in samples], axis=1)  # prompts × k
    gap = min_gap if min_gap is not None else 0.1 * float(np.nanstd(scores) or 0.0)
    out = []
    for i, ctx in enumerate(contexts):
        best, worst = int(np.nanargmax(scores[i])), int(np.nanargmin(scores[i]))
        chosen, rejected = samples[best][i], samples[worst][i]
        if scores[i, best] - scores[i, worst] < gap or chosen == rejected or not chosen or not rejected:
            continue
        out.append({"prompt": ctx, "chosen": chosen, "rejected": rejected, "chosen_score": float(scores[i, best]),
                    "rejected_score": float(scores[i, worst]), "group": ctx})
    return pd.DataFrame(out, columns=["prompt", "chosen", "rejected", "chosen_score", "rejected_score", "group"])
