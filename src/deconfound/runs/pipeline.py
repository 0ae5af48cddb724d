"""One training run, stage by stage: estimate → base → sft → rewards → rl per method → (dpo) → generate.

`TrainConfig` is everything a run needs (saved as the run folder's config.json); `preset_config` fills it
from a table's saved roles and a size preset. `run_pipeline(run_dir)` reads config.json + data.parquet
(never the app's database), runs the stages in order and records each finished one in stages.json, so a
resumed run skips them and RL continues from its last checkpoint. While it runs it keeps status.json
(progress 0..1 weighted by each stage's expected cost, stage, ETA), metrics.jsonl (one line per training
step) and samples.jsonl (a few generations after each trained model) up to date for the live panel.

torch is imported only inside the stages (through models/training/rewards/generation).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import pandas as pd

from ..causal import EstimatorConfig, latest_corrected_column
from ..data import Roles, assign_splits
from ..errors import DeconfoundError, NotFoundError
from ..jsonio import read_json, write_json_atomic
from ..models import ModelSpec
from ..presets import POLICY_MODEL, PRESET_NAMES, PRESETS, REWARD_COST
from ..rewards import (METHODS, REWARD_METHODS, RewardColumns, RewardConfig, missing_requirement, parse_methods)
from ..train import DPOSettings, RLSettings, SFTSettings
from .folder import RunFolder, now_iso
from .jobs import ACTIVE_STATES, process_start_time

log = logging.getLogger(__name__)

SAMPLE_PROMPTS = 3  # generations per trained model shown in the live panel
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
    if not roles.context:
        raise DeconfoundError(f"table '{table}' has no context column tagged: training writes a text for each "
                              "context, so tag the prompt/context column on the Roles page")
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
        dpo_prompts=spec.dpo_prompts, max_reward_rows=None, notes=notes)
    if not spec.auto_threads:
        config.threads = None
    config = apply_overrides(config, merged)
    if config.estimator not in ("iv", "dml"):
        raise DeconfoundError(f"unknown estimator {config.estimator!r}: use iv or dml")
    if config.estimator == "iv" and not roles.instruments and not config.corrected_column \
            and "deconfounded" in config.methods:
        raise DeconfoundError("the IV estimator needs an instrument: tag one on the Roles page or use dml")
    for settings in (config.sft, config.rl, config.dpo):  # one place decides the CPU threads
        if settings.torch_threads is None:
            settings.torch_threads = config.threads
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


# ------------------------------------------------------------------ progress
class RunProgress:
    """Turns stage callbacks into status.json (throttled, atomic), metrics.jsonl and an ETA.

    `plan` maps each stage to its expected cost; overall progress is the cost-weighted share done.
    Calling it as `progress(stage, step, total, metrics)` is the training callback: it raises
    `training.Cancelled` once `stop` is set, so trainers stop at their next step with a checkpoint.
    """

    def __init__(self, folder: RunFolder, plan: dict[str, float], stop=None, enabled: bool = True,
                 callback=None, min_interval_s: float = 1.0):
        self.folder, self.plan, self.stop, self.enabled = folder, plan, stop, enabled
        self.callback, self.min_interval_s = callback, min_interval_s
        self.total_cost = sum(plan.values()) or 1.0
        self.done: set[str] = set()
        self.current: str | None = None
        self.fraction = 0.0
        self.started = time.monotonic()
        self.start_progress: float | None = None
        self.last_write = 0.0
        self.status = folder.status() if enabled else {}

    def check_stop(self) -> None:
        """Raise `training.Cancelled` when a stop was requested (SIGTERM)."""
        if self.stop is not None and self.stop.is_set():
            from ..train import Cancelled
            raise Cancelled("stop requested")

    @property
    def progress(self) -> float:
        done = sum(self.plan.get(s, 0.0) for s in self.done)
        if self.current and self.current not in self.done:
            done += self.plan.get(self.current, 0.0) * self.fraction
        return min(1.0, done / self.total_cost)

    def begin(self, stage: str) -> None:
        """A stage starts."""
        self.check_stop()
        self.current, self.fraction = stage, 0.0
        self.status.pop("stage_step", None)
        self.status.pop("stage_total", None)
        log.info("stage %s", stage)
        self.write(force=True, message=f"running {stage}")

    def finish(self, stage: str, skipped: bool = False) -> None:
        """A stage is done (or was done before a resume)."""
        self.done.add(stage)
        self.fraction = 0.0
        if skipped:
            log.info("skip stage %s (finished before)", stage)
        if self.start_progress is None and skipped:
            return
        self.write(force=True)

    def __call__(self, stage: str, step: int, total: int, metrics: dict | None = None) -> None:
        if total and total > 0:
            self.fraction = max(0.0, min(1.0, step / total))
        if metrics and self.enabled and self.current and self.current.split("/")[0] in ("sft", "rl", "dpo", "rewards"):
            record = {"stage": self.current, "step": int(step), "total": int(total or 0), "time": time.time()}
            record.update({k: v for k, v in metrics.items() if k not in ("step",)})
            self.folder.append_metrics(record)
        if self.callback is not None:
            self.callback(self.current or stage, step, total, metrics or {})
        self.write(force=False, step=step, total=total)
        self.check_stop()

    def eta(self) -> float | None:
        """Seconds left, from the time this session took for the progress it made."""
        if self.start_progress is None:
            return None
        gained = self.progress - self.start_progress
        elapsed = time.monotonic() - self.started
        if gained <= 0.005 or elapsed < 2:
            return None
        return max(0.0, elapsed / gained * (1.0 - self.progress))

    def write(self, force: bool = False, message: str | None = None, **extra) -> None:
        """Update status.json (at most once per `min_interval_s` unless forced)."""
        if self.start_progress is None:
            self.start_progress = self.progress
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self.last_write < self.min_interval_s:
            return
        self.last_write = now
        self.status.update(state="running", progress=round(self.progress, 4), stage=self.current or "",
                           updated_at=now_iso(), eta_s=_round(self.eta()),
                           stages_done=len(self.done), stages_total=len(self.plan))
        if message:
            self.status["message"] = message
        if "step" in extra:
            self.status["stage_step"], self.status["stage_total"] = extra["step"], extra["total"]
        self.folder.write_status(self.status)


def _round(value):
    return None if value is None else round(float(value), 1)


# ------------------------------------------------------------------ data and splits
def load_run_data(folder: RunFolder) -> pd.DataFrame:
    """data.parquet of the run (the snapshot, plus the corrected outcome once estimated)."""
    if not folder.data_path.is_file():
        raise NotFoundError(f"{folder.path} has no data.parquet: create runs with `deconfound train`")
    return pd.read_parquet(folder.data_path)


def eval_prompts(data: pd.DataFrame, splits: pd.Series, context: str, n: int, seed: int) -> pd.DataFrame:
    """The held-out prompts every model writes for: up to n distinct test contexts, seeded."""
    test = data.loc[splits == "test", [context]].dropna()
    test = test[~test[context].astype(str).duplicated()]
    if len(test) > n:
        test = test.sample(n=n, random_state=seed).sort_index()
    return pd.DataFrame({"prompt_id": test.index.astype(int), "context": test[context].astype(str).to_numpy()})


# ------------------------------------------------------------------ the stages
@dataclass
class _Run:
    """Shared state of one pipeline run."""

    folder: RunFolder
    config: TrainConfig
    progress: RunProgress
    resume: bool
    main: bool
    data: pd.DataFrame | None = None
    splits: pd.Series | None = None
    info: dict = field(default_factory=dict)  # outputs of finished stages (from stages.json)

    @property
    def roles(self) -> Roles:
        return self.config.role_set

    def rows(self, split: str) -> pd.DataFrame:
        return self.data.loc[self.splits == split]

    def path(self, *parts) -> Path:
        return self.folder.path.joinpath(*parts)

    def relative(self, path) -> str:
        """`path` relative to the run folder when inside it (stages.json survives moving the folder)."""
        path = Path(path).resolve()
        try:
            return str(path.relative_to(self.folder.path.resolve()))
        except ValueError:
            return str(path)


def plan_stages(config: TrainConfig, n_eval: int | None = None) -> dict[str, float]:
    """Stage name → expected cost (seconds on the preset's reference hardware)."""
    cost = (PRESETS.get(config.preset) or PRESETS["cpu"]).cost
    steps = lambda s, rows: s.max_steps if s.max_steps and s.max_steps > 0 else max(1, int(rows))  # noqa: E731
    plan = {"estimate": 2.0 if (config.corrected_column or "deconfounded" not in config.methods)
            else (3.0 if config.estimator == "iv" else 30.0), "base": 5.0}
    if config.run_sft:
        plan["sft"] = steps(config.sft, 1000) * cost["sft"] + 5
    for method in config.methods:
        plan[f"rewards/{method}"] = REWARD_COST.get(config.reward.backbone, 30.0)
    for method in config.methods:
        plan[f"rl/{method}"] = steps(config.rl, 1000) * cost["rl"] + 5
    if config.run_dpo:
        for method in config.methods:
            plan[f"dpo_pairs/{method}"] = config.dpo_prompts * config.dpo_samples * cost["gen"] + 3
            plan[f"dpo/{method}"] = steps(config.dpo, 500) * cost["dpo"] + 5
    models = 1 + int(config.run_sft) + len(config.methods) * (1 + int(config.run_dpo))
    plan["generate"] = models * (n_eval or config.n_eval_prompts) * len(config.gen_seeds) * cost["gen"] + 2 * models
    plan["summary"] = 1.0
    return plan


def stage_estimate(run: _Run) -> dict:
    """Make sure data.parquet holds the corrected outcome the deconfounded reward needs; write estimate.json."""
    config, roles = run.config, run.roles
    if config.corrected_column:
        if config.corrected_column not in run.data.columns:
            raise DeconfoundError(f"the corrected column '{config.corrected_column}' is not in the run's data snapshot")
        estimate = config.corrected_meta.get("estimate")
        if estimate:
            write_json_atomic(run.path("estimate.json"), estimate)
        return {"corrected_column": config.corrected_column, "source": "table"}
    if "deconfounded" not in config.methods:
        return {"corrected_column": None, "source": "not needed"}
    from ..causal import deconfounded_outcome, default_column_name, fit_dml, fit_iv
    fit_rows = run.data.loc[run.splits != "test"]  # nothing about the held-out prompts is used in training
    if config.estimator == "iv":
        result = fit_iv(fit_rows, roles, config.estimation)
    else:
        result = fit_dml(fit_rows, roles, config.estimation,
                         progress=lambda done, total: run.progress("estimate", done, total, {}))
    result.table = config.table
    values, offset = deconfounded_outcome(run.data, result)
    name = default_column_name(result)
    while name in run.data.columns:
        name = f"{name}_run"
    run.data[name] = values
    tmp = run.folder.data_path.with_name(".data.parquet.tmp")
    run.data.to_parquet(tmp, index=False)
    os.replace(tmp, run.folder.data_path)
    write_json_atomic(run.path("estimate.json"), result.to_dict() | {"corrected_column": name, "offset": offset})
    log.info("%s", result.verdict())
    for warning in result.warnings:
        log.warning("estimator: %s", warning)
    return {"corrected_column": name, "source": config.estimator, "verdict": result.verdict()}


def stage_base(run: _Run) -> dict:
    """A loadable folder for the starting generator (a tiny model is built inside the run folder)."""
    from ..models import resolve_model_path
    spec = run.config.model
    roles = run.roles
    corpus = None
    out_dir = None
    if spec.name.strip().lower() == "tiny":
        train = run.data.loc[run.splits.isin(["sft", "rm", "rl"])]
        corpus = train[roles.context].dropna().astype(str).tolist() + train[roles.text].dropna().astype(str).tolist()
        out_dir = run.path("models", "base")
    path = resolve_model_path(spec, corpus=corpus, out_dir=out_dir)
    return {"model_path": run.relative(path)}


def stage_sft(run: _Run) -> dict:
    from ..train import run_sft
    roles = run.roles
    rows = run.rows("sft")
    frame = pd.DataFrame({"context": rows[roles.context].astype(str), "text": rows[roles.text]}).dropna()
    base = resolve_in(run.folder.path, run.info["base"]["model_path"])
    out = run_sft(base, frame, run.config.sft, run.path("models", "sft"), progress=run.progress, resume=run.resume,
                  stage="sft", checkpoint_dir=run.path("checkpoints", "sft"))
    return {"model_path": run.relative(out)}


def policy_path(run: _Run) -> str:
    """The model RL and DPO start from (and are KL-anchored to): SFT when trained, else the base."""
    return str(resolve_in(run.folder.path, (run.info.get("sft") or run.info["base"])["model_path"]))


def reward_columns(run: _Run) -> RewardColumns:
    return RewardColumns.from_roles(run.roles, corrected=run.info["estimate"].get("corrected_column"))


def stage_reward(run: _Run, method: str, features) -> dict:
    from dataclasses import replace as dc_replace

    from ..rewards import train_all
    base = run.config.reward
    if base.backbone in ("generator", "finetune") and base.model_path in (None, "", POLICY_MODEL):
        base = dc_replace(base, model_path=policy_path(run))
    train, valid = run.rows("rm"), run.rows("rm_valid")
    if run.config.max_reward_rows and len(train) > run.config.max_reward_rows:
        train = train.sample(n=run.config.max_reward_rows, random_state=run.config.seed)
    models = train_all([method], train, valid, reward_columns(run), run.path("rewards"), config=base,
                       progress=run.progress, features=features)
    metrics = models[method].metrics
    log.info("reward %s: valid pearson with truth %s, R² on outcome %s", method,
             metrics.get("valid", {}).get("pearson_truth"), metrics.get("valid", {}).get("r2_outcome"))
    return {"folder": f"rewards/{method}", "valid": metrics.get("valid", {})}


def rl_prompts(run: _Run) -> pd.DataFrame:
    """RL prompts: the rl split's contexts plus the confounder column (rewards that read it get it)."""
    roles = run.roles
    rows = run.rows("rl")
    frame = pd.DataFrame({"context": rows[roles.context].astype(str)})
    if roles.confounders and roles.confounders[0] != "context":
        frame[roles.confounders[0]] = pd.to_numeric(rows[roles.confounders[0]], errors="coerce")
        frame = frame.dropna()
    return frame.reset_index(drop=True)


def stage_rl(run: _Run, method: str) -> dict:
    from ..rewards import RewardModel
    from ..train import run_rl
    reward = RewardModel.load(run.path("rewards", method)).reward_func()
    name = f"rl_{method}"
    # reward_func already standardises by the reward model's training scores: keep that scale.
    out = run_rl(policy_path(run), reward, rl_prompts(run), run.config.rl, run.path("models", name),
                 progress=run.progress, resume=run.resume, stage=f"rl/{method}", reward_stats=(0.0, 1.0),
                 checkpoint_dir=run.path("checkpoints", f"rl_{method}"))
    return {"model_path": run.relative(out)} | _training_outcome(out)


def stage_dpo_pairs(run: _Run, method: str) -> dict:
    from ..rewards import RewardModel
    from ..train import build_preference_pairs
    reward = RewardModel.load(run.path("rewards", method)).reward_func()
    prompts = rl_prompts(run)
    pairs = build_preference_pairs(prompts, policy_path=policy_path(run), reward_fn=reward,
                                   samples_per_prompt=run.config.dpo_samples, max_prompts=run.config.dpo_prompts,
                                   seed=run.config.seed,
                                   generate_kwargs={"max_new_tokens": run.config.gen_max_new_tokens,
                                                    "batch_size": run.config.gen_batch_size})
    if len(pairs) < 2:
        raise DeconfoundError(f"DPO for {method}: only {len(pairs)} preference pairs (the sampled texts scored "
                              "alike); raise dpo_prompts or dpo_samples, or turn DPO off")
    path = run.path("dpo_pairs", f"{method}.csv")
    path.parent.mkdir(parents=True, exist_ok=True)
    pairs.to_csv(path, index=False)
    return {"pairs": run.relative(path), "n": len(pairs)}


def stage_dpo(run: _Run, method: str) -> dict:
    from ..train import run_dpo
    pairs = pd.read_csv(run.path("dpo_pairs", f"{method}.csv"), keep_default_na=False)
    name = f"dpo_{method}"
    out = run_dpo(policy_path(run), pairs, run.config.dpo, run.path("models", name), progress=run.progress,
                  resume=run.resume, stage=f"dpo/{method}", checkpoint_dir=run.path("checkpoints", name))
    return {"model_path": run.relative(out)} | _training_outcome(out)


def _training_outcome(model_dir: Path) -> dict:
    summary = read_json(Path(model_dir) / "training_summary.json", default={}) or {}
    return {"steps": summary.get("steps"), "stopped_early": summary.get("stopped_early"),
            "warnings": summary.get("warnings", [])}


def run_models(run_dir, info: dict | None = None) -> dict[str, Path]:
    """The models of a run, in display order: base, sft, rl_<method>..., dpo_<method>... (finished ones)."""
    folder = RunFolder(run_dir)
    info = info if info is not None else {s["stage"]: s for s in folder.stages()}
    config = folder.config()
    models: dict[str, Path] = {}
    for name in ("base", "sft"):
        if info.get(name, {}).get("model_path"):
            models[name] = resolve_in(folder.path, info[name]["model_path"])
    for prefix in ("rl", "dpo"):
        for method in config.get("methods", []):
            entry = info.get(f"{prefix}/{method}", {})
            if entry.get("model_path"):
                models[f"{prefix}_{method}"] = resolve_in(folder.path, entry["model_path"])
    return models


def resolve_in(run_dir: Path, path: str) -> Path:
    """A path from stages.json: relative ones are inside the run folder (so a moved folder still works)."""
    path = Path(path)
    return path if path.is_absolute() else Path(run_dir) / path


def write_samples(run: _Run, stage: str, model_name: str, model_path: str, method: str | None = None) -> None:
    """A few generations of a freshly trained model for the live panel (samples.jsonl)."""
    if not run.main:
        return
    from ..models import generate
    prompts = eval_prompts(run.data, run.splits, run.roles.context, SAMPLE_PROMPTS, run.config.seed)
    if prompts.empty:
        return
    texts = generate(resolve_in(run.folder.path, model_path), prompts["context"].tolist(), seed=run.config.seed,
                     max_new_tokens=run.config.gen_max_new_tokens, temperature=run.config.gen_temperature)
    scores = [None] * len(texts)
    if method:
        from ..rewards import RewardModel
        model = RewardModel.load(run.path("rewards", method))
        confounder = np.full(len(texts), model.state["confounder_mean"]) if model.needs_confounder else None
        scores = [round(float(s), 4) for s in model.score(texts, prompts["context"].tolist(), confounder)]
    run.folder.append_samples([{"stage": stage, "model": model_name, "time": time.time(), "prompt_id": int(pid),
                                "context": ctx, "text": text, "reward": score}
                               for pid, ctx, text, score in zip(prompts["prompt_id"], prompts["context"], texts, scores)])


def generate_frame(models: dict[str, Path], prompts: pd.DataFrame, seeds: list[int], *, max_new_tokens: int = 24,
                   temperature: float = 1.0, batch_size: int = 32, partial_dir: Path | None = None,
                   progress=None) -> pd.DataFrame:
    """Generations of every model for every prompt and seed: columns prompt_id, context, model, seed, text.
    With `partial_dir`, each (model, seed) is saved there as it finishes and reused on a resume."""
    from ..models import generate
    frames = []
    jobs_total = len(models) * len(seeds)
    done = 0
    for name, path in models.items():
        for seed in seeds:
            partial = partial_dir / f"{name}__seed{seed}.csv" if partial_dir else None
            if partial is not None and partial.is_file():
                frame = pd.read_csv(partial, keep_default_na=False)
            else:
                def inner(stage, step, total, metrics, _done=done):
                    if progress:
                        progress("generate", _done * max(total, 1) + step, jobs_total * max(total, 1), {})
                texts = generate(path, prompts["context"].tolist(), seed=int(seed), max_new_tokens=max_new_tokens,
                                 temperature=temperature, batch_size=batch_size, progress=inner)
                frame = pd.DataFrame({"prompt_id": prompts["prompt_id"].to_numpy(), "context": prompts["context"],
                                      "model": name, "seed": int(seed), "text": texts})
                if partial is not None:
                    partial.parent.mkdir(parents=True, exist_ok=True)
                    tmp = partial.with_name(f".{partial.name}.tmp")
                    frame.to_csv(tmp, index=False)
                    os.replace(tmp, partial)
            frames.append(frame)
            done += 1
            if progress:
                progress("generate", done, jobs_total, {})
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["prompt_id", "context", "model", "seed", "text"])


def stage_generate(run: _Run) -> dict:
    prompts = eval_prompts(run.data, run.splits, run.roles.context, run.config.n_eval_prompts, run.config.seed)
    if prompts.empty:
        raise DeconfoundError("the test split has no prompts to evaluate on: check the table's split column")
    models = run_models(run.folder.path, run.info)
    frame = generate_frame(models, prompts, run.config.gen_seeds, max_new_tokens=run.config.gen_max_new_tokens,
                           temperature=run.config.gen_temperature, batch_size=run.config.gen_batch_size,
                           partial_dir=run.path("generations"), progress=run.progress)
    tmp = run.folder.generations_path.with_name(".generations.csv.tmp")
    frame.to_csv(tmp, index=False)
    os.replace(tmp, run.folder.generations_path)
    return {"rows": len(frame), "models": list(models), "prompts": len(prompts)}


def run_summary(run: _Run, seconds: float) -> dict:
    """The final summary written into status.json."""
    info = run.info
    rewards = {m: {k: info.get(f"rewards/{m}", {}).get("valid", {}).get(k) for k in ("pearson_truth", "r2_outcome")}
               for m in run.config.methods}
    rl = {}
    for method in run.config.methods:
        entry = info.get(f"rl/{method}", {})
        history = read_json(resolve_in(run.folder.path, entry.get("model_path", "-")) / "training_summary.json",
                            default={}) or {}
        steps = [h for h in history.get("history", []) if h.get("reward") is not None]
        rl[method] = {"steps": entry.get("steps"), "stopped_early": entry.get("stopped_early"),
                      "reward_first": steps[0]["reward"] if steps else None,
                      "reward_last": steps[-1]["reward"] if steps else None,
                      "kl_last": steps[-1].get("kl") if steps else None}
    generate_info = info.get("generate", {})
    return {"models": generate_info.get("models", []), "generations": generate_info.get("rows"),
            "eval_prompts": generate_info.get("prompts"), "estimate": info.get("estimate", {}).get("verdict"),
            "corrected_column": info.get("estimate", {}).get("corrected_column"), "rewards_valid": rewards,
            "rl": rl, "seconds_this_session": round(seconds, 1), "notes": run.config.notes}


# ------------------------------------------------------------------ the run
def cancelled_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean "stopped on request" (the worker records those as cancelled)."""
    from ..train import Cancelled
    return (Cancelled, KeyboardInterrupt)


def _rank() -> int:
    return int(os.environ.get("RANK", "0") or 0)


def _wait_for_stage(folder: RunFolder, stage: str, poll_s: float = 2.0) -> None:
    """Non-main processes (accelerate) wait for the main process to finish a stage only it runs."""
    while not folder.finished(stage):
        if folder.status().get("state") not in ACTIVE_STATES:
            raise DeconfoundError(f"the main process stopped before finishing {stage}")
        time.sleep(poll_s)


def run_pipeline(run_dir, progress=None, resume: bool = False, stop=None, write_status: bool | None = None) -> dict:
    """Run (or resume) every stage of the run folder `run_dir`; returns the final summary.

    progress(stage, step, total, metrics): an extra callback (e.g. a CLI printer). stop: a threading.Event;
    once set, the current step finishes and `training.Cancelled` is raised. Finished stages (stages.json)
    are always skipped; `resume` also makes trainers continue from their last checkpoint.
    """
    folder = RunFolder(Path(run_dir).resolve())
    if not folder.exists():
        raise NotFoundError(f"{run_dir} is not a run folder (no config.json)")
    main = _rank() == 0 if write_status is None else write_status
    config = TrainConfig.from_dict(folder.config())
    data = load_run_data(folder)
    _check_columns(config, data)
    splits, note = assign_splits(data, config.seed)
    if note:
        log.info("%s", note)
    n_eval = len(eval_prompts(data, splits, config.role_set.context, config.n_eval_prompts, config.seed))
    plan = plan_stages(config, n_eval)
    tracker = RunProgress(folder, plan, stop=stop, enabled=main, callback=progress)
    run = _Run(folder=folder, config=config, progress=tracker, resume=resume, main=main, data=data, splits=splits,
               info={s["stage"]: s for s in folder.stages()})
    started = time.monotonic()
    if resume and main:
        drop_incomplete_checkpoints(folder.path / "checkpoints")
    if main:
        status = folder.status()
        status.update(state="running", pid=os.getpid(), pgid=os.getpgrp(), host=socket.gethostname(),
                      proc_start=process_start_time(os.getpid()),
                      started_at=status.get("started_at") if resume and status.get("started_at") else now_iso(),
                      resumed_at=now_iso() if resume else None, ended_at=None, log_tail=None,
                      message="resuming" if resume else "starting", summary=None)
        folder.write_status(status)
        tracker.status = status
    log.info("run %s: %s", folder.path.name, config.summary().replace("\n", "; "))

    def stage(name: str, fn, *args, main_only: bool = False, samples=None):
        if name in run.info:
            tracker.finish(name, skipped=True)
            return
        if main_only and not main:
            _wait_for_stage(folder, name)
            run.info[name] = next(s for s in folder.stages() if s["stage"] == name)
            tracker.finish(name)
            return
        tracker.begin(name)
        t0 = time.monotonic()
        output = fn(run, *args) or {}
        if main:
            folder.mark_finished(name, seconds=round(time.monotonic() - t0, 1), **output)
        run.info[name] = {"stage": name, **output}
        if samples and main:
            try:
                samples(output)
            except Exception as exc:  # samples only feed the live panel: never fail a run for them
                log.warning("could not write sample texts after %s: %s", name, exc)
        tracker.finish(name)

    if "estimate" in run.info and run.info["estimate"].get("corrected_column") not in (None, *data.columns):
        raise DeconfoundError("data.parquet lost the corrected outcome column: start a new run")
    stage("estimate", stage_estimate, main_only=True)
    stage("base", stage_base, main_only=True)
    if config.run_sft:
        stage("sft", stage_sft, samples=lambda out: write_samples(run, "sft", "sft", out["model_path"]))
    features = _feature_cache(run) if any(f"rewards/{m}" not in run.info for m in config.methods) else None
    for method in config.methods:
        stage(f"rewards/{method}", stage_reward, method, features, main_only=True)
    for method in config.methods:
        stage(f"rl/{method}", stage_rl, method,
              samples=lambda out, m=method: write_samples(run, f"rl/{m}", f"rl_{m}", out["model_path"], m))
    if config.run_dpo:
        for method in config.methods:
            stage(f"dpo_pairs/{method}", stage_dpo_pairs, method, main_only=True)
            stage(f"dpo/{method}", stage_dpo, method,
                  samples=lambda out, m=method: write_samples(run, f"dpo/{m}", f"dpo_{m}", out["model_path"], m))
    stage("generate", stage_generate, main_only=True)
    summary = run_summary(run, time.monotonic() - started)
    if main:
        folder.mark_finished("summary", **{"models": summary["models"]})
        status = folder.status()
        status.update(state="completed", progress=1.0, stage="done", eta_s=None, ended_at=now_iso(),
                      updated_at=now_iso(), summary=summary,
                      message=f"finished: {len(summary['models'])} models wrote {summary['generations']} "
                              f"generations for {summary['eval_prompts']} held-out prompts (generations.csv)")
        folder.write_status(status)
    log.info("run finished: %s", json.dumps(summary, default=str))
    return summary


def drop_incomplete_checkpoints(root: Path) -> list[Path]:
    """Remove checkpoint folders a killed worker left half-written (no trainer_state.json, which the trainer
    writes last); resuming from one would fail. Returns the removed folders."""
    import shutil
    removed = []
    for checkpoint in sorted(Path(root).glob("*/checkpoint-*")):
        if checkpoint.is_dir() and not (checkpoint / "trainer_state.json").is_file():
            shutil.rmtree(checkpoint, ignore_errors=True)
            removed.append(checkpoint)
            log.info("removed the incomplete checkpoint %s (the worker stopped while writing it)", checkpoint)
    return removed


def _check_columns(config: TrainConfig, data: pd.DataFrame) -> None:
    roles = config.role_set
    needed = [roles.text, roles.context, roles.outcome] + roles.confounders[:1]
    if roles.truth and any(REWARD_METHODS[m].needs_truth for m in config.methods if m in REWARD_METHODS):
        needed.append(roles.truth)
    missing = [c for c in needed if c and c not in data.columns]
    if missing:
        raise DeconfoundError(f"the run's data snapshot lacks column(s) {', '.join(missing)} named in its roles")
    unknown = [m for m in config.methods if m not in METHODS]
    if unknown:
        raise DeconfoundError(f"unknown method(s) {', '.join(unknown)} in config.json")


def _feature_cache(run: _Run):
    """One frozen encoder shared by all reward models of the run (each text embedded once)."""
    from ..rewards import FROZEN_BACKBONES, FeatureCache
    reward = run.config.reward
    if reward.backbone not in FROZEN_BACKBONES:
        return None
    if reward.backbone == "generator" and reward.model_path in (None, "", POLICY_MODEL):
        from dataclasses import replace as dc_replace
        reward = dc_replace(reward, model_path=policy_path(run))
    return FeatureCache.for_config(reward)


# ------------------------------------------------------------------ generating from a finished run
def read_prompts(path) -> list[str]:
    """Contexts from a .txt file (one per line) or a .csv file with a `context` column."""
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"prompts file {path} not found")
    if path.suffix.lower() == ".csv":
        frame = pd.read_csv(path, keep_default_na=False)
        if "context" not in frame.columns:
            raise DeconfoundError(f"{path} has no 'context' column (columns: {', '.join(frame.columns)})")
        contexts = frame["context"].astype(str).tolist()
    else:
        contexts = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    contexts = [c for c in contexts if c]
    if not contexts:
        raise DeconfoundError(f"{path} holds no prompts: one context per line (.txt) or a 'context' column (.csv)")
    return contexts


def generate_for_run(run_dir, contexts: list[str], models: list[str] | None = None, seeds: list[int] | None = None,
                     max_new_tokens: int | None = None, progress=None) -> pd.DataFrame:
    """Generations of a run's models (all finished ones, or `models`) for new contexts."""
    folder = RunFolder(run_dir)
    if not folder.exists():
        raise NotFoundError(f"{run_dir} is not a run folder (no config.json)")
    available = run_models(folder.path)
    if not available:
        raise DeconfoundError(f"run {folder.path.name} has no trained models yet (see `deconfound jobs`)")
    chosen = list(available) if not models else models
    unknown = [m for m in chosen if m not in available]
    if unknown:
        raise DeconfoundError(f"model(s) {', '.join(unknown)} not in this run: choose from {', '.join(available)}")
    config = folder.config()
    prompts = pd.DataFrame({"prompt_id": range(len(contexts)), "context": contexts})
    return generate_frame({m: available[m] for m in chosen}, prompts, seeds or [0],
                          max_new_tokens=max_new_tokens or config.get("gen_max_new_tokens", 24),
                          temperature=config.get("gen_temperature", 1.0),
                          batch_size=config.get("gen_batch_size", 32), progress=progress)
