"""Commands of the Train step: train, jobs, cancel, resume, generate."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from ..jsonio import json_default
from .common import UsageError, emit, open_store


def _train_config(args):
    from ..runs import apply_overrides, load_config_file, parse_overrides, preset_config
    overrides = parse_overrides(args.set or [])
    if args.methods:
        overrides["methods"] = args.methods
    if args.model:
        overrides["model.name"] = args.model
    if args.dpo:
        overrides["run_dpo"] = True
    if args.prompt_template is not None:
        overrides["roles.prompt_template"] = args.prompt_template or None
    if args.system_prompt is not None:
        overrides["sft.system_prompt"] = args.system_prompt
    if args.config:
        if args.table or args.preset:
            raise UsageError("train: give either --config FILE or --table/--preset, not both")
        return apply_overrides(load_config_file(args.config, store=open_store(args)), overrides)
    if not args.table:
        raise UsageError("train: give --table TABLE --preset {smoke,cpu,gpu} (or --config RUN.json)")
    if not args.preset:
        raise UsageError("train: choose --preset smoke (minutes, tiny model), cpu (laptop demo) or gpu (paper scale)")
    return preset_config(args.preset, args.table, store=open_store(args), overrides=overrides)


def _job_payload(status: dict) -> dict:
    keys = ("state", "progress", "stage", "message", "eta_s", "summary", "log_tail")
    return {"job_id": status.get("id"), "run_dir": status.get("run_dir")} | \
        {k: status.get(k) for k in keys if status.get(k) is not None}


def _follow(args, job_id: str) -> int:
    """Print progress lines (stderr) until the job ends; Ctrl-C cancels it. Exit 0 only when completed."""
    from .. import runs
    shown = {"line": None}

    def show(status: dict) -> None:
        step = f" step {status['stage_step']}/{status['stage_total']}" if status.get("stage_total") else ""
        eta = f"  eta {runs.format_seconds(status['eta_s'])}" if status.get("eta_s") else ""
        line = f"{float(status.get('progress') or 0):6.1%}  {status.get('stage') or status.get('state')}{step}{eta}"
        if line != shown["line"]:
            print(line, file=sys.stderr, flush=True)
            shown["line"] = line

    try:
        status = runs.wait_job(job_id, poll_s=1.0, on_update=show)
    except KeyboardInterrupt:
        print(f"stopping job {job_id} (resume it later with `deconfound resume {job_id}`)", file=sys.stderr)
        runs.cancel_job(job_id)
        raise
    text = f"job {status['id']} {status['state']}: {status.get('message', '')}\nrun folder: {status['run_dir']}"
    if status["state"] == "failed":
        text += "\nlast log lines:\n  " + "\n  ".join(status.get("log_tail") or [])
        text += f"\nresume with: deconfound resume {status['id']}"
    emit(args, _job_payload(status), text)
    return 0 if status["state"] == "completed" else 1


def _from_run_folder(args):
    """`train --config RUN/config.json` beside its data.parquet: a new job from that folder, no database needed
    (a run folder made on a laptop, run on a cluster); None for any other config."""
    from .. import runs
    if not args.config or not runs.is_run_folder_config(args.config):
        return None
    if args.table or args.preset:
        raise UsageError("train: give either --config FILE or --table/--preset, not both")
    overrides = runs.parse_overrides(args.set or [])
    if args.methods:
        overrides["methods"] = args.methods
    if args.model:
        overrides["model.name"] = args.model
    if args.dpo:
        overrides["run_dpo"] = True
    return runs.create_job_from_folder(args.config, overrides)


def cmd_train(args) -> int:
    """Create a training job and start it (or only prepare its folder)."""
    from .. import runs
    if args.processes < 1:
        raise UsageError(f"train: --processes must be at least 1 (got {args.processes}); 1 runs the worker alone")
    job = _from_run_folder(args)
    if job is None:
        config = _train_config(args)
        job = runs.create_job(config, store=open_store(args))
    else:
        config = runs.TrainConfig.from_dict(job.folder.config())
    if args.prepare:
        local = " ".join(runs.worker_command(job.run_dir))
        cluster = runs.accelerate_command(job.id, args.processes)
        emit(args, {"job_id": job.id, "run_dir": str(job.run_dir), "state": "queued", "command": local,
                    "accelerate_command": cluster, "notes": config.notes},
             f"prepared job {job.id} (not started)\nrun folder: {job.run_dir}\nrun it here:   {local}\n"
             f"or with accelerate: {cluster}\nthen copy the run folder back into {job.run_dir.parent}")
        return 0
    try:
        runs.check_processes(args.processes, config.preset, config.rl.algorithm)
    except Exception:
        shutil.rmtree(job.run_dir, ignore_errors=True)  # nothing ran: no job left behind in the list
        raise
    runs.start_job(job.id, num_processes=args.processes)
    if args.processes > 1:
        print(f"running: {runs.launch_command(job.id, args.processes)}", file=sys.stderr)
    for note in config.notes:
        print(f"note: {note}", file=sys.stderr)
    if args.detach:
        status = runs.job_status(job.id)
        emit(args, _job_payload(status) | {"notes": config.notes},
             f"started job {job.id}\nrun folder: {job.run_dir}\n"
             f"follow: deconfound jobs   cancel: deconfound cancel {job.id}")
        return 0
    print(f"job {job.id}: {job.run_dir}", file=sys.stderr)
    return _follow(args, job.id)


def cmd_jobs(args) -> None:
    """List the training jobs."""
    from .. import runs
    rows = runs.list_jobs()
    emit(args, rows, "\n".join(runs.format_job_line(r) for r in rows) or
         "no jobs yet: `deconfound train --table T --preset smoke`")


def cmd_cancel(args) -> None:
    """Stop a running job."""
    from .. import runs
    status = runs.cancel_job(args.job_id)
    emit(args, _job_payload(status), f"job {status['id']} {status['state']}")


def cmd_resume(args) -> int:
    """Continue a failed or cancelled job."""
    from .. import runs
    if args.processes is not None and args.processes < 1:
        raise UsageError(f"resume: --processes must be at least 1 (got {args.processes})")
    job = runs.resume_job(args.job_id, num_processes=args.processes)
    if args.detach:
        status = runs.job_status(job.id)
        emit(args, _job_payload(status), f"resumed job {job.id}\nrun folder: {job.run_dir}")
        return 0
    return _follow(args, job.id)


def cmd_generate(args) -> None:
    """Write texts for new prompts with a run's models."""
    from ..runs import RunFolder, generate_for_run, job_dir, read_prompts
    run_dir = job_dir(args.run)
    template = ((RunFolder(run_dir).config().get("roles") or {}).get("prompt_template")
                if RunFolder(run_dir).exists() else None)
    contexts = read_prompts(args.prompts, template=template)
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


def add_parsers(sub, common) -> None:
    """The subcommands of this step (each with --db and --json from `common`)."""
    p = sub.add_parser("train", parents=[common], help="train and compare generators in a background job")
    p.add_argument("--config", help="a training config JSON: a run folder's config.json (its data.parquet is "
                                    "used, no database needed: e.g. on a cluster), or a partial one")
    p.add_argument("--table", help="the tagged table to learn from")
    p.add_argument("--preset", choices=["smoke", "cpu", "gpu"],
                   help="smoke: tiny model, minutes; cpu: SmolLM2-135M + LoRA on a laptop; gpu: paper scale")
    p.add_argument("--methods", help="comma-separated reward methods (default: the paper's set): oracle, "
                                     "oracle_noise, naive, confounder_text, confounder_layer, odin, deconfounded")
    p.add_argument("--model", help="generator: smollm2-135m, tiny, a local model folder or a cached HF id")
    p.add_argument("--dpo", action="store_true", help="also train a DPO model per method")
    p.add_argument("--prompt-template", metavar="TEXT",
                   help="what the prompt shows, e.g. 'News posted at {created_at}' ({column} = the row's value; "
                        "default: the table's, set with `tag --prompt-template`, else its context column, else the "
                        "instruction alone)")
    p.add_argument("--system-prompt", metavar="TEXT",
                   help="the system message (default: the paper's news-editor instruction)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="change a setting, e.g. rl.max_steps=20 or n_eval_prompts=100; repeat for several")
    p.add_argument("--processes", type=int, default=1,
                   help="1: one worker process; N: `accelerate launch` with N processes on this machine (one per GPU, "
                        "or per CPU core without CUDA); with --prepare: the process count of the printed command")
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
    p.add_argument("--processes", type=int, default=None,
                   help="run under `accelerate launch` with N processes (default: as many as its last start)")
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
