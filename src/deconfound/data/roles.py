"""Column roles: which column is the text, the context, the outcome, the confounders, the instruments...

Roles are validated against the table's schema and stored in DuckDB beside the table
(see `store.Store.save_roles`), so they survive restarts and are shared by the CLI and the UI.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

NUMERIC_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
                 "UINTEGER", "UBIGINT", "UHUGEINT", "FLOAT", "DOUBLE", "REAL", "DECIMAL", "BOOLEAN")
TEMPORAL_TYPES = ("DATE", "TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "TIMESTAMP_NS", "TIMESTAMP_MS",
                  "TIMESTAMP_S", "TIMESTAMPTZ")

SINGLE_ROLES = ("text", "context", "outcome", "timestamp", "truth", "experiment", "arm")
MULTI_ROLES = ("confounders", "instruments", "controls")


def is_numeric(duck_type: str) -> bool:
    """True for DuckDB numeric column types (DECIMAL(p,s) included)."""
    return duck_type.upper().split("(")[0].strip() in NUMERIC_TYPES


def is_temporal(duck_type: str) -> bool:
    """True for DuckDB date/time column types."""
    return duck_type.upper().split("(")[0].strip() in TEMPORAL_TYPES


@dataclass
class Roles:
    """What each column of a table means to the method (paper eq. 1: y = g(T, F) + h(C) + noise)."""

    text: str | None = field(default=None, metadata={"help": "the generated artifact T (headline, subject line)"})
    context: str | None = field(default=None, metadata={"help": "the prompt it was written for (abstract, product)"})
    outcome: str | None = field(default=None, metadata={"help": "the numeric outcome y (CTR, bookings)"})
    timestamp: str | None = field(default=None, metadata={"help": "when it was published (weekday/month effects)"})
    confounders: list[str] = field(default_factory=list, metadata={"help": "C: moves the outcome, not the text's quality"})
    instruments: list[str] = field(default_factory=list, metadata={"help": "Z: moves a confounder, affects y only through it"})
    controls: list[str] = field(default_factory=list, metadata={"help": "exogenous covariates kept in every model"})
    truth: str | None = field(default=None, metadata={"help": "ground-truth quality (simulations only)"})
    experiment: str | None = field(default=None, metadata={"help": "A/B test id (experimental data)"})
    arm: str | None = field(default=None, metadata={"help": "A/B arm within the experiment"})

    def to_dict(self) -> dict:
        """JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Roles":
        """Build from a dict, ignoring unknown keys (forward compatibility of stored roles)."""
        known = {f.name for f in fields(cls)}
        clean = {k: v for k, v in (data or {}).items() if k in known}
        for name in MULTI_ROLES:
            value = clean.get(name) or []
            clean[name] = [value] if isinstance(value, str) else list(value)
        for name in SINGLE_ROLES:
            if clean.get(name) == "":
                clean[name] = None
        return cls(**clean)

    def assigned(self) -> list[tuple[str, str]]:
        """(role, column) pairs for every assigned column, multi-roles expanded."""
        pairs = [(name, getattr(self, name)) for name in SINGLE_ROLES if getattr(self, name)]
        for name in MULTI_ROLES:
            pairs += [(name, col) for col in getattr(self, name)]
        return pairs

    def summary(self) -> str:
        """One line per assigned role, for the CLI and the UI."""
        lines = []
        for name in SINGLE_ROLES + MULTI_ROLES:
            value = getattr(self, name)
            if value:
                lines.append(f"{name:12s} {', '.join(value) if isinstance(value, list) else value}")
        return "\n".join(lines) if lines else "(no roles tagged)"


def training_blockers(roles: Roles) -> list[str]:
    """Why a table with these roles cannot be trained on yet (empty: it can). The one rule the Roles page, the
    Train page and `deconfound train` all state."""
    problems = []
    if not roles.text:
        problems.append("no text column is tagged: training learns to write the text column")
    if not roles.outcome:
        problems.append("no outcome column is tagged: the rewards learn from the outcome")
    if not roles.context:
        problems.append("no context column is tagged: training writes a text for each context, so tag the "
                        "prompt/context column on the Roles page")
    return problems


def validate(roles: Roles, schema: dict[str, str]) -> tuple[list[str], list[str]]:
    """Check roles against a table schema (column -> DuckDB type).

    Returns (errors, warnings): errors block saving, warnings are shown to the user.
    """
    errors: list[str] = []
    warnings: list[str] = []
    for role, col in roles.assigned():
        if col not in schema:
            errors.append(f"{role}: column '{col}' does not exist (columns: {', '.join(schema)})")
    if not roles.text:
        errors.append("text: choose the column that holds the generated text")
    if not roles.outcome:
        errors.append("outcome: choose the column that holds the outcome to optimise")
    elif roles.outcome in schema and not is_numeric(schema[roles.outcome]):
        errors.append(f"outcome: column '{roles.outcome}' is {schema[roles.outcome]}, not numeric; "
                      "clean it or pick a numeric column")
    if roles.truth and roles.truth in schema and not is_numeric(schema[roles.truth]):
        errors.append(f"truth: column '{roles.truth}' must be numeric (a quality score)")
    if roles.timestamp and roles.timestamp in schema and not is_temporal(schema[roles.timestamp]):
        errors.append(f"timestamp: column '{roles.timestamp}' is {schema[roles.timestamp]}, not a date/time; "
                      "re-ingest with ISO dates (YYYY-MM-DD hh:mm:ss)")

    seen: dict[str, str] = {}
    for role, col in roles.assigned():
        if col in seen and seen[col] != role:
            errors.append(f"column '{col}' is tagged both {seen[col]} and {role}; a column has one role")
        seen.setdefault(col, role)
    for name in MULTI_ROLES:
        values = getattr(roles, name)
        if len(values) != len(set(values)):
            errors.append(f"{name}: a column is listed twice")

    if roles.instruments and not roles.confounders:
        errors.append("instruments: an instrument needs at least one confounder to instrument")
    if bool(roles.experiment) != bool(roles.arm):
        errors.append("experiment and arm go together: tag both or neither")
    if roles.confounders and not roles.instruments:
        warnings.append("no instrument tagged: IV is unavailable; use DML or naive OLS (see Deconfound)")
    if roles.instruments and roles.confounders and len(roles.instruments) < len(roles.confounders):
        warnings.append("fewer instruments than confounders: 2SLS needs at least one instrument per "
                        "endogenous confounder (a categorical instrument counts once per level)")
    warnings += [f"training is not possible yet: {p}" for p in training_blockers(roles)
                 if "context" in p]
    return errors, warnings
