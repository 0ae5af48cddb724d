"""Audit jobs: the marker audit runs in the background like a training run, with the same machinery (`runs`: run
folder, worker process in its own group, status with dead-worker detection, cancel, resume) in a folder of its
own, `$DECONFOUND_HOME/audits/<job_id>/`, so audits never appear among training runs.

The worker (`python -m deconfound.worker RUN_DIR`) reads `kind` in config.json and hands "audit/..." folders to
`run_audit_job`. No torch here: the dashboard imports this module.
"""

from __future__ import annotations

from pathlib import Path

from .. import paths, runs
from ..errors import DeconfoundError
from ..jsonio import read_json


def audits_dir() -> Path:
    """Where audit run folders live (one per job)."""
    path = paths.home() / "audits"
    path.mkdir(parents=True, exist_ok=True)
    return path


def create_audit_job(config, store=None) -> runs.Job:
    """A run folder for an audit config (config.json + a Parquet snapshot of its table), queued."""
    return runs.create_job(config, store=store, runs_root=audits_dir())


def start_audit_job(job_id: str, detach: bool = True, resume: bool = False) -> runs.Job:
    """Start (or with `resume`, continue) an audit job's worker as its own process group."""
    return runs.start_job(job_id, detach=detach, resume=resume, runs_root=_root_of(job_id))


def audit_status(job_id: str) -> dict:
    """status.json of an audit job (a dead worker shows as failed)."""
    return runs.job_status(job_id, runs_root=_root_of(job_id))


def cancel_audit_job(job_id: str) -> dict:
    """Stop a running audit (SIGTERM, then SIGKILL after the grace period); it can be resumed."""
    return runs.cancel_job(job_id, runs_root=_root_of(job_id))


def resume_audit_job(job_id: str, detach: bool = True) -> runs.Job:
    """Continue a failed or cancelled audit: finished stages are skipped, training resumes from checkpoints."""
    return runs.resume_job(job_id, detach=detach, runs_root=_root_of(job_id))


def wait_audit_job(job_id: str, timeout_s: float | None = None, poll_s: float = 1.0, on_update=None) -> dict:
    """Block until the audit ends (or the timeout)."""
    return runs.wait_job(job_id, timeout_s=timeout_s, poll_s=poll_s, on_update=on_update, runs_root=_root_of(job_id))


def list_audit_jobs(table: str | None = None) -> list[dict]:
    """Audit jobs, newest first (of one table when given), each with its kind, rule and marker."""
    rows = []
    for row in runs.list_jobs(runs_root=audits_dir()):
        config = read_json(Path(row["run_dir"]) / "config.json", default={}) or {}
        if table and config.get("table") != table:
            continue
        rows.append(row | {"kind": config.get("kind"), "rule": config.get("rule"), "marker": config.get("marker")})
    return rows


def _root_of(job_id: str) -> Path:
    """The runs root of an audit id or run folder."""
    candidate = Path(str(job_id)).expanduser()
    return candidate.resolve().parent if candidate.is_dir() else audits_dir()


def run_audit_job(run_dir, resume: bool = False, stop=None, write_status: bool = True) -> dict:
    """What the worker runs for an audit run folder, by the `kind` in its config.json."""
    kind = (read_json(Path(run_dir) / "config.json", default={}) or {}).get("kind")
    if kind == "audit/marker":
        from .marker_run import run_marker_audit
        return run_marker_audit(run_dir, resume=resume, stop=stop, write_status=write_status)
    raise DeconfoundError(f"{run_dir}: unknown audit kind {kind!r}")
