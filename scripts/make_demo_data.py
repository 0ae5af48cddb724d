"""Write the shipped demo data sets, data/demo_entangled.csv and data/demo_orthogonal.csv.

    .venv/bin/python scripts/make_demo_data.py            # n=20000, seed=7 (the shipped files)

Both files come from ``deconfound.simulate.simulate`` with n=20000 and seed=7, so they hold the same
stories (texts, dates, teams, splits); only ``popularity`` and ``outcome`` differ by scenario, as in
the paper's Table 1. Regenerating gives byte-identical files. With pandas, read them with
``keep_default_na=False`` so that team_region "None" and an empty team stay strings.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))  # run from a checkout without installing

from deconfound.sim import SCENARIOS, SimulationConfig, simulate  # noqa: E402

N, SEED = 20_000, 7


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=N, help="stories per file (default 20000)")
    parser.add_argument("--seed", type=int, default=SEED, help="random seed (default 7)")
    parser.add_argument("--out", type=Path, default=ROOT / "data", help="output folder")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for scenario in SCENARIOS:
        start = time.perf_counter()
        df = simulate(SimulationConfig(scenario=scenario, n=args.n, seed=args.seed))
        path = args.out / f"demo_{scenario}.csv"
        # 6 significant digits keep the files small; quality scores have at most 5 decimals.
        df.to_csv(path, index=False, float_format="%.6g", date_format="%Y-%m-%d %H:%M")
        print(f"{path}: {len(df)} rows, {path.stat().st_size / 1e6:.1f} MB "
              f"in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
