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
from .jsonio import json_default

EXIT_USER_ERROR = 2
log = logging.getLogger("deconfound")


class UsageError(DeconfoundError):
    """Bad command-line arguments."""


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage and exiting, so errors stay one line."""

    def error(self, message):  # noqa: D401 - argparse API
        raise UsageError(f"{self.prog}: {message} (see --help)")


def _store(args):
    from .data import Store
    return Store(args.db)


def emit(args, payload, text: str) -> None:
    """Print JSON when --json was given, else the human-readable text."""
    if getattr(args, "json", False):
        print(json.dumps(payload, indent=2, default=json_default))
    else:
        print(text)


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
    from .data import Roles
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
    from .sim import SimulationConfig, simulate
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
    from .sim import load_demo
    tables = load_demo(_store(args), replace=args.replace)
    emit(args, {"tables": tables}, "demo tables ready (tagged): " + ", ".join(tables))


# ------------------------------------------------------------------ diagnose, estimate
def cmd_diagnose(args) -> None:
    from .causal import DiagnosticsConfig, diagnose
    config = DiagnosticsConfig(embeddings=args.embeddings, marker_rows=args.marker_rows,
                               min_support=args.min_support)
    report = diagnose(_store(args), args.table, config, scores=args.score)
    emit(args, report.to_dict(), report.summary(top=args.top))


def cmd_estimate(args) -> None:
    from .causal import EstimatorConfig, estimate, write_deconfounded_column
    store = _store(args)
    config = EstimatorConfig(time_effects=not args.no_time_effects, embeddings=args.embeddings, folds=args.folds)
    result = estimate(store, args.table, args.method, config)
    payload, text = result.to_dict(), result.summary()
    if args.write_column:
        meta = write_deconfounded_column(store, args.table, result, name=args.write_column, replace=args.replace)
        payload["written_column"] = {k: v for k, v in meta.items() if k != "estimate"}
        text += (f"\n\nwrote column '{meta['column']}' = {meta['formula']} to '{args.table}' "
                 f"(the original '{result.outcome}' is unchanged)")
    emit(args, payload, text)


# ------------------------------------------------------------------ compare, report, export
def _run_dir(args) -> Path:
    from .runs import job_dir
    return job_dir(args.run_dir)


def _markers_arg(raw: str | None) -> dict | None:
    """--markers: a JSON object {group: [words]}, a path to one, or comma-separated words (one group each)."""
    if not raw:
        return None
    text = Path(raw).read_text(encoding="utf-8") if Path(raw).is_file() else raw
    if text.lstrip().startswith("{"):
        try:
            groups = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UsageError(f"--markers is not valid JSON ({exc.msg}): give {{\"group\": [\"word\", ...]}}")
        if not isinstance(groups, dict):
            raise UsageError("--markers JSON must be an object {group: [word, ...]}")
        return {str(k): [v] if isinstance(v, str) else list(v) for k, v in groups.items()}
    return {w.strip(): [w.strip()] for w in text.split(",") if w.strip()}


def _eval_config(args):
    from .evaluate import EvalConfig
    return EvalConfig(scorer=args.scorer, markers=_markers_arg(args.markers), reference=args.reference,
                      n_boot=args.n_boot, seed=args.seed)


def cmd_compare(args) -> None:
    from .evaluate import compare
    result = compare(_run_dir(args), _eval_config(args))
    emit(args, result.to_dict(), result.summary())


def cmd_report(args) -> None:
    from .evaluate import compare, reward_truth_points, write_report
    run_dir = _run_dir(args)
    result = compare(run_dir, _eval_config(args))
    points = reward_truth_points(run_dir) if args.scatter else None
    out = write_report(run_dir, args.out, result=result, reward_points=points)
    emit(args, {"report": str(out)}, f"wrote {out}")


def cmd_export(args) -> None:
    from .evaluate import compare, export_generations, export_metrics, export_model, write_report
    run_dir = _run_dir(args)
    out = Path(args.out) if args.out else run_dir / "outputs"
    out.mkdir(parents=True, exist_ok=True)
    result = compare(run_dir, _eval_config(args))
    written = {"generations": export_generations(run_dir, out / "generations.csv", result),
               "metrics": export_metrics(run_dir, out / "metrics.json", result),
               "report": write_report(run_dir, out / "report.html", result=result)}
    for name in args.model or []:
        written[name] = export_model(run_dir, name, out / name, merge=not args.adapter, result=result)
    emit(args, {k: str(v) for k, v in written.items()}, "\n".join(f"{k:12s} {v}" for k, v in written.items()))


# ------------------------------------------------------------------ training jobs
def _train_config(args):
    from .runs import apply_overrides, load_config_file, parse_overrides, preset_config
    overrides = parse_overrides(args.set or [])
    if args.methods:
        overrides["methods"] = args.methods
    if args.model:
        overrides["model.name"] = args.model
    if args.dpo:
        overrides["run_dpo"] = True
    if args.config:
        if args.table or args.preset:
            raise UsageError("train: give either --config FILE or --table/--preset, not both")
        return apply_overrides(load_config_file(args.config, store=_store(args)), overrides)
    if not args.table:
        raise UsageError("train: give --table TABLE --preset {smoke,cpu,gpu} (or --config RUN.json)")
    if not args.preset:
        raise UsageError("train: choose --preset smoke (minutes, tiny model), cpu (laptop demo) or gpu (paper scale)")
    return preset_config(args.preset, args.table, store=_store(args), overrides=overrides)


def _job_payload(status: dict) -> dict:
    keys = ("state", "progress", "stage", "message", "eta_s", "summary", "log_tail")
    return {"job_id": status.get("id"), "run_dir": status.get("run_dir")} | \
        {k: status.get(k) for k in keys if status.get(k) is not None}


def _follow(args, job_id: str) -> int:
    """Print progress lines (stderr) until the job ends; Ctrl-C cancels it. Exit 0 only when completed."""
    from .runs import jobs
    shown = {"line": None}

    def show(status: dict) -> None:
        step = f" step {status['stage_step']}/{status['stage_total']}" if status.get("stage_total") else ""
        eta = f"  eta {jobs.format_seconds(status['eta_s'])}" if status.get("eta_s") else ""
        line = f"{float(status.get('progress') or 0):6.1%}  {status.get('stage') or status.get('state')}{step}{eta}"
        if line != shown["line"]:
            print(line, file=sys.stderr, flush=True)
            shown["line"] = line

    try:
        status = jobs.wait_job(job_id, poll_s=1.0, on_update=show)
    except KeyboardInterrupt:
        print(f"stopping job {job_id} (resume it later with `deconfound resume {job_id}`)", file=sys.stderr)
        jobs.cancel_job(job_id)
        raise
    text = f"job {status['id']} {status['state']}: {status.get('message', '')}\nrun folder: {status['run_dir']}"
    if status["state"] == "failed":
        text += "\nlast log lines:\n  " + "\n  ".join(status.get("log_tail") or [])
        text += f"\nresume with: deconfound resume {status['id']}"
    emit(args, _job_payload(status), text)
    return 0 if status["state"] == "completed" else 1


def cmd_train(args) -> int:
    from .runs import jobs
    config = _train_config(args)
    job = jobs.create_job(config, store=_store(args))
    if args.prepare:
        local = " ".join(jobs.worker_command(job.run_dir))
        cluster = jobs.accelerate_command(job.id, max(1, args.processes))
        emit(args, {"job_id": job.id, "run_dir": str(job.run_dir), "state": "queued", "command": local,
                    "accelerate_command": cluster, "notes": config.notes},
             f"prepared job {job.id} (not started)\nrun folder: {job.run_dir}\nrun it here:   {local}\n"
             f"or with accelerate: {cluster}\nthen copy the run folder back into {job.run_dir.parent}")
        return 0
    jobs.start_job(job.id, num_processes=max(1, args.processes))
    for note in config.notes:
        print(f"note: {note}", file=sys.stderr)
    if args.detach:
        status = jobs.job_status(job.id)
        emit(args, _job_payload(status) | {"notes": config.notes},
             f"started job {job.id}\nrun folder: {job.run_dir}\n"
             f"follow: deconfound jobs   cancel: deconfound cancel {job.id}")
        return 0
    print(f"job {job.id}: {job.run_dir}", file=sys.stderr)
    return _follow(args, job.id)


def cmd_jobs(args) -> None:
    from .runs import jobs
    rows = jobs.list_jobs()
    emit(args, rows, "\n".join(jobs.format_job_line(r) for r in rows) or
         "no jobs yet: `deconfound train --table T --preset smoke`")


def cmd_cancel(args) -> None:
    from .runs import jobs
    status = jobs.cancel_job(args.job_id)
    emit(args, _job_payload(status), f"job {status['id']} {status['state']}")


def cmd_resume(args) -> int:
    from .runs import jobs
    job = jobs.resume_job(args.job_id, num_processes=max(1, args.processes))
    if args.detach:
        status = jobs.job_status(job.id)
        emit(args, _job_payload(status), f"resumed job {job.id}\nrun folder: {job.run_dir}")
        return 0
    return _follow(args, job.id)


def cmd_generate(args) -> None:
    from .runs import generate_for_run, job_dir, read_prompts
    run_dir = job_dir(args.run)
    contexts = read_prompts(args.prompts)
    models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
    try:
        seeds = [int(s) for s in str(args.seed).split(",") if s.strip()]
    except ValueError as exc:
        raise UsageError(f"generate: --seed takes integers, e.g. 0 or 0,1,2 (got {args.seed!r})") from exc
    frame = generate_for_run(run_dir, contexts, models=models, seeds=seeds, max_new_tokens=args.max_new_tokens)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(out, index=False)
        emit(args, {"out": str(out), "rows": len(frame), "models": sorted(frame["model"].unique())},
             f"wrote {len(frame)} generations ({frame['model'].nunique()} models × {len(contexts)} prompts) to {out}")
    elif args.json:
        print(json.dumps(frame.to_dict(orient="records"), indent=2, default=json_default))
    else:
        frame.to_csv(sys.stdout, index=False)


def _add_eval_options(p) -> None:
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run folder or job id")
    p.add_argument("--scorer", default="sentiment", help="'sentiment' (default) or 'reward:<method>'")
    p.add_argument("--markers", help='marker groups: JSON {"group": ["word", ...]}, a JSON file, or '
                                     "comma-separated words (default: team regions for the demo)")
    p.add_argument("--reference", default="sft", help="model the others are tested against (default sft)")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")


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

    p = sub.add_parser("train", parents=[common], help="train and compare generators in a background job")
    p.add_argument("--config", help="a training config JSON (an earlier run's config.json, or a partial one)")
    p.add_argument("--table", help="the tagged table to learn from")
    p.add_argument("--preset", choices=["smoke", "cpu", "gpu"],
                   help="smoke: tiny model, minutes; cpu: SmolLM2-135M + LoRA on a laptop; gpu: paper scale")
    p.add_argument("--methods", help="comma-separated reward methods (default: the paper's set): oracle, "
                                     "oracle_noise, naive, confounder_text, confounder_layer, odin, deconfounded")
    p.add_argument("--model", help="generator: smollm2-135m, tiny, a local model folder or a cached HF id")
    p.add_argument("--dpo", action="store_true", help="also train a DPO model per method")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="change a setting, e.g. rl.max_steps=20 or n_eval_prompts=100; repeat for several")
    p.add_argument("--processes", type=int, default=1,
                   help="run under `accelerate launch` with N processes (several GPUs)")
    p.add_argument("--detach", action="store_true", help="start the job and return (prints its id and folder)")
    p.add_argument("--prepare", action="store_true",
                   help="only create the run folder and print the commands that run it (e.g. on a cluster)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("jobs", parents=[common], help="list training jobs: id, state, progress, run folder")
    p.set_defaults(func=cmd_jobs)

    p = sub.add_parser("cancel", parents=[common], help="stop a running job (it can be resumed)")
    p.add_argument("job_id", metavar="ID", help="job id (or run folder)")
    p.set_defaults(func=cmd_cancel)

    p = sub.add_parser("resume", parents=[common], help="continue a failed or cancelled job from its last checkpoint")
    p.add_argument("job_id", metavar="ID", help="job id (or run folder)")
    p.add_argument("--processes", type=int, default=1, help="run under `accelerate launch` with N processes")
    p.add_argument("--detach", action="store_true", help="restart the job and return")
    p.set_defaults(func=cmd_resume)

    p = sub.add_parser("generate", parents=[common], help="write texts for new prompts with a run's models")
    p.add_argument("--run", required=True, metavar="RUN_DIR", help="run folder or job id")
    p.add_argument("--prompts", required=True, metavar="FILE",
                   help=".txt with one context per line, or .csv with a 'context' column")
    p.add_argument("--models", help="comma-separated model names (default: all, e.g. base,sft,rl_deconfounded)")
    p.add_argument("--seed", default="0", help="sampling seed(s), e.g. 0 or 0,1,2")
    p.add_argument("--max-new-tokens", type=int, default=None, help="tokens per text (default: the run's)")
    p.add_argument("--out", help="write a CSV here (default: CSV on stdout)")
    p.set_defaults(func=cmd_generate)

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
        code = args.func(args)
        return code if isinstance(code, int) else 0
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
