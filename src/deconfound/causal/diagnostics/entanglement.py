"""Entanglement: how well the text predicts each confounder (cross-validated R² from text features), beyond
what the instruments explain, and the confounder's correlation with the truth column when there is one.
Entangled confounders are the case where naive corrections fail (paper §4.1).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ...data import Roles
from ...jsonio import jsonable as _jsonable
from ..estimators import blas_threads, cross_fit_residuals, text_matrix
from ..terms import column_terms
from .config import DiagnosticsConfig, records


@dataclass
class EntanglementResult:
    """How much of each confounder the text predicts, and whether it moves with quality."""

    confounders: pd.DataFrame  # confounder, r2_text, r2_instruments, r2_text_beyond_instruments, corr_truth, ...
    rows: int
    rows_total: int
    embeddings: str
    truth: str | None
    instruments: list[str]
    notes: list[str] = field(default_factory=list)
    reason: str = ""

    @property
    def entangled(self) -> bool:
        """Whether any confounder is flagged entangled."""
        return bool(len(self.confounders)) and bool(self.confounders["entangled"].any())

    @property
    def verdict(self) -> str:
        """One plain-language sentence."""
        if self.reason:
            return f"Entanglement was not checked: {self.reason}."
        sample = f" (random sample of {self.rows:,} of {self.rows_total:,} rows)" if self.rows < self.rows_total else ""
        flagged = self.confounders[self.confounders["entangled"]]
        if flagged.empty:
            names = ", ".join(self.confounders["confounder"])
            beyond = " beyond the instruments" if self.instruments else ""
            return (f"{names} is not entangled with the text's quality{sample}: the text predicts little of it{beyond}"
                    + (f" and it does not move with {self.truth}" if self.truth else "")
                    + ", so simple corrections are safe.")
        row = flagged.iloc[0]
        why = []
        if np.isfinite(row.get("corr_truth", np.nan)) and row["truth_flag"]:
            why.append(f"it correlates with {self.truth} (r = {row['corr_truth']:+.2f})")
        if row["text_flag"]:
            beyond = " beyond the instruments" if self.instruments else ""
            why.append(f"the text predicts {row['r2_text_beyond_instruments']:.0%} of its variance{beyond}")
        return (f"{row['confounder']} is entangled with the text{sample}: {' and '.join(why)}. Naive fixes (adding it "
                "to the prompt or the reward model) will not remove it; use IV with a valid instrument.")

    def summary(self) -> str:
        """Verdict plus the per-confounder table."""
        lines = [self.verdict]
        if len(self.confounders):
            lines += ["", self.confounders.to_string(index=False, float_format=lambda v: f"{v:.3f}")]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """JSON-ready dict."""
        return _jsonable({"kind": "entanglement", "verdict": self.verdict, "entangled": self.entangled,
                          "rows": self.rows, "rows_total": self.rows_total, "embeddings": self.embeddings,
                          "truth": self.truth, "instruments": self.instruments,
                          "confounders": records(self.confounders), "notes": self.notes, "reason": self.reason})


def entanglement(data: pd.DataFrame, roles: Roles, config: DiagnosticsConfig | None = None,
                 rows_total: int | None = None, progress=None) -> EntanglementResult:
    """Cross-validated R² of each numeric confounder from text embeddings (ridge), overall and beyond the
    instruments, plus its correlation with the truth column."""
    config = config or DiagnosticsConfig()
    total = rows_total if rows_total is not None else len(data)
    numeric = [c for c in roles.confounders if pd.api.types.is_numeric_dtype(data[c])]
    empty = EntanglementResult(confounders=pd.DataFrame(), rows=len(data), rows_total=total,
                               embeddings=config.embeddings, truth=roles.truth, instruments=list(roles.instruments))
    if not roles.confounders:
        empty.reason = "no confounder is tagged"
        return empty
    if not numeric:
        empty.reason = "entanglement is measured for numeric confounders only"
        return empty
    notes = [f"text features: {config.embeddings}; R² from {config.folds}-fold cross-validated ridge regression"]
    if total > len(data):
        notes.append(f"measured on a random sample of {len(data):,} of {total:,} rows")
    skipped = [c for c in roles.confounders if c not in numeric]
    if skipped:
        notes.append(f"categorical confounders skipped: {', '.join(skipped)}")
    emb = text_matrix(data[roles.text], config.embeddings, progress=progress)
    instruments = None
    if roles.instruments:
        instruments, _ = column_terms(data, roles.instruments)
        instruments = instruments.fillna(instruments.mean()).to_numpy(dtype=np.float64)
    rows = []
    for name in numeric:
        with blas_threads():
            rows.append(_entanglement_row(name, data, roles, emb, instruments, config))
    if roles.truth:
        notes.append(f"corr_truth: correlation of the confounder{' (net of the instruments)' if roles.instruments else ''}"
                     f" with {roles.truth}")
    return EntanglementResult(confounders=pd.DataFrame(rows), rows=len(data), rows_total=total,
                              embeddings=config.embeddings, truth=roles.truth, instruments=list(roles.instruments),
                              notes=notes)


def _entanglement_row(name: str, data: pd.DataFrame, roles: Roles, emb, instruments: np.ndarray | None,
                      config: DiagnosticsConfig) -> dict:
    """R² of one confounder from the text, overall and beyond the instruments; correlation with the truth."""
    from scipy import stats
    target = data[name].to_numpy(dtype=np.float64)
    ok = np.isfinite(target)
    c, e = target[ok], emb[np.flatnonzero(ok)]
    row = {"confounder": name, "r2_text": _cv_r2(e, c, config)}
    if instruments is not None:
        z = np.column_stack([np.ones(ok.sum()), instruments[ok]])
        coef, *_ = np.linalg.lstsq(z, c, rcond=None)
        resid = c - z @ coef
        row["r2_instruments"] = 1 - resid.var() / c.var() if c.var() > 0 else np.nan
        row["r2_text_beyond_instruments"] = _cv_r2(e, resid, config)
    else:
        resid = c - c.mean()
        row["r2_instruments"] = np.nan
        row["r2_text_beyond_instruments"] = row["r2_text"]
    row["corr_truth"] = row["corr_truth_p"] = np.nan
    if roles.truth:
        truth = data[roles.truth].to_numpy(dtype=np.float64)[ok]
        both = np.isfinite(truth)
        if both.sum() > 3 and np.std(truth[both]) > 0:
            r, p = stats.pearsonr(resid[both], truth[both])
            row["corr_truth"], row["corr_truth_p"] = float(r), float(p)
    row["truth_flag"] = bool(np.isfinite(row["corr_truth"]) and abs(row["corr_truth"]) >= config.entangled_corr
                             and row["corr_truth_p"] < config.alpha)
    row["text_flag"] = bool(row["r2_text_beyond_instruments"] >= config.entangled_r2)
    row["entangled"] = row["truth_flag"] or row["text_flag"]
    return row


def _cv_r2(features, target: np.ndarray, config: DiagnosticsConfig) -> float:
    """Out-of-fold R² of a ridge regression of the target on the text features (the DML nuisance model)."""
    if len(target) < 2 * config.folds or np.var(target) == 0:
        return float("nan")
    return cross_fit_residuals(features, target, config.folds, config.seed)[1]
