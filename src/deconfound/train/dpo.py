"""Step 5b, DPO: the generator fine-tuned on (prompt, chosen, rejected) pairs with trl's DPOTrainer."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..models import PromptStyle, build_messages, load_generator
from .callbacks import _make_progress_callback
from .plumbing import _check_room, _common_args, _lora, _quiet, _require_columns, _start, _train_save_finish
from .settings import DPOSettings, TrainingSummary


def run_dpo(policy_path, pairs: pd.DataFrame, settings: DPOSettings, out_dir, progress=None, resume: bool = False,
            *, stage: str = "dpo", checkpoint_dir=None) -> Path:
    """DPO of the policy (normally the SFT model, also the reference) on pairs[prompt, chosen, rejected],
    where `prompt` is the raw context (prompted with the model's editor prompt) and chosen/rejected
    are texts. Returns out_dir (a LoRA adapter folder unless `merge` or a full fine-tune)."""
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    _require_columns(pairs, ["prompt", "chosen", "rejected"], "DPO")
    policy_path, out_dir, checkpoint_dir, resume_from = _start(policy_path, out_dir, checkpoint_dir, resume)
    style = PromptStyle.load(policy_path)
    pairs = pairs.dropna(subset=["prompt", "chosen", "rejected"])
    dataset = Dataset.from_dict({
        "prompt": [build_messages(str(c), style) for c in pairs["prompt"]],
        "chosen": [[{"role": "assistant", "content": str(t).strip()}] for t in pairs["chosen"]],
        "rejected": [[{"role": "assistant", "content": str(t).strip()}] for t in pairs["rejected"]],
    })
    args = DPOConfig(**_common_args(settings, checkpoint_dir, settings.warmup_ratio),
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
