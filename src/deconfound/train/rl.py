"""Step 5b, RL: the generator fine-tuned on a reward callable with trl's GRPO or RLOO, KL-anchored to its start.

The reward arrives through `GuardedReward` and training is watched by the RL guards (see `callbacks`).
`rl_config` and `rl_dataset` are public so the bench can time a bare trl trainer on the same inputs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pandas as pd

from ..errors import DeconfoundError
from ..models import PromptStyle, build_messages, load_generator
from .callbacks import REWARD_STATS_FILE, GuardedReward, _Guards, _make_progress_callback
from .plumbing import _common_args, _lora, _plain_list, _quiet, _require_columns, _start, _train_save_finish
from .settings import RL_ALGORITHMS, RLSettings, TrainingSummary


def rl_config(settings: RLSettings, checkpoint_dir: Path):
    """The trl GRPOConfig / RLOOConfig for `settings` (also used by the bench's bare-trainer baseline)."""
    if settings.beta <= 0:
        raise DeconfoundError("RL needs beta > 0: the KL anchor to the SFT model is what keeps texts fluent")
    if settings.algorithm not in RL_ALGORITHMS:
        raise DeconfoundError(f"unknown RL algorithm {settings.algorithm!r}: use one of {', '.join(RL_ALGORITHMS)}")
    if settings.algorithm == "sample_rank":
        raise DeconfoundError("sample_rank has no trl config of its own: run it with run_rl")
    from trl import GRPOConfig, RLOOConfig
    config_cls = GRPOConfig if settings.algorithm == "grpo" else RLOOConfig
    return config_cls(**_common_args(settings, checkpoint_dir),
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


def run_rl(policy_path, reward_fn: Callable, prompts: pd.DataFrame, settings: RLSettings, out_dir, progress=None,
           resume: bool = False, *, stage: str = "rl", reward_stats: tuple[float, float] | None = None,
           checkpoint_dir=None) -> Path:
    """RL-fine-tune the policy (a full folder, normally the SFT model, which is also the KL reference)
    on `reward_fn(texts, prompts=contexts, **columns) -> list[float]` over prompts[context, ...].

    Rewards are z-scored with `reward_stats` (the reward model's train mean and sd; else the first
    batch's), clipped to ±settings.reward_clip, and penalised for repeated words. Per step, progress
    gets reward, reward_raw, kl, loss, completion_length, repetition. Guards stop training early with
    the reason in training_summary.json. `resume=True` continues from the last checkpoint.
    `settings.algorithm` 'sample_rank' runs `sample_rank.run_sample_rank` on the same inputs instead."""
    from trl import GRPOTrainer, RLOOTrainer

    if settings.algorithm == "sample_rank":
        from .sample_rank import run_sample_rank
        return run_sample_rank(policy_path, reward_fn, prompts, settings, out_dir, progress, resume, stage=stage,
                               reward_stats=reward_stats, checkpoint_dir=checkpoint_dir)
    _require_columns(prompts, ["context"], "RL")
    policy_path, out_dir, checkpoint_dir, resume_from = _start(policy_path, out_dir, checkpoint_dir, resume)
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
