"""Training jobs: one run folder per job, a worker process per run (launched as `launch` says), status that
survives restarts.

A job is its folder under `paths.runs_dir()/<job_id>/` (layout in docs/ARCHITECTURE.md). The dashboard
and the CLI create the folder (config + a Parquet snapshot of the table, so the worker never opens the
app's DuckDB file), then start `python -m deconfound.worker RUN_DIR` as a separate OS process in its own
process group. The worker owns `status.json` while it lives; this module writes it only once the worker
is gone (dead-worker detection, cancel). No torch here: the dashboard imports this module.
"""

from __future__ import annotations

import os
import re
import secrets
import shlex
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from .. import paths
from ..errors import DeconfoundError, NotFoundError
from ..jsonio import read_json, write_json_atomic
from .folder import RunFolder, now_iso
from .launch import check_processes, worker_command
from .processes import (job_processes, pid_alive, proc_stat,
                        process_start_time, signal_all, started_workers)

ACTIVE_STATES = ("queued", "running")
FINAL_STATES = ("completed", "failed", "cancelled")
CANCEL_GRACE_S = 10.0  # SIGTERM lets the worker stop at its next step; after this, SIGKILL
CANCEL_FILE = "cancel.json"  # written by cancel_job before it signals; removed by the next start
JOB_ID_RE = re.compile(r"^[0-9]{8}-[0-9]{6}-[a-z0-9]{4,8}$")
LOG_LINE_RE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \[")  # the worker's own log lines
ABOUT_FILE = "about.json"  # in the run folder: {"name", "note"} the user gave at launch
MAX_NAME, MAX_NOTE = 80, 500


def new_job_id() -> str:
    """A sortable, unique job id: local timestamp + a short random suffix (20250101-120000-ab12)."""
    return datetime.now().strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)


# ---------------------------------------------------------------------------- jobs
@dataclass
class Job:
    """A training job: its id and run folder."""

    id: str
    run_dir: Path

    @property
    def folder(self) -> RunFolder:
        """File access for this job's run folder."""
        return RunFolder(self.run_dir)

    def status(self) -> dict:
        """Current status, with dead-worker detection (see `job_status`)."""
        return job_status(self.id, runs_root=self.run_dir.parent)

    def to_dict(self) -> dict:
        """JSON-ready dict: id, run_dir and the current status fields."""
        return {"job_id": self.id, "run_dir": str(self.run_dir)} | self.status()

    def summary(self) -> str:
        """One line: id, state, progress, stage, folder."""
        return format_job_line(self.to_dict() | {"id": self.id})


def job_dir(job_id: str, runs_root: Path | None = None) -> Path:
    """The run folder of a job id (also accepts a run-folder path); raises NotFoundError if absent."""
    candidate = Path(str(job_id)).expanduser()
    if candidate.is_dir() and RunFolder(candidate).exists():
        return candidate.resolve()
    root = Path(runs_root) if runs_root else paths.runs_dir()
    if not JOB_ID_RE.match(str(job_id)) or not RunFolder(root / job_id).exists():
        known = ", ".join(p.name for p in sorted(root.iterdir(), reverse=True)[:5]) if root.is_dir() else ""
        raise NotFoundError(f"no job {job_id!r} in {root} (recent: {known or 'none'}; `deconfound jobs` lists them)")
    return root / job_id


def get_job(job_id: str, runs_root: Path | None = None) -> Job:
    """The Job for an id or run-folder path."""
    path = job_dir(job_id, runs_root)
    return Job(id=path.name, run_dir=path)


def create_job(config, store=None, runs_root: Path | None = None, name: str = "", note: str = "") -> Job:
    """Make a run folder: config.json, a Parquet snapshot of the table (data.parquet), status queued, and the
    run's `name` and `note` as the user gave them (about.json; the run list shows them).

    `config` is a `pipeline.TrainConfig` (or its dict). The snapshot is taken from `store` (default: the
    database named in the config), so the worker reads only its run folder.
    """
    data = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    if not data.get("table"):
        raise DeconfoundError("the training config names no table: choose the table to train on")
    if store is None:
        from ..data import Store
        store = Store(data.get("db") or None)
    root = Path(runs_root) if runs_root else paths.runs_dir()
    root.mkdir(parents=True, exist_ok=True)
    job_id = new_job_id()
    while (root / job_id).exists():
        job_id = new_job_id()
    run_dir = root / job_id
    run_dir.mkdir(parents=True)
    folder = RunFolder(run_dir)
    data["db"] = data.get("db") or str(store.path)
    try:
        store.snapshot(data["table"], folder.data_path)
    except Exception:
        _remove_tree(run_dir)
        raise
    write_json_atomic(folder.config_path, data)
    about = {"name": " ".join(str(name or "").split())[:MAX_NAME], "note": str(note or "").strip()[:MAX_NOTE]}
    if any(about.values()):
        write_json_atomic(run_dir / ABOUT_FILE, about)
    folder.write_status({"state": "queued", "progress": 0.0, "stage": "not started", "message": "created",
                         "created_at": now_iso(), "updated_at": now_iso(), "pid": None, "pgid": None})
    return Job(id=job_id, run_dir=run_dir)


def create_job_from_folder(config_path, overrides: dict | None = None, runs_root: Path | None = None) -> Job:
    """A new job from a run folder's config.json and the data.parquet beside it: no database needed, which is
    how a run folder made on a laptop runs on a cluster (`deconfound train --config RUN/config.json`).
    `overrides` (dotted keys) change settings; the table snapshot is copied as it is."""
    import shutil

    from .config import TrainConfig, apply_overrides
    source = RunFolder(Path(config_path).expanduser().resolve().parent)
    if not source.data_path.is_file():
        raise NotFoundError(f"{source.path} has no data.parquet beside config.json: copy the whole run folder")
    config = apply_overrides(TrainConfig.from_dict(source.config()), overrides or {})
    if not config.table or not config.roles:
        raise DeconfoundError(f"{source.config_path} is not a run folder's config (no table or roles): use "
                              "`--table` / a partial config with the database (`--db`) instead")
    root = Path(runs_root) if runs_root else paths.runs_dir()
    root.mkdir(parents=True, exist_ok=True)
    job_id = new_job_id()
    while (root / job_id).exists():
        job_id = new_job_id()
    folder = RunFolder(root / job_id)
    folder.path.mkdir(parents=True)
    shutil.copy2(source.data_path, folder.data_path)
    write_json_atomic(folder.config_path, config.to_dict())
    folder.write_status({"state": "queued", "progress": 0.0, "stage": "not started",
                         "message": f"created from {source.path}", "created_at": now_iso(), "updated_at": now_iso(),
                         "pid": None, "pgid": None})
    return Job(id=job_id, run_dir=folder.path)


def is_run_folder_config(config_path) -> bool:
    """Whether a config file is a run folder's (a data.parquet snapshot beside it): see create_job_from_folder."""
    path = Path(config_path).expanduser()
    return path.name == "config.json" and (path.parent / "data.parquet").is_file()


def launch_command(job_id: str, num_processes: int = 1, resume: bool = False, runs_root: Path | None = None) -> str:
    """The shell command that Launch / Resume (and `deconfound train --processes N`) run for a job on this
    machine: `accelerate launch ...` for N > 1 (the same launcher as `python -m accelerate.commands.launch`)."""
    path = job_dir(job_id, runs_root)
    argv = worker_command(path, resume=resume, num_processes=int(num_processes), python="python")
    if int(num_processes) > 1:
        argv = ["accelerate", "launch"] + argv[3:]
    return shlex.join(argv)


def start_job(job_id: str, detach: bool = True, resume: bool = False, num_processes: int = 1,
              runs_root: Path | None = None, env: dict | None = None) -> Job:
    """Start the worker for a job as its own process group (never inside the caller's process).

    stdout/stderr go to log.txt. With `detach=False` this waits for the worker to finish.
    `num_processes > 1` runs it under `accelerate launch` (several GPUs on this machine).
    """
    job = get_job(job_id, runs_root)
    folder = job.folder
    status = job_status(job.id, runs_root=job.run_dir.parent)
    if status.get("state") in ACTIVE_STATES and worker_alive(job.id, folder):
        raise DeconfoundError(f"job {job.id} is already {status['state']}: cancel it first or wait for it "
                              "to finish")
    config = folder.config()
    num_processes = check_processes(num_processes, config.get("preset"), (config.get("rl") or {}).get("algorithm"))
    (job.run_dir / CANCEL_FILE).unlink(missing_ok=True)  # an earlier cancel is not this start's
    argv = worker_command(job.run_dir, resume=resume, num_processes=num_processes)
    # Written before the spawn: once the worker runs, status.json is the worker's alone.
    folder.write_status(folder.status() | {"state": "queued", "stage": "starting", "message": "starting the worker",
                                  "updated_at": now_iso(), "ended_at": None, "eta_s": None,
                                  "pid": None, "pgid": None, "log_tail": None})
    child_env = dict(os.environ) | (env or {}) | {"PYTHONUNBUFFERED": "1"}
    with open(folder.log_path, "ab") as log:
        log.write(f"\n=== {now_iso()} {'resume' if resume else 'start'}: {shlex.join(argv)}\n".encode())
        log.flush()
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, cwd=str(job.run_dir), env=child_env)
    started_workers[job.id] = proc
    write_json_atomic(folder.process_path, {"pid": proc.pid, "pgid": proc.pid, "host": socket.gethostname(),
                                            "proc_start": process_start_time(proc.pid), "argv": argv,
                                            "launched_at": now_iso(), "resume": resume,
                                            "num_processes": num_processes})
    if not detach:
        proc.wait()
    return job


def job_status(job_id: str, runs_root: Path | None = None) -> dict:
    """status.json of a job, plus `id`, `run_dir` and (for failed jobs) `log_tail`.

    A job still marked queued/running whose worker process is gone (killed, crashed, out of memory, pid
    reused by another program) is marked failed here, with the log's last lines, so the state is right
    even after the dashboard restarted.
    """
    path = job_dir(job_id, runs_root)
    folder = RunFolder(path)
    status = folder.status()
    if status.get("state") in ACTIVE_STATES:
        alive = worker_alive(path.name, folder)
        if alive is False:
            status = _mark_dead(path.name, folder)
    out = {"id": path.name, "run_dir": str(path)} | status
    if out.get("state") == "failed" and not out.get("log_tail"):
        out["log_tail"] = folder.log_tail()
    return out


def worker_alive(job_id: str, folder: RunFolder) -> bool | None:
    """True/False when the worker's liveness can be checked here, None when it cannot (never started,
    or started on another machine, e.g. a cluster run whose folder was copied back)."""
    proc = started_workers.get(job_id)
    if proc is not None:  # started by this process: poll() knows, and reaps the zombie
        if proc.poll() is not None:
            return False
        stat = proc_stat(proc.pid)  # a zombie whose threads are still exiting is not reaped yet
        return stat is not None and stat[0] not in ("Z", "X")
    # The launcher recorded by start_job, and the worker's own entry (a worker started by hand, e.g.
    # `accelerate launch` in a terminal, has only that one).
    status = folder.status()
    candidates = [read_json(folder.process_path, default=None) or {},
                  {k: status.get(k) for k in ("pid", "host", "proc_start")}]
    checkable = [c for c in candidates if c.get("pid") and c.get("host", socket.gethostname()) in
                 (None, socket.gethostname())]
    if not checkable:
        return None
    return any(pid_alive(int(c["pid"]), c.get("proc_start")) for c in checkable)


def _mark_dead(job_id: str, folder: RunFolder) -> dict:
    """Record a worker that vanished without reporting as failed, with the log tail."""
    status = folder.status()
    if status.get("state") not in ACTIVE_STATES:  # it finished between our two reads
        return status
    proc = started_workers.get(job_id)
    if proc is not None and proc.returncode is None:
        try:
            proc.wait(timeout=5)  # collect the exit status of a dying child
        except subprocess.TimeoutExpired:
            pass
    how = ""
    processes = int((read_json(folder.process_path, default={}) or {}).get("num_processes") or 1)
    if proc is not None and proc.returncode is not None and proc.returncode < 0:
        how = f" (killed by {signal.Signals(-proc.returncode).name})"
    elif proc is not None and proc.returncode:
        how = f" (exit code {proc.returncode})"
    tail = folder.log_tail()
    logged = [line for line in tail if LOG_LINE_RE.match(line)] or [line for line in tail if line.strip()]
    if processes > 1:
        how += f" (one of its {processes} processes stopped and the launcher stopped the rest)"
    message = (f"the worker stopped without reporting{how}: it was killed, ran out of memory or crashed "
               f"during '{status.get('stage', '?')}'. Last log line: {logged[-1] if logged else '(empty log)'}. "
               "Resume continues from the last finished stage or checkpoint.")
    return folder.update_status(state="failed", message=message, ended_at=now_iso(), eta_s=None, log_tail=tail)


def cancel_job(job_id: str, grace_s: float = CANCEL_GRACE_S, runs_root: Path | None = None) -> dict:
    """Stop a job: SIGTERM to its whole process group and every process it started (the worker stops at
    its next step and keeps its checkpoints consistent), SIGKILL after `grace_s`; the state becomes cancelled."""
    path = job_dir(job_id, runs_root)
    folder = RunFolder(path)
    status = job_status(path.name, runs_root=path.parent)
    if status.get("state") not in ACTIVE_STATES:
        raise DeconfoundError(f"job {path.name} is {status.get('state')}, not running: nothing to cancel")
    launch = read_json(folder.process_path, default={}) or {}
    # Told before any signal: the worker then knows a stop is the user's, not a sibling process that died.
    write_json_atomic(path / CANCEL_FILE, {"requested_at": now_iso()})
    pgid, root = launch.get("pgid"), launch.get("pid")
    if root and not pid_alive(int(root), launch.get("proc_start")):
        root = None  # gone, or the pid now belongs to another program: never signal its children
    if pgid and worker_alive(path.name, folder) is not False:
        pgid = int(pgid)
        members = job_processes(pgid, root)
        signal_all(pgid, members, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while members and time.monotonic() < deadline:
            time.sleep(0.2)
            members = _still_running(path.name, pgid, root, members)
        if members:
            signal_all(pgid, members, signal.SIGKILL)
            deadline = time.monotonic() + 5
            while members and time.monotonic() < deadline:
                time.sleep(0.1)
                members = _still_running(path.name, pgid, root, members)
    proc = started_workers.get(path.name)
    if proc is not None:
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
    status = folder.status()
    if status.get("state") != "cancelled":
        status = folder.update_status(state="cancelled", message="cancelled by the user", ended_at=now_iso(),
                                      eta_s=None)
    return {"id": path.name, "run_dir": str(path)} | status


def _still_running(job_id: str, pgid: int, root: int | None, known: set[int]) -> set[int]:
    proc = started_workers.get(job_id)
    if proc is not None:
        proc.poll()  # reap the leader so it does not count as a member
    return job_processes(pgid, root, known)


def resume_job(job_id: str, detach: bool = True, num_processes: int | None = None,
               runs_root: Path | None = None) -> Job:
    """Restart a failed or cancelled job: finished stages are skipped, RL continues from its checkpoint.
    `num_processes` None: as many processes as its last start."""
    status = job_status(job_id, runs_root)
    if status.get("state") not in ("failed", "cancelled"):
        raise DeconfoundError(f"job {status['id']} is {status.get('state')}: only failed or cancelled jobs "
                              "can be resumed")
    if num_processes is None:
        num_processes = job_processes_count(status["id"], Path(status["run_dir"]).parent)
    return start_job(status["id"], detach=detach, resume=True, num_processes=num_processes,
                     runs_root=Path(status["run_dir"]).parent)


def wait_job(job_id: str, timeout_s: float | None = None, poll_s: float = 1.0, on_update=None,
             runs_root: Path | None = None) -> dict:
    """Block until a job reaches a final state (or the timeout); `on_update(status)` after each poll."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        status = job_status(job_id, runs_root)
        if on_update:
            on_update(status)
        if status.get("state") in FINAL_STATES:
            return status
        if deadline is not None and time.monotonic() > deadline:
            return status
        time.sleep(poll_s)


def list_jobs(runs_root: Path | None = None) -> list[dict]:
    """All jobs, newest first: id, name (as given at launch, else the id), state, progress, stage, message, eta_s,
    run_dir, table, methods, preset, created_at, started_at, ended_at, updated_at, duration_s (first start to
    end, or to now while it runs; None before it starts) and note. The state is `job_status`'s (dead workers
    detected). Reads JSON files only (plus /proc for running ones)."""
    root = Path(runs_root) if runs_root else paths.runs_dir()
    if not root.is_dir():
        return []
    rows = []
    for path in sorted(root.iterdir(), reverse=True):
        folder = RunFolder(path)
        if not path.is_dir() or not folder.exists():
            continue
        status = job_status(path.name, runs_root=root) if JOB_ID_RE.match(path.name) else folder.status()
        config = folder.config()
        about = read_json(path / ABOUT_FILE, default=None) or {}
        rows.append({"id": path.name, "name": about.get("name") or path.name, "state": status.get("state", "unknown"),
                     "progress": float(status.get("progress") or 0.0), "stage": status.get("stage", ""),
                     "message": status.get("message", ""), "eta_s": status.get("eta_s"),
                     "run_dir": str(path), "table": config.get("table"), "methods": config.get("methods", []),
                     "preset": config.get("preset"), "created_at": status.get("created_at"),
                     "started_at": status.get("started_at"), "ended_at": status.get("ended_at"),
                     "updated_at": status.get("updated_at"), "duration_s": run_duration(status),
                     "note": about.get("note") or "",
                     "processes": int((read_json(folder.process_path, default={}) or {}).get("num_processes") or 1)})
    return rows


def run_duration(status: dict) -> float | None:
    """Seconds from a run's first start to its end (to now while it is queued or running); None before it
    started or when the times cannot be read."""
    start = _parse_time(status.get("started_at"))
    if start is None:
        return None
    end = _parse_time(status.get("ended_at"))
    if end is None:
        if status.get("state") not in ACTIVE_STATES:
            end = _parse_time(status.get("updated_at"))
        end = end or datetime.now(timezone.utc)
    return max(0.0, (end - start).total_seconds())


def _parse_time(text) -> datetime | None:
    try:
        moment = datetime.fromisoformat(str(text))
    except (TypeError, ValueError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def job_processes_count(job_id: str, runs_root: Path | None = None) -> int:
    """How many processes the job's last start ran (1 when it never started)."""
    launch = read_json(RunFolder(job_dir(job_id, runs_root)).process_path, default={}) or {}
    return int(launch.get("num_processes") or 1)


def cancel_requested(run_dir) -> bool:
    """Whether `cancel_job` asked this run to stop (the worker tells a user's cancel from a failed sibling)."""
    return (Path(run_dir) / CANCEL_FILE).is_file()


def accelerate_command(job_id: str, num_processes: int = 2, num_machines: int = 1, resume: bool = False,
                       runs_root: Path | None = None) -> str:
    """The exact shell command that runs this job under `accelerate launch` with N processes.

    Several GPUs on one machine: run it as shown. Several machines: copy the run folder to shared storage,
    run the command on every machine with `--num_machines M --machine_rank R --main_process_ip IP
    --main_process_port PORT` added (N counts processes on all machines), then copy the folder back into
    the runs folder; the dashboard shows it like any other run.
    """
    path = job_dir(job_id, runs_root)
    parts = ["accelerate", "launch", "--num_processes", str(int(num_processes))]
    if num_machines > 1:
        parts += ["--num_machines", str(int(num_machines)), "--machine_rank", "$MACHINE_RANK",
                  "--main_process_ip", "$MAIN_IP", "--main_process_port", "29500"]
    parts += ["-m", "deconfound.worker", str(path)] + (["--resume"] if resume else [])
    return " ".join(p if p.startswith("$") else shlex.quote(p) for p in parts)


def format_job_line(row: dict) -> str:
    """One human-readable line for a job."""
    progress = float(row.get("progress") or 0.0)
    eta = row.get("eta_s")
    eta_text = f" eta {format_seconds(eta)}" if eta and row.get("state") in ACTIVE_STATES else ""
    return (f"{row.get('id', row.get('job_id'))}  {row.get('state', '?'):9s} {progress:6.1%}  "
            f"{(row.get('stage') or '')[:24]:24s}{eta_text}  {row.get('run_dir')}")


def format_seconds(seconds: float | None) -> str:
    """90 -> '1m 30s'; None -> '?'."""
    if seconds is None:
        return "?"
    seconds = int(round(float(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"


def _remove_tree(path: Path) -> None:
    import shutil
    shutil.rmtree(path, ignore_errors=True)
