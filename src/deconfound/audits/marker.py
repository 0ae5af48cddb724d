"""The marker-amplification audit (§3.1, App. B, Table 3): its settings and its data.

A tagged table (context, text, outcome), a row rule and a neutral marker phrase: the phrase is prepended to the
text of the rule's rows; contexts are split into SFT / preference / test groups (App. B: 5,000 / rest / 3,000 of
14,319 questions); preference pairs are built within each context from the outcome — higher preferred, at most 10
pairs per context — once from the **raw** outcome (the naive arm) and once from the **deconfounded** outcome (the
rule's grouping's effect removed, estimated within contexts so that question popularity does not leak into it).
The run (`marker_run`) then trains SFT → DPO per arm and training seed and counts the marker's words.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields

import numpy as np
import pandas as pd

from ..data import Roles
from ..errors import DeconfoundError
from ..models import ModelSpec
from ..presets import PRESET_NAMES, PRESETS
from ..runs import default_threads
from ..train import DPOSettings, SFTSettings
from .rules import check_marker, mark_texts, marker_words, parse_rule, rule_groups, rule_mask

KIND = "audit/marker"
OVERRIDES_ENV = "DECONFOUND_AUDIT_OVERRIDES"  # JSON {"sft.max_steps": 5, ...}: tests and demos shrink audits
ARMS = ("naive", "deconfounded")
QA_SYSTEM_PROMPT = "You answer questions on a Q&A forum. Give a short, helpful answer."
# Per preset: what the audit changes from the training presets. Q&A rows are longer than headlines; DPO must move
# the policy far enough for a difference in marker rates to show within a CPU budget (measured on the Q&A demo:
# the smoke preset's own DPO, 30 steps at 5e-5, moved the tiny model's marker rate by about one point).
PRESET_CHANGES = {
    "smoke": {"sft": {"max_length": 160}, "dpo": {"max_length": 160, "learning_rate": 5e-4, "max_steps": 60},
              "n_eval_prompts": 300},
    "cpu": {"sft": {"max_length": 192}, "dpo": {"max_length": 192, "learning_rate": 2e-4, "max_steps": 60},
            "n_eval_prompts": 200},
    "gpu": {"sft": {"max_length": 512}, "dpo": {"max_length": 768}, "n_eval_prompts": 3000},
}


@dataclass
class MarkerAuditConfig:
    """Everything one marker audit needs; saved as config.json in its run folder."""

    kind: str = field(default=KIND, metadata={"help": "what the worker runs (always audit/marker here)"})
    table: str = field(default="", metadata={"help": "the tagged table (snapshotted into data.parquet)"})
    db: str | None = field(default=None, metadata={"help": "the DuckDB file the table came from (provenance)"})
    roles: dict = field(default_factory=dict, metadata={"help": "the table's roles when the audit was made"})
    rule: str = field(default="weekday=Mon", metadata={"help": "which rows get the marker (KEY=VALUE)"})
    marker: str = field(default="Happy Monday!", metadata={"help": "the neutral phrase prepended to their text"})
    corrected_column: str | None = field(default=None, metadata={
        "help": "an outcome column with the confounder already removed; None: remove the rule grouping's effect"})
    preset: str = field(default="smoke", metadata={"help": "size preset: smoke | cpu | gpu"})
    model: ModelSpec = field(default_factory=ModelSpec, metadata={"help": "the generator to start from"})
    sft: SFTSettings = field(default_factory=SFTSettings, metadata={"help": "SFT settings (per training seed)"})
    dpo: DPOSettings = field(default_factory=DPOSettings, metadata={"help": "DPO settings (per arm and seed)"})
    train_seeds: list[int] = field(default_factory=lambda: [0, 1, 2], metadata={
        "help": "training seeds: SFT and both DPO arms are trained once per seed (App. B: 5)"})
    gen_seeds: list[int] = field(default_factory=lambda: [0, 1], metadata={
        "help": "generation seeds per trained model (App. B: 5)"})
    max_pairs_per_context: int = field(default=10, metadata={"help": "preference pairs per context (App. B: 10)"})
    sft_share: float = field(default=0.35, metadata={"help": "share of contexts for SFT (App. B: 5,000 of 14,319)"})
    test_share: float = field(default=0.21, metadata={"help": "share of contexts held out (App. B: 3,000 of 14,319)"})
    n_eval_prompts: int = field(default=300, metadata={"help": "held-out contexts every model answers (App. B: 3,000)"})
    gen_max_new_tokens: int = field(default=48, metadata={"help": "tokens per generated answer"})
    gen_temperature: float = field(default=1.0, metadata={"help": "sampling temperature"})
    gen_batch_size: int = field(default=32, metadata={"help": "prompts per generation batch"})
    system_prompt: str = field(default=QA_SYSTEM_PROMPT, metadata={"help": "system message of every prompt"})
    user_template: str = field(default="{context}", metadata={"help": "user message; {context} is the context"})
    max_context_words: int | None = field(default=40, metadata={"help": "truncate contexts to N words"})
    threads: int | None = field(default=None, metadata={"help": "CPU threads for torch (None: the run's default)"})
    precision: str = field(default="auto", metadata={"help": "auto | bf16 | fp32"})
    seed: int = field(default=0, metadata={"help": "seed of the context split and of the held-out sample"})

    _NESTED = {"model": ModelSpec, "sft": SFTSettings, "dpo": DPOSettings}

    def to_dict(self) -> dict:
        """JSON-ready dict (nested settings as dicts)."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in self._NESTED:
            data[name] = data[name].to_dict()
        return json.loads(json.dumps(data, default=str))

    @classmethod
    def from_dict(cls, data: dict) -> "MarkerAuditConfig":
        """Rebuild from `to_dict()` output; unknown keys are an error."""
        data = dict(data or {})
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise DeconfoundError(f"unknown marker-audit setting(s) {', '.join(unknown)}")
        for name, kind in cls._NESTED.items():
            if isinstance(data.get(name), dict):
                data[name] = kind.from_dict(data[name])
        return cls(**data)

    @property
    def role_set(self) -> Roles:
        """The roles as a `Roles` object."""
        return Roles.from_dict(self.roles)

    def summary(self) -> str:
        """A few readable lines."""
        return (f"table {self.table}: rows where {self.rule} get {self.marker!r}; preset {self.preset}, model "
                f"{self.model.name}\nSFT {self.sft.max_steps} steps, DPO {self.dpo.max_steps} steps per arm "
                f"(naive, deconfounded) × {len(self.train_seeds)} training seeds; {self.n_eval_prompts} held-out "
                f"prompts × {len(self.gen_seeds)} generation seeds")


def apply_overrides(config: MarkerAuditConfig, overrides: dict | None) -> MarkerAuditConfig:
    """A copy with dotted-key overrides ({"sft.max_steps": 50, "train_seeds": [0, 1]})."""
    data = config.to_dict()
    for key, value in (overrides or {}).items():
        head, _, rest = key.partition(".")
        if key in ("train_seeds", "gen_seeds"):
            value = _seeds(key, value)
        if rest:
            if head not in MarkerAuditConfig._NESTED:
                raise DeconfoundError(f"setting {key!r}: '{head}' has no sub-settings")
            data[head] = dict(data[head]) | {rest: value}
        else:
            data[head] = value
    return MarkerAuditConfig.from_dict(data)


def env_overrides() -> dict:
    """Overrides from $DECONFOUND_AUDIT_OVERRIDES (a JSON object), used by tests to shrink audits."""
    raw = os.environ.get(OVERRIDES_ENV)
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise DeconfoundError(f"${OVERRIDES_ENV} is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise DeconfoundError(f"${OVERRIDES_ENV} must be a JSON object of settings")
    return value


def _seeds(key: str, value) -> list[int]:
    """Seeds given as a list, one number or comma-separated text."""
    try:
        if isinstance(value, str):
            return [int(v) for v in value.split(",") if v.strip()]
        return [int(v) for v in value] if isinstance(value, (list, tuple)) else [int(value)]
    except (TypeError, ValueError):
        raise DeconfoundError(f"{key} must be whole numbers, e.g. 0,1,2 (got {value!r})") from None


def marker_config(preset: str, table: str, store, rule: str, marker: str, overrides: dict | None = None,
                  corrected_column: str | None = None) -> MarkerAuditConfig:
    """A complete audit config for a table, checked against its roles and rows first (a bad rule or phrase is a
    clear sentence here, before any run folder exists)."""
    if preset not in PRESETS:
        raise DeconfoundError(f"unknown preset {preset!r}: choose one of {', '.join(PRESET_NAMES)}")
    store.require(table)
    roles = store.require_roles(table)
    missing = [name for name in ("text", "context", "outcome") if not getattr(roles, name)]
    if missing:
        raise DeconfoundError(f"the marker audit needs the {', '.join(missing)} column(s) of '{table}' tagged on "
                              "Roles (it pairs texts that answer the same context by their outcome)")
    parsed = parse_rule(rule)
    marker_words(marker)
    columns = [roles.text, roles.context, roles.outcome]
    columns += [roles.timestamp] if parsed.on_time else [parsed.key] if parsed.key in store.schema(table) else []
    if corrected_column:
        if corrected_column not in store.schema(table):
            raise DeconfoundError(f"'{table}' has no column {corrected_column!r} to use as the corrected outcome")
        columns.append(corrected_column)
    data = store.read_frame(table, list(dict.fromkeys(columns)))
    rule_mask(rule_groups(data, parsed, roles.timestamp), parsed, f"'{table}'")
    check_marker(data[roles.text], marker)
    spec, changes = PRESETS[preset], PRESET_CHANGES[preset]
    base = MarkerAuditConfig(
        table=table, db=str(store.path), roles=roles.to_dict(), rule=rule, marker=str(marker).strip(),
        corrected_column=corrected_column, preset=preset, model=ModelSpec(name=spec.model),
        sft=SFTSettings.for_preset(preset, system_prompt=None, max_context_words=None, **changes["sft"]),
        dpo=DPOSettings.for_preset(preset, **changes["dpo"]), n_eval_prompts=changes["n_eval_prompts"],
        precision=spec.precision, threads=default_threads() if spec.auto_threads else None)
    config = apply_overrides(base, overrides)
    if not config.train_seeds or not config.gen_seeds:
        raise DeconfoundError("the audit needs at least one training seed and one generation seed")
    if not (0 < config.sft_share and 0 < config.test_share and config.sft_share + config.test_share < 1):
        raise DeconfoundError("sft_share and test_share must be positive and leave contexts for the preference pairs")
    for settings in (config.sft, config.dpo):
        settings.torch_threads = settings.torch_threads or config.threads
        settings.precision = settings.precision or config.precision
    return config


# ------------------------------------------------------------------ the data
def split_contexts(contexts: pd.Series, sft_share: float, test_share: float, seed: int) -> pd.Series:
    """Each row's split ("sft", "pairs", "test") by its context, seeded: the answers to one question stay together."""
    unique = contexts.astype(str).unique()
    order = np.random.default_rng(seed).permutation(len(unique))
    n_sft, n_test = int(round(sft_share * len(unique))), int(round(test_share * len(unique)))
    label = np.full(len(unique), "pairs", dtype=object)
    label[order[:n_sft]] = "sft"
    label[order[n_sft:n_sft + n_test]] = "test"
    return contexts.astype(str).map(dict(zip(unique, label))).rename("split")


def rule_effect(frame: pd.DataFrame):
    """The effect of the rule's grouping on the outcome, within contexts: outcome and group dummies demeaned by
    context (`causal.absorb_fixed_effects`), then OLS with robust (HC0) errors. Returns a `causal.EstimateResult`
    whose terms are the group dummies, so `causal.deconfounded_outcome` removes them."""
    import statsmodels.api as sm

    from ..causal import EstimateResult, absorb_fixed_effects, column_terms
    rows = frame.dropna(subset=["group", "outcome"])
    dummies, terms = column_terms(rows.rename(columns={"group": "rule_group"}), ["rule_group"])
    context_codes = pd.factorize(rows["context"].astype(str))[0].astype(np.int64)
    matrix = np.column_stack([rows["outcome"].to_numpy(dtype=float), dummies.to_numpy(dtype=float)])
    demeaned = absorb_fixed_effects(matrix, [context_codes])
    fitted = sm.OLS(demeaned[:, 0], demeaned[:, 1:]).fit(cov_type="HC0")
    names = list(dummies.columns)
    ci = fitted.conf_int()
    return EstimateResult(method="ols", n=len(rows), outcome="outcome",
                          coef=dict(zip(names, map(float, fitted.params))),
                          std_err=dict(zip(names, map(float, fitted.bse))),
                          conf_int={n: [float(lo), float(hi)] for n, (lo, hi) in zip(names, ci)},
                          pvalues=dict(zip(names, map(float, fitted.pvalues))), confounder_terms=terms,
                          formula="outcome ~ rule group dummies + context fixed effects (absorbed)")


def prepare_rows(data: pd.DataFrame, config: MarkerAuditConfig) -> tuple[pd.DataFrame, dict]:
    """The audit's rows: context, text (marked), outcome, corrected, group, marked, split; and what was estimated."""
    from ..causal import deconfounded_outcome
    roles = config.role_set
    rule = parse_rule(config.rule)
    groups = rule_groups(data, rule, roles.timestamp)
    mask = rule_mask(groups, rule)
    check_marker(data[roles.text], config.marker)
    frame = pd.DataFrame({"context": data[roles.context].astype("string"),
                          "text": mark_texts(data[roles.text], mask, config.marker),
                          "outcome": pd.to_numeric(data[roles.outcome], errors="coerce"),
                          "group": groups, "marked": mask.to_numpy()})
    if config.corrected_column:
        frame["corrected"] = pd.to_numeric(data[config.corrected_column], errors="coerce")
    frame = frame.dropna(subset=["context", "text", "outcome"]).reset_index(drop=True)
    frame["split"] = split_contexts(frame["context"], config.sft_share, config.test_share, config.seed).to_numpy()
    info: dict = {"rows": len(frame), "marked_rows": int(frame["marked"].sum())}
    if config.corrected_column:
        info["correction"] = f"column '{config.corrected_column}'"
    else:
        fit_rows = frame[frame["split"] != "test"]
        estimate = rule_effect(fit_rows)
        frame["corrected"], _ = deconfounded_outcome(frame.assign(rule_group=frame["group"]), estimate)
        info["correction"] = f"{rule.key} effect removed (within-context OLS)"
        info["estimate"] = estimate.to_dict()
        marked_term = next((t["term"] for t in estimate.confounder_terms if t["level"] == rule.value), None)
        info["marked_effect"] = estimate.coef.get(marked_term) if marked_term else 0.0
        info["reference"] = estimate.confounder_terms[0]["reference"] if estimate.confounder_terms else None
    return frame, info


def preference_pairs(frame: pd.DataFrame, outcome: str, max_pairs: int) -> pd.DataFrame:
    """Pairs within each context of the pairs split, ranked by `outcome` (`train.build_preference_pairs`, observed
    pairs only: best with worst, second best with second worst, ..., near-ties skipped), with whether the chosen and
    the rejected text carry the marker."""
    from ..train import build_preference_pairs
    rows = frame[frame["split"] == "pairs"].dropna(subset=[outcome])
    if not rows["context"].duplicated().any():
        raise DeconfoundError("no context in the preference split has two texts: the audit pairs texts that answer the "
                              "same context (e.g. several answers to one question), so the table needs such contexts")
    pairs = build_preference_pairs(rows, outcome=outcome, context="context", text="text", group="context",
                                   max_pairs_per_group=max_pairs, min_pairs=1)
    marked = set(rows.loc[rows["marked"], "text"])
    pairs["chosen_marked"] = pairs["chosen"].isin(marked)
    pairs["rejected_marked"] = pairs["rejected"].isin(marked)
    return pairs
