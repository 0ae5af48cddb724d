#!/usr/bin/env python
"""How honest the Train page's ETA is: sample running jobs' status.json (the ETA the page shows) every few
seconds until they end, then compare, at the first sample of each stage, the predicted total duration (elapsed +
ETA) with the real one.

    python bench/eta_check.py watch RUNS_DIR --out /tmp/eta.tsv      # while a job (or a reproduction) runs
    python bench/eta_check.py report /tmp/eta.tsv RUNS_DIR             # after: one markdown table per run

The issue's target: within ±30% of the real duration once the first stage has finished.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import datetime
from pathlib import Path


def watch(runs_dir: Path, out: Path, every: float = 30.0, idle_stop: float = 600.0) -> None:
    """Append (unix time, run, state, stage, progress, eta_s) for every run folder's status.json until no run has
    been active for `idle_stop` seconds."""
    last_active = time.time()
    with out.open("a", encoding="utf-8") as sink:
        while time.time() - last_active < idle_stop:
            for status_file in sorted(runs_dir.glob("*/status.json")):
                try:
                    status = json.loads(status_file.read_text())
                except (OSError, ValueError):
                    continue  # being rewritten: the next sample reads it
                if status.get("state") in ("queued", "running"):
                    last_active = time.time()
                sink.write("\t".join(str(v) for v in (int(time.time()), status_file.parent.name, status.get("state"),
                                                      status.get("stage"), status.get("progress"),
                                                      status.get("eta_s"))) + "\n")
            sink.flush()
            time.sleep(every)


def report(samples: Path, runs_dir: Path) -> str:
    """Markdown: per run, at the first sample of each stage, elapsed, predicted total and its error."""
    rows = [line.split() for line in samples.read_text().splitlines() if line.strip()]
    lines = []
    for run in sorted({r[1] for r in rows}):
        status = json.loads((runs_dir / run / "status.json").read_text())
        start = datetime.fromisoformat(status["started_at"]).timestamp()
        end = datetime.fromisoformat(status["ended_at"]).timestamp()
        lines += [f"### Run `{run}`: {end - start:.0f} s in all", "",
                  "| first sample in stage | elapsed s | predicted total s | error |", "|---|---:|---:|---:|"]
        seen = set()
        for t, _, _, stage, _, eta in (r for r in rows if r[1] == run):
            if stage in seen or eta == "None":
                continue
            seen.add(stage)
            elapsed = int(t) - start
            predicted = elapsed + float(eta)
            lines.append(f"| {stage} | {elapsed:.0f} | {predicted:.0f} | {predicted / (end - start) - 1:+.1%} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    w = sub.add_parser("watch")
    w.add_argument("runs_dir", type=Path)
    w.add_argument("--out", type=Path, required=True)
    w.add_argument("--every", type=float, default=30.0)
    r = sub.add_parser("report")
    r.add_argument("samples", type=Path)
    r.add_argument("runs_dir", type=Path)
    args = parser.parse_args()
    if args.command == "watch":
        watch(args.runs_dir, args.out, args.every)
    else:
        print(report(args.samples, args.runs_dir))


if __name__ == "__main__":
    main()
