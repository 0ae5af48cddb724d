"""`deconfound` command line: the same code paths as the dashboard, headless.

Every command takes `--db PATH` and `--json`. A user error prints one line on stderr and exits 2;
an unexpected error prints one line and the log's path (the traceback goes to the log), exit 1.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import traceback
from pathlib import Path

from . import paths
from .errors import DeconfoundError

EXIT_USER_ERROR = 2
log = logging.getLogger("deconfound")


class UsageError(DeconfoundError):
    """Bad command-line arguments."""


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage and exiting, so errors stay one line."""

    def error(self, message):  # noqa: D401 - argparse API
        raise UsageError(f"{self.prog}: {message} (see --help)")


def _store(args):
    from .store import Store
    return Store(args.db)


def emit(args, payload, text: str) -> None:
    """Print JSON when --json was given, else the human-readable text."""
    if getattr(args, "json", False):
        print(json.dumps(payload, indent=2, default=_json_default))
    else:
        print(text)


def _json_default(obj):
    import numpy as np
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return None if np.isnan(obj) else float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)


# ------------------------------------------------------------------ foundation commands
def cmd_ingest(args) -> None:
    result = _store(args).ingest(args.path, table=args.table, replace=args.replace)
    emit(args, result.__dict__, result.summary())


def cmd_tables(args) -> None:
    store = _store(args)
    rows = [{"table": t, "rows": store.row_count(t), "tagged": store.load_roles(t) is not None}
            for t in store.tables()]
    text = "\n".join(f"{r['table']:30s} {r['rows']:>10,} rows  {'tagged' if r['tagged'] else 'untagged'}"
                     for r in rows) or "no tables yet: `deconfound ingest FILE` or `deconfound simulate`"
    emit(args, rows, text)


def cmd_describe(args) -> None:
    store = _store(args)
    desc = store.describe(args.table)
    roles = store.load_roles(args.table)
    payload = desc.to_dict() | {"roles": roles.to_dict() if roles else None,
                                "derived_columns": store.column_meta(args.table)}
    text = desc.summary() + "\n\nroles:\n" + (roles.summary() if roles else "(untagged)")
    emit(args, payload, text)


def cmd_tag(args) -> None:
    from .roles import Roles
    store = _store(args)
    roles = Roles(text=args.text, context=args.context, outcome=args.outcome, timestamp=args.timestamp,
                  confounders=args.confounder or [], instruments=args.instrument or [],
                  controls=args.control or [], truth=args.truth, experiment=args.experiment, arm=args.arm)
    warnings = store.save_roles(args.table, roles)
    emit(args, {"table": args.table, "roles": roles.to_dict(), "warnings": warnings},
         f"saved roles for '{args.table}':\n{roles.summary()}" + "".join(f"\nwarning: {w}" for w in warnings))


def cmd_drop(args) -> None:
    _store(args).drop(args.table)
    emit(args, {"dropped": args.table}, f"dropped '{args.table}'")


def cmd_simulate(args) -> None:
    from .simulate import SimulationConfig, simulate
    frame = simulate(SimulationConfig(scenario=args.scenario, n=args.n, seed=args.seed))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() in (".parquet", ".pq"):
        frame.to_parquet(out, index=False)
    else:
        frame.to_csv(out, index=False)
    emit(args, {"out": str(out), "rows": len(frame), "scenario": args.scenario, "seed": args.seed},
         f"wrote {len(frame):,} rows ({args.scenario}, seed {args.seed}) to {out}")


def cmd_demo(args) -> None:
    from .demo import load_demo
    tables = load_demo(_store(args), replace=args.replace)
    emit(args, {"tables": tables}, "demo tables ready (tagged): " + ", ".join(tables))


# ------------------------------------------------------------------ parser
def build_parser() -> argparse.ArgumentParser:
    """All subcommands; each has --db and --json."""
    common = _Parser(add_help=False)
    common.add_argument("--db", default=None, help="DuckDB file (default: $DECONFOUND_HOME/studio.duckdb)")
    common.add_argument("--json", action="store_true", help="machine-readable output")

    parser = _Parser(prog="deconfound", description="DeconfoundLM Studio: deconfounded fine-tuning on logs")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)

    p = sub.add_parser("ingest", parents=[common], help="load a CSV/TSV/Parquet file into the database")
    p.add_argument("path")
    p.add_argument("--table", help="table name (default: from the file name)")
    p.add_argument("--replace", action="store_true", help="replace a table of the same name")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("tables", parents=[common], help="list tables")
    p.set_defaults(func=cmd_tables)

    p = sub.add_parser("describe", parents=[common], help="row count, column types, nulls, roles")
    p.add_argument("table")
    p.set_defaults(func=cmd_describe)

    p = sub.add_parser("drop", parents=[common], help="delete a table")
    p.add_argument("table")
    p.set_defaults(func=cmd_drop)

    p = sub.add_parser("tag", parents=[common], help="tag column roles of a table")
    p.add_argument("--table", required=True)
    p.add_argument("--text", required=True, help="the generated text column")
    p.add_argument("--context", required=True, help="the prompt/context column")
    p.add_argument("--outcome", required=True, help="the numeric outcome column")
    p.add_argument("--timestamp")
    p.add_argument("--confounder", action="append", help="repeat for several")
    p.add_argument("--instrument", action="append", help="repeat for several")
    p.add_argument("--control", action="append", help="repeat for several")
    p.add_argument("--truth", help="ground-truth quality (simulation only)")
    p.add_argument("--experiment", help="A/B experiment id column")
    p.add_argument("--arm", help="A/B arm column")
    p.set_defaults(func=cmd_tag)

    p = sub.add_parser("simulate", parents=[common], help="write the built-in simulation (known ground truth)")
    p.add_argument("--scenario", choices=["orthogonal", "entangled"], default="entangled")
    p.add_argument("--n", type=int, default=20000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output .csv or .parquet")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("demo", parents=[common], help="load and tag the shipped demo tables")
    p.add_argument("--replace", action="store_true", help="reload them even if present")
    p.set_defaults(func=cmd_demo)

    return parser


def _setup_logging() -> Path:
    log_path = paths.home() / "cli.log"
    if not any(getattr(h, "baseFilename", None) == str(log_path) for h in log.handlers):
        handler = logging.FileHandler(log_path)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        log.addHandler(handler)
    log.setLevel(logging.INFO)
    return log_path


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `deconfound` console script; returns the exit code."""
    log_path = _setup_logging()
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return EXIT_USER_ERROR
        args.func(args)
        return 0
    except DeconfoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug, not the user's fault: one line here, the traceback in the log
        log.error("unexpected error\n%s", traceback.format_exc())
        print(f"error: unexpected {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''} "
              f"(details in {log_path})", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
