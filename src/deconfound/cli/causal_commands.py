"""Commands of the Diagnostics and Deconfound steps: diagnose, estimate."""

from __future__ import annotations

from .common import emit, open_store


def cmd_diagnose(args) -> None:
    """Every diagnostic of a tagged table."""
    from ..causal import DiagnosticsConfig, diagnose
    config = DiagnosticsConfig(embeddings=args.embeddings, marker_rows=args.marker_rows,
                               min_support=args.min_support)
    report = diagnose(open_store(args), args.table, config, scores=args.score)
    emit(args, report.to_dict(), report.summary(top=args.top))


def cmd_estimate(args) -> None:
    """Estimate the confounder effect; optionally write the corrected outcome."""
    from ..causal import EstimatorConfig, estimate, write_deconfounded_column
    store = open_store(args)
    config = EstimatorConfig(time_effects=not args.no_time_effects, embeddings=args.embeddings, folds=args.folds)
    result = estimate(store, args.table, args.method, config)
    payload, text = result.to_dict(), result.summary()
    if args.write_column:
        meta = write_deconfounded_column(store, args.table, result, name=args.write_column, replace=args.replace)
        payload["written_column"] = {k: v for k, v in meta.items() if k != "estimate"}
        text += (f"\n\nwrote column '{meta['column']}' = {meta['formula']} to '{args.table}' "
                 f"(the original '{result.outcome}' is unchanged)")
    emit(args, payload, text)


def add_parsers(sub, common) -> None:
    """The subcommands of this step (each with --db and --json from `common`)."""
    p = sub.add_parser("diagnose", parents=[common], help="time patterns, spurious markers, entanglement, leakage")
    p.add_argument("--table", required=True)
    p.add_argument("--embeddings", choices=["tfidf", "minilm"], default="tfidf",
                   help="text features for the entanglement check (minilm: slower, cached)")
    p.add_argument("--score", action="append", help="audit this score column for temporal leakage (repeat; "
                                                    "default: the table's derived columns)")
    p.add_argument("--marker-rows", type=int, default=50_000, help="scan a sample of at most this many rows")
    p.add_argument("--min-support", type=float, default=0.005, help="minimum share of rows containing a phrase")
    p.add_argument("--top", type=int, default=10, help="markers listed per group in the text output")
    p.set_defaults(func=cmd_diagnose)

    p = sub.add_parser("estimate", parents=[common], help="estimate the confounder effect (OLS, IV, DML)")
    p.add_argument("--table", required=True)
    p.add_argument("--method", choices=["ols", "iv", "dml"], default="iv", help="estimator (default iv)")
    p.add_argument("--write-column", metavar="NAME", help="write the deconfounded outcome y - h(C) as a new column")
    p.add_argument("--replace", action="store_true", help="replace a deconfounded column of the same name")
    p.add_argument("--no-time-effects", action="store_true", help="leave out weekday/month fixed effects")
    p.add_argument("--embeddings", choices=["tfidf", "minilm"], default="tfidf", help="DML text features")
    p.add_argument("--folds", type=int, default=5, help="DML cross-fitting folds")
    p.set_defaults(func=cmd_estimate)
