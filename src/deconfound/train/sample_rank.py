"""Sample-and-rank fine-tuning (`RLSettings.algorithm = "sample_rank"`): an RL algorithm that suits a CPU.

Each round samples `num_generations` texts per prompt from the current policy with the batched generator (KV
cache, bf16 where the CPU computes it, seeded per prompt), scores them with the reward wrapped exactly as GRPO's
(z-scored, clipped, repeated words penalised: `GuardedReward`), and trains on each prompt's best-vs-worst pair
with DPO plus its SFT term (`rank_loss="dpo"`), or on the best text alone (`rank_loss="sft"`). The LoRA adapter
carries over from round to round; DPO's reference is the policy at the start of the round (iterative DPO), so
every round moves a bounded distance from where it started, and the first round's reference is the starting
(SFT) model.

Why it is cheaper than GRPO on a CPU: GRPO samples inside the trainer, one step's completions at a time, and
back-propagates through every one of them; here sampling runs in large batches outside the trainer, and the
trainer sees two sequences per prompt (chosen, rejected). A round that finds no pair whose rewards differ by
`rank_min_gap` stops training with the reason: the reward no longer separates the policy's texts.
"""

from __future__ import annotations

import logging
import math
import shutil
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from ..errors import DeconfoundError
from ..jsonio import read_json, write_json_atomic
from ..models import PromptStyle, build_messages, generate_with_stats, load_generator, record_adapter_base
from ..text_measures import repetition_rate
from .callbacks import REWARD_STATS_FILE, Cancelled, GuardedReward, _Guards, _make_progress_callback
from .plumbing import _common_args, _lora, _quiet, _require_columns, _start
from .settings import RLSettings, TrainingSummary

log = logging.getLogger(__name__)
RANK_LOSSES = ("dpo", "sft")
STATE_FILE = "sample_rank.json"  # finished rounds, so a resumed run continues after the last one


def run_sample_rank(policy_path, reward_fn: Callable, prompts: pd.DataFrame, settings: RLSettings, out_dir,
                    progress=None, resume: bool = False, *, stage: str = "rl",
                    reward_stats: tuple[float, float] | None = None, checkpoint_dir=None) -> Path:
    """Sample-and-rank fine-tuning of the policy (a full folder, normally the SFT model) on
    `reward_fn(texts, prompts=contexts, **columns)` over prompts[context, ...]; the same inputs and output as
    `run_rl` (a LoRA adapter folder unless `merge`, with training_summary.json). `settings.max_steps`
    optimiser steps are split evenly over `settings.rounds` rounds; a cancelled run resumes after its last
    finished round."""
    _require_columns(prompts, ["context"], "RL")
    if settings.rank_loss not in RANK_LOSSES:
        raise DeconfoundError(f"unknown rank_loss {settings.rank_loss!r}: use one of {', '.join(RANK_LOSSES)}")
    if settings.num_generations < 2:
        raise DeconfoundError("sample_rank needs num_generations ≥ 2: it ranks several texts per prompt")
    policy_path, out_dir, checkpoint_dir, _ = _start(policy_path, out_dir, checkpoint_dir, resume)
    style = PromptStyle.load(policy_path)
    reward = GuardedReward(reward_fn, settings, reward_stats, checkpoint_dir / REWARD_STATS_FILE)
    guards = _Guards(settings)
    state = (read_json(checkpoint_dir / STATE_FILE) if resume else None) or {"rounds": [], "history": [],
                                                                              "seconds": 0.0}
    rounds = max(1, settings.rounds)
    per_round = max(1, _total_steps(settings, len(prompts)) // rounds)
    total = per_round * rounds
    order = prompts.sample(frac=1.0, random_state=settings.seed).reset_index(drop=True)
    started = time.perf_counter()
    stopped = None
    for r in range(len(state["rounds"]), rounds):
        current = checkpoint_dir / "rounds" / f"round-{r - 1}" if r else policy_path
        rows = _round_prompts(order, r, per_round * settings.prompts_per_step)
        sampled = _sample_and_score(current, rows, reward, settings, seed=settings.seed * 1000 + r)
        offset = r * per_round
        metrics = _round_metrics(sampled) | {"step": offset + 1, "round": r}
        stopped = guards.check(metrics)
        pairs = _pairs(sampled, settings)
        if stopped is None and len(pairs) < 2:
            stopped = (f"round {r}: only {len(pairs)} prompt(s) had texts whose rewards differ by "
                       f"{settings.rank_min_gap}: the reward no longer separates the policy's texts")
        state["history"].append(metrics | {"pairs": len(pairs)})
        if progress is not None:
            progress(stage, offset, total, dict(metrics, pairs=len(pairs)))  # may raise Cancelled: nothing lost
        if stopped:
            log.warning("%s stopped early: %s", stage, stopped)
            break
        history = _train_round(current, policy_path, pairs, style, settings, r, per_round, checkpoint_dir,
                               lambda s, step, t, m: progress(s, offset + step, total, m) if progress else None,
                               stage)
        state["history"] += [h | {"step": offset + h.get("step", 0), "round": r} for h in history]
        state["rounds"].append({"round": r, "pairs": len(pairs), "steps": per_round})
        state["seconds"] = float(state.get("seconds", 0.0)) + time.perf_counter() - started
        started = time.perf_counter()
        write_json_atomic(checkpoint_dir / STATE_FILE, state)
    return _finish(policy_path, style, settings, state, guards, stopped, checkpoint_dir, out_dir, stage, total,
                   time.perf_counter() - started)


def _total_steps(settings: RLSettings, n_prompts: int) -> int:
    """Optimiser steps in all: max_steps, or `epochs` passes over the prompts (one pair per prompt)."""
    if settings.max_steps and settings.max_steps > 0:
        return settings.max_steps
    return max(1, math.ceil(n_prompts * settings.epochs / settings.prompts_per_step))


def _round_prompts(order: pd.DataFrame, r: int, n: int) -> pd.DataFrame:
    """The `n` prompts of round r: consecutive slices of the shuffled prompts, wrapping around."""
    index = [(r * n + i) % len(order) for i in range(n)]
    return order.iloc[index].reset_index(drop=True)


def _sample_and_score(policy, rows: pd.DataFrame, reward: GuardedReward, settings: RLSettings,
                      seed: int) -> pd.DataFrame:
    """`num_generations` texts per prompt from the policy, each with its guarded reward (the RL scale)."""
    contexts = rows["context"].astype(str).tolist()
    model, tokenizer = load_generator(policy, dtype=_generation_dtype(settings))
    texts = [generate_with_stats(policy, contexts, seed=seed * 100 + j, model=model, tokenizer=tokenizer,
                                 max_new_tokens=settings.max_completion_length, temperature=settings.temperature,
                                 top_p=settings.top_p, batch_size=settings.sample_batch_size).texts
             for j in range(settings.num_generations)]
    del model
    columns = {c: rows[c].tolist() for c in rows.columns if c != "context"}
    frames = []
    for j, batch in enumerate(texts):
        scores = reward(prompts=None, completions=batch, context=contexts, **columns)
        tokens = [len(ids) for ids in tokenizer(batch, add_special_tokens=False)["input_ids"]]
        frames.append(pd.DataFrame({"prompt": range(len(contexts)), "context": contexts, "sample": j,
                                    "text": batch, "reward": scores, "tokens": tokens}))
    return pd.concat(frames, ignore_index=True)


def _generation_dtype(settings: RLSettings):
    """The dtype sampling computes in: the stage's precision, else the device's default."""
    from ..models import pick_device, resolve_precision
    device, dtype = pick_device()
    return resolve_precision(settings.precision, device) if settings.precision else dtype


def _round_metrics(sampled: pd.DataFrame) -> dict:
    """What the round's samples say about the policy (the numbers GRPO logs per step)."""
    texts = sampled["text"].astype(str)
    return {"reward": float(sampled["reward"].mean()), "reward_std": float(sampled["reward"].std(ddof=0)),
            "repetition": float(np.mean([repetition_rate(t) for t in texts])),
            "completion_length": float(sampled["tokens"].mean()),
            "empty_share": float((texts.str.strip() == "").mean())}


def _pairs(sampled: pd.DataFrame, settings: RLSettings) -> pd.DataFrame:
    """Each prompt's best and worst distinct, non-empty texts when their rewards differ by `rank_min_gap`."""
    out = []
    for _, group in sampled.groupby("prompt", sort=True):
        group = group[group["text"].str.strip() != ""].drop_duplicates("text")
        if len(group) < 2:
            continue
        best, worst = group.loc[group["reward"].idxmax()], group.loc[group["reward"].idxmin()]
        if best["reward"] - worst["reward"] >= settings.rank_min_gap:
            out.append({"prompt": best["context"], "chosen": best["text"], "rejected": worst["text"],
                        "chosen_score": float(best["reward"]), "rejected_score": float(worst["reward"])})
    return pd.DataFrame(out, columns=["prompt", "chosen", "rejected", "chosen_score", "rejected_score"])


def _train_round(current, policy_path: Path, pairs: pd.DataFrame, style: PromptStyle, settings: RLSettings, r: int,
                 steps: int, checkpoint_dir: Path, progress, stage: str) -> list[dict]:
    """One round of DPO (or SFT on the best texts) from the current policy; saves its adapter to
    checkpoint_dir/rounds/round-<r>. Returns the round's per-step history."""
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer, SFTConfig, SFTTrainer

    round_dir = checkpoint_dir / "rounds" / f"round-{r}"
    work = checkpoint_dir / "trainer"
    shutil.rmtree(work, ignore_errors=True)
    prompt = [build_messages(str(c), style) for c in pairs["prompt"]]
    chosen = [[{"role": "assistant", "content": str(t).strip()}] for t in pairs["chosen"]]
    # Round 0 trains a fresh adapter on the starting model; later rounds keep training the previous adapter.
    if r == 0:
        model, tokenizer = load_generator(policy_path, for_training=True)
        peft_config = _lora(settings)
    else:
        model, tokenizer = load_generator(current, for_training=True, merge=False)
        peft_config = None
    common = _common_args(settings, work) | {"max_steps": steps, "save_strategy": "no"}
    callback = _make_progress_callback(stage, progress)
    if settings.rank_loss == "dpo":
        dataset = Dataset.from_dict({"prompt": prompt, "chosen": chosen, "rejected": [
            [{"role": "assistant", "content": str(t).strip()}] for t in pairs["rejected"]]})
        args = DPOConfig(**common, per_device_train_batch_size=settings.prompts_per_step, beta=settings.rank_beta,
                         loss_type=["sigmoid", "sft"], max_length=settings.rank_max_length)
        trainer = DPOTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                             peft_config=peft_config, callbacks=[callback])
    else:
        dataset = Dataset.from_dict({"prompt": prompt, "completion": chosen})
        args = SFTConfig(**common, per_device_train_batch_size=settings.prompts_per_step,
                         max_length=settings.rank_max_length, packing=False, completion_only_loss=True)
        trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                             peft_config=peft_config, callbacks=[callback])
    _quiet(trainer).train()
    if callback.cancelled is not None:
        raise Cancelled(f"{stage} cancelled in round {r}; resume repeats that round")
    trained = trainer.accelerator.unwrap_model(trainer.model)
    if trainer.accelerator.is_main_process:
        round_dir.mkdir(parents=True, exist_ok=True)
        trained.save_pretrained(round_dir, selected_adapters=["default"])
        record_adapter_base(round_dir, policy_path)
        tokenizer.save_pretrained(round_dir)
        style.save(round_dir)
    trainer.accelerator.wait_for_everyone()
    shutil.rmtree(work, ignore_errors=True)
    return callback.history


def _finish(policy_path: Path, style: PromptStyle, settings: RLSettings, state: dict, guards: _Guards,
            stopped: str | None, checkpoint_dir: Path, out_dir: Path, stage: str, total: int,
            seconds: float) -> Path:
    """The last finished round's adapter as the result (merged when `settings.merge`), with its summary."""
    from ..models import is_adapter_folder, save_merged
    if not state["rounds"]:
        raise DeconfoundError(f"{stage}: sample_rank trained no round ({stopped or 'no pairs'}); the starting "
                              "model is unchanged — lower rank_min_gap or raise num_generations")
    last = checkpoint_dir / "rounds" / f"round-{state['rounds'][-1]['round']}"
    if settings.merge and is_adapter_folder(last):
        save_merged(last, out_dir)
    else:  # out_dir holds checkpoint_dir (by default): copy beside it, never over it
        shutil.copytree(last, out_dir, dirs_exist_ok=True)
        if is_adapter_folder(out_dir):
            record_adapter_base(out_dir, policy_path)
    style.save(out_dir)
    summary = TrainingSummary(kind="rl", stage=stage, model_path=str(out_dir), base_path=str(policy_path),
                              steps=sum(r["steps"] for r in state["rounds"]), total_steps=total,
                              seconds=float(state.get("seconds", 0.0)) + seconds, history=state["history"],
                              stopped_early=stopped, warnings=list(guards.warnings), settings=settings.to_dict())
    summary.save(out_dir)
    if not settings.keep_checkpoints:
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
    return out_dir
