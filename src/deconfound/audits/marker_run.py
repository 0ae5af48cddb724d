"""The marker audit as a background job: the stages the worker runs in an audit's run folder, resumable like a
training run (the run folder, status, progress and cancel machinery of `runs`).

Stages: prepare (mark the rule's rows, split contexts, estimate the effect to remove, write both arms' pairs)
→ base (the starting model, prompted as a Q&A assistant) → per training seed: sft/s<seed>, dpo/naive/s<seed>,
dpo/deconfounded/s<seed> → generate (every model × generation seed answers the held-out contexts) → summary
(marker rates, standard errors, t-tests: result.json). Each finished stage is recorded in stages.json and
skipped on resume; SFT and DPO continue from their last checkpoint.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from pathlib import Path

import pandas as pd

from ..errors import DeconfoundError, NotFoundError
from ..jsonio import write_json_atomic
from ..presets import PRESETS
from ..runs import RunFolder, RunProgress, drop_incomplete_checkpoints, now_iso, process_start_time
from .marker import ARMS, MarkerAuditConfig, preference_pairs, prepare_rows

log = logging.getLogger(__name__)
RESULT_FILE = "result.json"


def model_runs(config: MarkerAuditConfig) -> list[tuple[str, int | None]]:
    """(model kind, training seed) of every model the audit evaluates: the base once, SFT and both DPO arms per seed."""
    return [("base", None)] + [(kind, seed) for seed in config.train_seeds
                               for kind in ("sft", *(f"dpo_{arm}" for arm in ARMS))]


def plan(config: MarkerAuditConfig) -> dict[str, float]:
    """Stage → expected seconds on the preset's reference machine (progress weights and the first ETA)."""
    cost = (PRESETS.get(config.preset) or PRESETS["smoke"]).cost
    steps = lambda s: s.max_steps if s.max_steps and s.max_steps > 0 else 500  # noqa: E731
    out = {"prepare": 5.0, "base": 10.0}
    for seed in config.train_seeds:
        out[f"sft/s{seed}"] = steps(config.sft) * cost["sft"] + 5
        for arm in ARMS:
            out[f"dpo/{arm}/s{seed}"] = steps(config.dpo) * cost["dpo"] + 5
    texts = len(model_runs(config)) * len(config.gen_seeds) * config.n_eval_prompts
    out["generate"] = texts * cost["gen"] * 2 + 5  # answers are about twice a headline's length
    out["summary"] = 2.0
    return out


def _load(folder: RunFolder) -> tuple[MarkerAuditConfig, pd.DataFrame]:
    if not folder.data_path.is_file():
        raise NotFoundError(f"{folder.path} has no data.parquet: create audits with `deconfound audit marker`")
    return MarkerAuditConfig.from_dict(folder.config()), pd.read_parquet(folder.data_path)


def _style(config: MarkerAuditConfig):
    from ..models import PromptStyle
    return PromptStyle(system_prompt=config.system_prompt, user_template=config.user_template,
                       max_context_words=config.max_context_words)


def stage_prepare(folder: RunFolder, config: MarkerAuditConfig, data: pd.DataFrame) -> dict:
    frame, info = prepare_rows(data, config)
    frame.to_parquet(folder.path / "rows.parquet", index=False)
    arms = {}
    for arm, column in (("naive", "outcome"), ("deconfounded", "corrected")):
        pairs = preference_pairs(frame, column, config.max_pairs_per_context)
        if len(pairs) < 2:
            raise DeconfoundError(f"the {arm} arm has only {len(pairs)} preference pair(s): the table needs more "
                                  "contexts with several texts whose outcomes differ")
        path = folder.path / "pairs" / f"{arm}.csv"
        path.parent.mkdir(exist_ok=True)
        pairs.to_csv(path, index=False)
        one = pairs[pairs["chosen_marked"] != pairs["rejected_marked"]]
        arms[arm] = {"pairs": len(pairs), "one_marked": len(one), "marked_chosen": int(one["chosen_marked"].sum()),
                     "marked_rejected": int(one["rejected_marked"].sum())}
    info |= {"arms": arms, "splits": frame["split"].value_counts().to_dict(),
             "contexts": {s: int(frame.loc[frame["split"] == s, "context"].nunique())
                          for s in ("sft", "pairs", "test")}}
    write_json_atomic(folder.path / "prepare.json", info)
    return {"rows": info["rows"], "marked_rows": info["marked_rows"], "arms": arms}


def stage_base(folder: RunFolder, config: MarkerAuditConfig, frame: pd.DataFrame) -> dict:
    """The starting model, with the Q&A prompt style: a tiny model built on the rows, or a view of another model
    folder (links to its files, its own prompt style) so the cached original is never changed."""
    from ..models import PROMPT_FILE, resolve_model_path
    out = folder.path / "models" / "base"
    if config.model.name.strip().lower() == "tiny":
        train = frame[frame["split"] != "test"]
        corpus = train["context"].astype(str).tolist() + train["text"].astype(str).tolist()
        path = resolve_model_path(config.model, corpus=corpus, out_dir=out)
    else:
        source = resolve_model_path(config.model)
        out.mkdir(parents=True, exist_ok=True)
        for item in Path(source).iterdir():
            link = out / item.name
            if item.name != PROMPT_FILE and not link.exists():
                link.symlink_to(item.resolve())
        path = out
    _style(config).save(path)
    return {"model_path": "models/base"}


def stage_sft(folder: RunFolder, config: MarkerAuditConfig, frame: pd.DataFrame, seed: int, progress, resume) -> dict:
    from dataclasses import replace

    from ..train import run_sft
    rows = frame.loc[frame["split"] == "sft", ["context", "text"]]
    settings = replace(config.sft, seed=seed)
    out = run_sft(folder.path / "models" / "base", rows, settings, folder.path / "models" / f"sft_s{seed}",
                  progress=progress, resume=resume, stage=f"sft/s{seed}",
                  checkpoint_dir=folder.path / "checkpoints" / f"sft_s{seed}")
    return {"model_path": os.path.relpath(out, folder.path)}


def stage_dpo(folder: RunFolder, config: MarkerAuditConfig, arm: str, seed: int, progress, resume) -> dict:
    from dataclasses import replace

    from ..train import run_dpo
    pairs = pd.read_csv(folder.path / "pairs" / f"{arm}.csv", keep_default_na=False)
    settings = replace(config.dpo, seed=seed)
    name = f"dpo_{arm}_s{seed}"
    out = run_dpo(folder.path / "models" / f"sft_s{seed}", pairs, settings, folder.path / "models" / name,
                  progress=progress, resume=resume, stage=f"dpo/{arm}/s{seed}",
                  checkpoint_dir=folder.path / "checkpoints" / name)
    return {"model_path": os.path.relpath(out, folder.path)}


def eval_contexts(frame: pd.DataFrame, config: MarkerAuditConfig) -> list[str]:
    """The held-out contexts every model answers (a seeded sample of at most n_eval_prompts)."""
    contexts = pd.Series(frame.loc[frame["split"] == "test", "context"].astype(str).unique())
    if contexts.empty:
        raise DeconfoundError("no held-out contexts to generate for: the table has too few contexts")
    if len(contexts) > config.n_eval_prompts:
        contexts = contexts.sample(n=config.n_eval_prompts, random_state=config.seed)
    return contexts.tolist()


def stage_generate(folder: RunFolder, config: MarkerAuditConfig, frame: pd.DataFrame, progress) -> dict:
    """Every model × generation seed answers the held-out contexts; one partial file per model and seed, so a
    resumed run keeps what was written."""
    from ..models import generate
    contexts = eval_contexts(frame, config)
    partial = folder.path / "generations"
    partial.mkdir(exist_ok=True)
    jobs = [(kind, tseed, gseed) for kind, tseed in model_runs(config) for gseed in config.gen_seeds]
    frames = []
    for done, (kind, tseed, gseed) in enumerate(jobs):
        name = kind if tseed is None else f"{kind}_s{tseed}"
        path = partial / f"{name}_g{gseed}.csv"
        if not path.is_file():
            texts = generate(folder.path / "models" / name, contexts, seed=gseed,
                             max_new_tokens=config.gen_max_new_tokens, temperature=config.gen_temperature,
                             batch_size=config.gen_batch_size, precision=config.precision)
            part = pd.DataFrame({"model": kind, "train_seed": -1 if tseed is None else tseed, "gen_seed": gseed,
                                 "prompt_id": range(len(contexts)), "context": contexts, "text": texts})
            part.to_csv(path.with_suffix(".tmp"), index=False)
            os.replace(path.with_suffix(".tmp"), path)
        frames.append(pd.read_csv(path, keep_default_na=False))
        progress("generate", done + 1, len(jobs), {})
    out = pd.concat(frames, ignore_index=True)
    out.to_csv(folder.path / "generations.csv", index=False)
    return {"rows": len(out), "prompts": len(contexts), "runs": len(jobs)}


def run_marker_audit(run_dir, resume: bool = False, stop=None, write_status: bool = True, callback=None) -> dict:
    """Run (or resume) every stage of a marker audit's run folder; returns the result's dict."""
    from .marker_result import marker_result
    folder = RunFolder(Path(run_dir).resolve())
    if not folder.exists():
        raise NotFoundError(f"{run_dir} is not a run folder (no config.json)")
    config, data = _load(folder)
    tracker = RunProgress(folder, plan(config), stop=stop, enabled=write_status, callback=callback)
    info = {s["stage"]: s for s in folder.stages()}
    if resume:  # a checkpoint a killed worker left half-written cannot be resumed from
        drop_incomplete_checkpoints(folder.path / "checkpoints")
    if write_status:
        status = folder.status()
        status.update(state="running", pid=os.getpid(), pgid=os.getpgrp(), host=socket.gethostname(),
                      proc_start=process_start_time(os.getpid()), ended_at=None, log_tail=None, summary=None,
                      started_at=status.get("started_at") if resume and status.get("started_at") else now_iso(),
                      message="resuming" if resume else "starting")
        folder.write_status(status)
        tracker.status = status

    def stage(name: str, fn, *args) -> None:
        if name in info:
            tracker.finish(name, skipped=True)
            return
        tracker.begin(name)
        started = time.monotonic()
        output = fn(*args) or {}
        folder.mark_finished(name, seconds=round(time.monotonic() - started, 1), **output)
        info[name] = output
        tracker.finish(name)

    stage("prepare", stage_prepare, folder, config, data)
    frame = pd.read_parquet(folder.path / "rows.parquet")
    stage("base", stage_base, folder, config, frame)
    for seed in config.train_seeds:
        stage(f"sft/s{seed}", stage_sft, folder, config, frame, seed, tracker, resume)
        for arm in ARMS:
            stage(f"dpo/{arm}/s{seed}", stage_dpo, folder, config, arm, seed, tracker, resume)
    stage("generate", stage_generate, folder, config, frame, tracker)
    result = marker_result(folder.path)
    write_json_atomic(folder.path / RESULT_FILE, result.to_dict())
    folder.mark_finished("summary")
    if write_status:
        status = folder.status()
        status.update(state="completed", progress=1.0, stage="done", eta_s=None, ended_at=now_iso(),
                      updated_at=now_iso(), summary={"verdict": result.verdict()}, message=result.verdict())
        folder.write_status(status)
    log.info("marker audit finished: %s", result.verdict())
    return result.to_dict()

