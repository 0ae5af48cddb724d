"""Benchmark: the data layer at 1M rows — `Store.ingest` beside a bare DuckDB `read_csv` into a table on disk (the
ratio in one run, the two interleaved so they share the machine's load), `describe` and `preview`, the messy-file
path (`--skip-bad-rows`), and how long each dashboard page takes to render (AppTest) on a 1M-row tagged table.

    python bench/bench_data.py                         # 1M rows, 5 repeats (~5 min on 2 quiet cores)
    python bench/bench_data.py --rows 20000 --repeats 2 --out /tmp/bench_data   # a quick check that it works

Goals (issue 11): ingest within 1.2× of the bare read; describe and preview under 1 s; every page under 1 s.
Results go to bench/results/data.json and data.md with the machine, commit and load average.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from bench_causal import build_csv, machine_info  # noqa: E402

PAGES = ["app.py", "pages/1_Data.py", "pages/2_Roles.py", "pages/3_Diagnostics.py", "pages/4_Deconfound.py",
         "pages/5_Train.py", "pages/6_Compare.py"]
GOALS = {"ingest_ratio": 1.2, "describe_s": 1.0, "preview_s": 1.0, "page_s": 1.0}


def remove_db(path: Path) -> None:
    for suffix in ("", ".wal"):
        Path(str(path) + suffix).unlink(missing_ok=True)


def bare_read(csv_path: Path, db: Path) -> float:
    """A bare DuckDB read_csv (its own sniffing) into a table of a database file, closed (checkpointed)."""
    import duckdb
    remove_db(db)
    start = time.perf_counter()
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE t AS SELECT * FROM read_csv(?)", [str(csv_path)])
    con.close()
    return time.perf_counter() - start


def store_ingest(csv_path: Path, db: Path, **kwargs) -> tuple[float, object]:
    """Store.ingest of the same file into a fresh database file (what `deconfound ingest` does)."""
    from deconfound.data import Store
    remove_db(db)
    store = Store(db)
    start = time.perf_counter()
    result = store.ingest(csv_path, table="bench", **kwargs)
    return time.perf_counter() - start, result


def messy_copy(csv_path: Path, every: int) -> Path:
    """The same file with a bare newline inside the text of one record in every `every` (both halves are bad
    lines), as real exports have them."""
    out = csv_path.with_name(csv_path.stem + "_messy.csv")
    if out.exists():
        return out
    with open(csv_path, encoding="utf-8") as src, open(out, "w", encoding="utf-8") as dst:
        header = src.readline()
        dst.write(header)
        text_col = header.rstrip("\n").split(",").index("text")
        for i, line in enumerate(src):
            if i % every == every // 2 and '"' not in line:
                fields = line.rstrip("\n").split(",")
                fields[text_col] = fields[text_col].replace(" ", "\n", 1)
                line = ",".join(fields) + "\n"
            dst.write(line)
    return out


def median(values: list[float]) -> float:
    return round(statistics.median(values), 3)


def time_pages(db: Path, repeats: int) -> dict[str, dict]:
    """Median render time of each page with AppTest against the bench database (a warm-up run first: the first
    run of a page in a process also pays for imports)."""
    from streamlit.testing.v1 import AppTest
    os.environ["DECONFOUND_DB"] = str(db)
    out = {}
    for page in PAGES:
        times, errors = [], []
        for i in range(repeats + 1):
            at = AppTest.from_file(str(ROOT / page), default_timeout=600)
            start = time.perf_counter()
            at.run()
            elapsed = time.perf_counter() - start
            errors = [str(e.value)[:200] for e in at.exception]
            if i:
                times.append(elapsed)
        out[page] = {"median_s": median(times), "runs_s": [round(t, 3) for t in times], "exceptions": errors}
        print(f"  page {page:26s} {out[page]['median_s']:7.3f} s", flush=True)
    return out


def run(rows: int, repeats: int, folder: Path) -> dict:
    from deconfound.data import Store
    from deconfound.sim import DEMO_ROLES
    csv_path = build_csv(rows, "entangled", folder)
    bare, ingest = [], []
    for _ in range(repeats):  # interleaved: both see the same load
        bare.append(bare_read(csv_path, folder / "bare.duckdb"))
        ingest.append(store_ingest(csv_path, folder / "store.duckdb")[0])
        print(f"  bare {bare[-1]:.3f} s   ingest {ingest[-1]:.3f} s", flush=True)
    messy = messy_copy(csv_path, every=max(1000, rows // 10))
    skip_s, skipped = store_ingest(messy, folder / "messy.duckdb", skip_bad_rows=True)
    db = folder / "store.duckdb"
    store = Store(db)
    store.save_roles("bench", DEMO_ROLES)
    describe, preview = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        store.describe("bench")
        describe.append(time.perf_counter() - start)
        start = time.perf_counter()
        store.preview("bench", 50)
        preview.append(time.perf_counter() - start)
    pages = time_pages(db, max(1, repeats // 2))
    report = {
        "rows": rows, "csv_mb": round(csv_path.stat().st_size / 1e6, 1),
        "bare_read_csv_s": {"median": median(bare), "runs": [round(t, 3) for t in bare]},
        "store_ingest_s": {"median": median(ingest), "runs": [round(t, 3) for t in ingest]},
        "ingest_ratio": round(statistics.median(ingest) / statistics.median(bare), 3),
        "ingest_ratio_per_run": [round(i / b, 3) for i, b in zip(ingest, bare)],
        "skip_bad_rows": {"seconds": round(skip_s, 3), "rows": skipped.rows, "rows_rejected": skipped.rows_rejected},
        "describe_s": median(describe), "preview_s": median(preview), "pages": pages,
    }
    report["goals"] = {"ingest_ratio": report["ingest_ratio"] <= GOALS["ingest_ratio"],
                       "describe_s": report["describe_s"] < GOALS["describe_s"],
                       "preview_s": report["preview_s"] < GOALS["preview_s"],
                       "pages": all(p["median_s"] < GOALS["page_s"] and not p["exceptions"] for p in pages.values())}
    return report


def write_markdown(report: dict, path: Path) -> None:
    m = report["machine"]
    lines = ["# Data layer benchmark", "",
             f"Machine: {m['nproc']} cores, {m['cpu']}; Python {m['python']}, DuckDB {m['duckdb']}; commit "
             f"`{m['commit']}`; {m['date']}; load average at start {m['load_average_at_start']}.",
             f"{report['rows']:,} rows ({report['csv_mb']} MB CSV), medians of {report['repeats']} runs. Reproduce: "
             "`python bench/bench_data.py`.", "",
             "| measure | seconds | goal | met |", "|---|---:|---|---|",
             f"| bare DuckDB read_csv into a table on disk | {report['bare_read_csv_s']['median']:.3f} | | |",
             f"| Store.ingest | {report['store_ingest_s']['median']:.3f} | | |",
             f"| **ingest ratio** (per run: {', '.join(map(str, report['ingest_ratio_per_run']))}) | "
             f"{report['ingest_ratio']:.2f}× | ≤ 1.2× | {'yes' if report['goals']['ingest_ratio'] else 'no'} |",
             f"| describe | {report['describe_s']:.3f} | < 1 s | {'yes' if report['goals']['describe_s'] else 'no'} |",
             f"| preview (50 rows) | {report['preview_s']:.3f} | < 1 s | {'yes' if report['goals']['preview_s'] else 'no'} |",
             f"| ingest --skip-bad-rows, {report['skip_bad_rows']['rows_rejected']} bad lines | "
             f"{report['skip_bad_rows']['seconds']:.3f} | | |"]
    for page, t in report["pages"].items():
        ok = t["median_s"] < GOALS["page_s"] and not t["exceptions"]
        lines.append(f"| page {page} (AppTest) | {t['median_s']:.3f} | < 1 s | {'yes' if ok else 'no'} |")
    lines += ["", "Notes:",
              "- Both reads write a DuckDB file and close it (checkpoint); they alternate, so they share the load.",
              "- Store.ingest adds: encoding/delimiter sniffing of the first 64 KB, an explicit strict dialect, a "
              "staging table, a check that the columns are the header's, and an atomic swap.",
              "- Pages: AppTest's `run()` of each page (after one warm-up run in the same process) against the "
              "tagged table; the Compare page has no finished run here."]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--data", default=str(Path(tempfile.gettempdir()) / "deconfound_bench_data"))
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "data"),
                        help="output path without extension (.json and .md are written)")
    args = parser.parse_args()
    folder = Path(args.data)
    folder.mkdir(parents=True, exist_ok=True)
    os.environ["DECONFOUND_HOME"] = str(folder / "home")
    report = {"repeats": args.repeats, "machine": machine_info()} | run(args.rows, args.repeats, folder)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    write_markdown(report, out.with_suffix(".md"))
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
