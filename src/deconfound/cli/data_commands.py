"""Commands of the Data and Roles steps: ingest, tables, describe, drop, tag, plus the simulation and demo."""

from __future__ import annotations

from pathlib import Path

from .common import emit, open_store


def cmd_ingest(args) -> None:
    """Load a CSV/TSV/Parquet file into a new table."""
    result = open_store(args).ingest(args.path, table=args.table, replace=args.replace,
                                     skip_bad_rows=args.skip_bad_rows)
    emit(args, result.to_dict(), result.summary())


def cmd_tables(args) -> None:
    """List the tables with their row counts."""
    store = open_store(args)
    rows = [{"table": t, "rows": store.row_count(t), "tagged": store.load_roles(t) is not None}
            for t in store.tables()]
    text = "\n".join(f"{r['table']:30s} {r['rows']:>10,} rows  {'tagged' if r['tagged'] else 'untagged'}"
                     for r in rows) or "no tables yet: `deconfound ingest FILE` or `deconfound simulate`"
    emit(args, rows, text)


def cmd_describe(args) -> None:
    """Row count, column types, nulls, roles and derived columns of a table."""
    store = open_store(args)
    desc = store.describe(args.table)
    roles = store.load_roles(args.table)
    payload = desc.to_dict() | {"roles": roles.to_dict() if roles else None,
                                "derived_columns": store.column_meta(args.table)}
    text = desc.summary() + "\n\nroles:\n" + (roles.summary() if roles else "(untagged)")
    if args.rejects:
        rejects = store.rejects(args.table, limit=args.limit)
        payload["rejects"] = rejects.to_dict(orient="records")
        text += (f"\n\nrejected lines ({desc.rows_rejected:,}; line, error, raw text):\n" + "\n".join(
            f"{r.line:>8d}  {r.error}: {str(r.raw_line)[:100]!r}" for r in rejects.itertuples())
            if len(rejects) else "\n\nno lines were rejected when this table was loaded")
    emit(args, payload, text)


def cmd_tag(args) -> None:
    """Save the column roles of a table."""
    from ..data import DEFAULT_CALENDAR, Roles, prompt_columns, prompt_description
    store = open_store(args)
    roles = Roles(text=args.text, context=args.context, outcome=args.outcome, timestamp=args.timestamp,
                  confounders=args.confounder or [], instruments=args.instrument or [],
                  controls=args.control or [], truth=args.truth, experiment=args.experiment, arm=args.arm,
                  weight=args.weight, prompt_template=args.prompt_template, outcome_scale=args.outcome_scale,
                  calendar=args.calendar or DEFAULT_CALENDAR)
    warnings = store.save_roles(args.table, roles)
    emit(args, {"table": args.table, "roles": roles.to_dict(), "warnings": warnings,
                "prompt_columns": prompt_columns(roles), "prompt": prompt_description(roles)},
         f"saved roles for '{args.table}':\n{roles.summary()}" + "".join(f"\nwarning: {w}" for w in warnings))


def cmd_drop(args) -> None:
    """Delete a table with its roles."""
    open_store(args).drop(args.table)
    emit(args, {"dropped": args.table}, f"dropped '{args.table}'")


def cmd_simulate(args) -> None:
    """Write the built-in simulation to a file."""
    from ..sim import SimulationConfig, simulate
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
    """Load and tag the demo tables."""
    from ..sim import load_demo
    tables = load_demo(open_store(args), replace=args.replace)
    emit(args, {"tables": tables}, "demo tables ready (tagged): " + ", ".join(tables))


def add_parsers(sub, common) -> None:
    """The subcommands of this step (each with --db and --json from `common`)."""
    p = sub.add_parser("ingest", parents=[common], help="load a CSV/TSV/Parquet file into the database")
    p.add_argument("path")
    p.add_argument("--table", help="table name (default: from the file name)")
    p.add_argument("--replace", action="store_true", help="replace a table of the same name")
    p.add_argument("--skip-bad-rows", action="store_true",
                   help="load the rows that parse and keep every line that does not (with its line number and raw "
                        "text) in the table's rejects table (`describe TABLE --rejects`)")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("tables", parents=[common], help="list tables")
    p.set_defaults(func=cmd_tables)

    p = sub.add_parser("describe", parents=[common], help="row count, column types, nulls, roles, rejected lines")
    p.add_argument("table")
    p.add_argument("--rejects", action="store_true", help="also list the lines rejected at ingest")
    p.add_argument("--limit", type=int, default=100, help="rejected lines listed with --rejects (default 100)")
    p.set_defaults(func=cmd_describe)

    p = sub.add_parser("drop", parents=[common], help="delete a table")
    p.add_argument("table")
    p.set_defaults(func=cmd_drop)

    p = sub.add_parser("tag", parents=[common], help="tag column roles of a table")
    p.add_argument("--table", required=True)
    p.add_argument("--text", required=True, help="the generated text column")
    p.add_argument("--context", help="the prompt/context column (optional: without it the prompt shows "
                                      "--prompt-template's columns, or the instruction alone)")
    p.add_argument("--outcome", required=True, help="the numeric outcome column")
    p.add_argument("--timestamp")
    p.add_argument("--confounder", action="append", help="repeat for several")
    p.add_argument("--instrument", action="append", help="repeat for several")
    p.add_argument("--control", action="append", help="repeat for several")
    p.add_argument("--truth", help="ground-truth quality (simulation only)")
    p.add_argument("--experiment", help="A/B experiment id column")
    p.add_argument("--arm", help="A/B arm column")
    p.add_argument("--prompt-template", metavar="TEXT",
                   help="what the training prompt shows, e.g. 'News posted at {created_at}' ({column} = the row's "
                        "value; default: the context column)")
    p.add_argument("--weight", help="impressions behind a rate outcome: estimates weight each row by it")
    p.add_argument("--outcome-scale", choices=["raw", "log1p"], default="raw",
                   help="log1p: estimate effects on log(1 + outcome) (heavy-tailed counts); the corrected outcome "
                        "comes back on the outcome's scale")
    p.add_argument("--calendar", help="a timestamp's calendar effect: parts of weekday, hour, month, month_of_year, "
                                      "year joined by '+' (default weekday+month); tag the timestamp as a "
                                      "--confounder to remove its effect")
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
