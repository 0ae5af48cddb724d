"""The reproduction's results in words and tables: the goals with their numbers, why a goal was missed, Tables 1
and 2 beside the paper's, three held-out prompts with every model's text, and the README headline.
(Used by reproduce_paper.py.)
"""

from __future__ import annotations

import json
from pathlib import Path

from deconfound import evaluate as ev
from deconfound.errors import DeconfoundError
from deconfound.sim import REGIONS
from paper_numbers import (GOAL_ABOVE_BASELINES, GOAL_CORR, GOAL_MENTION_SLACK, GOAL_ORACLE_GAP, PAPER_TABLE1,
                           PAPER_TABLE2)

ROOT = Path(__file__).resolve().parents[1]
README_START, README_END = "<!-- paper-headline:start -->", "<!-- paper-headline:end -->"


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
    fluency = any(m.perplexity is not None for m in result.models.values())
    extra = " perplexity | cut off |" if fluency else ""
    lines = [f"| model | n | sentiment [{level}% CI] | vs SFT | W | C | E | any team | words | repetition | empty |"
             f"{extra} paper sent. | paper W/C/E (of 3,000) |",
             "|" + "---|" * (12 + (2 if fluency else 0))]
    for m in result.models.values():
        p = m.pvalues.get("quality")
        sig = "—" if p is None else f"p={p:.2g}{ev.stars(p)}"
        cells = " | ".join(f"{m.marker_counts[g]} ({m.marker_rates[g]:.1%}){ev.stars(m.marker_pvalues.get(g))}"
                           for g in REGIONS if g in m.marker_counts)
        ref = paper.get(m.name)
        flu = (f" {_f(m.perplexity)} | {'—' if m.cut_off_share is None else f'{m.cut_off_share:.1%}'} |"
               if fluency else "")
        lines.append(f"| {m.label} | {m.n} | {m.quality_mean:.3f} [{m.quality_ci[0]:.3f}, {m.quality_ci[1]:.3f}] | "
                     f"{sig} | {cells} | {m.any_marker_rate:.1%} | {m.length_mean:.1f} | {m.repetition_mean:.3f} | "
                     f"{(m.empty_share or 0):.1%} |{flu} {f'{ref[0]:.3f}' if ref else '—'} | "
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


def fixed_prompt_samples(generations, result: ev.ComparisonResult, k: int = 3) -> list[dict]:
    """The first `k` held-out prompts (lowest prompt ids, so every run shows the same ones) with one text from
    every model (generation seed 0), in Table 1's order: what the numbers look like as headlines."""
    first = generations[generations["seed"] == generations["seed"].min()]
    out = []
    for pid in sorted(first["prompt_id"].unique())[:k]:
        rows = first[first["prompt_id"] == pid]
        texts = dict(zip(rows["model"], rows["text"]))
        out.append({"prompt_id": int(pid), "context": str(rows["context"].iloc[0]),
                    "texts": {m.label: texts.get(name, "") for name, m in result.models.items()}})
    return out


def samples_markdown(samples: list[dict]) -> list[str]:
    """The fixed prompts' generations as markdown: the context, then one line per model."""
    lines = []
    for sample in samples:
        lines += ["", f"**Prompt {sample['prompt_id']}** — {sample['context'][:300]}", "",
                  "| model | generated headline |", "|---|---|"]
        lines += [f"| {label} | {text.replace('|', '/') or '(empty)'} |" for label, text in sample["texts"].items()]
    return lines


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
        if info.get("samples"):
            lines += ["", "### Three held-out prompts, one headline from every model"] + samples_markdown(info["samples"])
    md_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return md_path, json_path


def _r(value, digits: int = 4):
    return None if value is None else round(float(value), digits)


def _f(value) -> str:
    return "—" if value is None else f"{value:.3f}"
