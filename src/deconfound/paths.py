"""Where runtime files live: one folder, `DECONFOUND_HOME`, holding the database, runs and model cache."""

from __future__ import annotations

import os
from pathlib import Path

_PROJECT_ROOT = Path(__file__).resolve().parents[2]


def home() -> Path:
    """The runtime folder: $DECONFOUND_HOME, else `.deconfound/` in the project checkout (git-ignored),
    else `~/.deconfound` for an installed package."""
    env = os.environ.get("DECONFOUND_HOME")
    if env:
        path = Path(env).expanduser()
    elif (_PROJECT_ROOT / "pyproject.toml").exists():
        path = _PROJECT_ROOT / ".deconfound"
    else:
        path = Path.home() / ".deconfound"
    path.mkdir(parents=True, exist_ok=True)
    return path


def default_db() -> Path:
    """The default DuckDB file (persistent across restarts)."""
    return home() / "studio.duckdb"


def uploads_dir() -> Path:
    """Where uploaded files are staged before ingest; nothing is written outside it."""
    path = home() / "uploads"
    path.mkdir(parents=True, exist_ok=True)
    return path


def runs_dir() -> Path:
    """One sub-folder per training job."""
    path = home() / "runs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def model_cache_dir() -> Path:
    """Converted model weights (e.g. the GGUF generator saved once as safetensors)."""
    path = home() / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


def demo_data_dir() -> Path:
    """The demo CSVs shipped with the repository."""
    return _PROJECT_ROOT / "data"
