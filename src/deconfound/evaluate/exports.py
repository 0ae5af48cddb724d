"""Exports of a finished run: generations with their scores (CSV), every metric (JSON), and a trained model as a
Hugging Face folder with a model card.

`generations_csv` and `metrics_json` return the text without writing anything (the dashboard's downloads);
`export_generations` and `export_metrics` write it, by default under run_dir/outputs. No torch here except
in `export_model`, which merges a LoRA adapter.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd

from ..errors import DeconfoundError, NotFoundError
from ..jsonio import jsonable, read_json, read_jsonl
from ..rewards import METHOD_LABELS
from ..runs import now_iso, run_models
from .comparison import ComparisonResult, compare, load_generations
from .labels import model_label, model_sort_key
from .stats import number_text


def outputs_dir(run_dir: str | Path) -> Path:
    """run_dir/outputs (created), where exports go by default."""
    path = Path(run_dir) / "outputs"
    path.mkdir(parents=True, exist_ok=True)
    return path


# ------------------------------------------------------------------ generations and metrics
def scored_generations(run_dir: str | Path, result: ComparisonResult | None = None) -> pd.DataFrame:
    """generations.csv plus each generation's quality, length, repetition and marker flags (marker_<group>)."""
    run_dir = Path(run_dir)
    result = result or compare(run_dir)
    generations = load_generations(run_dir)
    scores = result.scores.drop(columns=["model", "seed"])
    scores = scores.rename(columns={g: f"marker_{g}" for g in result.marker_groups})
    return pd.concat([generations.reset_index(drop=True), scores.reset_index(drop=True)], axis=1)


def generations_csv(run_dir: str | Path, result: ComparisonResult | None = None) -> str:
    """`scored_generations` as CSV text; writes nothing."""
    return scored_generations(run_dir, result).to_csv(index=False)


def export_generations(run_dir: str | Path, out_csv: str | Path | None = None,
                       result: ComparisonResult | None = None) -> Path:
    """Write `scored_generations` as CSV (default run_dir/outputs/generations.csv)."""
    frame = scored_generations(run_dir, result)
    out = Path(out_csv) if out_csv else outputs_dir(run_dir) / "generations.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out, index=False)
    return out


def metrics_payload(run_dir: str | Path, result: ComparisonResult | None = None) -> dict:
    """Everything measured about a run as one JSON-ready dict: the comparison (`compare --json`), the
    estimate, every reward's metrics and the last logged training metrics per stage."""
    run_dir = Path(run_dir)
    result = result or compare(run_dir)
    rewards = {}
    for path in sorted((run_dir / "rewards").glob("*/metrics.json")):
        rewards[path.parent.name] = read_json(path)
    return jsonable(result.to_dict() | {"estimate": read_json(run_dir / "estimate.json"),
                                        "rewards": rewards, "training": last_training_metrics(run_dir),
                                        "exported_at": now_iso()})


def metrics_json(run_dir: str | Path, result: ComparisonResult | None = None) -> str:
    """`metrics_payload` as indented JSON text; writes nothing."""
    return json.dumps(metrics_payload(run_dir, result), indent=2)


def export_metrics(run_dir: str | Path, out_json: str | Path | None = None,
                   result: ComparisonResult | None = None) -> Path:
    """Write `metrics_json` (default run_dir/outputs/metrics.json)."""
    out = Path(out_json) if out_json else outputs_dir(run_dir) / "metrics.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(metrics_json(run_dir, result), encoding="utf-8")
    return out


def last_training_metrics(run_dir: str | Path) -> dict[str, dict]:
    """The last metrics.jsonl record of every stage ({stage: record})."""
    last: dict[str, dict] = {}
    for record in read_jsonl(Path(run_dir) / "metrics.jsonl"):
        if record.get("stage"):
            last[record["stage"]] = record
    return last


# ------------------------------------------------------------------ a trained model with its card
def export_model(run_dir: str | Path, model_name: str, out_dir: str | Path | None = None, merge: bool = True,
                 result: ComparisonResult | None = None) -> Path:
    """The trained model `models/<model_name>` as a Hugging Face folder plus a README.md model card.

    `merge=True` writes a full model (a LoRA adapter merged into its base; loads with
    `AutoModelForCausalLM.from_pretrained`), `merge=False` copies the folder as it is (an adapter stays an
    adapter, loadable with peft on top of its base)."""
    from .. import models
    run_dir = Path(run_dir)
    available = run_model_folders(run_dir)
    source = available.get(model_name)
    if source is None or not source.is_dir():
        raise NotFoundError(f"the run has no model '{model_name}' (models: {', '.join(available) or 'none'})")
    out = Path(out_dir) if out_dir else outputs_dir(run_dir) / f"{model_name}{'-merged' if merge else ''}"
    if out.exists() and any(out.iterdir()):
        raise DeconfoundError(f"{out} already exists and is not empty: choose another folder or delete it")
    if merge:
        models.save_merged(source, out)
    else:
        shutil.copytree(source, out, dirs_exist_ok=True, ignore=shutil.ignore_patterns("checkpoint-*"))
    if result is None:
        try:
            result = compare(run_dir)
        except DeconfoundError:  # a run without generations still exports; the card says so
            result = None
    (out / "README.md").write_text(model_card(run_dir, model_name, result, merged=merge), encoding="utf-8")
    return out


def run_model_folders(run_dir: str | Path) -> dict[str, Path]:
    """The run's trained models by name (base, sft, rl_<method>, dpo_<method>) → folder: the finished
    stages' records, plus any folder under models/ (runs made by hand)."""
    run_dir = Path(run_dir)
    found = {name: Path(path) for name, path in run_models(run_dir).items()} if (run_dir / "config.json").is_file() \
        else {}
    for folder in sorted((run_dir / "models").glob("*")):
        if folder.is_dir() and ((folder / "config.json").exists() or (folder / "adapter_config.json").exists()):
            found.setdefault(folder.name, folder)
    return dict(sorted(found.items(), key=lambda kv: model_sort_key(kv[0])))


def model_card(run_dir: str | Path, model_name: str, result: ComparisonResult | None = None,
               merged: bool = True) -> str:
    """A Hugging Face model card (README.md): data, roles, confounders removed, estimator and its
    coefficient with CI, the reward's metrics, the evaluation metrics, seeds and date."""
    run_dir = Path(run_dir)
    config = read_json(run_dir / "config.json") or {}
    estimate = read_json(run_dir / "estimate.json") or {}
    method = model_name.split("_", 1)[1] if "_" in model_name else None
    reward = read_json(run_dir / "rewards" / str(method) / "metrics.json") if method else None
    base = (config.get("model") or {}).get("name") if isinstance(config.get("model"), dict) else config.get("model")
    adapter = (run_dir / "models" / model_name / "adapter_config.json").exists() and not merged
    lines = ["---", f"library_name: {'peft' if adapter else 'transformers'}", "pipeline_tag: text-generation",
             "tags:", "- deconfoundlm", "- causal-inference", "- reinforcement-learning", "---", "",
             f"# {model_label(model_name, run_dir)}", "",
             f"Fine-tuned with DeconfoundLM Studio (run `{run_dir.name}`), exported "
             f"{now_iso()[:10]} as {'a LoRA adapter' if adapter else 'a full model'}.", ""]
    if base:
        lines += [f"Base generator: `{base}`.", ""]
    lines += ["## Data", "", _data_line(run_dir, config), ""]
    roles = config.get("roles") or {}
    if roles:
        lines += ["| role | column(s) |", "|---|---|"]
        lines += [f"| {k} | {', '.join(v) if isinstance(v, list) else v} |" for k, v in roles.items() if v]
        lines.append("")
    lines += ["## Confounders removed", ""]
    terms = estimate.get("confounder_terms") or []
    if terms:
        level = int(round((estimate.get("config") or {}).get("level", 0.95) * 100))
        lines += [f"Estimator: **{estimate.get('method', '?').upper()}** on {estimate.get('n', '?'):,} rows "
                  f"(outcome `{estimate.get('outcome')}`). The confounder effect ĥ(C) was subtracted from the "
                  "outcome before the deconfounded reward was trained.", "",
                  f"| term | coefficient | {level}% CI |", "|---|---|---|"]
        for term in terms:
            name = term.get("term")
            lo, hi = (estimate.get("conf_int") or {}).get(name, [None, None])
            coef = number_text(estimate.get("coef", {}).get(name), 4)
            lines.append(f"| {name} | {coef} | {number_text(lo, 4)} to {number_text(hi, 4)} |")
        from ..causal import robustness_lines
        robust = robustness_lines(estimate)
        if robust:
            lines += [""] + [f"- {line}" for line in robust]
        lines += [f"> warning: {w}" for w in estimate.get("warnings", [])]
    else:
        lines.append("No estimate was recorded for this run.")
    lines += ["", "## Reward", ""]
    if reward:
        train, valid = reward.get("train") or {}, reward.get("valid") or {}
        lines += [f"Reward method `{method}` ({METHOD_LABELS.get(method, method)}), backbone "
                  f"`{reward.get('backbone')}`, trained on {reward.get('n_train', '?')} rows.", "",
                  "| split | Pearson with true quality | R² on the outcome |", "|---|---|---|",
                  f"| train | {number_text(train.get('pearson_truth'))} | {number_text(train.get('r2_outcome'))} |",
                  f"| valid | {number_text(valid.get('pearson_truth'))} | {number_text(valid.get('r2_outcome'))} |"]
    else:
        lines.append("This model was not trained with a reward model (base or SFT).")
    lines += ["", "## Evaluation", ""]
    if result is not None and model_name in result.models:
        m = result.models[model_name]
        ref = result.models.get(result.reference) if result.reference else None
        level = int(round(result.config.get("level", 0.95) * 100))
        lines += [f"On {m.n:,} held-out generations (seeds {', '.join(map(str, m.seeds))}); quality = "
                  f"{result.scorer_label}.", "", f"| measure | this model | {ref.label if ref else 'reference'} |",
                  "|---|---|---|",
                  f"| quality ({level}% CI) | {m.quality_mean:.3f} ({m.quality_ci[0]:.3f}–{m.quality_ci[1]:.3f}) | "
                  f"{number_text(ref.quality_mean if ref else None)} |"]
        for group in result.marker_groups:
            lines.append(f"| names {result.marker_phrase(group)} | {m.marker_rates[group]:.1%} | "
                         f"{f'{ref.marker_rates[group]:.1%}' if ref else '—'} |")
        lines += [f"| length (words) | {m.length_mean:.1f} | {number_text(ref.length_mean if ref else None, 1)} |",
                  f"| distinct-2 | {number_text(m.distinct_2)} | {number_text(ref.distinct_2 if ref else None)} |",
                  f"| repetition | {m.repetition_mean:.3f} | {number_text(ref.repetition_mean if ref else None)} |",
                  "", result.conclusion()]
    else:
        lines.append("No generations of this model were evaluated.")
    lines += ["", "## Reproduce", "", f"Seeds: run seed {config.get('seed', '?')}, training seeds "
              f"{_training_seeds(config)}, generation seeds {config.get('gen_seeds', '?')}. The run's "
              "config.json (in the run folder) holds every setting:", "", "```json",
              json.dumps({k: config.get(k) for k in ("table", "preset", "methods", "estimator", "seed", "gen_seeds")
                          if k in config}, indent=2), "```", "",
              "Intended use: research and evaluation of deconfounded fine-tuning. The model inherits the "
              "limits of its base model and of the logs it was trained on; the confounder correction is only "
              "as good as the estimator's assumptions (instrument relevance and exclusion for IV).", ""]
    return "\n".join(lines)


def _training_seeds(config: dict) -> str:
    seeds = {k: (config.get(k) or {}).get("seed") for k in ("sft", "rl", "dpo") if isinstance(config.get(k), dict)}
    return ", ".join(f"{k} {v}" for k, v in seeds.items() if v is not None) or "?"


def _data_line(run_dir: Path, config: dict) -> str:
    rows = None
    data = run_dir / "data.parquet"
    if data.is_file():
        try:
            import pyarrow.parquet as pq
            rows = pq.ParquetFile(data).metadata.num_rows
        except Exception:  # unreadable snapshot: say nothing about its size
            rows = None
    size = f" ({rows:,} rows)" if rows is not None else ""
    return f"Table `{config.get('table', '?')}`{size}, snapshot taken when the run started."
