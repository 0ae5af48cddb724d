"""`deconfound` command line: the same code paths as the dashboard, headless.

Every command takes `--db PATH` and `--json`. A user error prints one line on stderr and exits 2;
an unexpected error prints one line and the log's path (the traceback goes to the log), exit 1.
One module per step of the flow holds its commands and their parsers.
"""

from __future__ import annotations

import logging
import sys
import traceback
from pathlib import Path

from .. import paths
from ..errors import DeconfoundError
from . import audit_commands, causal_commands, data_commands, evaluate_commands, run_commands
from .common import EXIT_USER_ERROR, Parser, UsageError

log = logging.getLogger("deconfound")
STEPS = (data_commands, causal_commands, run_commands, evaluate_commands, audit_commands)


def build_parser() -> Parser:
    """All subcommands; each has --db and --json."""
    common = Parser(add_help=False)
    common.add_argument("--db", default=None, help="DuckDB file (default: $DECONFOUND_HOME/studio.duckdb)")
    common.add_argument("--json", action="store_true", help="machine-readable output")
    parser = Parser(prog="deconfound", description="DeconfoundLM Studio: deconfounded fine-tuning on logs")
    sub = parser.add_subparsers(dest="command", parser_class=Parser)
    for step in STEPS:
        step.add_parsers(sub, common)
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


__all__ = ["UsageError", "build_parser", "main"]
