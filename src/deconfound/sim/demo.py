"""The shipped demo: the simulation's two scenarios as ready-tagged tables."""

from __future__ import annotations

from pathlib import Path

from .. import paths
from ..data import Roles, Store
from ..errors import NotFoundError

SCENARIOS = ("entangled", "orthogonal")
DEMO_ROLES = Roles(text="text", context="context", outcome="outcome", timestamp="published_at",
                   confounders=["popularity"], instruments=["team_region"], truth="quality")


def demo_csv(scenario: str) -> Path:
    """Path of the shipped demo CSV for a scenario."""
    if scenario not in SCENARIOS:
        raise NotFoundError(f"unknown demo scenario {scenario!r}: choose one of {', '.join(SCENARIOS)}")
    path = paths.demo_data_dir() / f"demo_{scenario}.csv"
    if not path.exists():
        raise NotFoundError(f"demo file {path} is missing: run `python scripts/make_demo_data.py`")
    return path


def load_demo(store: Store, scenarios: tuple[str, ...] = SCENARIOS, replace: bool = False) -> list[str]:
    """Ingest and tag the demo tables (`demo_entangled`, `demo_orthogonal`); existing ones are kept
    unless `replace`. Returns the table names."""
    tables = []
    existing = set(store.tables())
    for scenario in scenarios:
        table = f"demo_{scenario}"
        if table not in existing or replace:
            store.ingest(demo_csv(scenario), table=table, replace=True)
            store.save_roles(table, DEMO_ROLES)
        tables.append(table)
    return tables
