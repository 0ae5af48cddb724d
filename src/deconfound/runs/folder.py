"""One run folder: the files a training job reads and writes (layout in docs/ARCHITECTURE.md).

config.json and data.parquet are written once when the job is created; status.json is replaced atomically
(the worker owns it while it lives); metrics.jsonl and samples.jsonl grow one line at a time; stages.json
records finished stages so a resumed run skips them.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

from ..jsonio import append_jsonl, read_json, read_jsonl, write_json_atomic

LOG_TAIL_LINES = 20


def now_iso() -> str:
    """UTC time as ISO-8601 text (what status.json holds)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# ---------------------------------------------------------------------------- the run folder
class RunFolder:
    """Reads and writes the files of one run folder (status, metrics, samples, stages, log)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    # named files
    config_path = property(lambda self: self.path / "config.json")
    status_path = property(lambda self: self.path / "status.json")
    process_path = property(lambda self: self.path / "process.json")  # who launched the worker, for liveness
    log_path = property(lambda self: self.path / "log.txt")
    metrics_path = property(lambda self: self.path / "metrics.jsonl")
    samples_path = property(lambda self: self.path / "samples.jsonl")
    stages_path = property(lambda self: self.path / "stages.json")
    data_path = property(lambda self: self.path / "data.parquet")
    generations_path = property(lambda self: self.path / "generations.csv")

    def exists(self) -> bool:
        """Whether this looks like a run folder (it has a config)."""
        return self.config_path.is_file()

    def config(self) -> dict:
        """config.json as a dict."""
        return read_json(self.config_path, default={})

    def status(self) -> dict:
        """status.json as stored (no liveness check: use `job_status` for that)."""
        return read_json(self.status_path, default={})

    def write_status(self, status: dict) -> None:
        """Replace status.json atomically (temp file + os.replace: readers never see half a file)."""
        write_json_atomic(self.status_path, status)

    def update_status(self, **fields) -> dict:
        """Merge fields into status.json (only for writers that know the worker is not running)."""
        status = self.status() | fields | {"updated_at": now_iso()}
        self.write_status(status)
        return status

    def append_metrics(self, record: dict) -> None:
        """One JSON object per line in metrics.jsonl."""
        append_jsonl(self.metrics_path, record)

    def metrics(self) -> list[dict]:
        """All metrics records (a half-written last line is skipped)."""
        return read_jsonl(self.metrics_path)

    def append_samples(self, records: list[dict]) -> None:
        """Sample generations for the live panel (samples.jsonl)."""
        for record in records:
            append_jsonl(self.samples_path, record)

    def samples(self, last: int | None = None) -> list[dict]:
        """Sample generations, optionally only the last few."""
        rows = read_jsonl(self.samples_path)
        return rows[-last:] if last else rows

    def stages(self) -> list[dict]:
        """Finished stages, in order: [{"stage", "finished_at", "seconds", ...}]."""
        return read_json(self.stages_path, default=[])

    def finished(self, stage: str) -> bool:
        """Whether a stage is recorded as finished (resume skips it)."""
        return any(s.get("stage") == stage for s in self.stages())

    def mark_finished(self, stage: str, **info) -> None:
        """Record a finished stage in stages.json."""
        stages = [s for s in self.stages() if s.get("stage") != stage]
        stages.append({"stage": stage, "finished_at": now_iso(), **info})
        write_json_atomic(self.stages_path, stages)

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> list[str]:
        """The last lines of log.txt (empty if there is no log yet)."""
        if not self.log_path.is_file():
            return []
        with open(self.log_path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            text = fh.read().decode("utf-8", errors="replace")
        return [line.rstrip("\r") for line in text.splitlines()[-lines:]]
