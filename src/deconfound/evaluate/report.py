"""The HTML report of a run: conclusion, Table 1 and 2, charts, training curves, estimate and sample generations.

It opens offline: its charts are inline SVG (`charts.chart_svg`, no JavaScript, no fonts or scripts from the
network), its styles inline, and every generated text HTML-escaped (generated text is untrusted).
`render_report` returns the text (the dashboard's download), `write_report` writes it to a file.
The generations table and marker highlighting are shared with the Compare page.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path

import pandas as pd

from ..jsonio import read_json, read_jsonl
from ..rewards import METHOD_LABELS
from ..runs import now_iso
from .charts import chart_svg, correlation_chart, marker_chart, quality_chart, reward_curves_chart, scatter_chart
from .comparison import ComparisonResult, compare, load_generations
from .exports import outputs_dir
from .labels import model_label
from .markers import compile_markers, highlight_spans
from .palette import group_colors, highlight_color
from .reward_checks import cached_reward_points
from .stats import finite, number_text, stars

SAMPLE_PROMPTS = 8


def write_report(run_dir: str | Path, out_html: str | Path | None = None,
                 result: ComparisonResult | None = None, reward_points: pd.DataFrame | None = None,
                 sample_prompts: int = SAMPLE_PROMPTS) -> Path:
    """Write a self-contained HTML report of a run (default run_dir/outputs/report.html): conclusion,
    Table 1 with intervals and significance, quality and marker-rate charts, reward–truth correlations
    (and scatter when `reward_points` is given or cached), training curves, sample generations."""
    run_dir = Path(run_dir)
    result = result or compare(run_dir)
    if reward_points is None:
        reward_points = cached_reward_points(run_dir)
    out = Path(out_html) if out_html else outputs_dir(run_dir) / "report.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_report(run_dir, result, reward_points, sample_prompts), encoding="utf-8")
    return out


def render_report(run_dir: str | Path, result: ComparisonResult, reward_points: pd.DataFrame | None = None,
                  sample_prompts: int = SAMPLE_PROMPTS) -> str:
    """The report's HTML text (see `write_report`); writes nothing."""
    run_dir = Path(run_dir)
    info = result.run
    esc = html.escape
    parts = [f"<h1>DeconfoundLM run {esc(run_dir.name)}</h1>",
             f"<p class='meta'>table <b>{esc(str(info.get('table')))}</b> · preset {esc(str(info.get('preset')))} · "
             f"estimator {esc(str(info.get('estimator')))} · report written {esc(now_iso())}</p>",
             "<h2>Conclusion</h2>", f"<p class='conclusion'>{esc(result.conclusion())}</p>",
             "<h2>Models compared</h2>", table1_html(result),
             f"<h3>Mean quality ({esc(result.scorer_label)})</h3>", chart_svg(quality_chart(result))]
    if result.marker_groups:
        parts += ["<h3>Share of generations naming each marker group</h3>", chart_svg(marker_chart(result))]
    if result.reward_truth_corr:
        parts += ["<h2>How well each reward follows true quality</h2>", table2_html(result)]
        if any(v.get("valid") is not None for v in result.reward_truth_corr.values()):
            parts.append(chart_svg(correlation_chart(result)))
    if reward_points is not None and len(reward_points):
        parts += ["<h3>Reward vs true quality on validation rows</h3>", chart_svg(scatter_chart(reward_points))]
    curves = training_curves(run_dir)
    if curves:
        parts += ["<h2>Training</h2><p>Mean reward per RL step (each method's own reward, standardised).</p>",
                  chart_svg(reward_curves_chart(curves))]
    estimate = read_json(run_dir / "estimate.json")
    if estimate:
        from ..causal import EstimateResult, robustness_lines
        try:
            text = EstimateResult.from_dict(estimate).summary()
            robust = robustness_lines(estimate)
        except Exception:  # an estimate from another version: show the raw JSON instead
            text, robust = json.dumps(estimate, indent=2), []
        parts += ["<h2>Confounder estimate</h2>"]
        if robust:
            parts.append("<ul>" + "".join(f"<li>{esc(line)}</li>" for line in robust) + "</ul>")
        parts.append(f"<pre>{esc(text)}</pre>")
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
.sig{color:#c00;font-weight:bold}svg{max-width:100%;height:auto}"""
    return (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>\n{body}\n</body></html>\n")


def table1_html(result: ComparisonResult) -> str:
    """Table 1 as HTML: quality with CI and stars, marker counts/rates with stars, length, diversity."""
    level = int(round(result.config.get("level", 0.95) * 100))
    groups = list(result.marker_groups)
    fluency = any(m.perplexity is not None for m in result.models.values())
    head = ("<tr><th class='l'>model</th><th>n</th><th>quality</th>"
            f"<th>{level}% CI</th>" + "".join(f"<th>{html.escape(g)}</th>" for g in groups)
            + "<th>length</th><th>distinct-2</th><th>repetition</th><th>empty</th>"
            + ("<th>perplexity</th><th>cut off</th>" if fluency else "") + "</tr>")
    rows = []
    for m in result.models.values():
        cells = [f"<td class='l'>{html.escape(m.label)}</td>", f"<td>{m.n:,}</td>",
                 f"<td>{m.quality_mean:.3f}{_stars_html(m.pvalues.get('quality'))}</td>",
                 f"<td>{m.quality_ci[0]:.3f}–{m.quality_ci[1]:.3f}</td>"]
        cells += [f"<td>{m.marker_counts[g]:,} ({m.marker_rates[g]:.1%}){_stars_html(m.marker_pvalues.get(g))}</td>"
                  for g in groups]
        cells += [f"<td>{m.length_mean:.1f}{_stars_html(m.pvalues.get('length'))}</td>",
                  f"<td>{number_text(m.distinct_2)}</td>", f"<td>{m.repetition_mean:.3f}</td>",
                  f"<td>{_share(m.empty_share)}</td>"]
        if fluency:
            cells += [f"<td>{number_text(m.perplexity, 1)}</td>", f"<td>{_share(m.cut_off_share)}</td>"]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    note = (f"<p class='meta'>Stars: difference from {html.escape(result.reference or 'the reference')} "
            "(* p&lt;0.05, ** p&lt;0.01, *** p&lt;0.001; Welch t-test for means, two-proportion test for "
            "marker rates). Marker columns: generations naming the group (share). Empty: generations with no text; "
            "perplexity: of the generations under the run's pretrained base model (lower = more fluent); cut off: "
            "generations that reached the token limit.</p>")
    return f"<table>{head}{''.join(rows)}</table>{note}"


def _share(value) -> str:
    return "—" if value is None else f"{value:.1%}"


def table2_html(result: ComparisonResult) -> str:
    """Table 2 as HTML: Pearson correlation of each reward with true quality (train, valid)."""
    rows = "".join(f"<tr><td class='l'>{html.escape(METHOD_LABELS.get(k, k))}</td>"
                   f"<td>{number_text(v.get('train'))}</td><td>{number_text(v.get('valid'))}</td></tr>"
                   for k, v in result.reward_truth_corr.items())
    return f"<table><tr><th class='l'>reward method</th><th>train</th><th>valid</th></tr>{rows}</table>"


def samples_html(result: ComparisonResult, run_dir: Path, n_prompts: int) -> str:
    """Generations of every model for the first prompts, side by side, markers highlighted."""
    generations = load_generations(run_dir)
    return generations_table_html(generations, list(result.models), result.marker_groups, n_prompts,
                                  labels={name: m.label for name, m in result.models.items()})


def generations_table_html(generations: pd.DataFrame, models: list[str], marker_groups: dict,
                           n_prompts: int = SAMPLE_PROMPTS, prompt_ids: list | None = None,
                           labels: dict[str, str] | None = None) -> str:
    """HTML table: one row per prompt (its context), one column per model (headed by `labels`, default
    the models' standard names); markers in <mark>."""
    labels = labels or {}
    patterns = compile_markers(marker_groups) if marker_groups else {}
    colors = {g: highlight_color(c) for g, c in group_colors(marker_groups).items()}  # as in the marker chart
    key = "prompt_id" if "prompt_id" in generations.columns else None
    first_seed = generations["seed"].min() if "seed" in generations.columns else None
    frame = generations if first_seed is None else generations[generations["seed"] == first_seed]
    ids = prompt_ids if prompt_ids is not None else (
        list(dict.fromkeys(frame[key]))[:n_prompts] if key else list(range(min(n_prompts, len(frame)))))
    head = "<tr><th class='l'>context</th>" + "".join(
        f"<th class='l'>{html.escape(labels.get(m) or model_label(m))}</th>" for m in models) + "</tr>"
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
    for start, end, group in highlight_spans(text, patterns):
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


# ------------------------------------------------------------------ helpers
def _stars_html(p) -> str:
    """Significance stars for a p-value, styled (empty when not significant)."""
    s = stars(finite(p))
    return f" <span class='sig'>{s}</span>" if s else ""


def _shorten(text: str, limit: int) -> str:
    """At most `limit` characters, an ellipsis marking a cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
