"""Marker groups: the words whose use a comparison counts, from what the user types to matches in a text.

A marker group is a name and a list of words or phrases ({"East": ["Boston", "New York"]}); a text names the
group when it contains any of them as a whole word, case-insensitively. `parse_marker_groups` is the one
reader of typed groups (the CLI's --markers, the Compare page's box).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Sequence

import pandas as pd

from ..errors import DeconfoundError

MARKER_FORMAT = 'give {"group": ["word", ...]} or comma-separated words'


def parse_marker_groups(text: str | None, allow_files: bool = False) -> dict[str, list[str]] | None:
    """Marker groups from what a user typed: a JSON object {group: [word, ...]} (a group may be one word), a
    path to a file holding one (only with `allow_files`, the command line: a dashboard box must not read files
    on the server), or comma-separated words or a JSON list of words (one group each, named by the word). None
    when the text is empty (the run's default markers); a DeconfoundError that says what to type when the JSON
    is bad."""
    if text is None or not str(text).strip():
        return None
    text = str(text)
    if allow_files and _is_file(text.strip()):
        text = Path(text.strip()).read_text(encoding="utf-8")
    if text.lstrip().startswith(("{", "[")):
        try:
            groups = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DeconfoundError(f"the markers are not valid JSON ({exc.msg}): {MARKER_FORMAT}") from None
        if isinstance(groups, list):  # a JSON list of words: one group each, as comma-separated words
            if not all(isinstance(w, str) for w in groups):
                raise DeconfoundError(f"a JSON list of markers must hold words only (got {groups!r}): {MARKER_FORMAT}")
            return {w.strip(): [w.strip()] for w in groups if w.strip()}
        return {str(group): _words(group, words) for group, words in groups.items()}
    return {w.strip(): [w.strip()] for w in text.split(",") if w.strip()}


def _is_file(text: str) -> bool:
    """Whether the typed text names a file (a long JSON text is no file name: the OS refuses to look)."""
    try:
        return Path(text).is_file()
    except (OSError, ValueError):
        return False


def _words(group, words) -> list:
    """A group's words as a list (one word alone is a list of one; `compile_markers` skips what is no word)."""
    if isinstance(words, str):
        return [words]
    if isinstance(words, list):
        return words
    raise DeconfoundError(f"marker group {str(group)!r} must be a word or a list of words (got {words!r}): "
                          f"{MARKER_FORMAT}")


def compile_markers(groups: dict[str, Sequence[str]]) -> dict[str, re.Pattern]:
    """One case-insensitive whole-word pattern per marker group (longest alternative first)."""
    patterns = {}
    for group, words in groups.items():
        words = sorted({w.strip() for w in words if isinstance(w, str) and w.strip()}, key=len, reverse=True)
        if not words:
            raise DeconfoundError(f"marker group {group!r} has no words: give at least one word or phrase")
        alternatives = "|".join(re.escape(w) for w in words)
        patterns[group] = re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)
    return patterns


def marker_hits(texts: Sequence[str], patterns: dict[str, re.Pattern]) -> pd.DataFrame:
    """Boolean frame (one column per group): does each text contain any of the group's markers?"""
    return pd.DataFrame({group: [bool(isinstance(t, str) and pattern.search(t)) for t in texts]
                         for group, pattern in patterns.items()}, dtype=bool)


def highlight_spans(text: str, patterns: dict[str, re.Pattern]) -> list[tuple[int, int, str]]:
    """Non-overlapping (start, end, group) spans of markers in a text, in order (for highlighting)."""
    spans = sorted(((m.start(), m.end(), group) for group, p in patterns.items() for m in p.finditer(text or "")),
                   key=lambda span: (span[0], -span[1]))  # at one position, the longest marker wins
    kept, last_end = [], -1
    for start, end, group in spans:
        if start >= last_end:
            kept.append((start, end, group))
            last_end = end
    return kept
