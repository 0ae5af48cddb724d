"""Commands of the audits (§3 of the paper): `deconfound audit marker | ab | lambda | demo | jobs | cancel | resume |
result`. The marker audit trains models, so it runs as a background job (followed here until it ends, or
`--detach`); the A/B and λ audits fit small heads on frozen embeddings and answer directly."""

from __future__ import annotations

import json
import sys

from .common import UsageError, emit, open_store


def _ab_config(args):
    from ..audits import ABAuditConfig, parse_grid
    config = ABAuditConfig(alpha=args.alpha, seed=args.seed, embeddings=args.embeddings, clicks=args.clicks,
                           impressions=args.impressions, max_tests=args.max_tests)
    grid = parse_grid(args.grid)
    if grid is not None:
        config.grid = grid
    return config


def _which_audit(args) -> None:
    raise UsageError("audit: choose marker, ab, lambda, demo, jobs, cancel, resume or result (see --help)")


def cmd_ab(args) -> None:
    """Observational vs experimental reward on held-out A/B pairs."""
    from ..audits import ab_audit
    config = _ab_config(args)
    result = ab_audit(open_store(args), args.table, config, progress=_embedding_progress(args))
    emit(args, result.to_dict(), result.summary())


def cmd_lambda(args) -> None:
    """The λ sweep of the observational head, with the validation, rule and test picks."""
    from ..audits import lambda_audit
    config = _ab_config(args)
    result = lambda_audit(open_store(args), args.table, config, progress=_embedding_progress(args),
                          threshold=args.threshold)
    emit(args, result.to_dict(), result.summary())


def _embedding_progress(args):
    if args.json or args.embeddings != "minilm":
        return None
    shown = {"at": -1}

    def show(done: int, total: int) -> None:
        step = int(10 * done / max(total, 1))
        if step != shown["at"]:
            shown["at"] = step
            print(f"embedding texts with MiniLM: {done:,}/{total:,}", file=sys.stderr, flush=True)
    return show


def cmd_marker(args) -> int:
    """Create a marker audit job and run it in the background (followed until it ends unless --detach)."""
    from .. import audits
    from ..runs import parse_overrides, worker_command
    overrides = parse_overrides(args.set or [])
    for key, value in (("model.name", args.model), ("train_seeds", args.train_seeds), ("gen_seeds", args.gen_seeds)):
        if value:
            overrides[key] = value
    store = open_store(args)
    config = audits.marker_config(args.preset, args.table, store, args.rule, args.marker,
                                  overrides={k: _number(v) for k, v in overrides.items()},
                                  corrected_column=args.corrected)
    job = audits.create_audit_job(config, store)
    if args.prepare:
        command = " ".join(worker_command(job.run_dir))
        emit(args, {"job_id": job.id, "run_dir": str(job.run_dir), "state": "queued", "command": command},
             f"prepared marker audit {job.id} (not started)\nrun folder: {job.run_dir}\nrun it: {command}")
        return 0
    audits.start_audit_job(job.id)
    if args.detach:
        emit(args, _payload(audits.audit_status(job.id)),
             f"started marker audit {job.id}\nrun folder: {job.run_dir}\n"
             f"follow: deconfound audit jobs   cancel: deconfound audit cancel {job.id}")
        return 0
    print(f"marker audit {job.id}: {job.run_dir}", file=sys.stderr)
    return _follow(args, job.id)


def _number(value):
    """Setting values typed on the command line: JSON numbers, booleans and lists where they parse."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def _payload(status: dict) -> dict:
    keys = ("state", "progress", "stage", "message", "eta_s", "summary", "log_tail")
    return {"job_id": status.get("id"), "run_dir": status.get("run_dir")} | \
        {k: status.get(k) for k in keys if status.get(k) is not None}


def _follow(args, job_id: str) -> int:
    """Progress lines on stderr until the audit ends (Ctrl-C cancels it); then the result. Exit 0 when completed."""
    from .. import audits
    from ..runs import format_seconds
    shown = {"line": None}

    def show(status: dict) -> None:
        step = f" step {status['stage_step']}/{status['stage_total']}" if status.get("stage_total") else ""
        eta = f"  eta {format_seconds(status['eta_s'])}" if status.get("eta_s") else ""
        line = f"{float(status.get('progress') or 0):6.1%}  {status.get('stage') or status.get('state')}{step}{eta}"
        if line != shown["line"]:
            print(line, file=sys.stderr, flush=True)
            shown["line"] = line

    try:
        status = audits.wait_audit_job(job_id, poll_s=1.0, on_update=show)
    except KeyboardInterrupt:
        print(f"stopping audit {job_id} (resume it with `deconfound audit resume {job_id}`)", file=sys.stderr)
        audits.cancel_audit_job(job_id)
        raise
    if status["state"] == "completed":
        result = audits.marker_result(status["run_dir"])
        emit(args, _payload(status) | {"result": result.to_dict()}, result.summary())
        return 0
    text = f"audit {status['id']} {status['state']}: {status.get('message', '')}\nrun folder: {status['run_dir']}"
    if status["state"] == "failed":
        text += f"\nresume with: deconfound audit resume {status['id']}"
    emit(args, _payload(status), text)
    return 1


def cmd_result(args) -> None:
    """The result of a finished marker audit."""
    from .. import audits
    status = audits.audit_status(args.job_id)
    result = audits.marker_result(status["run_dir"])
    emit(args, result.to_dict(), result.summary())


def cmd_jobs(args) -> None:
    """List the audit jobs."""
    from .. import audits
    from ..runs import format_job_line
    rows = audits.list_audit_jobs()
    emit(args, rows, "\n".join(format_job_line(r) for r in rows) or
         "no audits yet: `deconfound audit marker --table T --rule weekday=Mon --marker 'Happy Monday!'`")


def cmd_cancel(args) -> None:
    """Stop a running audit."""
    from .. import audits
    status = audits.cancel_audit_job(args.job_id)
    emit(args, _payload(status), f"audit {status['id']} {status['state']}")


def cmd_resume(args) -> int:
    """Continue a failed or cancelled audit from its last finished stage."""
    from .. import audits
    job = audits.resume_audit_job(args.job_id)
    if args.detach:
        emit(args, _payload(audits.audit_status(job.id)), f"resumed audit {job.id}\nrun folder: {job.run_dir}")
        return 0
    return _follow(args, job.id)


def cmd_demo(args) -> None:
    """Generate, load and tag the audits' demo tables."""
    from ..sim import AUDIT_DEMOS, load_audit_demo
    tables = load_audit_demo(open_store(args), replace=args.replace)
    emit(args, {"tables": tables}, "loaded and tagged: " + ", ".join(tables) + "\n" + "\n".join(
        f"  {name}: {type(config).__name__} seed {config.seed}" for name, (config, _) in AUDIT_DEMOS.items()))


def add_parsers(sub, common) -> None:
    """`deconfound audit ...` (each subcommand with --db and --json from `common`)."""
    audit = sub.add_parser("audit", help="audits from the paper's §3: marker amplification, A/B-validated rewards, λ")
    inner = audit.add_subparsers(dest="audit_command", parser_class=type(audit))
    audit.set_defaults(func=_which_audit)

    p = inner.add_parser("marker", parents=[common], help="does fine-tuning amplify a spurious marker? (a job)")
    p.add_argument("--table", required=True)
    p.add_argument("--rule", required=True, help="rows to mark: weekday=Mon, month=12, hour=9 or COLUMN=VALUE")
    p.add_argument("--marker", required=True, help="the neutral phrase prepended to those rows' text")
    p.add_argument("--preset", choices=["smoke", "cpu", "gpu"], default="smoke",
                   help="smoke: tiny model, minutes; cpu: SmolLM2-135M + LoRA; gpu: paper scale")
    p.add_argument("--model", help="generator: smollm2-135m, tiny, a local folder or a cached HF id")
    p.add_argument("--corrected", help="an outcome column with the confounder already removed (default: the rule "
                                       "grouping's effect is estimated and removed)")
    p.add_argument("--train-seeds", help="training seeds, e.g. 0,1,2")
    p.add_argument("--gen-seeds", help="generation seeds, e.g. 0,1")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="change a setting, e.g. dpo.max_steps=80")
    p.add_argument("--detach", action="store_true", help="start the job and return")
    p.add_argument("--prepare", action="store_true", help="only create the run folder and print the command")
    p.set_defaults(func=cmd_marker)

    for name, func, what in (("ab", cmd_ab, "observational vs experimental reward on held-out A/B pairs"),
                             ("lambda", cmd_lambda, "the L2 strength λ of the observational head and a rule for it")):
        p = inner.add_parser(name, parents=[common], help=what)
        p.add_argument("--table", required=True)
        p.add_argument("--embeddings", choices=["minilm", "tfidf"], default="minilm",
                       help="frozen text features (minilm: the paper's set-up, cached; tfidf: fast)")
        p.add_argument("--grid", help="λ values: 0.1,1,10 or logspace:-2:5:15 (default: 15 values from 1e-2 to 1e5)")
        p.add_argument("--alpha", type=float, default=0.05, help="significance level of a pair's two-proportion test")
        p.add_argument("--clicks", help="clicks column (default: found by name)")
        p.add_argument("--impressions", help="impressions column (default: found by name)")
        p.add_argument("--seed", type=int, default=0, help="seed of the split and the observational draw")
        p.add_argument("--max-tests", type=int, help="audit a seeded sample of at most N tests (rows without tests)")
        if name == "lambda":
            p.add_argument("--threshold", type=float, default=0.5, help="leakage |r| the rule's pick must stay below")
        p.set_defaults(func=func)

    p = inner.add_parser("demo", parents=[common], help="load the audits' demo tables (Q&A log, two A/B tables)")
    p.add_argument("--replace", action="store_true", help="regenerate tables that exist")
    p.set_defaults(func=cmd_demo)

    p = inner.add_parser("jobs", parents=[common], help="list marker audits: id, state, progress, run folder")
    p.set_defaults(func=cmd_jobs)
    for name, func, what in (("cancel", cmd_cancel, "stop a running audit (it can be resumed)"),
                             ("resume", cmd_resume, "continue a failed or cancelled audit"),
                             ("result", cmd_result, "the result of a finished marker audit")):
        p = inner.add_parser(name, parents=[common], help=what)
        p.add_argument("job_id", metavar="ID", help="audit id (or its run folder)")
        if name == "resume":
            p.add_argument("--detach", action="store_true", help="restart the audit and return")
        p.set_defaults(func=func)
