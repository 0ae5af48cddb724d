"""Batch generation of headlines from a model folder or a LoRA adapter folder, reproducibly.

Sampling uses the Gumbel-max trick with one random stream per prompt (seeded by the run's seed and
the prompt's position): each prompt's text depends on the seed and the prompt only, not on the batch
size or on which other prompts share its batch. Temperature 1 by default, as in the paper.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .loading import load_generator, pick_device, resolve_precision
from .prompts import PromptStyle, format_prompt


@dataclass
class GenerationResult:
    """Texts in the order of the contexts, plus how fast they came."""

    texts: list[str]
    seconds: float
    model_path: str
    seed: int
    settings: dict = field(default_factory=dict)
    positions: list[int] | None = None  # with `share`: where each text belongs in the full list of contexts

    @property
    def per_second(self) -> float:
        return len(self.texts) / self.seconds if self.seconds > 0 else float("nan")

    def summary(self) -> str:
        return (f"{len(self.texts)} generations from {Path(self.model_path).name} (seed {self.seed}) in "
                f"{self.seconds:.1f} s = {self.per_second:.1f}/s")

    def to_dict(self) -> dict:
        return asdict(self) | {"per_second": self.per_second}


def row_seed(seed: int, index: int) -> int:
    """The seed of one prompt's random stream (a hash of the run seed and the prompt's position)."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0])


def first_line(text: str) -> str:
    """The first non-empty line of a generation, trimmed (a headline is one line)."""
    for line in text.strip().splitlines():
        if line.strip():
            return line.strip()
    return ""


class SeededSampler:
    """A logits processor that turns greedy decoding into sampling from softmax(logits / T) (top-p
    filtered) with per-row generators: argmax(logits/T + Gumbel noise) is an exact sample."""

    def __init__(self, seeds: list[int], temperature: float, top_p: float, device):
        import torch
        self.temperature, self.top_p = temperature, top_p
        self.generators = [torch.Generator(device=device).manual_seed(s) for s in seeds]

    def __call__(self, input_ids, scores):
        import torch
        scores = scores.float()
        if self.temperature <= 0:  # greedy
            return scores
        scores = scores / self.temperature
        if self.top_p < 1.0:
            scores = _top_p_filter(scores, self.top_p)
        uniform = torch.stack([torch.rand(scores.shape[-1], generator=g, device=scores.device)
                               for g in self.generators])
        gumbel = -torch.log(-torch.log(uniform.clamp_(1e-20, 1.0 - 1e-7)))
        return scores + gumbel


def _top_p_filter(scores, top_p: float):
    import torch
    sorted_scores, order = torch.sort(scores, descending=True, dim=-1)
    cumulative = sorted_scores.softmax(-1).cumsum(-1)
    drop_sorted = cumulative - sorted_scores.softmax(-1) > top_p  # keep the token that crosses top_p
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return scores.masked_fill(drop, float("-inf"))


def generate(model_path, contexts: list[str], *, seed: int, max_new_tokens: int = 24, temperature: float = 1.0,
             top_p: float = 1.0, batch_size: int = 32, progress=None, **kwargs) -> list[str]:
    """Generate one headline per context (plain strings, first line only) from a model or adapter
    folder, prompted through its chat template with the folder's prompt style. Extra keyword
    arguments go to `generate_with_stats` (style, stage, device, precision, model/tokenizer already loaded)."""
    return generate_with_stats(model_path, contexts, seed=seed, max_new_tokens=max_new_tokens,
                               temperature=temperature, top_p=top_p, batch_size=batch_size,
                               progress=progress, **kwargs).texts


def generate_with_stats(model_path, contexts: list[str], *, seed: int, max_new_tokens: int = 24,
                        temperature: float = 1.0, top_p: float = 1.0, batch_size: int = 32, progress=None,
                        style: PromptStyle | None = None, stage: str = "generate", device: str | None = None,
                        precision: str | None = "auto", model=None, tokenizer=None,
                        share: tuple[int, int] | None = None) -> GenerationResult:
    """`generate`, returning a `GenerationResult` with timings. progress(stage, done, total, metrics)
    is called after each batch. `precision` ('auto', 'bf16', 'fp32'; see `loading.resolve_precision`)
    chooses the dtype a model loaded here computes in.

    `share=(rank, size)`: only this process's share of the contexts, for several processes writing one list:
    the batches one process would form are dealt out in turn (batch b to rank b % size), so every batch — its
    rows, padding and seeds — is exactly the single process's and the merged texts equal one process's in any
    precision. The result then holds the share's texts and their `positions` in `contexts`."""
    import torch
    from transformers import GenerationConfig

    start = time.perf_counter()
    if model is None or tokenizer is None:
        device = device or pick_device()[0]
        model, tokenizer = load_generator(model_path, device=device, dtype=resolve_precision(precision, device))
    tokenizer.padding_side = "left"
    style = style or PromptStyle.load(model_path)
    prompts = [format_prompt(tokenizer, str(c), style) for c in contexts]
    # Batch prompts of similar length together (less padding); each row keeps its own seed.
    lengths = [len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: lengths[i])
    batches = [order[first:first + batch_size] for first in range(0, len(order), batch_size)]
    if share is not None:
        batches = batches[share[0]::share[1]]
    eos = _eos_ids(model, tokenizer)
    config = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=eos,
                              pad_token_id=tokenizer.pad_token_id, num_beams=1)
    texts: dict[int, str] = {}
    total = sum(len(rows) for rows in batches)
    model_device = next(model.parameters()).device
    for rows in batches:
        batch = tokenizer([prompts[i] for i in rows], return_tensors="pt", padding=True,
                          add_special_tokens=False).to(model_device)
        sampler = SeededSampler([row_seed(seed, i) for i in rows], temperature, top_p, model_device)
        with torch.inference_mode():
            output = model.generate(**batch, generation_config=config, logits_processor=[sampler])
        new_tokens = output[:, batch["input_ids"].shape[1]:]
        for i, decoded in zip(rows, tokenizer.batch_decode(new_tokens, skip_special_tokens=True)):
            texts[i] = first_line(decoded)
        if progress is not None:
            done = len(texts)
            elapsed = time.perf_counter() - start
            progress(stage, done, total, {"generated": done, "per_second": done / max(elapsed, 1e-9)})
    settings = {"max_new_tokens": max_new_tokens, "temperature": temperature, "top_p": top_p,
                "batch_size": batch_size}
    positions = sorted(texts) if share is not None else None
    return GenerationResult(texts=[texts.get(i, "") for i in (positions or range(len(prompts)))],
                            seconds=time.perf_counter() - start, model_path=str(model_path), seed=seed,
                            settings=settings, positions=positions)


def _eos_ids(model, tokenizer) -> list[int]:
    """Every id that ends a completion: the tokenizer's eos and the model's declared eos ids."""
    declared = model.generation_config.eos_token_id
    ids = [declared] if isinstance(declared, int) else list(declared or [])
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.insert(0, tokenizer.eos_token_id)
    return ids
