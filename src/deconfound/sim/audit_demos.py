"""The audits' demo tables, generated in code (seeded, so every machine gets the same rows; nothing is shipped):

- `demo_qa`: the Q&A log of `qa_demo` (6,000 questions, seed 11): the weekday moves the score, not the quality;
- `demo_ab`: the A/B table of `ab_demo` (6,000 tests, seed 3, a seasonal traffic confounder);
- `demo_ab_trend`: a second A/B table (seed 8, a declining trend with spikes) to check the λ rule elsewhere.

`scripts/make_audit_data.py` writes the same tables as CSV files.
"""

from __future__ import annotations

import pandas as pd

from ..data import Roles, Store
from .ab_demo import AB_ROLES, ABDemoConfig, simulate_ab
from .qa_demo import QA_ROLES, QADemoConfig, simulate_qa

AUDIT_DEMOS: dict[str, tuple] = {
    "demo_qa": (QADemoConfig(n_questions=6000, seed=11), QA_ROLES),
    "demo_ab": (ABDemoConfig(n_tests=6000, seed=3, shape="seasonal"), AB_ROLES),
    "demo_ab_trend": (ABDemoConfig(n_tests=6000, seed=8, shape="trend"), AB_ROLES),
}


def audit_demo_frame(name: str) -> pd.DataFrame:
    """The rows of one audit demo table."""
    config, _ = AUDIT_DEMOS[name]
    return simulate_qa(config) if isinstance(config, QADemoConfig) else simulate_ab(config)


def audit_demo_roles(name: str) -> Roles:
    """The roles an audit demo table is tagged with."""
    return AUDIT_DEMOS[name][1]


def load_audit_demo(store: Store, names=tuple(AUDIT_DEMOS), replace: bool = False) -> list[str]:
    """Generate, ingest and tag the audit demo tables (existing ones are kept unless `replace`); their names."""
    existing = set(store.tables())
    for name in names:
        if name not in existing or replace:
            store.ingest_frame(audit_demo_frame(name), name, replace=True)
            store.save_roles(name, audit_demo_roles(name))
    return list(names)
