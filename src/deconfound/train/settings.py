"""The JSON records of a training stage: its settings in (SFT, RL, DPO) and its `TrainingSummary` out.

The fields every stage shares (the LoRA block, checkpoints, seed, threads) are defined once in `_Settings`;
a stage redefines one only where its default differs, with the reason beside it. The JSON keys of each class
are what a run folder's config.json and `--set rl.lora_r=...` overrides name.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import ClassVar

import numpy as np

from ..errors import DeconfoundError
from ..presets import PRESET_NAMES as PRESETS
from ..presets import PRESETS as PRESET_TABLE

SUMMARY_FILE = "training_summary.json"


@dataclass
class _Settings:
    """Shared behaviour (JSON round trip and presets) and the fields every stage has."""

    _PRESET_BLOCK: ClassVar[str] = ""  # which block of presets.PRESETS holds this class's values

    epochs: float = field(default=1.0, metadata={
        "help": "passes over the rows, prompts or pairs (ignored when max_steps > 0)"})
    use_lora: bool = field(default=True, metadata={"help": "LoRA adapters (False: full fine-tune, e.g. tiny models)"})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank (paper: 16)"})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha (paper: 32)"})
    lora_dropout: float = field(default=0.1, metadata={"help": "LoRA dropout (paper: 0.1)"})
    lora_target_modules: str = field(default="all-linear", metadata={
        "help": "'all-linear' or comma-separated module names"})
    save_steps: int = field(default=10, metadata={"help": "checkpoint every N steps (resume)"})
    seed: int = field(default=0, metadata={"help": "seed of data order, sampling, LoRA init and dropout"})
    torch_threads: int | None = field(default=None, metadata={"help": "CPU threads (None: min(2, cores))"})
    precision: str | None = field(default=None, metadata={
        "help": "auto | bf16 | fp32: the dtype of mixed-precision training (auto: bf16 where the hardware computes "
                "it natively, a CPU with AVX512-BF16/AMX or a CUDA GPU); None: the run's precision (a stage run "
                "alone: bf16 on CUDA, float32 on a CPU)"})

    def to_dict(self) -> dict:
        """JSON-ready dict of every field."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict | None):
        """Rebuild from `to_dict()` output; unknown keys are an error."""
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
class _PolicySettings(_Settings):
    """RL and DPO tune the (SFT) policy and may save just the LoRA adapter; SFT always merges (its result is
    the KL reference) and never keeps its checkpoints."""

    merge: bool = field(default=False, metadata={"help": "save a merged full model instead of the LoRA adapter"})
    keep_checkpoints: bool = field(default=False, metadata={"help": "keep checkpoints after a finished run"})


@dataclass
class SFTSettings(_Settings):
    """Supervised fine-tuning on (context → text) rows; loss on the completion (the text) only."""

    _PRESET_BLOCK: ClassVar[str] = "sft"

    max_steps: int = field(default=60, metadata={"help": "optimiser steps; -1 trains for `epochs`"})
    learning_rate: float = field(default=2e-4, metadata={"help": "AdamW learning rate (paper: 2e-4 with LoRA)"})
    batch_size: int = field(default=8, metadata={"help": "rows per device per step (paper: 8)"})
    grad_accum: int = field(default=1, metadata={"help": "gradient accumulation steps"})
    max_length: int = field(default=160, metadata={"help": "longest prompt + text in tokens (longer are cut)"})
    max_rows: int | None = field(default=None, metadata={"help": "use at most this many rows (None: all)"})
    warmup_ratio: float = field(default=0.05, metadata={"help": "share of steps with a linear warm-up"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    system_prompt: str | None = field(default=None, metadata={
        "help": "system message; None keeps the model's (editor prompt)"})
    max_context_words: int | None = field(default=40, metadata={
        "help": "truncate contexts to N words (saved with the model; generation uses it); None keeps them whole"})
    user_template: str | None = field(default=None, metadata={
        "help": "user message, '{context}' replaced by the row's prompt text (saved with the model); None keeps "
                "the model's (the editor's: \"The news abstract is '{context}'\")"})
    # Twice RL's and DPO's: SFT runs twice their steps by default, so each checkpoints every third of its run.
    save_steps: int = field(default=20, metadata={"help": "checkpoint every N steps (resume)"})


# The RL algorithms, each with the sentence the Train page shows (one home; `rl.run_rl` dispatches on the key).
RL_ALGORITHMS = {
    "grpo": "GRPO (trl): samples a group of texts per prompt each step and moves towards the better ones; "
            "the paper's algorithm, best on a GPU",
    "rloo": "RLOO (trl): like GRPO with a leave-one-out baseline",
    "sample_rank": "sample and rank: samples texts in a few rounds, ranks them by the reward and trains on "
                   "best-vs-worst pairs (DPO); about half GRPO's time per step on a CPU "
                   "(bench/results/rl_algorithms.md)",
}


@dataclass
class RLSettings(_PolicySettings):
    """RL with a reward callable (trl GRPO or RLOO), KL-anchored to the starting (SFT) model."""

    _PRESET_BLOCK: ClassVar[str] = "rl"

    algorithm: str = field(default="grpo", metadata={
        "help": "'grpo' or 'rloo' (trl trainers), or 'sample_rank' (sample texts, rank them by the reward, DPO on "
                "best vs worst; see train.sample_rank)"})
    max_steps: int = field(default=30, metadata={"help": "optimiser steps; -1 runs `epochs` over the prompts"})
    learning_rate: float = field(default=2e-5, metadata={"help": "AdamW learning rate (lower for bigger models)"})
    beta: float = field(default=0.05, metadata={"help": "KL coefficient to the reference model; must be > 0"})
    prompts_per_step: int = field(default=2, metadata={"help": "prompts per device per step"})
    num_generations: int = field(default=4, metadata={"help": "completions sampled per prompt (group size)"})
    max_completion_length: int = field(default=20, metadata={"help": "tokens per completion (headlines are short)"})
    temperature: float = field(default=1.0, metadata={"help": "sampling temperature during RL"})
    top_p: float = field(default=1.0, metadata={"help": "nucleus sampling during RL"})
    # rl_config turns dropout off (disable_dropout=True), so a LoRA dropout would do nothing here.
    lora_dropout: float = field(default=0.0, metadata={"help": "LoRA dropout (dropout is off in RL anyway)"})
    reward_clip: float = field(default=3.0, metadata={"help": "z-scored rewards are clipped to ±this"})
    repetition_penalty: float = field(default=1.0, metadata={
        "help": "subtracted from the z-scored reward times the share of repeated words in a completion"})
    max_kl: float = field(default=8.0, metadata={"help": "stop early when the KL to the reference exceeds this"})
    max_repetition: float = field(default=0.5, metadata={
        "help": "stop early when the share of repeated words exceeds this"})
    min_completion_tokens: float = field(default=1.5, metadata={
        "help": "stop early when mean completion length falls below"})
    guard_patience: int = field(default=2, metadata={"help": "consecutive steps a guard must fail before stopping"})
    max_prompts: int | None = field(default=None, metadata={"help": "use at most this many prompts (None: all)"})
    rounds: int = field(default=4, metadata={
        "help": "sample_rank: sample → rank → train rounds (max_steps optimiser steps split evenly over them)"})
    rank_loss: str = field(default="dpo", metadata={
        "help": "sample_rank: 'dpo' (best vs worst text of each prompt, plus DPO's SFT term) or 'sft' (the best)"})
    rank_beta: float = field(default=0.1, metadata={
        "help": "sample_rank: DPO β against the policy at the start of each round (paper's DPO: 0.1)"})
    rank_min_gap: float = field(default=0.25, metadata={
        "help": "sample_rank: a prompt gives a pair only when its best and worst texts' rewards (z units, after "
                "clipping and the repetition penalty) differ by at least this"})
    rank_max_length: int = field(default=160, metadata={
        "help": "sample_rank: longest prompt + text in tokens in its training steps"})
    sample_batch_size: int = field(default=32, metadata={"help": "sample_rank: prompts per generation batch"})


@dataclass
class DPOSettings(_PolicySettings):
    """DPO on (prompt, chosen, rejected) pairs with an SFT term that keeps the text fluent."""

    _PRESET_BLOCK: ClassVar[str] = "dpo"

    max_steps: int = field(default=30, metadata={"help": "optimiser steps; -1 trains for `epochs`"})
    learning_rate: float = field(default=5e-5, metadata={"help": "AdamW learning rate"})
    beta: float = field(default=0.1, metadata={"help": "DPO β (paper: 0.1)"})
    loss_type: list[str] = field(default_factory=lambda: ["sigmoid", "sft"], metadata={
        "help": "trl loss terms; the 'sft' term kept a tiny model fluent (0.97 vs 0.79 without)"})
    batch_size: int = field(default=4, metadata={"help": "pairs per device per step (paper: 8)"})
    grad_accum: int = field(default=1, metadata={"help": "gradient accumulation steps"})
    max_length: int = field(default=160, metadata={"help": "longest prompt + completion in tokens"})
    # The paper's DPO adapter (App. B) is half the size of its SFT one.
    lora_r: int = field(default=8, metadata={"help": "LoRA rank (paper: 8 for DPO)"})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA alpha"})
    warmup_ratio: float = field(default=0.05, metadata={"help": "share of steps with a linear warm-up"})


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
        """Median seconds per optimiser step (NaN when no step was timed)."""
        values = [h["step_seconds"] for h in self.history if h.get("step_seconds")]
        return float(np.median(values)) if values else float("nan")

    def summary(self) -> str:
        """A few readable lines: steps, time, first → last metrics, why it stopped early, warnings."""
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
        """JSON-ready dict of every field."""
        return asdict(self)

    def save(self, folder) -> None:
        """Write `training_summary.json` into `folder`."""
        (Path(folder) / SUMMARY_FILE).write_text(json.dumps(self.to_dict(), indent=2, default=str))

    @classmethod
    def load(cls, folder) -> "TrainingSummary":
        """Read `training_summary.json` from `folder`."""
        return cls(**json.loads((Path(folder) / SUMMARY_FILE).read_text()))
