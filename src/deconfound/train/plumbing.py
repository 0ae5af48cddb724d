"""The plumbing every trainer (SFT, RL, DPO) shares: device and common TrainingArguments, checkpoints (fresh
or resumed), the start model, LoRA from settings, saving the trained policy (merged or adapter), the
train → save → summary tail, and the checks on rows and prompts that fail early with a clear message.
"""

from __future__ import annotations

import logging
import shutil
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DeconfoundError
from ..models import (PromptStyle, barrier, format_prompt, is_adapter_folder, is_main_process, lora_config,
                      pick_device, record_adapter_base, resolve_precision, save_merged, set_torch_threads)
from .callbacks import Cancelled, _Guards
from .settings import SUMMARY_FILE, TrainingSummary

log = logging.getLogger(__name__)
# trl 1.16 calls a transformers-5 deprecated property on every step; the warning says nothing to users.
warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)


def _device_args(settings) -> dict:
    """TrainingArguments that depend on the hardware: bf16 mixed precision where the hardware computes bf16
    natively (`models.resolve_precision`; trl's bf16 default made CPU runs without bf16 instructions 38%
    slower), else float32; gradient checkpointing off (faster on small models)."""
    device, dtype = pick_device()  # no precision set (a stage run alone): bf16 on CUDA, float32 on a CPU
    if settings.precision:
        dtype = resolve_precision(settings.precision, device)
    import torch
    if device == "cpu":
        set_torch_threads(settings.torch_threads)
    from transformers import TrainingArguments
    # transformers 5 renamed gradient_checkpointing (trl defaults it to True) to activation_checkpointing.
    checkpointing = ("activation_checkpointing" if "activation_checkpointing" in TrainingArguments.__dataclass_fields__
                     else "gradient_checkpointing")
    # Every trainable weight takes part in each forward pass (full models and LoRA alike), so DDP need not search
    # the graph for unused ones after every backward (its default here, which it warned about on each run).
    return {"bf16": dtype == torch.bfloat16, "fp16": False, "use_cpu": device == "cpu", checkpointing: False,
            "ddp_find_unused_parameters": False}


def _score_completions_only() -> None:
    """On a CPU, make trl's fused log-prob head score only the completion tokens, as it does on GPUs.

    trl 1.16 scores every position of the sequence (the prompt included) unless Triton runs, so that tile shapes
    stay fixed for compilers (Neuron); a CPU compiles nothing. Its LM head runs in float32 there, over the whole
    49k vocabulary, forward and again in backward: on SmolLM2 with a 71-token prompt and 14-token headlines this
    took about 8 of an 18 s GRPO step (bench/results/training.md). Only the name trl's LM head reads is changed;
    the kernels keep their own device check."""
    try:
        from trl.trainer import utils as trl_utils
    except ImportError:
        return
    original = getattr(trl_utils, "_use_triton", None)
    if original is None or getattr(original, "_deconfound", False):
        return

    def compact_on_cpu(device):
        return device.type == "cpu" or original(device)

    compact_on_cpu._deconfound = True
    trl_utils._use_triton = compact_on_cpu


def _common_args(settings, checkpoint_dir: Path, warmup: float = 0.0) -> dict:
    """The TrainingArguments every trainer's config shares: steps, learning rate, checkpoints, seeds, device."""
    return dict(output_dir=str(checkpoint_dir), max_steps=settings.max_steps, num_train_epochs=settings.epochs,
                learning_rate=settings.learning_rate, warmup_steps=warmup, logging_steps=1,
                save_strategy="steps", save_steps=settings.save_steps, save_total_limit=1, report_to="none",
                seed=settings.seed, data_seed=settings.seed, disable_tqdm=True, dataloader_num_workers=0,
                **_device_args(settings))


def _start(model_path, out_dir, checkpoint_dir, resume: bool) -> tuple[Path, Path, Path, str | None]:
    """A stage's folders: (full start model, out_dir, checkpoint_dir (default out_dir/checkpoints), the
    checkpoint to resume from or None)."""
    _score_completions_only()
    out_dir = Path(out_dir)
    checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else out_dir / "checkpoints"
    resume_from = _prepare_checkpoints(checkpoint_dir, resume)
    model_path = _require_full_model(Path(model_path), checkpoint_dir / "start_model")
    return model_path, out_dir, checkpoint_dir, resume_from


def _prepare_checkpoints(checkpoint_dir: Path, resume: bool) -> str | None:
    """The checkpoint to resume from (None to start fresh, clearing stale checkpoints). Under several
    processes the main one clears and the others wait, so none sees a folder half-deleted."""
    from transformers.trainer_utils import get_last_checkpoint
    if resume and checkpoint_dir.is_dir():
        last = get_last_checkpoint(str(checkpoint_dir))
        if last:
            return last
    if is_main_process():
        if checkpoint_dir.exists() and not resume:
            shutil.rmtree(checkpoint_dir)
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
    barrier()
    return None


def _require_full_model(path: Path, dest: Path) -> Path:
    """Trainers start from a full model folder: an adapter folder is merged into one first (by the main
    process; the others wait for it)."""
    if is_adapter_folder(path):
        if is_main_process() and not (dest / "config.json").exists():
            save_merged(path, dest)
        barrier()
        return dest
    return path


def _quiet(trainer):
    """Drop transformers' stdout printer (disable_tqdm adds it): metrics go to `progress` instead."""
    from transformers.trainer_callback import PrinterCallback
    trainer.remove_callback(PrinterCallback)
    return trainer


def _lora(settings):
    """The peft LoraConfig of a stage's settings (None for a full fine-tune)."""
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
    """Write the model, its tokenizer and its prompt style (the main process only)."""
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
    earlier = TrainingSummary.load(checkpoint_dir)
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
    """Complete the summary (with the history before a resume) and save it: into checkpoint_dir and raise
    `Cancelled` when cancelled, else into out_dir (dropping checkpoints unless kept)."""
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


def _style_for(model_path: Path, system_prompt=None, max_context_words=None, user_template=None) -> PromptStyle:
    """The model's saved prompt style with the stage's overrides (None keeps the saved value)."""
    return PromptStyle.load(model_path).with_overrides(system_prompt, max_context_words, user_template)


def _check_room(tokenizer, contexts: list[str], style: PromptStyle, max_length: int, what: str) -> None:
    """Fail early (instead of trl silently dropping every row) when prompts leave no room for the text."""
    sample = contexts[:64]
    lengths = [len(tokenizer(format_prompt(tokenizer, c, style), add_special_tokens=False)["input_ids"])
               for c in sample]
    if lengths and float(np.median(lengths)) + 4 > max_length:
        raise DeconfoundError(
            f"{what}: prompts take {int(np.median(lengths))} tokens (median) but max_length is {max_length}, "
            "leaving no room for the text. Raise max_length, or lower max_context_words, or shorten the "
            "system prompt.")


def _require_columns(frame: pd.DataFrame, columns: list[str], what: str) -> None:
    """Fail with the missing column names (and on an empty frame) before any model is loaded."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DeconfoundError(f"{what} needs the column(s) {', '.join(missing)}; it has {', '.join(frame.columns)}")
    if len(frame) == 0:
        raise DeconfoundError(f"{what} got no rows: check the split and the filters")


def _plain_list(series: pd.Series) -> list:
    """Column values as plain Python objects (datasets cannot take pandas' NA or numpy scalars)."""
    values = series.astype(object).where(series.notna(), None).tolist()
    return [v.item() if isinstance(v, np.generic) else v for v in values]

