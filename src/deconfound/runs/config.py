"""A run's configuration: `TrainConfig` (saved as the run folder's config.json, all the worker needs), dotted-key
overrides (`--set rl.max_steps=20`), and building a complete config for a table from its roles and a size preset.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields
from pathlib import Path

from ..causal import EstimatorConfig, latest_corrected_column
from ..data import Roles, is_temporal, prompt_description, template_fields, training_blockers
from ..errors import DeconfoundError, NotFoundError
from ..models import ModelSpec
from ..presets import POLICY_MODEL, PRESET_NAMES, PRESETS
from ..rewards import METHODS, REWARD_METHODS, RewardConfig, missing_requirement, parse_methods
from ..train import DPOSettings, RLSettings, SFTSettings


OVERRIDES_ENV = "DECONFOUND_TRAIN_OVERRIDES"  # JSON {"rl.max_steps": 3, ...}: tests and demos shrink runs


def default_threads() -> int:
    """CPU threads for torch: all cores up to 4 (more rarely helps small models; see FIELD-NOTES)."""
    return max(1, min(4, os.cpu_count() or 1))


# ------------------------------------------------------------------ the run's configuration
@dataclass
class TrainConfig:
    """Everything one run needs; saved as config.json in its run folder."""

    table: str = field(default="", metadata={"help": "the table to learn from (snapshotted into data.parquet)"})
    db: str | None = field(default=None, metadata={
        "help": "the DuckDB file the table came from (provenance only: the worker reads data.parquet)"})
    roles: dict = field(default_factory=dict, metadata={"help": "the table's column roles when the run was made"})
    methods: list[str] = field(default_factory=lambda: list(METHODS), metadata={
        "help": f"reward methods to compare, one RL model each: {', '.join(METHODS)}"})
    preset: str = field(default="smoke", metadata={"help": "size preset: smoke | cpu | gpu"})
    model: ModelSpec = field(default_factory=ModelSpec, metadata={"help": "the generator to start from"})
    estimator: str = field(default="iv", metadata={
        "help": "how the confounder effect is estimated when no corrected column is given: iv | dml"})
    estimation: EstimatorConfig = field(default_factory=EstimatorConfig, metadata={"help": "estimator options"})
    corrected_column: str | None = field(default=None, metadata={
        "help": "an existing deconfounded outcome column (from the Deconfound step); None estimates it in the run"})
    corrected_meta: dict = field(default_factory=dict, metadata={"help": "what made corrected_column (provenance)"})
    reward: RewardConfig = field(default_factory=lambda: RewardConfig(method="naive"), metadata={
        "help": "reward-model settings shared by every method (the method is set per model); model_path "
                f"'{POLICY_MODEL}' means the run's own SFT model (generator/finetune backbones)"})
    run_sft: bool = field(default=True, metadata={"help": "supervised fine-tuning on the logs before RL"})
    sft: SFTSettings = field(default_factory=SFTSettings, metadata={"help": "SFT settings"})
    rl: RLSettings = field(default_factory=RLSettings, metadata={"help": "RL settings (GRPO/RLOO, KL anchor)"})
    run_dpo: bool = field(default=False, metadata={"help": "also train a DPO model per method on reward-ranked pairs"})
    dpo: DPOSettings = field(default_factory=DPOSettings, metadata={"help": "DPO settings"})
    dpo_prompts: int = field(default=200, metadata={"help": "DPO: prompts whose sampled texts are ranked into pairs"})
    dpo_samples: int = field(default=4, metadata={"help": "DPO: texts sampled per prompt (best vs worst)"})
    max_reward_rows: int | None = field(default=None, metadata={
        "help": "train each reward model on at most this many rows (None: the whole rm split)"})
    n_eval_prompts: int = field(default=300, metadata={"help": "held-out prompts every model writes for"})
    gen_seeds: list[int] = field(default_factory=lambda: [0], metadata={
        "help": "sampling seeds of the evaluation generations (one generation per prompt and seed)"})
    gen_max_new_tokens: int = field(default=24, metadata={"help": "tokens per evaluation generation"})
    gen_temperature: float = field(default=1.0, metadata={"help": "sampling temperature (paper: 1)"})
    gen_batch_size: int = field(default=32, metadata={"help": "prompts per generation batch"})
    threads: int | None = field(default_factory=default_threads, metadata={
        "help": "CPU threads for torch (too many next to other work makes it several times slower)"})
    precision: str = field(default="auto", metadata={
        "help": "auto | bf16 | fp32 for training and generation (auto: bf16 where the hardware computes it "
                "natively: a CPU with AVX512-BF16/AMX or a CUDA GPU)"})
    seed: int = field(default=0, metadata={"help": "seed of the split (tables without one) and of sampling"})
    notes: list[str] = field(default_factory=list, metadata={"help": "what preset_config adjusted, for the user"})

    _NESTED = {"model": ModelSpec, "estimation": EstimatorConfig, "reward": RewardConfig,
               "sft": SFTSettings, "rl": RLSettings, "dpo": DPOSettings}

    def to_dict(self) -> dict:
        """JSON-ready dict (nested settings as dicts)."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in self._NESTED:
            data[name] = data[name].to_dict()
        return json.loads(json.dumps(data, default=str))

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        """Rebuild from `to_dict()` output; unknown keys are an error naming the known ones."""
        data = dict(data or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise DeconfoundError(f"unknown training setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        for name, kind in cls._NESTED.items():
            if name in data and isinstance(data[name], dict):
                data[name] = _nested_from_dict(kind, data[name], name)
        return cls(**data)

    @property
    def role_set(self) -> Roles:
        """The roles as a `Roles` object."""
        return Roles.from_dict(self.roles)

    def summary(self) -> str:
        """A few readable lines."""
        lines = [f"table {self.table}, preset {self.preset}, model {self.model.name}",
                 f"methods: {', '.join(self.methods)}",
                 "confounder correction: " + (f"column '{self.corrected_column}'" if self.corrected_column
                                               else f"estimated in the run ({self.estimator})"),
                 f"SFT {'on' if self.run_sft else 'off'} ({self.sft.max_steps} steps), RL {self.rl.algorithm} "
                 f"{self.rl.max_steps} steps per method, DPO {'on' if self.run_dpo else 'off'}",
                 f"evaluation: {self.n_eval_prompts} held-out prompts × {len(self.gen_seeds)} seed(s)"]
        return "\n".join(lines + [f"note: {n}" for n in self.notes])


def _nested_from_dict(kind, data: dict, name: str):
    known = {f.name for f in fields(kind)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise DeconfoundError(f"unknown {name} setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    if kind is EstimatorConfig:
        return EstimatorConfig(**data)
    return kind.from_dict(data)


def parse_overrides(items: list[str]) -> dict:
    """['rl.max_steps=5', 'methods=naive,deconfounded'] → {'rl.max_steps': 5, 'methods': [...]}:
    values are JSON where they parse (numbers, true, null, lists), comma lists for `methods`/`gen_seeds`."""
    out = {}
    for item in items:
        key, sep, raw = str(item).partition("=")
        if not sep or not key.strip():
            raise DeconfoundError(f"setting {item!r} is not KEY=VALUE (e.g. rl.max_steps=20)")
        out[key.strip()] = raw.strip()
    return out


def _coerce(key: str, value):
    if not isinstance(value, str):
        return value
    if key in ("methods", "gen_seeds") and not value.startswith("["):
        items = [v.strip() for v in value.split(",") if v.strip()]
        return [int(v) for v in items] if key == "gen_seeds" else items
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def apply_overrides(config: TrainConfig, overrides: dict) -> TrainConfig:
    """A copy of `config` with dotted-key overrides ({"rl.max_steps": 5, "model": {"name": "tiny"}})."""
    data = config.to_dict()
    for key, value in (overrides or {}).items():
        head, _, rest = key.partition(".")
        value = _coerce(key, value)
        if rest:
            if head not in TrainConfig._NESTED and head != "roles":
                raise DeconfoundError(f"setting {key!r}: '{head}' has no sub-settings "
                                      f"(those are {', '.join(TrainConfig._NESTED)})")
            data[head] = dict(data.get(head) or {}) | {rest: value}
        elif head in TrainConfig._NESTED and isinstance(value, dict):
            data[head] = dict(data.get(head) or {}) | value
        else:
            data[head] = value
    return TrainConfig.from_dict(data)


def env_overrides() -> dict:
    """Overrides from $DECONFOUND_TRAIN_OVERRIDES (a JSON object), used by tests to shrink runs."""
    raw = os.environ.get(OVERRIDES_ENV)
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise DeconfoundError(f"${OVERRIDES_ENV} is not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise DeconfoundError(f"${OVERRIDES_ENV} must be a JSON object of settings")
    return value


def preset_config(preset: str, table: str, store=None, overrides: dict | None = None, **fields_) -> TrainConfig:
    """A complete TrainConfig for `table` from its saved roles and a size preset.

    Methods default to the paper's set; oracle methods are dropped (with a note) when the table has no
    truth column, confounder methods when it has no confounder. The estimator is IV when instruments are
    tagged, else DML; a deconfounded column saved on the Deconfound page is used instead of re-estimating.
    `fields_` and `overrides` (dotted keys, e.g. {"rl.max_steps": 5}) change any setting.
    """
    if preset not in PRESETS:
        raise DeconfoundError(f"unknown preset {preset!r}: choose one of {', '.join(PRESET_NAMES)} "
                              f"(smoke: minutes, cpu: laptop demo, gpu: paper scale)")
    if store is None:
        from ..data import Store
        store = Store()
    store.require(table)
    roles = store.require_roles(table)
    blockers = training_blockers(roles)
    if blockers:
        raise DeconfoundError(f"table '{table}' cannot be trained on yet: {'; '.join(blockers)}")
    merged = dict(overrides or {}) | fields_
    explicit = "methods" in merged
    notes: list[str] = []
    methods = parse_methods(merged.pop("methods")) if explicit else list(METHODS)
    missing = {m: missing_requirement(m, roles) for m in methods}
    dropped = [m for m in methods if missing[m]]
    truth_only = all(REWARD_METHODS[m].needs_truth for m in dropped)
    if dropped and explicit:
        why = "no truth column is tagged" if truth_only else "the table has no tagged truth column or no confounder"
        raise DeconfoundError(f"method(s) {', '.join(dropped)} cannot run: {why}; remove them or tag the column")
    if dropped:
        notes.append(f"left out {', '.join(dropped)}: " + ("the table has no ground-truth column" if truth_only
                                                           else "the table has no truth or no confounder tagged"))
    methods = [m for m in methods if m not in dropped]
    schema = store.schema(table)
    first = roles.confounders[0] if roles.confounders else None
    if first and is_temporal(schema.get(first, "")):
        # These rewards read the confounder as one number; a time confounder is a calendar of effects.
        numeric_only = [m for m in methods if REWARD_METHODS[m].fits_confounder]
        if numeric_only and explicit:
            raise DeconfoundError(f"method(s) {', '.join(numeric_only)} read the confounder as a number, and "
                                  f"'{first}' is a time: remove them (naive and deconfounded run)")
        if numeric_only:
            notes.append(f"left out {', '.join(numeric_only)}: they read the confounder as a number, and "
                         f"'{first}' is a time")
        methods = [m for m in methods if m not in numeric_only]
    if not methods:
        raise DeconfoundError("no reward method can run on this table: tag an outcome and a confounder")
    fitting = [m for m in methods if REWARD_METHODS[m].fits_confounder]
    if len(roles.confounders) > 1 and fitting:
        notes.append(f"confounder_text/layer and ODIN use the first confounder ('{roles.confounders[0]}')")

    corrected, meta = latest_corrected_column(store, table, roles.outcome)
    estimator = "iv" if roles.instruments else "dml"
    if corrected:
        estimator = meta.get("method", estimator)
        notes.append(f"the deconfounded reward uses '{corrected}' saved on the Deconfound page ({estimator})")
    elif "deconfounded" in methods:
        notes.append(f"the confounder effect will be estimated in the run with "
                     f"{'IV (instruments: ' + ', '.join(roles.instruments) + ')' if estimator == 'iv' else 'DML (no instrument tagged)'}")

    spec = PRESETS[preset]
    config = TrainConfig(
        table=table, db=str(store.path), roles=roles.to_dict(), methods=methods, preset=preset,
        model=ModelSpec(name=spec.model), estimator=estimator, corrected_column=corrected,
        corrected_meta={k: v for k, v in meta.items() if k != "estimate"} | ({"estimate": meta["estimate"]}
                                                                            if "estimate" in meta else {}),
        reward=RewardConfig(method="naive", backbone=spec.reward_backbone, model_path=spec.reward_model_path),
        sft=SFTSettings.for_preset(preset), rl=RLSettings.for_preset(preset), dpo=DPOSettings.for_preset(preset),
        n_eval_prompts=spec.n_eval_prompts, gen_seeds=list(spec.gen_seeds), gen_max_new_tokens=spec.gen_max_new_tokens,
        gen_batch_size=spec.gen_batch_size,
        dpo_prompts=spec.dpo_prompts, precision=spec.precision, max_reward_rows=None, notes=notes)
    if not spec.auto_threads:
        config.threads = None
    config = apply_overrides(config, merged)
    prompt_roles = config.role_set
    missing_cols = [c for c in template_fields(prompt_roles.prompt_template) if c not in schema]
    if missing_cols:
        raise DeconfoundError(f"the prompt template names no column of '{table}': {', '.join(missing_cols)} "
                              f"(columns: {', '.join(schema)})")
    config.notes.append(f"the prompt shows {prompt_description(prompt_roles)}")
    if config.estimator not in ("iv", "dml"):
        raise DeconfoundError(f"unknown estimator {config.estimator!r}: use iv or dml")
    if config.estimator == "iv" and not roles.instruments and not config.corrected_column \
            and "deconfounded" in config.methods:
        raise DeconfoundError("the IV estimator needs an instrument: tag one on the Roles page or use dml")
    for settings in (config.sft, config.rl, config.dpo):  # one place decides the CPU threads and precision
        if settings.torch_threads is None:
            settings.torch_threads = config.threads
        if settings.precision is None:
            settings.precision = config.precision
    return config


def load_config_file(path, store=None) -> TrainConfig:
    """A TrainConfig from a JSON file: a full config.json of an earlier run, or a partial one
    ({"table": ..., "preset": ..., "rl": {"max_steps": 20}}) completed from the table's roles."""
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"config file {path} not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DeconfoundError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict) or not data.get("table"):
        raise DeconfoundError(f"{path} must be a JSON object with at least a \"table\" (and usually a \"preset\")")
    data = {k: v for k, v in data.items() if k not in ("notes", "db")}
    preset, table = data.pop("preset", "smoke"), data.pop("table")
    overrides = {}
    for key, value in data.items():
        if isinstance(value, dict) and key in TrainConfig._NESTED:
            overrides.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            overrides[key] = value
    return preset_config(preset, table, store=store, overrides=overrides)
