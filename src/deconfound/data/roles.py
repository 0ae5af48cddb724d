"""Column roles: which column is the text, the context, the outcome, the confounders, the instruments...

Roles are validated against the table's schema and stored in DuckDB beside the table
(see `store.Store.save_roles`), so they survive restarts and are shared by the CLI and the UI.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields

NUMERIC_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
                 "UINTEGER", "UBIGINT", "UHUGEINT", "FLOAT", "DOUBLE", "REAL", "DECIMAL", "BOOLEAN")
TEMPORAL_TYPES = ("DATE", "TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "TIMESTAMP_NS", "TIMESTAMP_MS",
                  "TIMESTAMP_S", "TIMESTAMPTZ")

SINGLE_ROLES = ("text", "context", "outcome", "timestamp", "truth", "experiment", "arm", "weight")
MULTI_ROLES = ("confounders", "instruments", "controls")
OUTCOME_SCALES = ("raw", "log1p")
# Calendar parts a timestamp's effect can be made of (a calendar is parts joined by '+', e.g. "weekday+month");
# defined here, at the bottom of the flow, so validation and the estimators (causal) share one list.
CALENDAR_PARTS = ("weekday", "hour", "month", "month_of_year", "year", "decade")
DEFAULT_CALENDAR = "weekday+month"


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
    weight: str | None = field(default=None, metadata={
        "help": "impressions (exposures) behind a rate outcome: DML and OLS weight each row by it"})
    prompt_template: str | None = field(default=None, metadata={
        "help": "what the training prompt shows, e.g. \"News posted at {created_at}\": {column} is replaced by "
                "the row's value; None: the context column, or (without one) the editor instruction alone"})
    outcome_scale: str = field(default="raw", metadata={
        "help": "'raw', or 'log1p' for heavy-tailed counts (retweets, views): effects are estimated on "
                "log(1 + y) and the corrected outcome is returned on the outcome's own scale"})
    calendar: str = field(default=DEFAULT_CALENDAR, metadata={
        "help": "the calendar of a timestamp's effect: parts of " + ", ".join(CALENDAR_PARTS) + " joined by '+'"})

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
        for name in SINGLE_ROLES + ("prompt_template",):
            if clean.get(name) == "":
                clean[name] = None
        for name, default in (("outcome_scale", "raw"), ("calendar", DEFAULT_CALENDAR)):
            if not clean.get(name):
                clean[name] = default
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
        if not lines:
            return "(no roles tagged)"
        if self.outcome_scale != "raw":
            lines.append(f"{'scale':12s} {self.outcome_scale} (effects estimated on log(1 + {self.outcome}))")
        if self.timestamp or self.calendar != DEFAULT_CALENDAR:
            lines.append(f"{'calendar':12s} {self.calendar}")
        lines.append(f"{'prompt':12s} {prompt_description(self)}")
        return "\n".join(lines)



def training_blockers(roles: Roles) -> list[str]:
    """Why a table with these roles cannot be trained on yet (empty: it can). The one rule the Roles page, the
    Train page and `deconfound train` all state. A context is optional: without one the prompt shows the
    columns of `prompt_template`, or the editor instruction alone (see `prompt_description`)."""
    problems = []
    if not roles.text:
        problems.append("no text column is tagged: training learns to write the text column")
    if not roles.outcome:
        problems.append("no outcome column is tagged: the rewards learn from the outcome")
    return problems


TEMPLATE_FIELD = re.compile(r"\{([^{}]+)\}")


def template_fields(template: str | None) -> list[str]:
    """The column names a prompt template shows ("News posted at {created_at}" -> ["created_at"]), in order."""
    return list(dict.fromkeys(m.strip() for m in TEMPLATE_FIELD.findall(template or "")))


def prompt_columns(roles: Roles) -> list[str]:
    """The columns the training prompt shows: the template's, else the context column, else none."""
    if roles.prompt_template:
        return template_fields(roles.prompt_template)
    return [roles.context] if roles.context else []


def prompt_description(roles: Roles) -> str:
    """Which columns the prompt will show, in one sentence (the Roles page and `deconfound tag` say it)."""
    if roles.prompt_template:
        cols = template_fields(roles.prompt_template)
        shown = f"column(s) {', '.join(cols)}" if cols else "no column (the same prompt for every row)"
        varied = "" if cols else "; generation samples varied texts from it"
        return f"the template \"{roles.prompt_template}\", i.e. {shown}{varied}"
    if roles.context:
        return f"the context column '{roles.context}'"
    return "no column: the editor instruction alone (no context tagged); generation samples varied texts from it"


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

    if roles.weight and roles.weight in schema and not is_numeric(schema[roles.weight]):
        errors.append(f"weight: column '{roles.weight}' must be numeric (impressions behind the rate)")
    if roles.outcome_scale not in OUTCOME_SCALES:
        errors.append(f"outcome scale {roles.outcome_scale!r} is unknown: use {' or '.join(OUTCOME_SCALES)}")
    bad_parts = [p for p in str(roles.calendar).split("+") if p.strip() not in CALENDAR_PARTS]
    if bad_parts or not roles.calendar:
        errors.append(f"calendar {roles.calendar!r} is unknown: join parts of {', '.join(CALENDAR_PARTS)} with '+' "
                      f"(e.g. {DEFAULT_CALENDAR})")
    if roles.prompt_template is not None:
        missing = [c for c in template_fields(roles.prompt_template) if c not in schema]
        if missing:
            errors.append(f"prompt template: no column named {', '.join(map(repr, missing))} (write {{column}} with "
                          f"a column of the table: {', '.join(schema)})")
        elif not roles.prompt_template.strip():
            errors.append("prompt template: empty; leave it unset to prompt with the context or the instruction alone")

    seen: dict[str, str] = {}
    for role, col in roles.assigned():
        # A timestamp may also be the confounder itself (its calendar effect is what gets removed).
        if col in seen and seen[col] != role and {seen[col], role} != {"timestamp", "confounders"}:
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
    return errors, warnings
