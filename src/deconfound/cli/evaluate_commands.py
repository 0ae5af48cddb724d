"""Commands of the Compare step: compare, report, export."""

from __future__ import annotations

from pathlib import Path

from .common import emit, run_dir_of


def _eval_config(args):
    from ..evaluate import EvalConfig, parse_marker_groups
    return EvalConfig(scorer=args.scorer, markers=parse_marker_groups(args.markers, allow_files=True), reference=args.reference,
                      n_boot=args.n_boot, seed=args.seed)


def cmd_compare(args) -> None:
    """Compare the models of a run (Tables 1 and 2)."""
    from ..evaluate import compare
    result = compare(run_dir_of(args), _eval_config(args))
    emit(args, result.to_dict(), result.summary())


def cmd_report(args) -> None:
    """Write the self-contained HTML report of a run."""
    from ..evaluate import compare, reward_truth_points, write_report
    run_dir = run_dir_of(args)
    result = compare(run_dir, _eval_config(args))
    points = reward_truth_points(run_dir) if args.scatter else None
    out = write_report(run_dir, args.out, result=result, reward_points=points)
    emit(args, {"report": str(out)}, f"wrote {out}")


def cmd_export(args) -> None:
    """Write a run's generations, metrics, report and (optionally) models."""
    from ..evaluate import compare, export_generations, export_metrics, export_model, write_report
    run_dir = run_dir_of(args)
    out = Path(args.out) if args.out else run_dir / "outputs"
    out.mkdir(parents=True, exist_ok=True)
    result = compare(run_dir, _eval_config(args))
    written = {"generations": export_generations(run_dir, out / "generations.csv", result),
               "metrics": export_metrics(run_dir, out / "metrics.json", result),
               "report": write_report(run_dir, out / "report.html", result=result)}
    for name in args.model or []:
        written[name] = export_model(run_dir, name, out / name, merge=not args.adapter, result=result)
    emit(args, {k: str(v) for k, v in written.items()}, "\n".join(f"{k:12s} {v}" for k, v in written.items()))


def _add_eval_options(p) -> None:
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run folder or job id")
    p.add_argument("--scorer", default=None, help="'sentiment' or 'reward:<method>' (default: the run's default "
                                                  "quality measure, sentiment for the simulation)")
    p.add_argument("--markers", help='marker groups: JSON {"group": ["word", ...]}, a JSON file, or '
                                     "comma-separated words (default: team regions for the demo)")
    p.add_argument("--reference", default="sft", help="model the others are tested against (default sft)")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")


def add_parsers(sub, common) -> None:
    """The subcommands of this step (each with --db and --json from `common`)."""
    p = sub.add_parser("compare", parents=[common], help="compare the models of a run (Table 1 and 2)")
    _add_eval_options(p)
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("report", parents=[common], help="write a self-contained HTML report of a run")
    _add_eval_options(p)
    p.add_argument("--out", required=True, help="output .html file")
    p.add_argument("--scatter", action="store_true", help="add reward-vs-truth scatter plots (loads the reward models)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("export", parents=[common], help="generations CSV, metrics JSON, HTML report, models")
    _add_eval_options(p)
    p.add_argument("--out", help="output folder (default RUN_DIR/outputs)")
    p.add_argument("--model", action="append", help="also export this model (e.g. rl_deconfounded) as a "
                                                   "Hugging Face folder with a model card; repeat for several")
    p.add_argument("--adapter", action="store_true", help="export LoRA adapters as they are instead of merged models")
    p.set_defaults(func=cmd_export)
