"""JSON and JSON-lines files, the one home for reading and writing them.

Results hold numpy scalars, NaNs and paths, which `json.dumps` rejects or writes as NaN; `jsonable` and
`json_default` make them valid JSON. Writes are atomic (temp file + os.replace) so a reader never sees half
a file, and JSON-lines appends are one write call so a concurrent reader sees whole lines or none.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np


def jsonable(value):
    """NaN/inf → None, numpy scalars → Python, tuples → lists, dict keys → str; recursively."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def json_default(obj):
    """`json.dumps(default=...)` for what `jsonable` leaves: numpy/torch scalars (NaN → None), arrays, paths,
    anything else as its text."""
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if hasattr(obj, "item"):  # numpy / torch scalars
        value = obj.item()
        return None if isinstance(value, float) and not math.isfinite(value) else value
    return str(obj)


def dumps(payload, indent: int | None = 2) -> str:
    """JSON text of `payload` (numpy values, NaN and paths made valid)."""
    return json.dumps(jsonable(payload), indent=indent, default=json_default)


def read_json(path, default=None):
    """A JSON file, or `default` when it is missing or unreadable (atomic writes never leave half a file)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError, UnicodeDecodeError):
        return default


def write_json_atomic(path, payload) -> None:
    """Write JSON to a temp file in the same folder, then os.replace it over the target."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=json_default), encoding="utf-8")
    os.replace(tmp, path)


def append_jsonl(path, record: dict) -> None:
    """Append one JSON line (one write call, so concurrent readers see whole lines or none)."""
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, default=json_default) + "\n")


def read_jsonl(path) -> list[dict]:
    """All complete JSON lines of a file (missing file: empty list; a line being written is skipped)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    rows = []
    for line in text.splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows
