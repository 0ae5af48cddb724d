"""The operating-system side of a job: is a worker process alive (and the same one: pid reuse), which
processes belong to a job (its process group and every descendant), signalling them, and what this machine
can run (CPU cores, CUDA devices, accelerate installed) — learned without importing torch here.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

# Job id -> the worker this process started: poll() knows its state and reaps it (a dashboard restart forgets
# them, and liveness falls back to /proc and the pids recorded in the run folder).
started_workers: dict[str, subprocess.Popen] = {}


def pid_alive(pid: int, proc_start: int | None = None) -> bool:
    """Whether a process runs (not a zombie) and is the same one (same start time, where /proc has it)."""
    stat = proc_stat(pid)
    if stat is None:
        if Path("/proc/self/stat").exists():  # Linux: no /proc entry means no process
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    state, start = stat
    if state in ("Z", "X"):
        _reap(pid)
        return False
    return proc_start is None or start == proc_start


def process_start_time(pid: int) -> int | None:
    """Start time of a process in clock ticks since boot (from /proc; None where there is no /proc)."""
    stat = proc_stat(pid)
    return stat[1] if stat else None


def proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time) from /proc/PID/stat, or None."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError, OSError):
        return None
    fields = raw[raw.rfind(")") + 2:].split()  # the command name may contain spaces and parentheses
    return fields[0], int(fields[19])


def _reap(pid: int) -> None:
    """Collect a zombie child of this process (no-op for other processes' children)."""
    for proc in started_workers.values():
        if proc.pid == pid:  # let Popen collect it, so it keeps the exit status
            proc.poll()
            return
    try:
        os.waitpid(pid, os.WNOHANG)
    except (ChildProcessError, OSError):
        pass


def _process_table() -> dict[int, tuple[str, int, int]]:
    """pid -> (state, parent pid, process group) for every process in /proc (empty without /proc)."""
    table = {}
    proc_root = Path("/proc")
    if not proc_root.is_dir():
        return table
    for entry in proc_root.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rfind(")") + 2:].split()
        table[int(entry.name)] = (fields[0], int(fields[1]), int(fields[2]))
    return table


def job_processes(pgid: int, root_pid: int | None = None, known: set[int] | None = None) -> set[int]:
    """Live (non-zombie) processes of a job: its process group, every descendant of the launched process
    (launchers such as torchrun put their workers in groups of their own) and `known` ones still alive.
    Zombies that are this process's children are reaped on the way."""
    table = _process_table()
    if not table:  # no /proc: the group is all we can see
        try:
            os.killpg(pgid, 0)
            return {pgid}
        except (ProcessLookupError, PermissionError):
            return set()
    for pid, (state, _, group) in table.items():
        if state in ("Z", "X") and (group == pgid or pid in (known or ())):
            _reap(pid)
    live = {pid for pid, (state, _, _) in table.items() if state not in ("Z", "X")}
    found = {pid for pid in live if table[pid][2] == pgid} | ({p for p in known if p in live} if known else set())
    children: dict[int, list[int]] = {}
    for pid, (_, parent, _) in table.items():
        children.setdefault(parent, []).append(pid)
    stack = list(found) + ([root_pid] if root_pid else [])
    while stack:
        for child in children.get(stack.pop(), []):
            if child in live and child not in found:
                found.add(child)
                stack.append(child)
    return found


def group_alive(pgid: int) -> bool:
    """Whether any live (non-zombie) process remains in a process group."""
    return bool(job_processes(pgid))


def signal_all(pgid: int, pids: set[int], sig: int) -> None:
    """Send a signal to a process group and to each listed process."""
    for send, target in [(os.killpg, pgid)] + [(os.kill, pid) for pid in pids]:
        try:
            send(target, sig)
        except (ProcessLookupError, PermissionError):
            pass


# ---------------------------------------------------------------------------- what this machine can run
def cpu_cores() -> int:
    """CPU cores this process may use (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def accelerate_installed() -> bool:
    """Whether `accelerate` (the multi-process launcher) can be imported."""
    return importlib.util.find_spec("accelerate") is not None


@functools.lru_cache(maxsize=1)
def cuda_device_count() -> int:
    """CUDA devices torch can use here (0 without CUDA or torch). Asked in a child process once: the dashboard
    imports this module and must not load torch (or initialise CUDA) itself."""
    probe = "import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)"
    try:
        done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
        return int(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else 0
    except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
        return 0
