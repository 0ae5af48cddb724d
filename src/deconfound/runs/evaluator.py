"""What judges a run whose table has no truth column, made once per run into RUN_DIR/evaluator/:

- the independent evaluator reward (`rewards.train_evaluator`): the deconfounded outcome learned from the held-out
  test rows with a backbone the run's rewards did not use;
- fluency: each generation's perplexity under the run's base model (`models.perplexity`), in fluency.csv;
- the default marker groups (markers.json): the phrases the marker scan flags as spurious for the table (as the
  Diagnostics page does), the levels of a categorical confounder, and the weekday/month names of a time
  confounder's calendar.

The pipeline's last stage builds it (`stage_evaluator`); `evaluate` builds it on demand for older runs.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from ..data import assign_splits
from ..jsonio import read_json, write_json_atomic
from .config import TrainConfig
from .folder import RunFolder
from .trained import resolve_in

log = logging.getLogger(__name__)

EVALUATOR_DIR = "evaluator"
MAX_MARKER_GROUPS = 8


def needs_evaluator(config: TrainConfig) -> bool:
    """Whether the run's table has no truth column (its generations then cannot be scored by the truth)."""
    return not config.role_set.truth


def _run(run_dir) -> tuple[RunFolder, TrainConfig, pd.DataFrame, pd.Series, dict]:
    folder = RunFolder(run_dir)
    config = TrainConfig.from_dict(folder.config())
    data = pd.read_parquet(folder.data_path)
    splits, _ = assign_splits(data, config.seed)
    return folder, config, data, splits, {s["stage"]: s for s in folder.stages()}


def train_run_evaluator(run_dir, progress=None) -> dict:
    """Train the run's evaluator into RUN_DIR/evaluator/reward; returns its summary (label, held-out r, ...)."""
    from ..rewards import RewardColumns, evaluator_backbone, evaluator_label, train_evaluator
    folder, config, data, splits, stages = _run(run_dir)
    corrected = (stages.get("estimate") or {}).get("corrected_column") or config.corrected_column
    columns = RewardColumns.from_roles(config.role_set, corrected=corrected if corrected in data.columns else None)
    from .stages import reward_frame
    rows = reward_frame(config.role_set, data.loc[splits == "test"], columns)
    backbone = evaluator_backbone(config.reward.backbone)
    model = train_evaluator(rows, columns, folder.path / EVALUATOR_DIR / "reward", backbone=backbone,
                            seed=config.seed, progress=progress)
    summary = {"label": evaluator_label(model.metrics), "backbone": backbone,
               "holdout_pearson": model.metrics["holdout"]["pearson_target"], "target": model.metrics["holdout"]["target"],
               "rows": model.metrics["evaluator"]["rows"], "rl_backbone": config.reward.backbone}
    write_json_atomic(folder.path / EVALUATOR_DIR / "summary.json", summary)
    return summary


def write_fluency(run_dir, reference=None, out=None) -> Path | None:
    """Fluency of every generation under the run's base model, into RUN_DIR/evaluator/fluency.csv: its perplexity,
    its tokens and whether it reached the run's token limit (cut off). None when the run has no generations or
    no base model, or its base was built from scratch (a random model's perplexity says nothing).
    `reference` (a model folder) scores under another model instead, e.g. the pretrained model of a run that
    started from an earlier run's SFT model, so that several runs' perplexities compare; `out` writes elsewhere."""
    from ..models import load_generator, perplexity, pick_device
    folder, config, _, _, stages = _run(run_dir)
    base = str(reference) if reference else (stages.get("base") or {}).get("model_path")
    if not base or not folder.generations_path.is_file() or config.model.name.strip().lower() == "tiny":
        return None
    generations = pd.read_csv(folder.generations_path, keep_default_na=False)
    texts = generations["text"].astype(str).tolist()
    model, tokenizer = load_generator(resolve_in(folder.path, base), device=pick_device()[0])
    values = perplexity(None, texts, model=model, tokenizer=tokenizer)
    tokens = [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]
    out = Path(out) if out else folder.path / EVALUATOR_DIR / "fluency.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    # A headline re-tokenised can come out a token shorter than it was generated: one token of slack.
    frame = generations[["prompt_id", "model", "seed"]].assign(
        perplexity=values, tokens=tokens, cut_off=[n >= config.gen_max_new_tokens - 1 for n in tokens])
    tmp = out.with_name(".fluency.csv.tmp")
    frame.to_csv(tmp, index=False)
    tmp.replace(out)
    return out


def default_marker_groups(run_dir) -> dict[str, list[str]]:
    """The run's default marker groups (see the module docstring), computed from its data snapshot and cached in
    RUN_DIR/evaluator/markers.json."""
    path = Path(run_dir) / EVALUATOR_DIR / "markers.json"
    cached = read_json(path, default=None)
    if isinstance(cached, dict) and isinstance(cached.get("groups"), dict):
        return cached["groups"]
    _, config, data, _, _ = _run(run_dir)
    groups, sources = marker_groups_for(data, config.role_set)
    write_json_atomic(path, {"groups": groups, "sources": sources})
    return groups


def marker_groups_for(data: pd.DataFrame, roles) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Marker groups from a table's rows: spurious phrases (the marker scan), a categorical confounder's levels,
    a time confounder's weekday/month names. Returns (groups, where each group came from)."""
    from ..causal import DiagnosticsConfig, distinct_phrases, is_time, scan_markers, time_marker_groups
    from ..errors import DeconfoundError
    groups: dict[str, list[str]] = {}
    sources: dict[str, str] = {}
    if roles.confounders and roles.text and roles.outcome:
        try:
            scan = scan_markers(data, roles, DiagnosticsConfig())
            for phrase in distinct_phrases(scan.spurious()["marker"], MAX_MARKER_GROUPS):
                groups[phrase], sources[phrase] = [phrase], "flagged spurious by the marker scan"
        except DeconfoundError as exc:  # too few rows for the scan: no phrase groups
            log.info("marker scan for default markers skipped: %s", exc)
    for column in roles.confounders:
        series = data[column] if column in data.columns else None
        if series is None or pd.api.types.is_numeric_dtype(series) or is_time(series):
            continue
        levels = [str(v) for v in series.dropna().astype(str).value_counts().index
                  if len(str(v).strip()) >= 2 and not str(v).strip().replace(".", "").isdigit()]
        for level in levels[:MAX_MARKER_GROUPS]:
            groups.setdefault(level, [level])
            sources.setdefault(level, f"a level of the confounder '{column}'")
    for name, words in time_marker_groups(roles, data).items():
        groups.setdefault(name, words)
        sources.setdefault(name, "the calendar of the time confounder")
    return groups, sources


def build_evaluator(run_dir, progress=None) -> dict:
    """Everything `evaluate` reads for a run without a truth column: the evaluator, fluency and marker groups."""
    summary = train_run_evaluator(run_dir, progress=progress)
    existing = Path(run_dir) / EVALUATOR_DIR / "fluency.csv"  # the pipeline's fluency stage may have written it
    try:
        fluency = existing if existing.is_file() else write_fluency(run_dir)
    except Exception as exc:  # fluency is a column beside quality: never lose the evaluator for it
        log.warning("fluency (perplexity under the base model) not computed: %s", exc)
        fluency = None
    groups = default_marker_groups(run_dir)
    return summary | {"fluency": str(fluency) if fluency else None, "marker_groups": sorted(groups)}


def evaluator_summary(run_dir) -> dict | None:
    """The evaluator's summary.json, or None when the run has none yet."""
    summary = read_json(Path(run_dir) / EVALUATOR_DIR / "summary.json", default=None)
    return summary if isinstance(summary, dict) else None


def fluency_frame(run_dir, path=None) -> pd.DataFrame | None:
    """fluency.csv of the run (prompt_id, model, seed, perplexity), or None; `path` reads another fluency file
    (e.g. one `write_fluency(out=...)` wrote under another reference model)."""
    path = Path(path) if path else Path(run_dir) / EVALUATOR_DIR / "fluency.csv"
    if not path.is_file():
        return None
    frame = pd.read_csv(path)
    frame["perplexity"] = pd.to_numeric(frame["perplexity"], errors="coerce").replace([np.inf], np.nan)
    return frame
