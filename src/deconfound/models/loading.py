"""Loading a generator folder or a LoRA adapter folder for generation or training: device and dtype,
torch threads, adapters and their bases, merged copies.

Every kind of generator (see `sources`) ends as a normal Hugging Face folder, so SFT, RL, DPO and
generation treat them alike. Every model folder may carry ``deconfound_prompt.json`` (a `PromptStyle`):
the system prompt and context truncation it was trained with, so generation prompts it the same way.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from pathlib import Path

from ..errors import DeconfoundError, NotFoundError
from .prompts import PromptStyle, ensure_chat_template

log = logging.getLogger(__name__)

ADAPTER_BASE_FILE = "deconfound_base.json"


PRECISIONS = ("auto", "bf16", "fp32")


# ------------------------------------------------------------------ device, precision, threads, LoRA
def pick_device():
    """("cuda", bfloat16 where supported else float32) when a GPU is visible, else ("cpu", float32).

    Under several processes each one has been put on its own GPU (`distributed.init_distributed`), so the
    bare "cuda" is that process's GPU."""
    import torch
    if torch.cuda.is_available():
        return "cuda", torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    return "cpu", torch.float32


@functools.lru_cache(maxsize=1)
def cpu_has_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX). With them a bf16 matmul ran at about
    twice (up to four times) the fp32 rate here; without them torch emulates bf16 and GRPO ran 38% slower."""
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return False
    return any(flag in flags.split() for flag in ("avx512_bf16", "amx_bf16"))


def resolve_precision(precision: str | None = "auto", device: str | None = None):
    """The torch dtype a model computes in: 'fp32', 'bf16', or 'auto' = bf16 where the hardware computes it
    natively (a CUDA GPU that supports it, a CPU with AVX512-BF16/AMX), else fp32."""
    import torch
    precision = precision or "auto"
    if precision not in PRECISIONS:
        raise DeconfoundError(f"unknown precision {precision!r}: use one of {', '.join(PRECISIONS)}")
    if precision == "fp32":
        return torch.float32
    device = device or pick_device()[0]
    native = torch.cuda.is_bf16_supported() if device == "cuda" else cpu_has_bf16()
    return torch.bfloat16 if precision == "bf16" or native else torch.float32


def set_torch_threads(n: int | None = None) -> int:
    """Set torch's CPU threads deliberately (default min(2, cores)): oversubscribed cores made torch
    3x slower here when anything else ran beside it. `n` is the job's budget on this machine: several
    processes of one job (accelerate launch) share it, each getting n // processes (at least 1).
    Returns the number set."""
    import torch

    from .distributed import local_world_size
    n = max(1, (n or min(2, os.cpu_count() or 1)) // local_world_size())
    torch.set_num_threads(n)
    return n


def lora_config(r: int = 16, alpha: int = 32, dropout: float = 0.1, target_modules="all-linear"):
    """A peft LoraConfig for causal LMs (paper: rank 16, alpha 32, dropout 0.1 for SFT)."""
    from peft import LoraConfig
    if isinstance(target_modules, str) and target_modules != "all-linear":
        target_modules = [m.strip() for m in target_modules.split(",") if m.strip()]
    return LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=target_modules,
                      bias="none", task_type="CAUSAL_LM")


# ------------------------------------------------------------------ loading
def is_adapter_folder(path) -> bool:
    """True for a LoRA adapter folder (adapter_config.json, no full weights of its own)."""
    return (Path(path) / "adapter_config.json").exists()


def adapter_base_path(adapter_dir) -> Path:
    """The full model an adapter folder was trained on: the path recorded beside it relative to the
    adapter (so a moved or copied run folder uses its own base), else adapter_config's base path."""
    adapter_dir = Path(adapter_dir)
    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    candidates = []
    note = adapter_dir / ADAPTER_BASE_FILE
    if note.exists():
        candidates.append(str((adapter_dir / json.loads(note.read_text())["relative"]).resolve()))
    candidates.append(config.get("base_model_name_or_path"))
    for candidate in candidates:
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    raise NotFoundError(f"the base model of adapter {adapter_dir} was not found (looked for {candidates}); "
                        "keep the adapter inside its run folder or retrain it")


def record_adapter_base(adapter_dir, base_dir) -> None:
    """Store the base model's path relative to the adapter (read back by `adapter_base_path`)."""
    relative = os.path.relpath(Path(base_dir).resolve(), Path(adapter_dir).resolve())
    (Path(adapter_dir) / ADAPTER_BASE_FILE).write_text(json.dumps({"relative": relative,
                                                                    "absolute": str(Path(base_dir).resolve())}))


def load_tokenizer(path, padding_side: str = "left"):
    """The tokenizer of a model or adapter folder, with a pad token and a chat template."""
    from transformers import AutoTokenizer
    path = Path(path)
    source = path if (path / "tokenizer_config.json").exists() or not is_adapter_folder(path) \
        else adapter_base_path(path)
    tokenizer = AutoTokenizer.from_pretrained(source)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = padding_side
    ensure_chat_template(tokenizer)
    return tokenizer


def load_generator(path, device: str | None = None, dtype=None, merge: bool = True, for_training: bool = False):
    """Load a model folder or a LoRA adapter folder → (model, tokenizer). Device and dtype are picked
    automatically (CUDA + bf16 where supported, else CPU float32; `resolve_precision` gives the dtype for a
    precision setting); adapters are merged by default. `for_training` keeps float32 weights on the CPU for a
    trainer to place (mixed precision instead)."""
    import torch
    from transformers import AutoModelForCausalLM

    path = Path(path)
    if not path.is_dir():
        raise NotFoundError(f"model folder {path} does not exist")
    auto_device, auto_dtype = pick_device()
    if for_training:
        device, dtype = None, torch.float32
    else:
        device, dtype = device or auto_device, dtype or auto_dtype
    # Adapters are merged in float32 and cast after: a LoRA delta added in bf16 loses most of its digits.
    load_dtype = torch.float32 if is_adapter_folder(path) else dtype
    if is_adapter_folder(path):
        from peft import PeftModel
        base = AutoModelForCausalLM.from_pretrained(adapter_base_path(path), dtype=load_dtype)
        model = PeftModel.from_pretrained(base, path, is_trainable=for_training and not merge)
        if merge:
            model = model.merge_and_unload()
    else:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=load_dtype)
    if dtype != load_dtype and merge:
        model = model.to(dtype)
    tokenizer = load_tokenizer(path)
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    if device:
        model.to(device)
    if not for_training:
        model.eval()
    return model, tokenizer


def save_merged(path, dest) -> Path:
    """Save a full copy of a model or adapter folder (adapters merged) into `dest`; keeps its prompt style."""
    model, tokenizer = load_generator(path, device="cpu", merge=True, for_training=True)
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(dest)
    tokenizer.save_pretrained(dest)
    PromptStyle.load(path).save(dest)
    return dest
