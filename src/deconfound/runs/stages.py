"""The stages of one run, each a function of the shared run state: estimate (the corrected outcome the
deconfounded reward needs) → base (a loadable starting model) → sft → rewards/<method> → rl/<method> →
(dpo_pairs/<method> → dpo/<method>) → generate. Each returns what stages.json records about it.

torch is imported only inside the stages (through models, train and rewards).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..data import Roles, prompt_columns, prompt_mode, prompt_texts
from ..errors import DeconfoundError, NotFoundError
from ..jsonio import read_json, write_json_atomic
from ..presets import POLICY_MODEL, PRESETS, REUSED_EMBEDDINGS_SHARE, REWARD_COST
from ..rewards import FROZEN_BACKBONES, METHODS, REWARD_METHODS, RewardColumns
from .config import TrainConfig
from .folder import RunFolder
from .progress import RunProgress
from .trained import generate_frame, resolve_in, run_models

log = logging.getLogger(__name__)

SAMPLE_PROMPTS = 3  # generations per trained model shown in the live panel


# ------------------------------------------------------------------ data and splits
def load_run_data(folder: RunFolder) -> pd.DataFrame:
    """data.parquet of the run (the snapshot, plus the corrected outcome once estimated)."""
    if not folder.data_path.is_file():
        raise NotFoundError(f"{folder.path} has no data.parquet: create runs with `deconfound train`")
    return pd.read_parquet(folder.data_path)


def eval_prompts(data: pd.DataFrame, splits: pd.Series, context: str | Roles | None, n: int, seed: int,
                 max_words: int | None = None) -> pd.DataFrame:
    """The held-out prompts every model writes for, seeded: up to n distinct test prompts (a context column's
    values, or a template rendered per row; `context` is a column name or the roles). When the prompt shows no
    column every row prompts alike: then the prompts are n test rows (prompt_id = the row), and each samples its
    own text (the per-prompt random streams of `models.generate`)."""
    roles = context if isinstance(context, Roles) else Roles(context=context)
    test = data.loc[splits == "test"]
    texts = prompt_texts(test, roles, max_words)
    if prompt_mode(roles) != "constant":
        texts = texts[test[prompt_columns(roles)].notna().all(axis=1)]
        texts = texts[~texts.duplicated()]
    if len(texts) > n:
        texts = texts.sample(n=n, random_state=seed).sort_index()
    return pd.DataFrame({"prompt_id": texts.index.astype(int), "context": texts.astype(str).to_numpy()})


def prompt_words(config: TrainConfig) -> int | None:
    """How many words of each column a template prompt keeps (the SFT setting that truncates contexts)."""
    return config.sft.max_context_words or None


def row_prompts(run: "RunState", rows: pd.DataFrame) -> pd.Series:
    """The prompt text of each row (its context, rendered template or the one instruction: `data.prompt_texts`)."""
    return prompt_texts(rows, run.roles, prompt_words(run.config))


def sft_settings(run: "RunState"):
    """SFT settings; when the prompt text is the whole user message (a template, or no context) the saved prompt
    style says so, and the template's values were already cut to max_context_words while rendering."""
    from dataclasses import replace as dc_replace

    from ..models import WHOLE_MESSAGE_TEMPLATE
    settings = run.config.sft
    if prompt_mode(run.roles) == "context":
        return settings
    return dc_replace(settings, user_template=WHOLE_MESSAGE_TEMPLATE, max_context_words=0)


# ------------------------------------------------------------------ the stages
@dataclass
class RunState:
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
            else (3.0 if config.estimator == "iv" else 30.0), "base": cost.get("base", 5.0)}
    if config.run_sft:
        plan["sft"] = steps(config.sft, 1000) * cost["sft"] + 5
    reward_cost = REWARD_COST.get(config.reward.backbone, 30.0)
    shared_features = config.reward.backbone in FROZEN_BACKBONES  # later methods reuse the first's features
    for i, method in enumerate(config.methods):
        plan[f"rewards/{method}"] = reward_cost * (REUSED_EMBEDDINGS_SHARE if i and shared_features else 1.0)
    rl_cost = cost.get(config.rl.algorithm, cost["rl"])  # a sample_rank step costs other than a GRPO step
    for method in config.methods:
        plan[f"rl/{method}"] = steps(config.rl, 1000) * rl_cost + 5
    if config.run_dpo:
        for method in config.methods:
            plan[f"dpo_pairs/{method}"] = config.dpo_prompts * config.dpo_samples * cost["gen"] + 3
            plan[f"dpo/{method}"] = steps(config.dpo, 500) * cost["dpo"] + 5
    models = 1 + int(config.run_sft) + len(config.methods) * (1 + int(config.run_dpo))
    plan["generate"] = models * (n_eval or config.n_eval_prompts) * len(config.gen_seeds) * cost["gen"] + 2 * models
    if config.model.name.strip().lower() != "tiny":  # perplexity under the pretrained base: one forward per text
        plan["fluency"] = models * (n_eval or config.n_eval_prompts) * len(config.gen_seeds) * cost["gen"] / 4
    if not config.role_set.truth:
        plan["evaluator"] = REWARD_COST.get("minilm", 30.0)
        if "fluency" not in plan:
            plan["evaluator"] += models * (n_eval or config.n_eval_prompts) * cost["gen"] / 4
    plan["summary"] = 1.0
    return plan


def stage_estimate(run: RunState) -> dict:
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


def stage_base(run: RunState) -> dict:
    """A loadable folder for the starting generator (a tiny model is built inside the run folder)."""
    from ..models import resolve_model_path
    spec = run.config.model
    roles = run.roles
    corpus = None
    out_dir = None
    if spec.name.strip().lower() == "tiny":
        train = run.data.loc[run.splits.isin(["sft", "rm", "rl"])]
        corpus = row_prompts(run, train).tolist() + train[roles.text].dropna().astype(str).tolist()
        out_dir = run.path("models", "base")
    path = resolve_model_path(spec, corpus=corpus, out_dir=out_dir)
    return {"model_path": run.relative(path)}


def stage_sft(run: RunState) -> dict:
    from ..train import run_sft
    roles = run.roles
    rows = run.rows("sft")
    frame = pd.DataFrame({"context": row_prompts(run, rows), "text": rows[roles.text]}).dropna()
    base = resolve_in(run.folder.path, run.info["base"]["model_path"])
    out = run_sft(base, frame, sft_settings(run), run.path("models", "sft"), progress=run.progress, resume=run.resume,
                  stage="sft", checkpoint_dir=run.path("checkpoints", "sft"))
    return {"model_path": run.relative(out)}


def policy_path(run: RunState) -> str:
    """The model RL and DPO start from (and are KL-anchored to): SFT when trained, else the base."""
    return str(resolve_in(run.folder.path, (run.info.get("sft") or run.info["base"])["model_path"]))


def reward_columns(run: RunState) -> RewardColumns:
    return RewardColumns.from_roles(run.roles, corrected=run.info["estimate"].get("corrected_column"))


def reward_frame(roles: Roles, rows: pd.DataFrame, columns: RewardColumns) -> pd.DataFrame:
    """The rows a reward learns from: for a log1p outcome (heavy-tailed counts) the outcome and the corrected
    outcome on log(1 + y), the scale the confounder effect was estimated on (a few huge counts would otherwise
    decide the reward)."""
    if roles.outcome_scale != "log1p":
        return rows
    rows = rows.copy()
    for column in {columns.outcome, columns.corrected} - {None}:
        if column in rows.columns:
            values = pd.to_numeric(rows[column], errors="coerce")
            rows[column] = np.log1p(values.where(values >= 0))
    return rows


def stage_reward(run: RunState, method: str, features) -> dict:
    from dataclasses import replace as dc_replace

    from ..rewards import train_all
    base = run.config.reward
    if base.backbone in ("generator", "finetune") and base.model_path in (None, "", POLICY_MODEL):
        base = dc_replace(base, model_path=policy_path(run))
    columns = reward_columns(run)
    train, valid = (reward_frame(run.roles, run.rows(s), columns) for s in ("rm", "rm_valid"))
    if run.config.max_reward_rows and len(train) > run.config.max_reward_rows:
        train = train.sample(n=run.config.max_reward_rows, random_state=run.config.seed)
    models = train_all([method], train, valid, columns, run.path("rewards"), config=base,
                       progress=run.progress, features=features)
    metrics = models[method].metrics
    log.info("reward %s: valid pearson with truth %s, R² on outcome %s", method,
             metrics.get("valid", {}).get("pearson_truth"), metrics.get("valid", {}).get("r2_outcome"))
    return {"folder": f"rewards/{method}", "valid": metrics.get("valid", {})}


def rl_prompts(run: RunState) -> pd.DataFrame:
    """RL prompts: the rl split's prompt texts plus the confounder column (rewards that read it get it)."""
    roles = run.roles
    rows = run.rows("rl")
    frame = pd.DataFrame({"context": row_prompts(run, rows)})
    first = roles.confounders[0] if roles.confounders else None
    if first and first != "context" and pd.api.types.is_numeric_dtype(rows[first]):  # not a time confounder
        frame[first] = pd.to_numeric(rows[first], errors="coerce")
        frame = frame.dropna()
    return frame.reset_index(drop=True)


def stage_rl(run: RunState, method: str) -> dict:
    from ..rewards import RewardModel
    from ..train import run_rl
    reward = RewardModel.load(run.path("rewards", method)).reward_func()
    name = f"rl_{method}"
    # reward_func already standardises by the reward model's training scores: keep that scale.
    out = run_rl(policy_path(run), reward, rl_prompts(run), run.config.rl, run.path("models", name),
                 progress=run.progress, resume=run.resume, stage=f"rl/{method}", reward_stats=(0.0, 1.0),
                 checkpoint_dir=run.path("checkpoints", f"rl_{method}"))
    return {"model_path": run.relative(out)} | _training_outcome(out)


def stage_dpo_pairs(run: RunState, method: str) -> dict:
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


def stage_dpo(run: RunState, method: str) -> dict:
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


def write_samples(run: RunState, stage: str, model_name: str, model_path: str, method: str | None = None) -> None:
    """A few generations of a freshly trained model for the live panel (samples.jsonl)."""
    if not run.main:
        return
    from ..models import generate
    prompts = eval_prompts(run.data, run.splits, run.roles, SAMPLE_PROMPTS, run.config.seed, prompt_words(run.config))
    if prompts.empty:
        return
    texts = generate(resolve_in(run.folder.path, model_path), prompts["context"].tolist(), seed=run.config.seed,
                     max_new_tokens=run.config.gen_max_new_tokens, temperature=run.config.gen_temperature,
                     precision=run.config.precision)
    scores = [None] * len(texts)
    if method:
        from ..rewards import RewardModel
        model = RewardModel.load(run.path("rewards", method))
        confounder = np.full(len(texts), model.state["confounder_mean"]) if model.needs_confounder else None
        scores = [round(float(s), 4) for s in model.score(texts, prompts["context"].tolist(), confounder)]
    run.folder.append_samples([{"stage": stage, "model": model_name, "time": time.time(), "prompt_id": int(pid),
                                "context": ctx, "text": text, "reward": score}
                               for pid, ctx, text, score in zip(prompts["prompt_id"], prompts["context"], texts, scores)])


def stage_generate(run: RunState) -> dict:
    prompts = eval_prompts(run.data, run.splits, run.roles, run.config.n_eval_prompts, run.config.seed,
                           prompt_words(run.config))
    if prompts.empty:
        raise DeconfoundError("the test split has no prompts to evaluate on: check the table's split column")
    models = run_models(run.folder.path, run.info)
    frame = generate_frame(models, prompts, run.config.gen_seeds, max_new_tokens=run.config.gen_max_new_tokens,
                           temperature=run.config.gen_temperature, batch_size=run.config.gen_batch_size,
                           partial_dir=run.path("generations"), progress=run.progress, precision=run.config.precision)
    if run.main:  # under several processes each has the gathered frame; one writes it
        tmp = run.folder.generations_path.with_name(".generations.csv.tmp")
        frame.to_csv(tmp, index=False)
        os.replace(tmp, run.folder.generations_path)
    return {"rows": len(frame), "models": list(models), "prompts": len(prompts)}


def stage_fluency(run: RunState) -> dict:
    """How fluent every model stays: each generation's perplexity under the run's pretrained base model, its tokens
    and whether it was cut off at the token limit (evaluator/fluency.csv; Compare shows them beside quality)."""
    from .evaluator import write_fluency
    path = write_fluency(run.folder.path)
    return {"fluency": run.relative(path) if path else None}


def stage_evaluator(run: RunState) -> dict:
    """For a table without a truth column: the independent evaluator, fluency and default markers (see
    `runs.evaluator`), so Compare judges the run by them and not by the simulation's sentiment."""
    from .evaluator import build_evaluator
    try:
        return build_evaluator(run.folder.path, progress=run.progress)
    except DeconfoundError as exc:  # e.g. too few held-out rows: the models are trained, judge them otherwise
        log.warning("no independent evaluator for this run: %s", exc)
        return {"skipped": str(exc)}


def check_columns(config: TrainConfig, data: pd.DataFrame) -> None:
    roles = config.role_set
    needed = [roles.text, roles.context, roles.outcome] + roles.confounders[:1] + prompt_columns(roles)
    if roles.truth and any(REWARD_METHODS[m].needs_truth for m in config.methods if m in REWARD_METHODS):
        needed.append(roles.truth)
    missing = [c for c in needed if c and c not in data.columns]
    if missing:
        raise DeconfoundError(f"the run's data snapshot lacks column(s) {', '.join(missing)} named in its roles")
    unknown = [m for m in config.methods if m not in METHODS]
    if unknown:
        raise DeconfoundError(f"unknown method(s) {', '.join(unknown)} in config.json")


def feature_cache(run: RunState):
    """One frozen encoder shared by all reward models of the run (each text embedded once)."""
    from ..rewards import FROZEN_BACKBONES, FeatureCache
    reward = run.config.reward
    if reward.backbone not in FROZEN_BACKBONES:
        return None
    if reward.backbone == "generator" and reward.model_path in (None, "", POLICY_MODEL):
        from dataclasses import replace as dc_replace
        reward = dc_replace(reward, model_path=policy_path(run))
    return FeatureCache.for_config(reward)
