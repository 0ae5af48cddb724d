"""Exports of a finished run: a self-contained HTML report, generations CSV, metrics JSON, and the
trained model as a Hugging Face folder with a model card.

The HTML report opens offline: its charts are SVG drawn here (no JavaScript, no fonts or scripts from
the network), its styles inline, and every generated text HTML-escaped (generated text is untrusted).
The dashboard draws the same charts with altair (`quality_chart`, `marker_chart`, `scatter_chart`).
No torch here except in `export_model`, which merges a LoRA adapter.
"""

from __future__ import annotations

import html
import json
import math
import shutil
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DeconfoundError, NotFoundError
from ..jsonio import read_json, read_jsonl
from . import evaluation as ev

PALETTE = ("#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#eeca3b", "#b279a2", "#9d755d")
HIGHLIGHT = ("#ffe08a", "#b9e3ff", "#c8f0c0", "#ffc9c9", "#e5d4ff", "#ffd8b0")
SAMPLE_PROMPTS = 8


def outputs_dir(run_dir: str | Path) -> Path:
    """run_dir/outputs (created), where exports go by default."""
    path = Path(run_dir) / "outputs"
    path.mkdir(parents=True, exist_ok=True)
    return path


# ------------------------------------------------------------------ exports
def export_generations(run_dir: str | Path, out_csv: str | Path | None = None,
                       result: ev.ComparisonResult | None = None) -> Path:
    """generations.csv plus each generation's quality, length, repetition and marker flags."""
    run_dir = Path(run_dir)
    result = result or ev.compare(run_dir)
    generations = ev.load_generations(run_dir)
    scores = result.scores.drop(columns=["model", "seed"])
    scores = scores.rename(columns={g: f"marker_{g}" for g in result.marker_groups})
    out = Path(out_csv) if out_csv else outputs_dir(run_dir) / "generations.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    pd.concat([generations.reset_index(drop=True), scores.reset_index(drop=True)], axis=1).to_csv(out, index=False)
    return out


def metrics_payload(run_dir: str | Path, result: ev.ComparisonResult | None = None) -> dict:
    """Everything measured about a run as one JSON-ready dict: the comparison (`compare --json`), the
    estimate, every reward's metrics and the last logged training metrics per stage."""
    run_dir = Path(run_dir)
    result = result or ev.compare(run_dir)
    rewards = {}
    for path in sorted((run_dir / "rewards").glob("*/metrics.json")):
        rewards[path.parent.name] = read_json(path)
    return ev._clean(result.to_dict() | {"estimate": read_json(run_dir / "estimate.json"),
                                         "rewards": rewards, "training": last_training_metrics(run_dir),
                                         "exported_at": _now()})


def export_metrics(run_dir: str | Path, out_json: str | Path | None = None,
                   result: ev.ComparisonResult | None = None) -> Path:
    """Write `metrics_payload` as JSON (default run_dir/outputs/metrics.json)."""
    out = Path(out_json) if out_json else outputs_dir(run_dir) / "metrics.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(metrics_payload(run_dir, result), indent=2), encoding="utf-8")
    return out


def last_training_metrics(run_dir: str | Path) -> dict[str, dict]:
    """The last metrics.jsonl record of every stage ({stage: record})."""
    last: dict[str, dict] = {}
    for record in read_jsonl(Path(run_dir) / "metrics.jsonl"):
        if record.get("stage"):
            last[record["stage"]] = record
    return last


def export_model(run_dir: str | Path, model_name: str, out_dir: str | Path | None = None, merge: bool = True,
                 result: ev.ComparisonResult | None = None) -> Path:
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
            result = ev.compare(run_dir)
        except DeconfoundError:  # a run without generations still exports; the card says so
            result = None
    (out / "README.md").write_text(model_card(run_dir, model_name, result, merged=merge), encoding="utf-8")
    return out


def run_model_folders(run_dir: str | Path) -> dict[str, Path]:
    """The run's trained models by name (base, sft, rl_<method>, dpo_<method>) → folder: the finished
    stages' records, plus any folder under models/ (runs made by hand)."""
    from ..runs import run_models
    run_dir = Path(run_dir)
    found = {name: Path(path) for name, path in run_models(run_dir).items()} if (run_dir / "config.json").is_file() \
        else {}
    for folder in sorted((run_dir / "models").glob("*")):
        if folder.is_dir() and ((folder / "config.json").exists() or (folder / "adapter_config.json").exists()):
            found.setdefault(folder.name, folder)
    return dict(sorted(found.items(), key=lambda kv: ev.model_sort_key(kv[0])))


def model_card(run_dir: str | Path, model_name: str, result: ev.ComparisonResult | None = None,
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
             f"# {ev.model_label(model_name, run_dir)}", "",
             f"Fine-tuned with DeconfoundLM Studio (run `{run_dir.name}`), exported "
             f"{_now()[:10]} as {'a LoRA adapter' if adapter else 'a full model'}.", ""]
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
            lines.append(f"| {name} | {_f(estimate.get('coef', {}).get(name), 4)} | {_f(lo, 4)} to {_f(hi, 4)} |")
        lines += [f"> warning: {w}" for w in estimate.get("warnings", [])]
    else:
        lines.append("No estimate was recorded for this run.")
    lines += ["", "## Reward", ""]
    if reward:
        train, valid = reward.get("train") or {}, reward.get("valid") or {}
        lines += [f"Reward method `{method}` ({ev.METHOD_LABELS.get(method, method)}), backbone "
                  f"`{reward.get('backbone')}`, trained on {reward.get('n_train', '?')} rows.", "",
                  "| split | Pearson with true quality | R² on the outcome |", "|---|---|---|",
                  f"| train | {_f(train.get('pearson_truth'))} | {_f(train.get('r2_outcome'))} |",
                  f"| valid | {_f(valid.get('pearson_truth'))} | {_f(valid.get('r2_outcome'))} |"]
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
                  f"{_f(ref.quality_mean if ref else None)} |"]
        for group in result.marker_groups:
            lines.append(f"| names {result.marker_phrase(group)} | {m.marker_rates[group]:.1%} | "
                         f"{f'{ref.marker_rates[group]:.1%}' if ref else '—'} |")
        lines += [f"| length (words) | {m.length_mean:.1f} | {_f(ref.length_mean if ref else None, 1)} |",
                  f"| distinct-2 | {_f(m.distinct_2)} | {_f(ref.distinct_2 if ref else None)} |",
                  f"| repetition | {m.repetition_mean:.3f} | {_f(ref.repetition_mean if ref else None)} |",
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


# ------------------------------------------------------------------ the HTML report
def write_report(run_dir: str | Path, out_html: str | Path | None = None,
                 result: ev.ComparisonResult | None = None, reward_points: pd.DataFrame | None = None,
                 sample_prompts: int = SAMPLE_PROMPTS) -> Path:
    """Write a self-contained HTML report of a run (default run_dir/outputs/report.html): conclusion,
    Table 1 with intervals and significance, quality and marker-rate charts, reward–truth correlations
    (and scatter when `reward_points` is given or cached), training curves, sample generations."""
    run_dir = Path(run_dir)
    result = result or ev.compare(run_dir)
    if reward_points is None:
        reward_points = ev.cached_reward_points(run_dir)
    out = Path(out_html) if out_html else outputs_dir(run_dir) / "report.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_report(run_dir, result, reward_points, sample_prompts), encoding="utf-8")
    return out


def render_report(run_dir: Path, result: ev.ComparisonResult, reward_points: pd.DataFrame | None = None,
                  sample_prompts: int = SAMPLE_PROMPTS) -> str:
    """The report's HTML text (see `write_report`)."""
    info = result.run
    esc = html.escape
    parts = [f"<h1>DeconfoundLM run {esc(run_dir.name)}</h1>",
             f"<p class='meta'>table <b>{esc(str(info.get('table')))}</b> · preset {esc(str(info.get('preset')))} · "
             f"estimator {esc(str(info.get('estimator')))} · report written {esc(_now())}</p>",
             "<h2>Conclusion</h2>", f"<p class='conclusion'>{esc(result.conclusion())}</p>",
             "<h2>Models compared</h2>", table1_html(result),
             f"<h3>Mean quality ({esc(result.scorer_label)})</h3>", svg_quality(result)]
    if result.marker_groups:
        parts += ["<h3>Share of generations naming each marker group</h3>", svg_markers(result)]
    if result.reward_truth_corr:
        parts += ["<h2>How well each reward follows true quality</h2>", table2_html(result),
                  svg_correlations(result)]
    if reward_points is not None and len(reward_points):
        parts += ["<h3>Reward vs true quality on validation rows</h3>", svg_scatter(reward_points)]
    curves = training_curves(run_dir)
    if curves:
        parts += ["<h2>Training</h2><p>Mean reward per RL step (each method's own reward, standardised).</p>",
                  svg_lines(curves, "step", "reward")]
    estimate = read_json(run_dir / "estimate.json")
    if estimate:
        from ..causal import EstimateResult
        try:
            text = EstimateResult.from_dict(estimate).summary()
        except Exception:  # an estimate from another version: show the raw JSON instead
            text = json.dumps(estimate, indent=2)
        parts += ["<h2>Confounder estimate</h2>", f"<pre>{esc(text)}</pre>"]
    parts += ["<h2>Sample generations</h2>", samples_html(result, run_dir, sample_prompts)]
    config = read_json(run_dir / "config.json") or {}
    parts += ["<details><summary>Run configuration</summary>",
              f"<pre>{esc(json.dumps(config, indent=2, default=str))}</pre></details>"]
    return _page(f"DeconfoundLM report {run_dir.name}", "\n".join(parts))


def _page(title: str, body: str) -> str:
    style = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1100px;color:#222;
padding:0 1em}h1{font-size:1.6em}h2{margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.9em;margin:.5em 0}th,td{border:1px solid #ddd;padding:4px 8px;
text-align:right;vertical-align:top}th{background:#f4f4f4}td.l,th.l{text-align:left}.meta{color:#666}
.conclusion{background:#f3f8ff;border-left:4px solid #4c78a8;padding:.8em}mark{padding:0 2px;border-radius:2px}
pre{background:#f8f8f8;padding:.8em;overflow-x:auto;font-size:.8em}.gen td{text-align:left;max-width:260px}
.sig{color:#c00;font-weight:bold}svg{font-family:inherit;font-size:11px}"""
    return (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>\n{body}\n</body></html>\n")


def table1_html(result: ev.ComparisonResult) -> str:
    """Table 1 as HTML: quality with CI and stars, marker counts/rates with stars, length, diversity."""
    level = int(round(result.config.get("level", 0.95) * 100))
    groups = list(result.marker_groups)
    head = ("<tr><th class='l'>model</th><th>n</th><th>quality</th>"
            f"<th>{level}% CI</th>" + "".join(f"<th>{html.escape(g)}</th>" for g in groups)
            + "<th>length</th><th>distinct-2</th><th>repetition</th></tr>")
    rows = []
    for m in result.models.values():
        cells = [f"<td class='l'>{html.escape(m.label)}</td>", f"<td>{m.n:,}</td>",
                 f"<td>{m.quality_mean:.3f}{_stars_html(m.pvalues.get('quality'))}</td>",
                 f"<td>{m.quality_ci[0]:.3f}–{m.quality_ci[1]:.3f}</td>"]
        cells += [f"<td>{m.marker_counts[g]:,} ({m.marker_rates[g]:.1%}){_stars_html(m.marker_pvalues.get(g))}</td>"
                  for g in groups]
        cells += [f"<td>{m.length_mean:.1f}{_stars_html(m.pvalues.get('length'))}</td>",
                  f"<td>{_f(m.distinct_2)}</td>", f"<td>{m.repetition_mean:.3f}</td>"]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    note = (f"<p class='meta'>Stars: difference from {html.escape(result.reference or 'the reference')} "
            "(* p&lt;0.05, ** p&lt;0.01, *** p&lt;0.001; Welch t-test for means, two-proportion test for "
            "marker rates). Marker columns: generations naming the group (share).</p>")
    return f"<table>{head}{''.join(rows)}</table>{note}"


def table2_html(result: ev.ComparisonResult) -> str:
    """Table 2 as HTML: Pearson correlation of each reward with true quality (train, valid)."""
    rows = "".join(f"<tr><td class='l'>{html.escape(ev.METHOD_LABELS.get(k, k))}</td><td>{_f(v.get('train'))}</td>"
                   f"<td>{_f(v.get('valid'))}</td></tr>" for k, v in result.reward_truth_corr.items())
    return f"<table><tr><th class='l'>reward method</th><th>train</th><th>valid</th></tr>{rows}</table>"


def samples_html(result: ev.ComparisonResult, run_dir: Path, n_prompts: int) -> str:
    """Generations of every model for the first prompts, side by side, markers highlighted."""
    generations = ev.load_generations(run_dir)
    return generations_table_html(generations, list(result.models), result.marker_groups, n_prompts,
                                  labels={name: m.label for name, m in result.models.items()})


def generations_table_html(generations: pd.DataFrame, models: list[str], marker_groups: dict,
                           n_prompts: int = SAMPLE_PROMPTS, prompt_ids: list | None = None,
                           labels: dict[str, str] | None = None) -> str:
    """HTML table: one row per prompt (its context), one column per model (headed by `labels`, default
    the models' standard names); markers in <mark>."""
    labels = labels or {}
    patterns = ev.compile_markers(marker_groups) if marker_groups else {}
    colors = {g: HIGHLIGHT[i % len(HIGHLIGHT)] for i, g in enumerate(marker_groups)}
    key = "prompt_id" if "prompt_id" in generations.columns else None
    first_seed = generations["seed"].min() if "seed" in generations.columns else None
    frame = generations if first_seed is None else generations[generations["seed"] == first_seed]
    ids = prompt_ids if prompt_ids is not None else (
        list(dict.fromkeys(frame[key]))[:n_prompts] if key else list(range(min(n_prompts, len(frame)))))
    head = "<tr><th class='l'>context</th>" + "".join(
        f"<th class='l'>{html.escape(labels.get(m) or ev.model_label(m))}</th>" for m in models) + "</tr>"
    rows = []
    for pid in ids:
        sub = frame[frame[key] == pid] if key else frame.iloc[[pid]]
        context = str(sub["context"].iloc[0]) if "context" in sub and len(sub) else ""
        cells = [f"<td class='l'>{html.escape(_shorten(context, 220))}</td>"]
        for m in models:
            texts = sub.loc[sub["model"] == m, "text"].tolist()
            cells.append(f"<td>{highlight_html(texts[0], patterns, colors) if texts else '—'}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    legend = " ".join(f"<mark style='background:{colors[g]}'>{html.escape(g)}</mark>" for g in marker_groups)
    return (f"<p class='meta'>Markers: {legend}</p>" if legend else "") + \
        f"<table class='gen'>{head}{''.join(rows)}</table>"


def highlight_html(text: str, patterns: dict, colors: dict | None = None) -> str:
    """HTML-escaped text with every marker wrapped in <mark> (title = its group)."""
    colors = colors or {}
    out, last = [], 0
    for start, end, group in ev.highlight_spans(text, patterns):
        out.append(html.escape(text[last:start]))
        style = f" style='background:{colors[group]}'" if group in colors else ""
        out.append(f"<mark title='{html.escape(group, quote=True)}'{style}>{html.escape(text[start:end])}</mark>")
        last = end
    out.append(html.escape(text[last:]))
    return "".join(out)


def training_curves(run_dir: Path, key: str = "reward") -> dict[str, list[tuple[float, float]]]:
    """{stage: [(step, value)]} for RL stages that logged `key` in metrics.jsonl."""
    curves: dict[str, list] = {}
    for record in read_jsonl(Path(run_dir) / "metrics.jsonl"):
        stage, step, value = record.get("stage", ""), record.get("step"), record.get(key)
        if stage.startswith(("rl/", "rl_")) and isinstance(step, (int, float)) and isinstance(value, (int, float)) \
                and math.isfinite(value):
            curves.setdefault(stage, []).append((float(step), float(value)))
    return curves


# ------------------------------------------------------------------ SVG charts (no JavaScript)
def svg_hbars(rows: list[dict], value_label: str, width: int = 720, domain: tuple | None = None,
              legend: dict[str, str] | None = None) -> str:
    """Horizontal bars with optional CI whiskers. rows: {label, value, lo?, hi?, color?, text?}."""
    rows = [r for r in rows if r.get("value") is not None and math.isfinite(r["value"])]
    if not rows:
        return "<p class='meta'>(nothing to draw)</p>"
    left, right, bar, gap, top = 230, 70, 16, 4, 20 + (18 if legend else 0)
    values = [v for r in rows for v in (r["value"], r.get("lo"), r.get("hi")) if v is not None and math.isfinite(v)]
    lo_d, hi_d = domain or (min(0.0, min(values)), max(0.0, max(values)))
    if hi_d <= lo_d:
        hi_d = lo_d + 1.0
    plot = width - left - right
    x = lambda v: left + (v - lo_d) / (hi_d - lo_d) * plot  # noqa: E731
    height = top + len(rows) * (bar + gap) + 30
    out = [f"<svg width='{width}' height='{height}' role='img'>"]
    if legend:
        lx = left
        for name, color in legend.items():
            out.append(f"<rect x='{lx}' y='4' width='10' height='10' fill='{color}'/>"
                       f"<text x='{lx + 14}' y='13'>{html.escape(name)}</text>")
            lx += 24 + 7 * len(name)
    for i, r in enumerate(rows):
        y = top + i * (bar + gap)
        x0, x1 = sorted((x(0.0 if lo_d <= 0 <= hi_d else lo_d), x(r["value"])))
        color = r.get("color", PALETTE[0])
        if r.get("label"):
            out.append(f"<text x='{left - 6}' y='{y + bar - 4}' text-anchor='end'>{html.escape(r['label'][:38])}</text>")
        out.append(f"<rect x='{x0:.1f}' y='{y}' width='{max(x1 - x0, 0.5):.1f}' height='{bar}' fill='{color}'>"
                   f"<title>{html.escape(str(r.get('label') or ''))}: {r['value']:.4g}</title></rect>")
        if r.get("lo") is not None and r.get("hi") is not None and math.isfinite(r["lo"]) and math.isfinite(r["hi"]):
            cy = y + bar / 2
            out.append(f"<line x1='{x(r['lo']):.1f}' x2='{x(r['hi']):.1f}' y1='{cy}' y2='{cy}' stroke='#222'/>"
                       f"<line x1='{x(r['lo']):.1f}' x2='{x(r['lo']):.1f}' y1='{cy - 4}' y2='{cy + 4}' stroke='#222'/>"
                       f"<line x1='{x(r['hi']):.1f}' x2='{x(r['hi']):.1f}' y1='{cy - 4}' y2='{cy + 4}' stroke='#222'/>")
        label = r.get("text", f"{r['value']:.3f}")
        out.append(f"<text x='{max(x1, x(r.get('hi') or r['value'])) + 4:.1f}' y='{y + bar - 4}'>{html.escape(label)}</text>")
    axis_y = top + len(rows) * (bar + gap) + 4
    out.append(f"<line x1='{left}' x2='{left + plot}' y1='{axis_y}' y2='{axis_y}' stroke='#999'/>")
    for tick in np.linspace(lo_d, hi_d, 5):
        out.append(f"<text x='{x(tick):.1f}' y='{axis_y + 14}' text-anchor='middle'>{tick:.2g}</text>")
    if lo_d < 0 < hi_d:
        out.append(f"<line x1='{x(0):.1f}' x2='{x(0):.1f}' y1='{top - 4}' y2='{axis_y}' stroke='#666'/>")
    out.append(f"<text x='{left + plot / 2}' y='{axis_y + 26}' text-anchor='middle'>{html.escape(value_label)}</text>")
    out.append("</svg>")
    return "".join(out)


def svg_quality(result: ev.ComparisonResult) -> str:
    """Mean quality per model with its bootstrap interval."""
    rows = [{"label": m.label, "value": m.quality_mean, "lo": m.quality_ci[0], "hi": m.quality_ci[1],
             "color": PALETTE[0] if not m.name.endswith("deconfounded") else PALETTE[2]}
            for m in result.models.values()]
    values = [v for r in rows for v in (r["lo"], r["hi"]) if v is not None and math.isfinite(v)]
    lo = min(values) if values else 0.0
    span = (max(values) - lo) if values else 1.0
    return svg_hbars(rows, f"mean {result.scorer_label}", domain=(max(0.0, lo - 0.5 * span), max(values) + 0.1 * span)
                     if values else None)


def svg_markers(result: ev.ComparisonResult) -> str:
    """Marker rate per model and group (clustered bars with intervals)."""
    colors = {g: PALETTE[(i + 1) % len(PALETTE)] for i, g in enumerate(result.marker_groups)}
    rows = []
    for m in result.models.values():
        for j, g in enumerate(result.marker_groups):
            rows.append({"label": m.label if j == len(result.marker_groups) // 2 else "", "value": m.marker_rates[g], "lo": m.marker_ci[g][0],
                         "hi": m.marker_ci[g][1], "color": colors[g], "text": f"{m.marker_rates[g]:.1%}"})
    return svg_hbars(rows, "share of generations", legend=colors)


def svg_correlations(result: ev.ComparisonResult) -> str:
    """Validation Pearson correlation of each reward with true quality (−1…1)."""
    rows = [{"label": ev.METHOD_LABELS.get(k, k), "value": v.get("valid"),
             "color": PALETTE[2] if k == "deconfounded" else PALETTE[0] if (v.get("valid") or 0) >= 0 else PALETTE[3]}
            for k, v in result.reward_truth_corr.items() if v.get("valid") is not None]
    return svg_hbars(rows, "Pearson correlation with true quality (validation)", domain=(-1.0, 1.0))


def svg_scatter(points: pd.DataFrame, size: int = 240) -> str:
    """Small multiples: reward (y) vs true quality (x), one panel per reward method, r in the title."""
    panels = []
    for method, frame in points.groupby("method", sort=False):
        x, y = frame["truth"].to_numpy(float), frame["reward"].to_numpy(float)
        ok = np.isfinite(x) & np.isfinite(y)
        x, y = x[ok], y[ok]
        if len(x) < 2:
            continue
        r = np.corrcoef(x, y)[0, 1] if np.std(x) > 0 and np.std(y) > 0 else float("nan")
        pad, inner = 24, 6  # frame margin, then a gap so extreme points do not sit on the frame
        span = size - 2 * pad - 2 * inner
        sx = lambda v: pad + inner + (v - x.min()) / (np.ptp(x) or 1.0) * span  # noqa: E731
        sy = lambda v: size - pad - inner - (v - y.min()) / (np.ptp(y) or 1.0) * span  # noqa: E731
        dots = "".join(f"<circle cx='{sx(a):.1f}' cy='{sy(b):.1f}' r='2' fill='{PALETTE[0]}' fill-opacity='.5'/>"
                       for a, b in zip(x, y))
        title = f"{ev.METHOD_LABELS.get(method, method).split(' (')[0][:28]} (r = {r:.2f})"
        panels.append(f"<svg width='{size}' height='{size + 18}' role='img'>"
                      f"<text x='{size / 2}' y='12' text-anchor='middle'>{html.escape(title)}</text>"
                      f"<g transform='translate(0,18)'><rect x='{pad}' y='{pad}' width='{size - 2 * pad}' "
                      f"height='{size - 2 * pad}' fill='none' stroke='#ccc'/>{dots}"
                      f"<text x='{size / 2}' y='{size - 6}' text-anchor='middle'>true quality</text>"
                      f"<text x='10' y='{size / 2}' transform='rotate(-90 10 {size / 2})' text-anchor='middle'>"
                      "reward</text></g></svg>")
    return "<div>" + "".join(panels) + "</div>" if panels else ""


def svg_lines(curves: dict[str, list[tuple[float, float]]], x_label: str, y_label: str,
              width: int = 720, height: int = 260) -> str:
    """Line chart of several series {name: [(x, y)]} with a legend."""
    xs = [p[0] for pts in curves.values() for p in pts]
    ys = [p[1] for pts in curves.values() for p in pts]
    if not xs:
        return ""
    left, right, top, bottom = 50, 180, 10, 36
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    y0, y1 = min(ys), max(ys) if max(ys) > min(ys) else min(ys) + 1
    sx = lambda v: left + (v - x0) / (x1 - x0) * (width - left - right)  # noqa: E731
    sy = lambda v: top + (1 - (v - y0) / (y1 - y0)) * (height - top - bottom)  # noqa: E731
    out = [f"<svg width='{width}' height='{height}' role='img'>",
           f"<rect x='{left}' y='{top}' width='{width - left - right}' height='{height - top - bottom}' "
           "fill='none' stroke='#ccc'/>"]
    for i, (name, pts) in enumerate(curves.items()):
        color = PALETTE[i % len(PALETTE)]
        path = " ".join(f"{sx(a):.1f},{sy(b):.1f}" for a, b in sorted(pts))
        out.append(f"<polyline points='{path}' fill='none' stroke='{color}' stroke-width='1.5'/>")
        out.append(f"<rect x='{width - right + 10}' y='{top + 14 * i}' width='10' height='10' fill='{color}'/>"
                   f"<text x='{width - right + 24}' y='{top + 14 * i + 9}'>{html.escape(name)}</text>")
    for tick in np.linspace(y0, y1, 4):
        out.append(f"<text x='{left - 4}' y='{sy(tick) + 4:.1f}' text-anchor='end'>{tick:.2g}</text>")
    for tick in np.linspace(x0, x1, 5):
        out.append(f"<text x='{sx(tick):.1f}' y='{height - bottom + 14}' text-anchor='middle'>{tick:.0f}</text>")
    out.append(f"<text x='{(left + width - right) / 2}' y='{height - 6}' text-anchor='middle'>"
               f"{html.escape(x_label)}</text>")
    out.append(f"<text x='12' y='{height / 2}' transform='rotate(-90 12 {height / 2})' text-anchor='middle'>"
               f"{html.escape(y_label)}</text></svg>")
    return "".join(out)


# ------------------------------------------------------------------ altair charts (the dashboard)
def quality_chart(result: ev.ComparisonResult):
    """altair: mean quality per model with its interval."""
    import altair as alt
    frame = pd.DataFrame([{"model": m.label, "quality": m.quality_mean, "lo": m.quality_ci[0], "hi": m.quality_ci[1]}
                          for m in result.models.values()])
    order = frame["model"].tolist()
    base = alt.Chart(frame).encode(y=alt.Y("model:N", sort=order, title=None, axis=alt.Axis(labelLimit=260)))
    bars = base.mark_bar().encode(x=alt.X("quality:Q", title=f"mean {result.scorer_label}",
                                          scale=alt.Scale(zero=False)), tooltip=["model", "quality", "lo", "hi"])
    return bars + base.mark_rule().encode(x="lo:Q", x2="hi:Q")


def marker_chart(result: ev.ComparisonResult):
    """altair: marker rate per model (rows) in one panel per marker group, with intervals."""
    import altair as alt
    frame = pd.DataFrame([{"model": m.label, "group": g, "rate": m.marker_rates[g], "lo": m.marker_ci[g][0],
                           "hi": m.marker_ci[g][1], "count": m.marker_counts[g]}
                          for m in result.models.values() for g in result.marker_groups])
    order = [m.label for m in result.models.values()]
    base = alt.Chart().encode(y=alt.Y("model:N", sort=order, title=None, axis=alt.Axis(labelLimit=260)))
    bars = base.mark_bar().encode(x=alt.X("rate:Q", title="share of generations", axis=alt.Axis(format="%")),
                                  color=alt.Color("group:N", legend=None),
                                  tooltip=["model", "group", alt.Tooltip("rate:Q", format=".1%"), "count"])
    rules = base.mark_rule(color="black").encode(x="lo:Q", x2="hi:Q")
    return alt.layer(bars, rules, data=frame).properties(width=180).facet(
        column=alt.Column("group:N", title=None, sort=list(result.marker_groups)))


def scatter_chart(points: pd.DataFrame):
    """altair: reward vs true quality, one panel per reward method."""
    import altair as alt
    return alt.Chart(points).mark_circle(size=14, opacity=0.5).encode(
        x=alt.X("truth:Q", title="true quality", scale=alt.Scale(zero=False)),
        y=alt.Y("reward:Q", title="reward", scale=alt.Scale(zero=False)),
        tooltip=["method", "truth", "reward"]).properties(width=200, height=200).facet(
        facet=alt.Facet("method:N", title=None), columns=4).resolve_scale(y="independent")


# ------------------------------------------------------------------ helpers
def _stars_html(p) -> str:
    s = ev.stars(ev._num(p))
    return f" <span class='sig'>{s}</span>" if s else ""


def _f(value, digits: int = 3) -> str:
    value = ev._num(value)
    return "—" if value is None else f"{value:.{digits}f}"


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
