"""What every command shares: one-line usage errors, the store and run folder an argument names, JSON or text
output."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import DeconfoundError
from ..jsonio import json_default

EXIT_USER_ERROR = 2


class UsageError(DeconfoundError):
    """Bad command-line arguments."""


class Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage and exiting, so errors stay one line."""

    def error(self, message):  # noqa: D401 - argparse API
        raise UsageError(f"{self.prog}: {message} (see --help)")


def open_store(args):
    """The store of `--db` (default: $DECONFOUND_HOME/studio.duckdb)."""
    from ..data import Store
    return Store(args.db)


def run_dir_of(args) -> Path:
    """The run folder named by a RUN_DIR argument (a folder or a job id)."""
    from ..runs import job_dir
    return job_dir(args.run_dir)


def emit(args, payload, text: str) -> None:
    """Print JSON when --json was given, else the human-readable text."""
    if getattr(args, "json", False):
        print(json.dumps(payload, indent=2, default=json_default))
    else:
        print(text)
