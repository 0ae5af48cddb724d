"""Write the audits' demo tables as CSV files: demo_qa.csv, demo_ab.csv, demo_ab_trend.csv.

    .venv/bin/python scripts/make_audit_data.py --out audit_data     # the seeds of deconfound.sim.AUDIT_DEMOS

The tables are not shipped: `deconfound audit demo` (or the Audits page's button) generates the same rows in a
second, from the same seeds. This script is for looking at them elsewhere or loading them into another tool.

- demo_qa: 6,000 questions about academic life with 2-4 answers each (seed 11, `sim.qa_demo`): the weekday an
  answer was posted moves its score (Mon +1.5 … Sun −0.75 points) but not its quality (column `quality`).
- demo_ab: 6,000 A/B tests with 2-4 headlines each (seed 3, `sim.ab_demo`, a seasonal monthly traffic
  confounder): test_id, package_id, headline, impressions, clicks, ctr, created_at, topic, true_effect.
- demo_ab_trend: the same shape with seed 8 and a declining trend with three spikes as the confounder.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))  # run from a checkout without installing

from deconfound.sim import AUDIT_DEMOS, audit_demo_frame  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("audit_data"), help="output folder (default ./audit_data)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, (config, _) in AUDIT_DEMOS.items():
        start = time.perf_counter()
        path = args.out / f"{name}.csv"
        audit_demo_frame(name).to_csv(path, index=False, float_format="%.6g", date_format="%Y-%m-%d %H:%M")
        print(f"{path}: seed {config.seed}, {path.stat().st_size / 1e6:.1f} MB in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
