#!/usr/bin/env python
"""Two CPU processes against one on the smoke preset's RL stage: speed ratio, total wall time, and whether the
results match (reward curves side by side with the same seeds, held-out quality of the RL models).

    python bench/bench_processes.py                 # full: the preset's SFT once, then 40 RL steps, 2 repetitions
    python bench/bench_processes.py --quick         # a check that it works: 40 SFT steps, 8 RL steps, 1 repetition
                                                    # (12.3 min on a 2-core VM shared with other jobs, load 5-8)
    python bench/bench_processes.py --start-from RUN_DIR   # reuse a smoke run's SFT model (skips the set-up run)

Set-up (not timed): the entangled simulation (20,000 rows, the demo's seed) and one smoke run up to its SFT model.
Then, alternating, the same job twice per repetition from that SFT model (`model.name` = the SFT folder,
`run_sft` off): RL for one reward method, plus its estimate / reward model / held-out generations.
  - 1 process, all threads (the preset's 4 prompts x 4 completions per step);
  - 2 processes (accelerate launch, gloo), the same threads split between them, 2 prompts x 4 completions each:
    the same 16 completions per optimiser step, so both runs take the same optimisation path up to sampling.
The RL stage's seconds come from stages.json, per-step seconds from training_summary.json, the wall time is the
whole job (launcher, process group, imports, every stage). Writes bench/results/processes.md and .json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

import numpy as np  # noqa: E402

import reproduce_paper as rp  # noqa: E402

from deconfound import runs  # noqa: E402
from deconfound.data import Store  # noqa: E402
from deconfound.errors import DeconfoundError  # noqa: E402
from deconfound.sim import DEMO_ROLES, SimulationConfig, quality_scores, simulate  # noqa: E402

RESULTS = ROOT / "bench" / "results"
GLOBAL_PROMPTS = 4  # the smoke preset's prompts per RL step (x 4 completions)


def run_job(config, store: Store, workdir: Path, processes: int, name: str) -> dict:
    """Run one job in the foreground; its run folder and wall seconds (raises with the log tail if it failed)."""
    root = workdir / "runs"
    job = runs.create_job(config, store=store, runs_root=root)
    print(f"[{name}] {runs.launch_command(job.id, processes, runs_root=root)}", flush=True)
    start = time.monotonic()
    runs.start_job(job.id, detach=False, num_processes=processes, runs_root=root,
                   env={"DECONFOUND_HOME": str(workdir)})
    wall = time.monotonic() - start
    status = runs.job_status(job.id, runs_root=root)
    if status.get("state") != "completed":
        tail = "\n".join(status.get("log_tail") or runs.RunFolder(job.run_dir).log_tail(40))
        raise DeconfoundError(f"the {name} run ended {status.get('state')}: {status.get('message')}\n{tail}")
    return {"run_dir": job.run_dir, "wall_s": wall}


def measure(run: dict, method: str) -> dict:
    """RL stage seconds, per-step seconds, the reward curve and the RL model's held-out quality of one job."""
    folder = runs.RunFolder(run["run_dir"])
    stages = {s["stage"]: s for s in folder.stages()}
    summary = json.loads((run["run_dir"] / "models" / f"rl_{method}" / "training_summary.json").read_text())
    steps = [h["step_seconds"] for h in summary["history"] if h.get("step_seconds")]
    curve = {m["step"]: {k: m.get(k) for k in ("reward", "reward_raw", "kl")} for m in folder.metrics()
             if m["stage"] == f"rl/{method}"}
    import pandas as pd
    generations = pd.read_csv(run["run_dir"] / "generations.csv", keep_default_na=False)
    texts = generations.loc[generations["model"] == f"rl_{method}", "text"].tolist()
    quality = quality_scores(texts)
    return {"run_dir": str(run["run_dir"]), "wall_s": round(run["wall_s"], 1),
            "rl_stage_s": stages[f"rl/{method}"]["seconds"], "steps": summary["steps"],
            "median_step_s": round(statistics.median(steps[1:] or steps), 3),  # the first step warms up
            "curve": curve, "quality_mean": round(float(np.mean(quality)), 4),
            "quality_se": round(float(np.std(quality, ddof=1) / np.sqrt(len(quality))), 4), "n_texts": len(texts)}


def tail_mean(curve: dict, key: str, window: int) -> tuple[float, float]:
    """Mean and standard error of a metric over the last `window` steps."""
    values = [v[key] for _, v in sorted(curve.items())[-window:] if v.get(key) is not None]
    return float(np.mean(values)), float(np.std(values, ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0


def write_results(payload: dict, out_dir: Path) -> Path:
    one, two = payload["results"]["1"], payload["results"]["2"]
    med = lambda rows, key: statistics.median(r[key] for r in rows)  # noqa: E731
    ratio_stage = med(one, "rl_stage_s") / med(two, "rl_stage_s")
    ratio_step = med(one, "median_step_s") / med(two, "median_step_s")
    ratio_wall = med(one, "wall_s") / med(two, "wall_s")
    payload["summary"] = {"speedup_rl_stage": round(ratio_stage, 3), "speedup_step": round(ratio_step, 3),
                          "speedup_wall": round(ratio_wall, 3)}
    machine = payload["machine"]
    window = payload["tail_window"]
    lines = ["# Two CPU processes vs one (smoke RL stage)", "",
             f"Run {payload['date']} on {machine['platform']}, {machine['cpu_count']} cores ({machine['processor']}); "
             f"torch {machine.get('torch')}; commit {payload['commit']['commit'] or '?'}"
             f"{' (uncommitted changes)' if payload['commit']['dirty'] else ''}; "
             f"load average {payload['load_start']:.1f} "
             f"at the start, {payload['load_end']:.1f} at the end (above the core count = other work shared the CPU); "
             f"{payload['bench_s'] / 60:.1f} min in all.", "",
             f"Command: `{payload['command']}`. Method `{payload['method']}`, {payload['rl_steps']} RL steps, "
             f"{payload['reps']} repetition(s) of each, alternating; same seeds; 16 completions per optimiser step in "
             "both (1 process: 4 prompts x 4; 2 processes: 2 prompts x 4 each); threads: "
             f"{payload['threads']} for the job (2 processes: {max(1, payload['threads'] // 2)} each).", "",
             "| | 1 process | 2 processes | ratio (1 / 2) |", "|---|---|---|---|",
             f"| RL stage, s (median) | {med(one, 'rl_stage_s'):.1f} | {med(two, 'rl_stage_s'):.1f} | "
             f"{ratio_stage:.2f} |",
             f"| s per RL step (median) | {med(one, 'median_step_s'):.3f} | {med(two, 'median_step_s'):.3f} | "
             f"{ratio_step:.2f} |",
             f"| whole job wall, s (median) | {med(one, 'wall_s'):.1f} | {med(two, 'wall_s'):.1f} | {ratio_wall:.2f} |",
             ""]
    for n, rows in (("1", one), ("2", two)):
        for i, r in enumerate(rows):
            mean, se = tail_mean(r["curve"], "reward_raw", window)
            lines.append(f"- {n} process(es), repetition {i + 1}: RL {r['rl_stage_s']} s, wall {r['wall_s']} s; raw "
                         f"reward over the last {window} steps {mean:.3f} ± {se:.3f}; held-out quality of rl_"
                         f"{payload['method']} {r['quality_mean']:.3f} ± {r['quality_se']:.3f} (n {r['n_texts']})")
    lines += ["", "Reward per step, first repetition (reward = z-scored and clipped, what GRPO maximises; raw = the "
              "reward model's score):", "",
              "| step | reward, 1 proc | reward, 2 procs | raw, 1 proc | raw, 2 procs | KL, 1 proc | KL, 2 procs |",
              "|---|---|---|---|---|---|---|"]
    fmt = lambda v: "" if v is None else f"{v:.3f}"  # noqa: E731
    for step in sorted(set(one[0]["curve"]) | set(two[0]["curve"])):
        a, b = one[0]["curve"].get(step, {}), two[0]["curve"].get(step, {})
        lines.append(f"| {step} | {fmt(a.get('reward'))} | {fmt(b.get('reward'))} | {fmt(a.get('reward_raw'))} | "
                     f"{fmt(b.get('reward_raw'))} | {fmt(a.get('kl'))} | {fmt(b.get('kl'))} |")
    lines += ["", "The two runs sample different completions (each process draws its own), so their curves agree "
              "only up to sampling noise: compare the last-steps means with their standard errors and the held-out "
              "quality intervals above."]
    out_dir.mkdir(parents=True, exist_ok=True)
    md = out_dir / "processes.md"
    md.write_text("\n".join(lines) + "\n")
    (out_dir / "processes.json").write_text(json.dumps(payload, indent=2, default=str))
    return md


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="8 RL steps, 1 repetition, a short set-up SFT")
    parser.add_argument("--rl-steps", type=int, default=None, help="RL steps per job (default 40; --quick 8)")
    parser.add_argument("--reps", type=int, default=None, help="repetitions of each (default 2; --quick 1)")
    parser.add_argument("--method", default="naive", help="the reward method whose RL stage is timed")
    parser.add_argument("--rows", type=int, default=20_000, help="rows of the entangled simulation")
    parser.add_argument("--threads", type=int, default=2, help="torch threads for the job (split between processes)")
    parser.add_argument("--start-from", type=Path, help="a smoke run folder whose SFT model RL starts from")
    parser.add_argument("--workdir", type=Path, help="keep run folders here (default: a temporary folder)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where processes.md/.json go")
    args = parser.parse_args(argv)
    rl_steps = args.rl_steps or (8 if args.quick else 40)
    reps = args.reps or (1 if args.quick else 2)
    started, load_start = time.monotonic(), os.getloadavg()[0]
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench_processes_"))
    os.environ["DECONFOUND_HOME"] = str(workdir)
    store = Store(workdir / "bench.duckdb")
    if not store.exists("demo_entangled"):
        store.ingest_frame(simulate(SimulationConfig(scenario="entangled", n=args.rows, seed=7)), "demo_entangled")
        store.save_roles("demo_entangled", DEMO_ROLES)
    common = {"methods": [args.method], "threads": args.threads, "n_eval_prompts": 100}
    start_from = args.start_from
    if start_from is None:  # the set-up run: SFT once, single process (not timed)
        setup = common | ({"sft.max_steps": 40, "rl.max_steps": 1} if args.quick else {"rl.max_steps": 1})
        config = runs.preset_config("smoke", "demo_entangled", store=store, overrides=setup)
        start_from = run_job(config, store, workdir, 1, "set-up SFT")["run_dir"]
    sft = runs.run_models(start_from).get("sft")
    if sft is None:
        raise DeconfoundError(f"{start_from} has no SFT model")
    results: dict[str, list] = {"1": [], "2": []}
    for rep in range(reps):
        for processes in ((1, 2) if rep % 2 == 0 else (2, 1)):  # alternate so drifting load hits both alike
            overrides = common | {"model.name": str(sft), "run_sft": False, "rl.max_steps": rl_steps,
                                  "rl.prompts_per_step": GLOBAL_PROMPTS // processes, "rl.save_steps": 10 ** 6}
            config = runs.preset_config("smoke", "demo_entangled", store=store, overrides=overrides)
            run = run_job(config, store, workdir, processes, f"{processes} process(es), repetition {rep + 1}")
            results[str(processes)].append(measure(run, args.method))
            print(f"  RL stage {results[str(processes)][-1]['rl_stage_s']} s, wall {run['wall_s']:.1f} s", flush=True)
    command = "python bench/bench_processes.py" + (" --quick" if args.quick else "") + \
        (f" --rl-steps {args.rl_steps}" if args.rl_steps else "") + (f" --reps {args.reps}" if args.reps else "")
    payload = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "machine": rp.machine_info(),
               "commit": rp.git_commit(), "command": command, "method": args.method, "rl_steps": rl_steps,
               "reps": reps, "threads": args.threads, "tail_window": min(10, rl_steps), "start_from": str(start_from),
               "results": results, "load_start": load_start, "load_end": os.getloadavg()[0],
               "bench_s": round(time.monotonic() - started, 1)}
    md = write_results(payload, args.out)
    print(f"wrote {md}: speed-up {payload['summary']}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
