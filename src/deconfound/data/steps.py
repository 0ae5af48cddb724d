"""Steps recorded per table: which step of the flow was run on a table, when, and for which roles.

The home page's checklist reads these records instead of guessing (a step is ticked because it ran, not
because it could run). A record is stored with a fingerprint of what the step saw: the table's roles and the
name, type and row count of the columns they name; a record whose fingerprint no longer matches (the roles
changed, the table was replaced by another with the same name) does not count. The records live in a small
metadata table of the store, hidden from the table list like the roles.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone

from .roles import Roles
from .store import META_PREFIX, Store

STEPS_TABLE = META_PREFIX + "steps"


def _ensure(con) -> None:
    con.execute(f"CREATE TABLE IF NOT EXISTS {STEPS_TABLE} (table_name VARCHAR, step VARCHAR, fingerprint VARCHAR, "
                "detail VARCHAR, recorded_at TIMESTAMP, PRIMARY KEY (table_name, step))")


def table_fingerprint(store: Store, table: str, roles: Roles | None = None) -> str:
    """A short hash of the table's roles and of the columns they name (name, type) and its row count: what a
    step's result depends on. Derived columns added later (a corrected outcome) do not change it."""
    roles = roles if roles is not None else store.load_roles(table)
    schema = store.schema(table)
    named = sorted({col for _, col in roles.assigned()}) if roles else []
    payload = {"roles": roles.to_dict() if roles else None, "columns": {c: schema.get(c) for c in named},
               "rows": store.row_count(table)}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def record_step(store: Store, table: str, step: str, detail: dict | None = None, roles: Roles | None = None) -> None:
    """Record that `step` (e.g. "diagnostics") ran on `table` with its current roles (replaces an older record)."""
    fingerprint = table_fingerprint(store, table, roles)
    with store.connect() as con:
        _ensure(con)
        con.execute(f"INSERT OR REPLACE INTO {STEPS_TABLE} VALUES (?, ?, ?, ?, ?)",
                    [table, step, fingerprint, json.dumps(detail or {}, default=str),
                     datetime.now(timezone.utc).replace(tzinfo=None)])


def step_record(store: Store, table: str, step: str) -> dict | None:
    """The record of `step` on `table` if it was run on the table as it is now (same roles and columns):
    {"step", "recorded_at", "detail"}; None if it never ran or ran on other roles or another table."""
    if not store.exists(table):
        return None
    with store.connect() as con:
        _ensure(con)
        row = con.execute(f"SELECT fingerprint, detail, recorded_at FROM {STEPS_TABLE} WHERE table_name=? AND step=?",
                          [table, step]).fetchone()
    if row is None or row[0] != table_fingerprint(store, table):
        return None
    return {"step": step, "recorded_at": str(row[2]), "detail": json.loads(row[1] or "{}")}
