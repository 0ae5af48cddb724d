"""Time patterns: the outcome by weekday and by calendar month with confidence intervals, one-way F-tests and
the share of variance each explains (paper Fig. 1–2). Aggregated inside DuckDB, so a million rows take a
GROUP BY, not a read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ...data import Roles, Store, quote_ident
from ...jsonio import jsonable as _jsonable
from ..calendar import WEEKDAYS
from .config import DiagnosticsConfig, pvalue_phrase, records


@dataclass
class TimePatternsResult:
    """Outcome by weekday and by month, with F-tests and variance shares."""

    applicable: bool
    reason: str = ""
    outcome: str = ""
    timestamp: str = ""
    by_weekday: pd.DataFrame | None = None  # level, n, mean, sd, ci_low, ci_high
    by_month: pd.DataFrame | None = None
    tests: dict = field(default_factory=dict)  # weekday/month -> {f_stat, df1, df2, pvalue, share, significant, material}
    alpha: float = 0.01

    @property
    def verdict(self) -> str:
        """One plain-language sentence."""
        if not self.applicable:
            return f"Time patterns were not checked: {self.reason}."
        found = [(k, t) for k, t in self.tests.items() if t.get("material")]
        if not found:
            tiny = [k for k, t in self.tests.items() if t.get("significant")]
            parts = ", ".join(f"{k} {pvalue_phrase(t['pvalue'])}, {t.get('share', 0):.2%} of variance"
                              for k, t in self.tests.items() if "pvalue" in t)
            if tiny:
                return (f"The {' and '.join(tiny)} pattern in {self.outcome} is statistically detectable but "
                        f"negligible ({parts}): time is unlikely to leak into the reward.")
            return (f"No clear weekday or month pattern in {self.outcome} ({parts}): time is unlikely to "
                    "leak into the reward.")
        parts = " and ".join(f"the {k} explains {t['share']:.1%} of its variance (F = {t['f_stat']:.1f}, "
                             f"{pvalue_phrase(t['pvalue'])})" for k, t in found)
        return (f"{self.outcome} moves with time — {parts}: phrases tied to a day or season can look good "
                "without being good, so consider time as a confounder or control.")

    def summary(self) -> str:
        """Verdict plus the group tables."""
        if not self.applicable:
            return self.verdict
        lines = [self.verdict]
        for name, frame in (("weekday", self.by_weekday), ("month", self.by_month)):
            lines += ["", f"outcome by {name}:", frame.to_string(index=False, float_format=lambda v: f"{v:.4f}")]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """JSON-ready dict."""
        return _jsonable({"kind": "time_patterns", "applicable": self.applicable, "reason": self.reason,
                          "verdict": self.verdict, "outcome": self.outcome, "timestamp": self.timestamp,
                          "by_weekday": records(self.by_weekday), "by_month": records(self.by_month),
                          "tests": self.tests})


def time_patterns(store: Store, table: str, roles: Roles, config: DiagnosticsConfig | None = None) -> TimePatternsResult:
    """Outcome by weekday and calendar month (GROUP BY inside DuckDB), with one-way ANOVA F-tests."""
    config = config or DiagnosticsConfig()
    if not roles.timestamp:
        return TimePatternsResult(applicable=False, reason="no timestamp column is tagged", alpha=config.alpha)
    y, ts, t = quote_ident(roles.outcome), quote_ident(roles.timestamp), quote_ident(table)
    base = f"FROM {t} WHERE {y} IS NOT NULL AND {ts} IS NOT NULL"
    stats = f"count(*) AS n, avg({y}) AS mean, stddev_samp({y}) AS sd"
    with store.connect() as con:
        weekday = con.execute(f"SELECT isodow({ts}) AS k, {stats} {base} GROUP BY k ORDER BY k").df()
        month = con.execute(f"SELECT strftime(date_trunc('month', {ts}), '%Y-%m') AS k, {stats} {base} "
                            "GROUP BY k ORDER BY k").df()
    if weekday.empty:
        return TimePatternsResult(applicable=False, reason="the outcome or timestamp is empty", alpha=config.alpha)
    weekday["level"] = [WEEKDAYS[int(k) - 1] for k in weekday["k"]]
    month["level"] = month["k"].astype(str)
    result = TimePatternsResult(applicable=True, outcome=roles.outcome, timestamp=roles.timestamp, alpha=config.alpha)
    result.by_weekday = _with_ci(weekday)
    result.by_month = _with_ci(month)
    result.tests = {"weekday": anova_from_groups(weekday, config.alpha),
                    "month": anova_from_groups(month, config.alpha)}
    for test in result.tests.values():
        test["material"] = bool(test.get("significant") and test.get("share", 0) >= config.min_time_share)
    return result


def _with_ci(groups: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    from scipy import stats
    n = groups["n"].astype(float)
    sd = groups["sd"].astype(float)
    half = stats.t.ppf(0.5 + level / 2, np.maximum(n - 1, 1)) * sd / np.sqrt(n)
    return pd.DataFrame({"level": groups["level"], "n": groups["n"].astype(int), "mean": groups["mean"].astype(float),
                         "sd": sd, "ci_low": groups["mean"] - half, "ci_high": groups["mean"] + half})


def anova_from_groups(groups: pd.DataFrame, alpha: float = 0.01) -> dict:
    """One-way ANOVA from per-group count, mean and sd: F, p-value and eta² (share of variance explained)."""
    from scipy import stats
    n = groups["n"].to_numpy(dtype=float)
    mean = groups["mean"].to_numpy(dtype=float)
    var = np.nan_to_num(groups["sd"].to_numpy(dtype=float) ** 2)
    total_n, k = n.sum(), len(n)
    if k < 2 or total_n <= k:
        return {"reason": "needs at least two groups with data", "significant": False}
    grand = (n * mean).sum() / total_n
    between = float((n * (mean - grand) ** 2).sum())
    within = float(((n - 1) * var).sum())
    df1, df2 = k - 1, int(total_n - k)
    f_stat = (between / df1) / (within / df2) if within > 0 else math.inf
    pvalue = float(stats.f.sf(f_stat, df1, df2))
    return {"f_stat": f_stat, "df1": df1, "df2": df2, "pvalue": pvalue,
            "share": between / (between + within) if between + within > 0 else 0.0,
            "significant": bool(pvalue < alpha)}



def time_tests_table(result: TimePatternsResult) -> pd.DataFrame:
    """The weekday and month F-tests as a table (effect, F, p-value, share of variance, whether it matters)."""
    return pd.DataFrame([{"effect": k, "F": t.get("f_stat"), "p-value": t.get("pvalue"),
                          "share of variance": t.get("share"), "matters": t.get("material")}
                         for k, t in result.tests.items()])
