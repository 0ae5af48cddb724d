"""Fluency of texts as their perplexity under a language model (the run's base model): exp of the mean negative
log-likelihood of each text's tokens, each token predicted from the ones before it (the text alone, after the
tokenizer's BOS/EOS token so its first word is predicted too). Lower is more fluent; a model that drifted into
repeated or broken words scores higher than its starting point.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def perplexity(model_path, texts: Sequence[str], *, batch_size: int = 32, max_length: int = 64, model=None,
               tokenizer=None, device: str | None = None) -> np.ndarray:
    """Perplexity of each text under the model in `model_path` (or an already loaded model + tokenizer); NaN for
    an empty text."""
    import torch

    from .loading import load_generator, pick_device
    if model is None or tokenizer is None:
        model, tokenizer = load_generator(model_path, device=device or pick_device()[0])
    model.eval()
    start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (start or 0)
    out = np.full(len(texts), np.nan)
    encoded = [tokenizer(str(t).strip(), add_special_tokens=False)["input_ids"][: max_length - 1] for t in texts]
    model_device = next(model.parameters()).device
    for first in range(0, len(texts), batch_size):
        rows = [i for i in range(first, min(first + batch_size, len(texts))) if encoded[i]]
        if not rows:
            continue
        seqs = [([start] if start is not None else []) + encoded[i] for i in rows]
        width = max(len(s) for s in seqs)
        ids = torch.tensor([s + [pad] * (width - len(s)) for s in seqs], device=model_device)
        mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs], device=model_device)
        with torch.inference_mode():
            logits = model(input_ids=ids, attention_mask=mask).logits.float()
        logprobs = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, 1:, None])[..., 0]
        predicted = mask[:, 1:].float()
        nll = -(logprobs * predicted).sum(1) / predicted.sum(1).clamp(min=1)
        for row, value, n in zip(rows, nll.tolist(), predicted.sum(1).tolist()):
            out[row] = float(np.exp(value)) if n > 0 else np.nan
    return out
