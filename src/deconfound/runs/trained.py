"""The trained models of a run (base, sft, rl_<method>, dpo_<method>) and generating texts with them, for the
held-out evaluation prompts or for new prompts a user brings.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from ..errors import DeconfoundError, NotFoundError
from .folder import RunFolder


def run_models(run_dir, info: dict | None = None) -> dict[str, Path]:
    """The models of a run, in display order: base, sft, rl_<method>..., dpo_<method>... (finished ones)."""
    folder = RunFolder(run_dir)
    info = info if info is not None else {s["stage"]: s for s in folder.stages()}
    config = folder.config()
    models: dict[str, Path] = {}
    for name in ("base", "sft"):
        if info.get(name, {}).get("model_path"):
            models[name] = resolve_in(folder.path, info[name]["model_path"])
    for prefix in ("rl", "dpo"):
        for method in config.get("methods", []):
            entry = info.get(f"{prefix}/{method}", {})
            if entry.get("model_path"):
                models[f"{prefix}_{method}"] = resolve_in(folder.path, entry["model_path"])
    return models


def resolve_in(run_dir: Path, path: str) -> Path:
    """A path from stages.json: relative ones are inside the run folder (so a moved folder still works)."""
    path = Path(path)
    return path if path.is_absolute() else Path(run_dir) / path


def generate_frame(models: dict[str, Path], prompts: pd.DataFrame, seeds: list[int], *, max_new_tokens: int = 24,
                   temperature: float = 1.0, batch_size: int = 32, partial_dir: Path | None = None,
                   progress=None, precision: str | None = "auto") -> pd.DataFrame:
    """Generations of every model for every prompt and seed: columns prompt_id, context, model, seed, text.
    With `partial_dir`, each (model, seed) is saved there as it finishes and reused on a resume.

    Under several processes (accelerate launch) each writes its share of the prompts — whole batches of the
    single-process plan, dealt out in turn (`models.generate_with_stats(share=...)`) — and the shares are
    gathered after each (model, seed): every process returns the whole frame, rows in the prompts' order,
    and only the main one saves the partial files. The texts equal a single process's."""
    from ..models import all_gather_objects, generate_with_stats, joined, world
    rank, size = world() if joined() else (0, 1)  # only processes that can gather split the prompts
    contexts = prompts["context"].astype(str).tolist()
    frames = []
    jobs_total = len(models) * len(seeds)
    done = 0
    for name, path in models.items():
        for seed in seeds:
            partial = partial_dir / f"{name}__seed{seed}.csv" if partial_dir else None
            if partial is not None and partial.is_file():
                frame = pd.read_csv(partial, keep_default_na=False)
            else:
                def inner(stage, step, total, metrics, _done=done):
                    if progress:
                        progress("generate", _done * max(total, 1) + step, jobs_total * max(total, 1), {})
                result = generate_with_stats(path, contexts, seed=int(seed), max_new_tokens=max_new_tokens,
                                             temperature=temperature, batch_size=batch_size, progress=inner,
                                             precision=precision, share=(rank, size) if size > 1 else None)
                texts = result.texts
                if size > 1:
                    texts = _merge_shares(all_gather_objects((result.positions, result.texts)), len(contexts))
                frame = pd.DataFrame({"prompt_id": prompts["prompt_id"].to_numpy(), "context": prompts["context"],
                                      "model": name, "seed": int(seed), "text": texts})
                if partial is not None and rank == 0:
                    partial.parent.mkdir(parents=True, exist_ok=True)
                    tmp = partial.with_name(f".{partial.name}.tmp")
                    frame.to_csv(tmp, index=False)
                    os.replace(tmp, partial)
            frames.append(frame)
            done += 1
            if progress:
                progress("generate", done, jobs_total, {})
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["prompt_id", "context", "model", "seed", "text"])


def _merge_shares(shares: list[tuple[list[int], list[str]]], n: int) -> list[str]:
    """The processes' (positions, texts) shares back in position order; every position exactly once."""
    texts: list[str | None] = [None] * n
    for positions, part in shares:
        for i, text in zip(positions, part):
            texts[i] = text
    missing = [i for i, t in enumerate(texts) if t is None]
    if missing:
        raise DeconfoundError(f"the processes' generations miss {len(missing)} of {n} prompts (first: {missing[0]})")
    return texts


# ------------------------------------------------------------------ generating from a finished run
def read_prompts(path, template: str | None = None) -> list[str]:
    """Prompt texts from a .txt file (one per line) or a .csv file with a `context` column — or, for a run whose
    prompt is a template over table columns, a .csv with those columns (each row rendered as in training)."""
    from ..data import render_template, template_fields
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"prompts file {path} not found")
    if path.suffix.lower() == ".csv":
        frame = pd.read_csv(path, keep_default_na=False)
        fields = template_fields(template)
        if fields and set(fields) <= set(frame.columns):
            contexts = render_template(frame, template).tolist()
        elif "context" not in frame.columns:
            wanted = "a 'context' column" + (f" or the template's columns ({', '.join(fields)})" if fields else "")
            raise DeconfoundError(f"{path} has no {wanted} (columns: {', '.join(frame.columns)})")
        else:
            contexts = frame["context"].astype(str).tolist()
    else:
        contexts = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    contexts = [c for c in contexts if c]
    if not contexts:
        raise DeconfoundError(f"{path} holds no prompts: one context per line (.txt) or a 'context' column (.csv)")
    return contexts


def generate_for_run(run_dir, contexts: list[str], models: list[str] | None = None, seeds: list[int] | None = None,
                     max_new_tokens: int | None = None, progress=None) -> pd.DataFrame:
    """Generations of a run's models (all finished ones, or `models`) for new contexts."""
    folder = RunFolder(run_dir)
    if not folder.exists():
        raise NotFoundError(f"{run_dir} is not a run folder (no config.json)")
    available = run_models(folder.path)
    if not available:
        raise DeconfoundError(f"run {folder.path.name} has no trained models yet (see `deconfound jobs`)")
    chosen = list(available) if not models else models
    unknown = [m for m in chosen if m not in available]
    if unknown:
        raise DeconfoundError(f"model(s) {', '.join(unknown)} not in this run: choose from {', '.join(available)}")
    config = folder.config()
    prompts = pd.DataFrame({"prompt_id": range(len(contexts)), "context": contexts})
    return generate_frame({m: available[m] for m in chosen}, prompts, seeds or [0],
                          max_new_tokens=max_new_tokens or config.get("gen_max_new_tokens", 24),
                          temperature=config.get("gen_temperature", 1.0),
                          batch_size=config.get("gen_batch_size", 32), progress=progress,
                          precision=config.get("precision", "auto"))
