"""JSON-safe values: results hold numpy scalars and NaNs, which `json.dumps` rejects or writes as NaN."""

from __future__ import annotations

import math

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
