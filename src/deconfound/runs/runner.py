"""Running a run folder stage by stage: estimate → base → sft → rewards → rl per method → (dpo) → generate.

`run_pipeline(run_dir)` reads config.json + data.parquet (never the app's database), runs the stages in order
and records each finished one in stages.json, so a resumed run skips them and RL continues from its last
checkpoint. While it runs it keeps status.json (progress 0..1 weighted by each stage's expected cost, stage,
ETA), metrics.jsonl and samples.jsonl up to date for the live panel. Under `accelerate launch` only the main
process writes; the others compute the training stages and the evaluation generations (each process writes
its share of the prompts; the shares are gathered into one generations.csv) and wait for the main-only ones.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from pathlib import Path

from ..data import assign_splits
from ..errors import DeconfoundError, NotFoundError
from ..jsonio import read_json
from ..models import barrier
from .config import TrainConfig
from .folder import RunFolder, now_iso
from .jobs import ACTIVE_STATES
from .processes import process_start_time
from .progress import RunProgress
from .stages import (check_columns, feature_cache, RunState, eval_prompts, load_run_data, plan_stages, stage_base,
                     stage_dpo, stage_dpo_pairs, stage_estimate, stage_evaluator, stage_fluency, stage_generate,
                     stage_reward, stage_rl, stage_sft, write_samples)
from .trained import resolve_in

log = logging.getLogger(__name__)


def run_summary(run: RunState, seconds: float) -> dict:
    """The final summary written into status.json."""
    info = run.info
    rewards = {m: {k: info.get(f"rewards/{m}", {}).get("valid", {}).get(k) for k in ("pearson_truth", "r2_outcome")}
               for m in run.config.methods}
    rl = {}
    for method in run.config.methods:
        entry = info.get(f"rl/{method}", {})
        history = read_json(resolve_in(run.folder.path, entry.get("model_path", "-")) / "training_summary.json",
                            default={}) or {}
        steps = [h for h in history.get("history", []) if h.get("reward") is not None]
        rl[method] = {"steps": entry.get("steps"), "stopped_early": entry.get("stopped_early"),
                      "reward_first": steps[0]["reward"] if steps else None,
                      "reward_last": steps[-1]["reward"] if steps else None,
                      "kl_last": steps[-1].get("kl") if steps else None}
    generate_info = info.get("generate", {})
    return {"models": generate_info.get("models", []), "generations": generate_info.get("rows"),
            "eval_prompts": generate_info.get("prompts"), "estimate": info.get("estimate", {}).get("verdict"),
            "corrected_column": info.get("estimate", {}).get("corrected_column"), "rewards_valid": rewards,
            "rl": rl, "seconds_this_session": round(seconds, 1), "notes": run.config.notes}


# ------------------------------------------------------------------ the run
def cancelled_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean "stopped on request" (the worker records those as cancelled)."""
    from ..train import Cancelled
    return (Cancelled, KeyboardInterrupt)


def _rank() -> int:
    return int(os.environ.get("RANK", "0") or 0)


def _wait_for_stage(folder: RunFolder, stage: str, poll_s: float = 2.0, tracker: RunProgress | None = None) -> None:
    """Non-main processes (accelerate) wait for the main process to finish a stage only it runs: by polling
    stages.json, not a collective (a reward model or the estimate may take longer than the process group's
    timeout). A stop request (SIGTERM) ends the wait as it ends a training step."""
    while not folder.finished(stage):
        if tracker is not None:
            tracker.check_stop()
        if folder.status().get("state") not in ACTIVE_STATES:
            raise DeconfoundError(f"the main process stopped before finishing {stage}")
        time.sleep(poll_s)


def check_device(config: TrainConfig) -> None:
    """Refuse the gpu preset where torch sees no CUDA device (one sentence, before hours on a CPU), unless
    $DECONFOUND_GPU_PRESET_ON_CPU=1 (bench/gpu_check.sh --dry-run: the same code path, shrunk), and an RL
    algorithm that runs in one process under several."""
    from ..models import pick_device
    from .launch import GPU_PRESET_NEEDS_CUDA, GPU_PRESET_ON_CPU_ENV
    if config.preset == "gpu" and pick_device()[0] == "cpu" and os.environ.get(GPU_PRESET_ON_CPU_ENV) != "1":
        raise DeconfoundError(GPU_PRESET_NEEDS_CUDA)
    from .launch import check_rl_algorithm  # started by hand under accelerate: the rule start_job applies
    check_rl_algorithm(int(os.environ.get("WORLD_SIZE", "1") or 1), config.rl.algorithm)


def gpu_peak_gb() -> float | None:
    """This process's peak GPU memory since the last call, in GiB (None without CUDA); the peak is reset."""
    import sys
    torch = sys.modules.get("torch")  # never import torch (or start CUDA) just to learn there is none
    if torch is None or not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return None
    peak = torch.cuda.max_memory_allocated() / 2 ** 30
    torch.cuda.reset_peak_memory_stats()
    return round(peak, 2)


def run_pipeline(run_dir, progress=None, resume: bool = False, stop=None, write_status: bool | None = None) -> dict:
    """Run (or resume) every stage of the run folder `run_dir`; returns the final summary.

    progress(stage, step, total, metrics): an extra callback (e.g. a CLI printer). stop: a threading.Event;
    once set, the current step finishes and `train.Cancelled` is raised. Finished stages (stages.json)
    are always skipped; `resume` also makes trainers continue from their last checkpoint.
    """
    folder = RunFolder(Path(run_dir).resolve())
    if not folder.exists():
        raise NotFoundError(f"{run_dir} is not a run folder (no config.json)")
    main = _rank() == 0 if write_status is None else write_status
    config = TrainConfig.from_dict(folder.config())
    check_device(config)
    data = load_run_data(folder)
    check_columns(config, data)
    splits, note = assign_splits(data, config.seed)
    if note:
        log.info("%s", note)
    n_eval = len(eval_prompts(data, splits, config.role_set, config.n_eval_prompts, config.seed))
    plan = plan_stages(config, n_eval)
    tracker = RunProgress(folder, plan, stop=stop, enabled=main, callback=progress)
    run = RunState(folder=folder, config=config, progress=tracker, resume=resume, main=main, data=data, splits=splits,
               info={s["stage"]: s for s in folder.stages()})
    started = time.monotonic()
    if resume and main:
        drop_incomplete_checkpoints(folder.path / "checkpoints")
    if main:
        status = folder.status()
        status.update(state="running", pid=os.getpid(), pgid=os.getpgrp(), host=socket.gethostname(),
                      proc_start=process_start_time(os.getpid()),
                      started_at=status.get("started_at") if resume and status.get("started_at") else now_iso(),
                      resumed_at=now_iso() if resume else None, ended_at=None, log_tail=None,
                      message="resuming" if resume else "starting", summary=None)
        folder.write_status(status)
        tracker.status = status
    barrier()  # the others start once the main process has cleaned up the checkpoints it resumes from
    log.info("run %s: %s", folder.path.name, config.summary().replace("\n", "; "))

    def stage(name: str, fn, *args, main_only: bool = False, samples=None):
        if name in run.info:
            tracker.finish(name, skipped=True)
            return
        if main_only and not main:
            _wait_for_stage(folder, name, tracker=tracker)
            run.info[name] = next(s for s in folder.stages() if s["stage"] == name)
            tracker.finish(name)
            return
        tracker.begin(name)
        t0 = time.monotonic()
        gpu_peak_gb()  # reset: each stage reports its own peak
        output = fn(run, *args) or {}
        if main:
            peak = gpu_peak_gb()
            folder.mark_finished(name, seconds=round(time.monotonic() - t0, 1), **output,
                                 **({"gpu_peak_gb": peak} if peak is not None else {}))
        run.info[name] = {"stage": name, **output}
        if samples and main:
            try:
                samples(output)
            except Exception as exc:  # samples only feed the live panel: never fail a run for them
                log.warning("could not write sample texts after %s: %s", name, exc)
        tracker.finish(name)

    if "estimate" in run.info and run.info["estimate"].get("corrected_column") not in (None, *data.columns):
        raise DeconfoundError("data.parquet lost the corrected outcome column: start a new run")
    stage("estimate", stage_estimate, main_only=True)
    stage("base", stage_base, main_only=True)
    if config.run_sft:
        stage("sft", stage_sft, samples=lambda out: write_samples(run, "sft", "sft", out["model_path"]))
    features = feature_cache(run) if any(f"rewards/{m}" not in run.info for m in config.methods) else None
    for method in config.methods:
        stage(f"rewards/{method}", stage_reward, method, features, main_only=True)
    for method in config.methods:
        stage(f"rl/{method}", stage_rl, method,
              samples=lambda out, m=method: write_samples(run, f"rl/{m}", f"rl_{m}", out["model_path"], m))
    if config.run_dpo:
        for method in config.methods:
            stage(f"dpo_pairs/{method}", stage_dpo_pairs, method, main_only=True)
            stage(f"dpo/{method}", stage_dpo, method,
                  samples=lambda out, m=method: write_samples(run, f"dpo/{m}", f"dpo_{m}", out["model_path"], m))
    stage("generate", stage_generate)  # every process writes its share of the prompts (see trained.generate_frame)
    if not main:
        log.info("process rank %d finished its part of the run", _rank())
        return {}
    if config.model.name.strip().lower() != "tiny":  # a model built from scratch: its perplexity says nothing
        stage("fluency", stage_fluency, main_only=True)
    if not config.role_set.truth:  # no truth to judge by: an independent evaluator, fluency, default markers
        stage("evaluator", stage_evaluator, main_only=True)
    summary = run_summary(run, time.monotonic() - started)
    folder.mark_finished("summary", **{"models": summary["models"]})
    status = folder.status()
    status.update(state="completed", progress=1.0, stage="done", eta_s=None, ended_at=now_iso(),
                  updated_at=now_iso(), summary=summary,
                  message=f"finished: {len(summary['models'])} models wrote {summary['generations']} "
                          f"generations for {summary['eval_prompts']} held-out prompts (generations.csv)")
    folder.write_status(status)
    log.info("run finished: %s", json.dumps(summary, default=str))
    return summary


def drop_incomplete_checkpoints(root: Path) -> list[Path]:
    """Remove checkpoint folders a killed worker left half-written (no trainer_state.json, which the trainer
    writes last); resuming from one would fail. Returns the removed folders."""
    import shutil
    removed = []
    for checkpoint in sorted(Path(root).glob("*/checkpoint-*")):
        if checkpoint.is_dir() and not (checkpoint / "trainer_state.json").is_file():
            shutil.rmtree(checkpoint, ignore_errors=True)
            removed.append(checkpoint)
            log.info("removed the incomplete checkpoint %s (the worker stopped while writing it)", checkpoint)
    return removed
