"""Commands of the Diagnostics and Deconfound steps: diagnose, estimate, refute."""

from __future__ import annotations

from .common import emit, open_store


def cmd_diagnose(args) -> None:
    """Every diagnostic of a tagged table."""
    from ..causal import DiagnosticsConfig, diagnose
    config = DiagnosticsConfig(embeddings=args.embeddings, marker_rows=args.marker_rows,
                               min_support=args.min_support)
    report = diagnose(open_store(args), args.table, config, scores=args.score)
    emit(args, report.to_dict(), report.summary(top=args.top))


def _config(args):
    """The estimator options the estimate and refute commands share."""
    from ..causal import EstimatorConfig
    return EstimatorConfig(time_effects=not args.no_time_effects, embeddings=args.embeddings, folds=args.folds,
                           cov_type=args.cov_type, cluster=args.cluster,
                           gamma_range=tuple(args.gamma_range) if args.gamma_range else None)


def cmd_estimate(args) -> None:
    """Estimate the confounder effect (with its robust sets, sensitivity, refutations and reward band);
    optionally write the corrected outcome."""
    from ..causal import estimate, write_deconfounded_column
    store = open_store(args)
    result = estimate(store, args.table, args.method, _config(args), refutations=not args.no_refute)
    if not args.no_reward_band:
        from ..rewards import reward_band_from_store
        result.reward_band = reward_band_from_store(store, args.table, result, rows=args.band_rows)
    payload, text = result.to_dict(), result.summary()
    if args.write_column:
        meta = write_deconfounded_column(store, args.table, result, name=args.write_column, replace=args.replace)
        payload["written_column"] = {k: v for k, v in meta.items() if k != "estimate"}
        text += (f"\n\nwrote column '{meta['column']}' = {meta['formula']} to '{args.table}' "
                 f"(the original '{result.outcome}' is unchanged)")
    emit(args, payload, text)


def cmd_refute(args) -> None:
    """Run the refutations of an estimate alone."""
    from ..causal import estimator_choices, refutations_from_store
    store = open_store(args)
    method = args.method or estimator_choices(store.require_roles(args.table))[1]
    out = refutations_from_store(store, args.table, method, _config(args))
    lines = [f"refutations of the {method} estimate on '{args.table}': {out['verdict']} ({out['seconds']} s)"]
    lines += [f"  {k}: {v.get('verdict') or v.get('reason')}" for k, v in out["checks"].items()]
    emit(args, out, "\n".join(lines))


def _estimator_options(p) -> None:
    p.add_argument("--no-time-effects", action="store_true", help="leave out weekday/month fixed effects")
    p.add_argument("--embeddings", choices=["tfidf", "minilm"], default="tfidf", help="DML text features")
    p.add_argument("--folds", type=int, default=5, help="DML cross-fitting folds")
    p.add_argument("--cov-type", choices=["robust", "unadjusted", "clustered"], default="robust",
                   help="standard errors (default robust; clustered needs --cluster)")
    p.add_argument("--cluster", metavar="COLUMN", help="cluster the standard errors by this column (e.g. the "
                                                        "context, an experiment id or the month)")
    p.add_argument("--gamma-range", type=float, nargs=2, metavar=("LOW", "HIGH"),
                   help="IV sensitivity: range of the instrument's direct effect on the outcome (outcome units per "
                        "standard deviation of its push on the confounder; default ± 25%% of its whole effect)")


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
    _estimator_options(p)
    p.add_argument("--no-refute", action="store_true", help="skip the refutations (placebo confounder, random common "
                                                            "cause, data subsets, placebo instrument)")
    p.add_argument("--no-reward-band", action="store_true", help="skip retraining the reward at β̂ ± 2 se")
    p.add_argument("--band-rows", type=int, default=6000, help="rows sampled for the reward band (tfidf reward)")
    p.set_defaults(func=cmd_estimate)

    p = sub.add_parser("refute", parents=[common], help="refutations of an estimate: placebo confounder, random "
                                                        "common cause, data subsets, placebo instrument")
    p.add_argument("--table", required=True)
    p.add_argument("--method", choices=["ols", "iv", "dml"], help="estimator (default: the table's recommended one)")
    _estimator_options(p)
    p.set_defaults(func=cmd_refute)
