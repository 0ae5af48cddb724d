"""The deconfounded (corrected) outcome y − (ĥ(C) − mean ĥ(C)), where ĥ(C) = Σ β̂ₖ·Cₖ over the confounder
terms of a fitted `EstimateResult` only.

Centring at the mean of ĥ keeps the corrected outcome on the raw outcome's scale (same mean); ranks, which is
all the reward model uses, are unaffected. `write_deconfounded_column` adds it to the table as a new column
(the original is never altered) with its method and estimate in the column meta.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

import numpy as np
import pandas as pd

from ..errors import DeconfoundError
from .calendar_effects import from_model_scale, term_values, to_model_scale
from .results import EstimateResult
from .terms import MISSING_LEVEL


def confounder_part(data: pd.DataFrame, result: EstimateResult) -> np.ndarray:
    """ĥ(C) = Σ β̂ₖ·Cₖ over the confounder terms (dummies rebuilt from each term's level); NaN where missing."""
    h = np.zeros(len(data))
    for term in result.confounder_terms:
        beta = result.coef[term["term"]]
        column = data[term["column"]]
        if term.get("calendar"):  # a time confounder: the term is a calendar level of the timestamp
            values = term_values(column, term)
        elif term.get("level") is None:
            values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64)
        else:
            labels = column.astype("string").fillna(MISSING_LEVEL)
            values = (labels == term["level"]).to_numpy(dtype=np.float64)
        h = h + beta * values
    return h


def deconfounded_outcome(data: pd.DataFrame, result: EstimateResult, centre: bool = True) -> tuple[np.ndarray, float]:
    """y − (ĥ(C) − offset), with offset = mean ĥ(C) when `centre` (keeps the raw mean), else 0. An effect
    estimated on log(1 + y) is removed on that scale and the result returned to the outcome's own:
    expm1(log1p(y) − (ĥ − offset)).

    Returns (values, offset); rows with a missing outcome or confounder give NaN.
    """
    scale = (result.config or {}).get("outcome_scale", "raw")
    y = to_model_scale(data[result.outcome], scale, f"outcome '{result.outcome}'")
    h = confounder_part(data, result)
    offset = float(np.nanmean(h)) if centre and np.isfinite(h).any() else 0.0
    return from_model_scale(y - (h - offset), scale), offset


def default_column_name(result: EstimateResult) -> str:
    """e.g. outcome_deconf_iv."""
    return f"{result.outcome}_deconf_{result.method}"[:63]


def latest_corrected_column(store, table: str, outcome: str | None) -> tuple[str | None, dict]:
    """The newest deconfounded-outcome column saved for this table's outcome (Deconfound step), if any."""
    best, meta = None, {}
    for name, info in store.column_meta(table).items():
        if info.get("kind") == "deconfounded_outcome" and info.get("source_outcome") in (None, outcome):
            if best is None or str(info.get("created_at", "")) >= str(meta.get("created_at", "")):
                best, meta = name, info
    return best, meta


def write_deconfounded_column(store, table: str, result: EstimateResult, name: str | None = None,
                              centre: bool = True, replace: bool = False) -> dict:
    """Add y − ĥ(C) to the table as a new column, with the method and estimate in its column meta.

    Refuses to overwrite any column that it did not create itself, so the source columns never change.
    Returns the meta that was recorded (plus the column's name under "column").
    """
    name = name or default_column_name(result)
    schema = store.schema(table)
    derived = store.column_meta(table)
    if name in schema and name not in derived:
        raise DeconfoundError(f"'{name}' is an original column of '{table}' and is never overwritten: "
                              "choose another name for the corrected outcome")
    if name in derived and not replace:
        raise DeconfoundError(f"column '{name}' already exists in '{table}': choose another name or replace it")
    columns = list(dict.fromkeys([result.outcome] + [t["column"] for t in result.confounder_terms]))
    data = store.read_frame(table, columns, with_rowid=True)
    values, offset = deconfounded_outcome(data, result, centre=centre)
    terms = result.terms
    meta = {
        "kind": "deconfounded_outcome",
        "method": result.method,
        "coef": {t: result.coef[t] for t in terms},
        "std_err": {t: result.std_err[t] for t in terms},
        "conf_int": {t: result.conf_int[t] for t in terms},
        "formula": _formula(name, result, terms, offset, centre),
        "model": result.formula,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "source_outcome": result.outcome,
        "confounders": sorted({t["column"] for t in result.confounder_terms}),
        "centred": centre,
        "outcome_scale": (result.config or {}).get("outcome_scale", "raw"),
        "offset": offset,
        "n": result.n,
        "warnings": list(result.warnings),
        "estimate": result.to_dict(),
    }
    store.write_column(table, name, values, data["_rowid"].to_numpy(), meta=meta, replace=replace)
    return {"column": name, **meta}


def _formula(name: str, result: EstimateResult, terms: list[str], offset: float, centre: bool) -> str:
    """The corrected column as a formula (on log(1 + y) and back, for a log1p outcome)."""
    h = "(" + " + ".join(f"{result.coef[t]:.6g}*{t}" for t in terms) + (f" - {offset:.6g})" if centre else ")")
    if (result.config or {}).get("outcome_scale") == "log1p":
        return f"{name} = expm1(log1p({result.outcome}) - {h})"
    return f"{name} = {result.outcome} - {h}"


def corrected_sample(store, table: str, result: EstimateResult, truth: str | None = None,
                     rows: int = 5000) -> pd.DataFrame:
    """A random sample of at most `rows` rows of the raw outcome and its correction by `result` (columns 'raw
    outcome' and 'corrected'), plus the truth column as 'truth' when one is named (simulation data)."""
    columns = list(dict.fromkeys([result.outcome] + [t["column"] for t in result.confounder_terms]
                                 + ([truth] if truth else [])))
    sample = store.read_frame(table, columns, sample_rows=min(store.row_count(table), rows))
    corrected, _ = deconfounded_outcome(sample, result)
    out = pd.DataFrame({"raw outcome": sample[result.outcome].to_numpy(dtype=float), "corrected": corrected})
    if truth:
        out["truth"] = sample[truth].to_numpy(dtype=float)
    return out


def truth_correlations(sample: pd.DataFrame) -> tuple[float, float]:
    """Correlation of the raw and of the corrected outcome with the truth, on the rows where all three are
    known (a `corrected_sample` with a truth column)."""
    raw, corrected, truth = (sample[c].to_numpy(dtype=float) for c in ("raw outcome", "corrected", "truth"))
    ok = np.isfinite(truth) & np.isfinite(corrected) & np.isfinite(raw)
    return float(np.corrcoef(raw[ok], truth[ok])[0, 1]), float(np.corrcoef(corrected[ok], truth[ok])[0, 1])


def corrected_columns_table(store, table: str) -> pd.DataFrame:
    """The corrected-outcome and score columns saved with a table: name, method, effect, when created."""
    return pd.DataFrame([{"column": c, "method": m.get("method"), "effect": json.dumps(m.get("coef")),
                          "created": m.get("created_at")} for c, m in store.column_meta(table).items()])

