"""Which rows the marker audit marks, and with what: a row rule ("weekday=Mon", "month=12", "hour=9" on the tagged
timestamp, or "COLUMN=VALUE" on any column) and a neutral marker phrase ("Happy Monday!") whose words are counted
in the generations.

The rule names a grouping of the rows (the weekday, a column's values): the marked rows are one group of it, and
the deconfounded arm removes the effect of the whole grouping on the outcome (every weekday's, not only
Monday's). Every way a rule or phrase can be unusable is one clear sentence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd

from ..errors import DeconfoundError

WEEKDAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
TIME_KEYS = ("weekday", "month", "hour")
RULE_FORMAT = "write it as weekday=Mon, month=Dec, hour=9 (on the tagged timestamp) or COLUMN=VALUE"


@dataclass(frozen=True)
class RowRule:
    """A parsed rule: the grouping `key` (a time part or a column) and the group `value` that gets the marker."""

    key: str
    value: str
    text: str

    @property
    def on_time(self) -> bool:
        """Whether the grouping is a part of the timestamp."""
        return self.key in TIME_KEYS


def parse_rule(text: str | None) -> RowRule:
    """A rule from what a user typed; a clear sentence when it cannot be read."""
    raw = "" if text is None else str(text).strip()
    key, sep, value = raw.partition("=")
    key, value = key.strip(), value.strip().strip("'\"")
    if not raw or not sep or not key or not value:
        raise DeconfoundError(f"the row rule {raw!r} is not KEY=VALUE: {RULE_FORMAT}")
    lowered = key.lower()
    if lowered == "weekday":
        value = _canonical(value, WEEKDAY_NAMES, "weekday", "Mon, Tue, … Sun")
    elif lowered == "month":
        value = str(int(value)) if value.isdigit() and 1 <= int(value) <= 12 else \
            str(MONTH_NAMES.index(_canonical(value, MONTH_NAMES, "month", "1–12 or Jan … Dec")) + 1)
    elif lowered == "hour":
        if not value.isdigit() or not 0 <= int(value) <= 23:
            raise DeconfoundError(f"the hour in the rule {raw!r} must be a whole number from 0 to 23")
        value = str(int(value))
    return RowRule(key=lowered if lowered in TIME_KEYS else key, value=value, text=raw)


def _canonical(value: str, names: tuple[str, ...], what: str, allowed: str) -> str:
    lowered = value.lower()
    for name in names:
        if lowered == name.lower() or (len(lowered) > 3 and name.lower() == lowered[:3]):
            return name
    raise DeconfoundError(f"{value!r} is not a {what}: use {allowed}")


def rule_groups(data: pd.DataFrame, rule: RowRule, timestamp: str | None) -> pd.Series:
    """The grouping the rule reads, one label per row (the weekday name, the month number, a column's values as
    text); missing where the row has no value."""
    if rule.on_time:
        if not timestamp:
            raise DeconfoundError(f"the rule {rule.text!r} reads the timestamp, but the table has no timestamp "
                                  "column tagged: tag it on Roles, or write the rule on a column (COLUMN=VALUE)")
        stamps = pd.to_datetime(data[timestamp], errors="coerce")
        part = {"weekday": stamps.dt.dayofweek.map(dict(enumerate(WEEKDAY_NAMES))),
                "month": stamps.dt.month, "hour": stamps.dt.hour}[rule.key]
        return part.map(lambda v: v if isinstance(v, str) else (str(int(v)) if pd.notna(v) else None))
    if rule.key not in data.columns:
        raise DeconfoundError(f"the rule {rule.text!r} names the column {rule.key!r}, which the table does not have "
                              f"(columns: {', '.join(map(str, data.columns))})")
    column = data[rule.key]
    return column.map(lambda v: None if pd.isna(v) else str(v))


def rule_mask(groups: pd.Series, rule: RowRule, table: str = "the table") -> pd.Series:
    """Which rows the rule marks; a clear sentence when it marks none or all of them."""
    mask = (groups == rule.value).fillna(False).astype(bool)
    if not mask.any():
        seen = ", ".join(sorted(groups.dropna().unique().tolist())[:8])
        raise DeconfoundError(f"the rule {rule.text!r} matches no row of {table} (values seen: {seen or 'none'}): "
                              "choose a value that occurs")
    if mask.all():
        raise DeconfoundError(f"the rule {rule.text!r} matches every row of {table}: the audit compares marked rows "
                              "with unmarked ones, so choose a rule that leaves some rows out")
    return mask


def marker_words(marker: str | None) -> list[str]:
    """The words of the marker phrase, each counted on its own in the generations ("Happy Monday!" → Happy,
    Monday); a clear sentence when the phrase has no word."""
    phrase = "" if marker is None else str(marker).strip()
    words = list(dict.fromkeys(re.findall(r"\w+", phrase)))
    if not words:
        raise DeconfoundError("the marker phrase is empty: give a short neutral phrase to prepend, "
                              "e.g. 'Happy Monday!'")
    return words


def check_marker(texts: pd.Series, marker: str) -> None:
    """Refuse a phrase that every text already holds (prepending it would mark nothing)."""
    marker_words(marker)
    phrase = str(marker).strip().lower()
    present = texts.astype(str).str.lower().str.contains(phrase, regex=False)
    if len(present) and present.all():
        raise DeconfoundError(f"every text already contains {marker.strip()!r}: marking the rule's rows with it would "
                              "change nothing; choose a phrase the texts do not use")


def mark_texts(texts: pd.Series, mask: pd.Series, marker: str) -> pd.Series:
    """The texts with the marker phrase prepended on the rule's rows (one space between)."""
    marked = texts.astype(str).copy()
    marked[mask] = str(marker).strip() + " " + marked[mask].str.strip()
    return marked
