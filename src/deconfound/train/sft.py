"""Step 5b, SFT: supervised fine-tuning of the generator on (context → text) rows with trl's SFTTrainer."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..models import build_messages, load_generator
from .callbacks import _make_progress_callback
from .plumbing import (_check_room, _common_args, _lora, _quiet, _require_columns, _start, _style_for,
                       _train_save_finish)
from .settings import SFTSettings, TrainingSummary


def run_sft(model_path, rows: pd.DataFrame, settings: SFTSettings, out_dir, progress=None, resume: bool = False,
            *, stage: str = "sft", checkpoint_dir=None) -> Path:
    """Supervised fine-tuning on rows[context, text] (loss on the text only). With LoRA the adapter is
    merged into the base, so the result is a full folder (the KL reference of RL). Returns out_dir."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    _require_columns(rows, ["context", "text"], "SFT")
    model_path, out_dir, checkpoint_dir, resume_from = _start(model_path, out_dir, checkpoint_dir, resume)
    style = _style_for(model_path, settings.system_prompt, settings.max_context_words, settings.user_template)
    rows = rows.dropna(subset=["context", "text"])
    if settings.max_rows:
        rows = rows.sample(n=min(settings.max_rows, len(rows)), random_state=settings.seed)
    dataset = Dataset.from_dict({
        "prompt": [build_messages(c, style) for c in rows["context"].astype(str)],
        "completion": [[{"role": "assistant", "content": str(t).strip()}] for t in rows["text"]],
    })
    args = SFTConfig(**_common_args(settings, checkpoint_dir, settings.warmup_ratio),
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
