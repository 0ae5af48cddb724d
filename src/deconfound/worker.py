"""The training worker: `python -m deconfound.worker RUN_DIR [--resume]`.

Started by `jobs.start_job` (its own process group, stdout/stderr into the run's log.txt) or by hand /
under `accelerate launch` on a cluster. It runs `pipeline.run_pipeline` on the run folder and records the
outcome in status.json: completed, failed (message here, traceback in log.txt) or cancelled. SIGTERM
(what `jobs.cancel_job` sends) stops the run at its next step, so checkpoints stay consistent.
Under accelerate the processes join one process group first (gloo on CPU, NCCL on GPUs), split the job's CPU
threads, and only the main process (RANK 0) writes status and metrics. When one process dies the launcher
stops the others; the main one then records the job as failed (not cancelled: no one asked).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import traceback
import warnings
from pathlib import Path

from .errors import DeconfoundError
from .runs.folder import RunFolder, now_iso

log = logging.getLogger("deconfound")


def process_rank() -> int:
    """Global rank under torch.distributed/accelerate (0 when run alone)."""
    return int(os.environ.get("RANK", "0") or 0)


def setup_logging(folder: RunFolder, rank: int) -> None:
    """Timestamped log lines into log.txt (once, whether stderr already points there or not)."""
    fmt = logging.Formatter(f"%(asctime)s [{'rank ' + str(rank) + ' ' if rank else ''}%(levelname)s] %(message)s",
                            "%Y-%m-%d %H:%M:%S")
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    for handler in list(root.handlers):
        root.removeHandler(handler)
    stream = logging.StreamHandler(sys.stderr)
    stream.setFormatter(fmt)
    root.addHandler(stream)
    if rank == 0 and not _stderr_is(folder.log_path):  # started by hand: also keep the run's own log
        file_handler = logging.FileHandler(folder.log_path, encoding="utf-8")
        file_handler.setFormatter(fmt)
        root.addHandler(file_handler)
    for noisy in ("httpx", "urllib3", "filelock", "datasets", "fsspec"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _stderr_is(path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(sys.stderr.fileno()), os.stat(path))
    except (OSError, ValueError, AttributeError):
        return False


def quiet_libraries() -> None:
    """No hub access, no progress bars or deprecation chatter in log.txt (its last lines explain failures)."""
    for name, value in (("HF_HUB_OFFLINE", "1"), ("TRANSFORMERS_OFFLINE", "1"), ("HF_DATASETS_OFFLINE", "1"),
                        ("HF_DATASETS_DISABLE_PROGRESS_BARS", "1"), ("HF_HUB_DISABLE_PROGRESS_BARS", "1"),
                        ("TOKENIZERS_PARALLELISM", "false")):
        os.environ.setdefault(name, value)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    try:
        from transformers.utils import logging as hf_logging
        hf_logging.disable_progress_bar()
    except ImportError:  # transformers missing: the pipeline will say so when it needs it
        pass


def process_count() -> int:
    """Processes of this job in all (1 when run alone)."""
    return max(1, int(os.environ.get("WORLD_SIZE", "1") or 1))


def set_threads(threads: int | None) -> None:
    """Set torch's intra-op threads deliberately (oversubscribed cores make torch several times slower); the
    processes of one job on one machine share `threads`."""
    if not threads:
        return
    from .models import set_torch_threads
    set_torch_threads(int(threads))


def main(argv: list[str] | None = None) -> int:
    """Run one job's pipeline; returns the exit code (0 completed, 1 failed, 2 bad input, 143 cancelled)."""
    parser = argparse.ArgumentParser(prog="python -m deconfound.worker",
                                     description="run the training pipeline of one run folder")
    parser.add_argument("run_dir", help="the job's run folder (config.json + data.parquet)")
    parser.add_argument("--resume", action="store_true", help="skip finished stages, resume RL from checkpoints")
    args = parser.parse_args(argv)

    folder = RunFolder(Path(args.run_dir).resolve())
    rank = process_rank()
    main_process = rank == 0
    if not folder.exists():
        print(f"error: {folder.path} is not a run folder (no config.json)", file=sys.stderr)
        return 2
    setup_logging(folder, rank)
    threads = folder.config().get("threads")
    processes = process_count()
    if threads:  # before torch is first imported, so its OpenMP pool starts at this size (torchrun sets 1)
        local = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1))
        os.environ.setdefault("OMP_NUM_THREADS", str(max(1, int(threads) // local)))
    quiet_libraries()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: _request_stop(stop, signum))
    signal.signal(signal.SIGINT, lambda signum, frame: _request_stop(stop, signum))

    from . import runs  # after logging: the pipeline logs its imports and stages
    log.info("worker pid %d (group %d) %s %s%s", os.getpid(), os.getpgrp(), "resuming" if args.resume else "starting",
             folder.path, f" as process {rank} of {processes}" if processes > 1 else "")
    try:
        if processes > 1:
            from .models import init_distributed
            log.info("process group joined (%s backend)", init_distributed())
        set_threads(threads)
        if str(folder.config().get("kind") or "").startswith("audit/"):  # an audit's run folder (deconfound.audits)
            from . import audits
            audits.run_audit_job(folder.path, resume=args.resume, stop=stop, write_status=main_process)
            return 0
        runs.run_pipeline(folder.path, resume=args.resume, stop=stop, write_status=main_process)
        return 0
    except runs.cancelled_errors() as exc:
        log.info("cancelled: %s", exc or "stop requested")
        if main_process and processes > 1 and not runs.cancel_requested(folder.path):
            _finish(folder, "failed", f"another of the job's {processes} processes stopped (killed, out of memory "
                                      "or crashed: its lines are in log.txt), so the launcher stopped the rest; "
                                      "resume continues from the last checkpoint")
            return 1
        if main_process:
            _finish(folder, "cancelled", "cancelled by the user; resume continues from the last checkpoint")
        return 143
    except DeconfoundError as exc:
        log.error("stopped: %s", exc)
        if main_process:
            _finish(folder, "failed", str(exc))
        return 2
    except BaseException as exc:  # a bug or a crash in a library: message in status, traceback in the log
        log.error("failed\n%s", traceback.format_exc())
        if main_process:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            first = first if len(first) <= 200 else first[:200] + "…"  # e.g. gloo's long "connection reset" text
            message = f"{type(exc).__name__}: {first} (traceback in log.txt)"
            if stop.is_set() and runs.cancel_requested(folder.path):  # a collective broken by a cancelled peer
                _finish(folder, "cancelled", "cancelled by the user; resume continues from the last checkpoint")
                return 143
            if processes > 1:
                message = (f"one of the job's {processes} processes failed and the others stopped with it "
                           f"(each one's traceback is in log.txt); on the main process: {message}")
            _finish(folder, "failed", message)
        return 1


def _request_stop(stop: threading.Event, signum: int = signal.SIGTERM) -> None:
    if stop.is_set():
        if signum == signal.SIGINT:  # Ctrl-C twice: stop now, the run can be resumed from its last checkpoint
            raise KeyboardInterrupt("stopped twice")
        # SIGTERM again: under accelerate the launcher forwards the cancel every process already got; stopping
        # mid-step here would break the others' collective step, and cancel_job sends SIGKILL after its grace.
        return
    log.info("stop requested: finishing the current step")
    stop.set()


def _finish(folder: RunFolder, state: str, message: str) -> None:
    status = folder.status()
    status.update(state=state, message=message, ended_at=now_iso(), updated_at=now_iso(), eta_s=None,
                  log_tail=folder.log_tail() if state == "failed" else None)
    folder.write_status(status)


if __name__ == "__main__":
    sys.exit(main())
