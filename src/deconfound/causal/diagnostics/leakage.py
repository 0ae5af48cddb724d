"""Temporal leakage: correlation of the monthly means of a score column with the monthly outcome (paper
Fig. 4d), to audit reward models and corrected outcomes; and which columns can be audited.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ...data import Roles, Store, is_numeric, quote_ident
from ...errors import NotFoundError
from ...jsonio import jsonable as _jsonable
from .config import DiagnosticsConfig, pvalue_phrase, records


@dataclass
class LeakageResult:
    """Correlation between a score's monthly means and the outcome's monthly means (paper Fig. 4d)."""

    score: str
    outcome: str
    months: pd.DataFrame  # month, n, score_mean, outcome_mean
    corr: float
    pvalue: float
    threshold: float
    reason: str = ""

    @property
    def leaks(self) -> bool:
        """Whether the score tracks the monthly outcome."""
        return bool(np.isfinite(self.corr) and abs(self.corr) >= self.threshold and self.pvalue < 0.05)

    @property
    def verdict(self) -> str:
        """One plain-language sentence."""
        if self.reason:
            return f"Temporal leakage of {self.score} was not checked: {self.reason}."
        if self.leaks:
            return (f"Monthly means of {self.score} track the monthly {self.outcome} (r = {self.corr:+.2f} over "
                    f"{len(self.months)} months): unless those monthly swings reflect quality, the score has "
                    "picked up the time pattern.")
        return (f"{self.score} does not track the monthly {self.outcome} (r = {self.corr:+.2f} over "
                f"{len(self.months)} months, {pvalue_phrase(self.pvalue)}).")

    def summary(self) -> str:
        """The verdict."""
        return self.verdict

    def to_dict(self) -> dict:
        """JSON-ready dict."""
        return _jsonable({"kind": "temporal_leakage", "verdict": self.verdict, "score": self.score,
                          "outcome": self.outcome, "corr": self.corr, "pvalue": self.pvalue, "leaks": self.leaks,
                          "months": records(self.months), "reason": self.reason})


def temporal_leakage(store: Store, table: str, roles: Roles, score: str,
                     config: DiagnosticsConfig | None = None) -> LeakageResult:
    """Pearson correlation, across calendar months, of the monthly means of `score` and of the outcome."""
    from scipy import stats
    config = config or DiagnosticsConfig()
    schema = store.schema(table)
    empty = pd.DataFrame(columns=["month", "n", "score_mean", "outcome_mean"])
    result = LeakageResult(score=score, outcome=roles.outcome or "", months=empty, corr=np.nan, pvalue=np.nan,
                           threshold=config.leakage_corr)
    if score not in schema:
        raise NotFoundError(f"table '{table}' has no column {score!r} to audit")
    if not is_numeric(schema[score]):
        result.reason = f"'{score}' is not numeric"
        return result
    if not roles.timestamp:
        result.reason = "no timestamp column is tagged"
        return result
    s, y, ts = quote_ident(score), quote_ident(roles.outcome), quote_ident(roles.timestamp)
    with store.connect() as con:
        months = con.execute(
            f"SELECT strftime(date_trunc('month', {ts}), '%Y-%m') AS month, count(*) AS n, avg({s}) AS score_mean, "
            f"avg({y}) AS outcome_mean FROM {quote_ident(table)} WHERE {s} IS NOT NULL AND {y} IS NOT NULL "
            f"AND {ts} IS NOT NULL GROUP BY month ORDER BY month").df()
    result.months = months
    if len(months) < 3:
        result.reason = f"only {len(months)} month(s) of data; at least 3 are needed"
        return result
    if months["score_mean"].std() == 0 or months["outcome_mean"].std() == 0:
        result.reason = "the monthly means do not vary"
        return result
    r, p = stats.pearsonr(months["score_mean"], months["outcome_mean"])
    result.corr, result.pvalue = float(r), float(p)
    return result


def default_scores(store: Store, table: str, roles: Roles) -> list[str]:
    """Score columns audited for temporal leakage by default: the derived columns (corrected outcomes,
    reward scores) that exist in the table."""
    schema = store.schema(table)
    return [c for c in store.column_meta(table) if c in schema]


def default_score(store: Store, table: str, roles: Roles) -> str | None:
    """The score column the leakage check shows first: the newest derived column (a deconfounded outcome or a
    reward's score); None when the table has none — a row index, an id or a raw column is never the default."""
    schema = store.schema(table)
    derived = [(str(meta.get("created_at", "")), name) for name, meta in store.column_meta(table).items()
               if name in schema and is_numeric(schema[name])]
    return max(derived)[1] if derived else None


ID_NAME = re.compile(r"(^|[_\s.])(id|ids|idx|index|key|uuid|rowid|row|row_?num(ber)?)$|^unnamed|^column0+$", re.I)


def looks_like_id(column: str) -> bool:
    """Whether a column's name says it identifies rows (id, user_id, index, rowid, 'Unnamed: 0', column0): its
    numbers are labels, so their monthly mean means nothing."""
    return bool(ID_NAME.search(column.strip()))


def leakage_candidates(store: Store, table: str, roles: Roles) -> list[str]:
    """Columns that can be audited for temporal leakage: the numeric ones other than the outcome (booleans
    have no monthly mean) and row ids (`looks_like_id`), the derived columns (`default_scores`) first, then
    the truth column, then the rest."""
    numeric = [c for c, t in store.schema(table).items()
               if c != roles.outcome and is_numeric(t) and t.upper() != "BOOLEAN" and not looks_like_id(c)]
    preferred = [c for c in [*default_scores(store, table, roles), roles.truth] if c in numeric]
    return list(dict.fromkeys(preferred + numeric))


def standardised_months(result: LeakageResult) -> pd.DataFrame:
    """The score's and the outcome's monthly means in long form (month, series, value), each standardised to
    mean 0 and sd 1 so both fit one axis; the series are named after the score and outcome columns."""
    months = result.months.melt(id_vars="month", value_vars=["score_mean", "outcome_mean"], var_name="series")
    months["value"] = months.groupby("series")["value"].transform(lambda v: (v - v.mean()) / (v.std() or 1))
    months["series"] = months["series"].map({"score_mean": result.score, "outcome_mean": result.outcome})
    return months
