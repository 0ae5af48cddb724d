"""Benchmark: the paper's §3 audits on the studio's demo tables (Table 3, Fig. 3, Fig. 4–5).

    python bench/audits.py                                   # A/B + λ audits (MiniLM) and the smoke marker audit
    python bench/audits.py --marker-preset cpu               # the marker audit on SmolLM2-135M + LoRA (long)
    python bench/audits.py --skip-marker                     # A/B and λ audits only (minutes once MiniLM is cached)
    python bench/audits.py --marker-only --marker-set sft.max_steps=20   # a short marker audit, to check the path

A/B audit (§3.2, App. C, Fig. 3): on `demo_ab` (seasonal traffic confounder, seed 3) and `demo_ab_trend` (trend +
spikes, seed 8), the observational head (ridge on one variant per training test) against the experimental head
(pairwise logistic on the significant training pairs), each with λ chosen on its validation data, judged by ROC AUC
on the held-out significant pairs; the true effects' AUC is the ceiling. λ audit (Fig. 4): per λ the training and
validation MSE, held-out pair AUC and monthly leakage; the held-out AUC of the validation-optimal λ, of the
no-experiment rule's λ and of the test-optimal λ, over several split seeds. Marker audit (§3.1, App. B, Table 3):
on `demo_qa` (weekday effect on the score, seed 11) with "Happy Monday!" on Monday answers: the share of
generations with "Happy" / "Monday" for base, SFT, DPO on the raw score and DPO on the deconfounded score, mean
and standard error over training × generation seeds, Welch t-tests. Writes bench/results/audits.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
for _name in ("HF_DATASETS_DISABLE_PROGRESS_BARS", "HF_HUB_DISABLE_PROGRESS_BARS", "HF_HUB_OFFLINE"):
    os.environ.setdefault(_name, "1")  # the marker audit trains in this process: no progress bars in the log

from deconfound import audits  # noqa: E402
from deconfound.data import Store  # noqa: E402
from deconfound.runs import parse_overrides  # noqa: E402
from deconfound.sim import load_audit_demo  # noqa: E402

AB_TABLES = ("demo_ab", "demo_ab_trend")
PAPER = {"table3": {"base": (1.13, 0.07), "sft": (13.69, 9.05), "dpo": (21.22, 11.78)},
         "fig3": {"experimental": 0.82, "observational": 0.74}, "fig4": {"validation_lambda": 18_000,
                                                                        "test_lambda": 50_000}}


def machine() -> dict:
    """Where and on what the numbers were measured."""
    import sklearn
    import torch
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "src", "bench"], cwd=ROOT, capture_output=True,
                                    text=True).stdout.strip())
        commit += " (uncommitted changes)" if dirty else ""
    except (subprocess.CalledProcessError, FileNotFoundError):
        commit = "uncommitted"
    return {"platform": platform.platform(), "cpu_count": os.cpu_count(),
            "load_average": [round(v, 2) for v in os.getloadavg()], "python": platform.python_version(),
            "torch": torch.__version__, "scikit_learn": sklearn.__version__, "commit": commit}


def ab_and_lambda(store: Store, embeddings: str, seeds: list[int]) -> dict:
    """The A/B audit (seed 0) and the λ audit (every seed) on both A/B demo tables."""
    out = {}
    for table in AB_TABLES:
        started = time.perf_counter()
        config = audits.ABAuditConfig(embeddings=embeddings, seed=seeds[0])
        prep = audits.prepare_ab(store, table, config)
        embed_s = time.perf_counter() - started
        ab = audits.ab_audit(store, table, config, prepared=prep)
        rows = []
        for seed in seeds:
            config = audits.ABAuditConfig(embeddings=embeddings, seed=seed)
            prepared = prep if seed == seeds[0] else audits.prepare_ab(store, table, config)
            lam = audits.lambda_audit(store, table, config, prepared=prepared)
            rows.append({"seed": seed, **{f"lambda_{k}": v for k, v in lam.picks.items()},
                         **{f"auc_{k}": lam.at(v, "test_auc") for k, v in lam.picks.items()},
                         **{f"leakage_{k}": lam.at(v, "leakage") for k, v in lam.picks.items()},
                         "rule_reason": lam.rule_reason})
            if seed == seeds[0]:
                curve = lam.curve
        seeds_frame = pd.DataFrame(rows)
        diff = seeds_frame["auc_rule"] - seeds_frame["auc_validation"]
        out[table] = {"ab": ab.to_dict(), "lambda_curve_seed0": curve.to_dict(orient="records"),
                      "lambda_seeds": seeds_frame.to_dict(orient="records"),
                      "rule_minus_validation_auc": {"mean": float(diff.mean()), "min": float(diff.min()),
                                                    "max": float(diff.max()), "wins": int((diff > 0).sum()),
                                                    "ties": int((diff == 0).sum()), "losses": int((diff < 0).sum())},
                      "seconds": {"prepare_and_embed": round(embed_s, 1),
                                  "total": round(time.perf_counter() - started, 1)}}
        print(f"{table}: {ab.verdict()}\n  rule − validation AUC over seeds: {diff.round(4).tolist()}", flush=True)
    return out


def marker(store: Store, preset: str, overrides: dict) -> dict:
    """The marker audit on demo_qa, run in this process (the same stages the worker runs)."""
    from deconfound.audits.marker_run import run_marker_audit
    config = audits.marker_config(preset, "demo_qa", store, "weekday=Mon", "Happy Monday!", overrides=overrides)
    job = audits.create_audit_job(config, store)
    started = time.perf_counter()
    run_marker_audit(job.run_dir)
    result = audits.marker_result(job.run_dir)
    stages = {s["stage"]: s.get("seconds") for s in job.folder.stages()}
    print(result.summary(), flush=True)
    return {"result": result.to_dict(), "seconds": round(time.perf_counter() - started, 1), "stages": stages,
            "run_dir": str(job.run_dir), "preset": preset, "overrides": overrides, "model": config.model.name}


def fmt(value, digits: int = 3) -> str:
    return "—" if value is None or (isinstance(value, float) and not np.isfinite(value)) else f"{value:.{digits}f}"


def report(payload: dict) -> str:
    m = payload["machine"]
    lines = ["# Audits from the paper's §3 on the demo tables", "",
             f"Measured {payload['date']} on {m['platform']}, {m['cpu_count']} CPUs (load average at the end "
             f"{m['load_average']}), torch {m['torch']}, scikit-learn {m['scikit_learn']}; commit {m['commit']}. "
             f"Command: `{payload['command']}`.", ""]
    if payload.get("ab"):
        lines += ["## A/B-validated reward (Fig. 3)", "",
                  "| table | significant / all pairs | train / valid / test pairs | observational AUC (λ) | "
                  "experimental AUC (λ) | true effects AUC | seconds (embed / all) |", "|---|---|---|---|---|---|---|"]
        for table, r in payload["ab"].items():
            ab, c = r["ab"], r["ab"]["counts"]
            lines.append(f"| {table} | {c['significant_pairs']:,} / {c['pairs']:,} | {c['train_pairs']:,} / "
                         f"{c['valid_pairs']:,} / {c['test_pairs']:,} | {fmt(ab['observational']['test']['auc'])} "
                         f"({ab['observational']['lambda']:.3g}) | {fmt(ab['experimental']['test']['auc'])} "
                         f"({ab['experimental']['lambda']:.3g}) | {fmt((ab['truth'] or {}).get('auc'))} | "
                         f"{r['seconds']['prepare_and_embed']} / {r['seconds']['total']} |")
        lines += ["", "Seconds include MiniLM encoding only for headlines not yet in the embedding cache "
                  "($DECONFOUND_HOME/cache/embeddings); a second run reads them from there.", "",
                  f"Paper (Upworthy, Pythia-12B): experimental {PAPER['fig3']['experimental']}, observational "
                  f"{PAPER['fig3']['observational']}.", "",
                  "## λ: validation-only vs the no-experiment rule vs test-optimal (Fig. 4)", "",
                  "The rule (fixed before it was run on these tables): the strongest λ within one standard error of "
                  "the best validation MSE whose monthly leakage |r| is below 0.5, else the strongest within one "
                  "standard error.", "",
                  "| table | seed | λ validation → AUC | λ rule → AUC | λ test-optimal → AUC | leakage at validation / "
                  "rule λ |", "|---|---|---|---|---|---|"]
        for table, r in payload["ab"].items():
            for row in r["lambda_seeds"]:
                lines.append(f"| {table} | {row['seed']} | {row['lambda_validation']:.3g} → "
                             f"{fmt(row['auc_validation'])} | {row['lambda_rule']:.3g} → {fmt(row['auc_rule'])} | "
                             f"{row['lambda_test']:.3g} → {fmt(row['auc_test'])} | "
                             f"{fmt(row['leakage_validation'], 2)} / {fmt(row['leakage_rule'], 2)} |")
        lines.append("")
        for table, r in payload["ab"].items():
            d = r["rule_minus_validation_auc"]
            verdict = "beats" if d["mean"] > 0 and d["losses"] == 0 else "does **not** beat"
            seeds = pd.DataFrame(r["lambda_seeds"])
            same = int(np.isclose(seeds["lambda_validation"], seeds["lambda_test"]).sum())
            gap = float((seeds["auc_test"] - seeds["auc_validation"]).mean())
            lines.append(f"- {table}: the rule {verdict} validation-only (AUC difference mean {d['mean']:+.4f}, "
                         f"range {d['min']:+.4f} … {d['max']:+.4f}; {d['wins']} better, {d['ties']} equal, "
                         f"{d['losses']} worse over {len(seeds)} split seeds). Validation picks the test-optimal λ "
                         f"in {same} of {len(seeds)} seeds and trails the test optimum by {gap:.4f} AUC on average"
                         + ("; there is little gap to close, and the rule's stronger λ overshoots it."
                            if same * 2 >= len(seeds) else "."))
        lines.append("")
    if payload.get("marker"):
        mk = payload["marker"]
        res = mk["result"]
        lines += [f"## Marker amplification (Table 3) — preset {mk['preset']}, model {mk['model']}", ""]
        if mk["preset"] == "smoke":
            lines += ["The smoke preset: a tiny model built from a config and trained from scratch on the demo log. "
                      "The real-model path (SmolLM2-135M-Instruct with LoRA) is run with "
                      "`python bench/audits.py --marker-only --marker-preset cpu --out bench/results/audits_smollm2`.",
                      ""]
        lines += [res["verdict"], "", "| model | generations per run | runs | " +
                  " | ".join(f"with “{w}” % (se)" for w in res["words"]) + " |",
                  "|---|---|---|" + "---|" * len(res["words"])]
        for row in res["table"]:
            lines.append(f"| {row['label']} | {row['generations_per_run']} | {row['runs']} | " + " | ".join(
                f"{fmt(row[f'{w} %'], 2)} ({fmt(row[f'{w} se'], 2)})" for w in res["words"]) + " |")
        p = PAPER["table3"]
        lines += ["", f"Paper (Academia Stack Exchange, SmolLM2-360M, 25 runs): base {p['base'][0]} / {p['base'][1]}, "
                  f"SFT {p['sft'][0]} / {p['sft'][1]}, DPO {p['dpo'][0]} / {p['dpo'][1]} (% with Happy / Monday); "
                  "the deconfounded arm is not in the paper.", "",
                  "| test | word | difference (points) | p |", "|---|---|---|---|"]
        for t in res["tests"]:
            lines.append(f"| {t['a']} → {t['b']} | {t['word']} | {100 * t['difference']:+.2f} | {t['pvalue']:.2g} |")
        lines += ["", "Pairs: " + "; ".join(f"{arm}: {v['pairs']:,} pairs, one marked text in {v['one_marked']:,}, "
                                             f"marked chosen {v['marked_chosen']:,} / rejected {v['marked_rejected']:,}"
                                             for arm, v in res["pairs"].items()),
                  f"Seconds: {mk['seconds']} in all; per stage {mk['stages']}.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--embeddings", default="minilm", choices=["minilm", "tfidf"])
    parser.add_argument("--seeds", default="0,1,2,3,4", help="split seeds of the λ comparison")
    parser.add_argument("--marker-preset", default="smoke", choices=["smoke", "cpu", "gpu"])
    parser.add_argument("--marker-set", action="append", default=[], metavar="KEY=VALUE",
                        help="marker audit setting, e.g. train_seeds=0,1,2 or sft.max_steps=60")
    parser.add_argument("--skip-marker", action="store_true")
    parser.add_argument("--marker-only", action="store_true")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "audits"), help="path without suffix")
    parser.add_argument("--from-json", action="store_true", help="only re-render OUT.md from an existing OUT.json")
    args = parser.parse_args(argv)
    if args.from_json:
        out = Path(args.out)
        out.with_suffix(".md").write_text(report(json.loads(out.with_suffix(".json").read_text())))
        return
    store = Store(Path(os.environ.get("DECONFOUND_DB") or Path(audits.audits_dir().parent / "bench_audits.duckdb")))
    load_audit_demo(store)
    payload = {"date": time.strftime("%Y-%m-%d"),
               "command": " ".join(["python bench/audits.py", *(argv if argv is not None else sys.argv[1:])]),
               "embeddings": args.embeddings}
    if not args.marker_only:
        payload["ab"] = ab_and_lambda(store, args.embeddings, [int(s) for s in args.seeds.split(",")])
    if not args.skip_marker:
        overrides = {k: json.loads(v) if v[:1] in "[{0123456789-." and "," not in v else v
                     for k, v in parse_overrides(args.marker_set).items()}
        payload["marker"] = marker(store, args.marker_preset, overrides)
    payload["machine"] = machine()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(payload, indent=2, default=str))
    out.with_suffix(".md").write_text(report(payload))
    print(f"wrote {out.with_suffix('.md')} and {out.with_suffix('.json')}")


if __name__ == "__main__":
    main()
