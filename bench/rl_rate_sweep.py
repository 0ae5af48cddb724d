#!/usr/bin/env python
"""How strong should RL be at a preset's scale? A sweep of the RL learning rate on the entangled scenario.

    python bench/rl_rate_sweep.py --start-from RUN_DIR --rates 3e-4 5e-4 1e-3 --steps 40
    python bench/rl_rate_sweep.py --size cpu --start-from CPU_RUN_DIR --rates 5e-4 --steps 24
        --methods oracle,deconfounded
    python bench/rl_rate_sweep.py --summarize DIR [DIR ...]      # tables from sweep runs already made

Every rate trains the same reward methods (oracle, naive, ODIN, deconfounded) with GRPO from the SFT model of
RUN_DIR (a smoke run of bench/reproduce_paper.py), on the entangled simulation, and generates on the same
held-out prompts. The table reports quality (sentiment), length, repetition, distinct-2 and team mentions per
model, beside the starting SFT model's, and a few generations: a rate is usable when the oracle-reward model
gains quality while keeping SFT's length and fluency (reward hacking shows first as repeated words).
Results: bench/results/rl_rate_sweep.md and .json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

import reproduce_paper as rp  # noqa: E402

from deconfound import evaluate as ev  # noqa: E402
from deconfound.data import Store  # noqa: E402
from deconfound.errors import DeconfoundError  # noqa: E402
from deconfound.runs import preset_config  # noqa: E402
from deconfound.sim import DEMO_ROLES, SimulationConfig, simulate  # noqa: E402

METHODS = ["oracle", "naive", "odin", "deconfounded"]
SAMPLES = 4  # generations shown per model


def run_rate(rate: float, steps: int, start_from: Path, workdir: Path, rows: int, data_seed: int,
             size: str = "smoke", methods: list[str] | None = None) -> Path:
    """One pipeline job: RL at `rate` for `steps` steps per method from `start_from`'s SFT model (preset `size`)."""
    store = Store(workdir / "bench.duckdb")
    if not store.exists("demo_entangled"):
        store.ingest_frame(simulate(SimulationConfig(scenario="entangled", n=rows, seed=data_seed)), "demo_entangled")
        store.save_roles("demo_entangled", DEMO_ROLES)
    overrides = rp.size_overrides(size, 0, None) | rp.shared_overrides(start_from) | {
        "methods": methods or METHODS, "rl.learning_rate": rate, "rl.max_steps": steps}
    config = preset_config(size, "demo_entangled", store=store, overrides=overrides)
    return rp.run_job(config, store, workdir, f"lr {rate:g}")


def summarize_run(run_dir: Path, n_boot: int) -> dict:
    """The rate, steps and per-model measures of one sweep run (its 'base' is the starting SFT model)."""
    config = json.loads((run_dir / "config.json").read_text())
    result = ev.compare(run_dir, ev.EvalConfig(n_boot=n_boot))
    generations = ev.load_generations(run_dir)
    first_prompts = list(dict.fromkeys(generations["prompt_id"]))[:SAMPLES]
    models = {}
    for name, m in result.models.items():
        texts = generations[(generations["model"] == name) & generations["prompt_id"].isin(first_prompts)]["text"]
        models["sft" if name == "base" else name] = {
            "quality": round(m.quality_mean, 4), "quality_ci": [round(x, 4) for x in m.quality_ci],
            "length": round(m.length_mean, 2), "repetition": round(m.repetition_mean, 4),
            "distinct_2": round(m.distinct_2, 4), "any_team": round(m.any_marker_rate or 0.0, 4),
            "samples": texts.tolist()}
    return {"run_dir": str(run_dir), "learning_rate": config["rl"]["learning_rate"],
            "steps": config["rl"]["max_steps"], "algorithm": config["rl"].get("algorithm", "grpo"), "models": models}


def fluent(model: dict, sft: dict) -> bool:
    """Texts still like SFT's: repetition at most max(0.05, 3× SFT's), length within 25%, distinct-2 ≥ 90%."""
    return (model["repetition"] <= max(0.05, 3 * sft["repetition"])
            and abs(model["length"] - sft["length"]) <= 0.25 * sft["length"]
            and model["distinct_2"] >= 0.9 * sft["distinct_2"])


def usable_rate(runs: list[dict]) -> float | None:
    """The highest rate whose RL models all stay fluent and whose oracle-reward model beats SFT (its interval
    above SFT's): RL moves quality without reward hacking."""
    usable = [r["learning_rate"] for r in runs
              if all(fluent(m, r["models"]["sft"]) for name, m in r["models"].items() if name != "sft")
              and r["models"].get("rl_oracle", {}).get("quality_ci", [0])[0] > r["models"]["sft"]["quality_ci"][1]]
    return max(usable) if usable else None


def write_results(runs: list[dict], command: str, out_dir: Path, size: str = "smoke") -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = "rl_rate_sweep" if size == "smoke" else f"rl_rate_sweep_{size}"  # the smoke sweep keeps its file
    payload = {"command": command, "commit": rp.git_commit(), "machine": rp.machine_info(), "runs": runs,
               "size": size}
    (out_dir / f"{stem}.json").write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    lines = [f"# RL learning rate at the {size} scale (entangled scenario)", "", f"`{command}`", "",
             f"- commit `{payload['commit'].get('commit')}`; machine {payload['machine'].get('processor')}, "
             f"{payload['machine'].get('cpu_count')} cores", "- runs: " + ", ".join(f"`{r['run_dir']}`" for r in
                                                                   sorted(runs, key=lambda r: r["learning_rate"])),
             "- each run starts from the same SFT model "
             f"(`sft` row); the {size} preset's RL ({runs[0].get('algorithm', 'grpo')}), 4 prompts × 4 samples per "
             "step, KL β 0.05; 300 held-out prompts", "",
             "| lr | steps | model | sentiment [95% CI] | length | repetition | distinct-2 | any team |",
             "|---|---|---|---|---|---|---|---|"]
    for run in sorted(runs, key=lambda r: r["learning_rate"]):
        for name, m in run["models"].items():
            lines.append(f"| {run['learning_rate']:g} | {run['steps']} | {name} | {m['quality']:.3f} "
                         f"[{m['quality_ci'][0]:.3f}, {m['quality_ci'][1]:.3f}] | {m['length']:.1f} | "
                         f"{m['repetition']:.3f} | {m['distinct_2']:.3f} | {m['any_team']:.1%} |")
    best = usable_rate(runs)
    lines += ["", "Usable: every RL model stays fluent (repetition ≤ max(0.05, 3× SFT's), length within 25% of SFT's, "
              "distinct-2 ≥ 90% of SFT's) and the oracle-reward model's interval lies above SFT's. Highest usable "
              f"rate: **{best:g}**." if best else "No rate was usable by that rule."]
    payload["usable_rate"] = best
    (out_dir / f"{stem}.json").write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    lines += ["", "## Generations (the first prompts)", ""]
    for run in sorted(runs, key=lambda r: r["learning_rate"]):
        lines += [f"### lr {run['learning_rate']:g}", ""]
        for name, m in run["models"].items():
            lines += [f"- **{name}**: " + " · ".join(t.replace("|", "/") for t in m["samples"])]
        lines.append("")
    md_path = out_dir / f"{stem}.md"
    md_path.write_text("\n".join(lines), encoding="utf-8")
    return md_path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--start-from", help="a run folder of bench/reproduce_paper.py at --size (its SFT model)")
    parser.add_argument("--rates", nargs="+", type=float, default=[1e-4, 2e-4, 3e-4, 5e-4])
    parser.add_argument("--steps", type=int, default=40, help="RL steps per method")
    parser.add_argument("--workdir", default=None, help="folder of the sweep's runs (default: a temp folder)")
    parser.add_argument("--summarize", nargs="+", metavar="RUN_DIR", help="only tabulate runs already made")
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--data-seed", type=int, default=7)
    parser.add_argument("--n-boot", type=int, default=500)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    parser.add_argument("--size", choices=("smoke", "cpu"), default="smoke",
                        help="the preset whose RL is swept (cpu: SmolLM2 with its default RL algorithm); results go "
                             "to rl_rate_sweep.md (smoke) or rl_rate_sweep_<size>.md")
    parser.add_argument("--methods", default=",".join(METHODS), help="reward methods per rate (comma-separated)")
    args = parser.parse_args(argv)
    command = "python bench/rl_rate_sweep.py " + " ".join(argv or sys.argv[1:])
    if args.summarize:
        run_dirs = [Path(p) for p in args.summarize]
    else:
        if not args.start_from:
            parser.error("--start-from RUN_DIR is needed (or --summarize)")
        import tempfile
        workdir = Path(args.workdir or tempfile.mkdtemp(prefix="deconfound-rl-sweep-")).resolve()
        workdir.mkdir(parents=True, exist_ok=True)
        run_dirs = []
        for rate in args.rates:
            t0 = time.monotonic()
            run_dirs.append(run_rate(rate, args.steps, Path(args.start_from), workdir, args.rows, args.data_seed,
                                     args.size, args.methods.split(",")))
            print(f"[lr {rate:g}] {time.monotonic() - t0:.0f} s", flush=True)
    md_path = write_results([summarize_run(p, args.n_boot) for p in run_dirs], command, Path(args.out), args.size)
    print(f"wrote {md_path}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except DeconfoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
