"""Suggest column roles from names and types, so the Roles page starts close to right."""

from __future__ import annotations

from .roles import Roles, is_numeric, is_temporal

HINTS = {
    "text": ("text", "headline", "title", "subject", "message", "answer", "body_text"),
    "context": ("context", "abstract", "prompt", "question", "article", "product", "description", "lede"),
    "outcome": ("outcome", "ctr", "click", "conversion", "booking", "score", "adherence", "y"),
    "timestamp": ("published_at", "timestamp", "created_at", "date", "time", "posted"),
    "truth": ("quality", "truth", "true_quality"),
    "experiment": ("experiment", "test_id", "clickability_test_id"),
    "arm": ("arm", "variant", "package"),
}


def _match(name: str, words: tuple[str, ...]) -> bool:
    low = name.lower()
    return any(low == w or low.startswith(w + "_") or low.endswith("_" + w) for w in words)


def guess_roles(schema: dict[str, str]) -> Roles:
    """Best-effort roles from column names (a starting point the user confirms, never saved unseen)."""
    roles = Roles()
    taken: set[str] = set()
    for role, words in HINTS.items():
        for col, dtype in schema.items():
            if col in taken or not _match(col, words):
                continue
            if role in ("outcome", "truth") and not is_numeric(dtype):
                continue
            if role == "timestamp" and not is_temporal(dtype):
                continue
            setattr(roles, role, col)
            taken.add(col)
            break
    return roles
