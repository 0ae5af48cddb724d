#!/usr/bin/env python
"""Which RL algorithm suits a CPU: GRPO or sample-and-rank, from the same SFT model, measured as quality gained
per CPU-minute on the entangled demo with the deconfounded and the oracle rewards.

The first `cpu`-preset run trains the SFT model and RL with GRPO on the oracle and the deconfounded rewards; the
second starts from that SFT model (SFT off) and trains RL with sample-and-rank on the same two rewards. Every run is the real
pipeline (`deconfound.runs`); the RL stages' seconds come from each run's stages.json, the quality of every
model from `deconfound.evaluate.compare` (VADER, the simulation's truth) on the same held-out prompts.
Writes bench/results/rl_algorithms.md and .json.

    python bench/rl_algorithms.py                       # ~30 min on 2 idle cores
    python bench/rl_algorithms.py --set rl.max_steps=12 # any TrainConfig override, for every run
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from reproduce_paper import run_job  # noqa: E402
from training_report import machine  # noqa: E402

from deconfound import evaluate as ev  # noqa: E402
from deconfound.data import Store  # noqa: E402
from deconfound.jsonio import read_json  # noqa: E402
from deconfound.runs import parse_overrides, preset_config, run_models  # noqa: E402
from deconfound.sim import DEMO_ROLES, SimulationConfig, simulate  # noqa: E402

RESULTS = ROOT / "bench" / "results"
ALGORITHMS = ("grpo", "sample_rank")
METHODS = ("oracle", "deconfounded")


def stage_seconds(run_dir: Path) -> dict[str, float]:
    """Seconds each finished stage took (stages.json)."""
    return {s["stage"]: float(s.get("seconds") or 0.0) for s in read_json(run_dir / "stages.json", default=[])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20_000, help="rows of the simulation (the demo's size)")
    parser.add_argument("--data-seed", type=int, default=7, help="simulation seed (7 = the shipped demo)")
    parser.add_argument("--eval-prompts", type=int, default=300, help="held-out prompts every model writes for")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override for every run")
    args = parser.parse_args()
    started = time.perf_counter()
    report = {"machine": machine(ROOT), "rows": args.rows, "data_seed": args.data_seed, "runs": {}}
    workdir = Path(tempfile.mkdtemp(prefix="rl_algorithms_"))
    store = Store(workdir / "bench.duckdb")
    store.ingest_frame(simulate(SimulationConfig(scenario="entangled", n=args.rows, seed=args.data_seed)),
                       "demo_entangled", replace=True)
    store.save_roles("demo_entangled", DEMO_ROLES)
    common = parse_overrides(args.set) | {"n_eval_prompts": args.eval_prompts}

    def config(**overrides):
        return preset_config("cpu", "demo_entangled", store=store, overrides=common | overrides)

    sft_model = None
    for algorithm in ALGORITHMS:  # the first run trains the SFT model; the second starts from it
        print(f"RL with {algorithm}", flush=True)
        shared = {} if sft_model is None else {"run_sft": False, "model.name": str(sft_model)}
        run_dir = run_job(config(methods=list(METHODS), **{"rl.algorithm": algorithm}, **shared),
                          store, workdir, algorithm)
        seconds = stage_seconds(run_dir)
        result = ev.compare(run_dir)
        start = result.models["sft"] if sft_model is None else result.models["base"]  # both: the SFT model
        if sft_model is None:
            sft_model = run_models(run_dir)["sft"]
            report["sft_seconds"] = seconds.get("sft")
            report["sft_quality"] = {name: result.models[name].quality_mean for name in ("base", "sft")}
        runs = {}
        for method in METHODS:
            model = result.models.get(f"rl_{method}")
            minutes = seconds.get(f"rl/{method}", 0.0) / 60
            gain = model.quality_mean - start.quality_mean if model else None
            runs[method] = {"quality": model.quality_mean if model else None,
                            "quality_ci": model.quality_ci if model else None, "start_quality": start.quality_mean,
                            "gain": gain, "rl_minutes": minutes,
                            "gain_per_minute": gain / minutes if model and minutes else None,
                            "p_vs_start": result.pvalue(f"rl_{method}", start.name),
                            "repetition": model.repetition_mean if model else None,
                            "length": model.length_mean if model else None}
        report["runs"][algorithm] = {"methods": runs, "settings": read_json(run_dir / "config.json")["rl"],
                                     "run_dir": str(run_dir)}
    report["total_s"] = time.perf_counter() - started
    report["finished_at"] = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    report["load_average_end"] = os.getloadavg()
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "rl_algorithms.json").write_text(json.dumps(report, indent=2, default=str))
    write_markdown(report, RESULTS / "rl_algorithms.md")
    print((RESULTS / "rl_algorithms.md").read_text())


def write_markdown(report: dict, path: Path) -> None:
    """rl_algorithms.md: quality gained per RL minute, by algorithm and reward."""
    m = report["machine"]
    f = lambda v, d=3: "—" if v is None else f"{v:.{d}f}"  # noqa: E731
    lines = ["# GRPO vs sample-and-rank on a CPU (cpu preset, SmolLM2-135M-Instruct + LoRA)", "",
             f"Run {report['finished_at']} on {m['cpu']}, {m['cpu_count']} cores; commit {m['commit']}; "
             f"{report['total_s'] / 60:.1f} min in all; load average at start "
             f"{', '.join(f'{x:.1f}' for x in m['load_average_start'])}, at end "
             f"{', '.join(f'{x:.1f}' for x in report['load_average_end'])}. Entangled simulation, "
             f"{report['rows']:,} rows (seed {report['data_seed']}); quality = VADER sentiment in [0, 1] on the same "
             f"held-out prompts; SFT took {f(report['sft_seconds'], 0)} s; base {f(report['sft_quality'].get('base'))}"
             f", SFT {f(report['sft_quality'].get('sft'))}.", "",
             "| algorithm | reward | quality (95% CI) | gain over SFT | p vs SFT | RL minutes | gain per minute | "
             "repetition | length |", "|---|---|---|---|---|---|---|---|---|"]
    for algorithm, run in report["runs"].items():
        for method, r in run["methods"].items():
            ci = r["quality_ci"] or [None, None]
            lines.append(f"| {algorithm} | {method} | {f(r['quality'])} ({f(ci[0])}–{f(ci[1])}) | {f(r['gain'], 4)} | "
                         f"{f(r['p_vs_start'], 3)} | {f(r['rl_minutes'], 1)} | {f(r['gain_per_minute'], 4)} | "
                         f"{f(r['repetition'])} | {f(r['length'], 1)} |")
    lines += ["", "Settings of each algorithm's RL stage (the cpu preset unless overridden):", ""]
    for algorithm, run in report["runs"].items():
        s = run["settings"]
        keys = ("max_steps", "learning_rate", "prompts_per_step", "num_generations", "max_completion_length", "beta",
                "rounds", "rank_beta", "rank_min_gap")
        lines.append(f"- {algorithm}: " + ", ".join(f"{k} {s.get(k)}" for k in keys))
    lines += ["", "Reproduce: `.venv/bin/python bench/rl_algorithms.py`.", ""]
    path.write_text("\n".join(lines))


if __name__ == "__main__":
    main()
