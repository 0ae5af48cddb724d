"""The charts of a comparison, one altair definition each, for the dashboard and the HTML report alike.

The Compare page shows them with `st.altair_chart`; the report embeds them as inline SVG rendered offline by
vl-convert (`chart_svg`: no JavaScript, no fonts or scripts from the network). altair and vl-convert are
imported inside the functions, so importing `evaluate` stays light.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd

from ..rewards import METHOD_LABELS
from .palette import group_colors, model_color

# Kept for readers of the old constant; the charts colour each reward by its method (`palette`).
CORRELATION_COLORS = {"deconfounded": "#54a24b", "positive": "#4c78a8", "negative": "#e45756"}
REWARD_TITLE = "reward (standardised)"  # RL logs each reward z-scored by its model's training mean and sd


def _scale(colors: dict[str, str]):
    """An altair colour scale mapping each key to its colour (`palette`)."""
    import altair as alt
    return alt.Scale(domain=list(colors), range=list(colors.values()))


def quality_chart(result):
    """altair: mean quality per model with its interval."""
    import altair as alt
    frame = pd.DataFrame([{"model": m.label, "quality": m.quality_mean, "lo": m.quality_ci[0], "hi": m.quality_ci[1]}
                          for m in result.models.values()])
    order = frame["model"].tolist()
    colors = {m.label: model_color(name) for name, m in result.models.items()}
    base = alt.Chart(frame).encode(y=alt.Y("model:N", sort=order, title=None, axis=alt.Axis(labelLimit=260)))
    bars = base.mark_bar().encode(x=alt.X("quality:Q", title=f"mean {result.scorer_label}",
                                          scale=alt.Scale(zero=False)),
                                  color=alt.Color("model:N", scale=_scale(colors), legend=None),
                                  tooltip=["model", "quality", "lo", "hi"])
    return bars + base.mark_rule().encode(x="lo:Q", x2="hi:Q")


def marker_chart(result):
    """altair: marker rate per model (rows) in one panel per marker group, with intervals."""
    import altair as alt
    frame = pd.DataFrame([{"model": m.label, "group": g, "rate": m.marker_rates[g], "lo": m.marker_ci[g][0],
                           "hi": m.marker_ci[g][1], "count": m.marker_counts[g]}
                          for m in result.models.values() for g in result.marker_groups])
    order = [m.label for m in result.models.values()]
    base = alt.Chart().encode(y=alt.Y("model:N", sort=order, title=None, axis=alt.Axis(labelLimit=260)))
    bars = base.mark_bar().encode(x=alt.X("rate:Q", title="share of generations", axis=alt.Axis(format="%")),
                                  color=alt.Color("group:N", scale=_scale(group_colors(result.marker_groups)),
                                                  legend=None),
                                  tooltip=["model", "group", alt.Tooltip("rate:Q", format=".1%"), "count"])
    rules = base.mark_rule(color="black").encode(x="lo:Q", x2="hi:Q")
    return alt.layer(bars, rules, data=frame).properties(width=180).facet(
        column=alt.Column("group:N", title=None, sort=list(result.marker_groups)))


def correlation_chart(result):
    """altair: validation Pearson correlation of each reward with true quality (−1…1), the paper's Table 2."""
    import altair as alt
    kept = {k: v for k, v in result.reward_truth_corr.items() if v.get("valid") is not None}
    frame = pd.DataFrame([{"reward": METHOD_LABELS.get(k, k), "r": v["valid"]} for k, v in kept.items()],
                         columns=["reward", "r"])
    colors = _scale({METHOD_LABELS.get(k, k): model_color(k) for k in kept})
    base = alt.Chart(frame).encode(y=alt.Y("reward:N", sort=frame["reward"].tolist() if len(frame) else None,
                                           title=None, axis=alt.Axis(labelLimit=260)))
    bars = base.mark_bar().encode(
        x=alt.X("r:Q", title="Pearson correlation with true quality (validation)", scale=alt.Scale(domain=[-1, 1])),
        color=alt.Color("reward:N", scale=colors, legend=None), tooltip=["reward", alt.Tooltip("r:Q", format=".3f")])
    labels = base.mark_text(align="left", dx=4).encode(x=alt.value(0), text=alt.Text("r:Q", format=".2f"))
    return (bars + labels).properties(width=420)


def scatter_chart(points: pd.DataFrame):
    """altair: reward vs true quality, one panel per reward method titled with its Pearson r."""
    import altair as alt
    frame = points.assign(truth=pd.to_numeric(points["truth"], errors="coerce"),
                          reward=pd.to_numeric(points["reward"], errors="coerce"))
    frame = frame[np.isfinite(frame["truth"]) & np.isfinite(frame["reward"])]
    titles = {method: _panel_title(method, group) for method, group in frame.groupby("method", sort=False)}
    frame = frame.assign(panel=frame["method"].map(titles))
    colors = {titles[m]: model_color(m) for m in titles}
    return alt.Chart(frame).mark_circle(size=14, opacity=0.5).encode(
        x=alt.X("truth:Q", title="true quality", scale=alt.Scale(zero=False)),
        y=alt.Y("reward:Q", title="reward", scale=alt.Scale(zero=False)),
        color=alt.Color("panel:N", scale=_scale(colors), legend=None),
        tooltip=["method", "truth", "reward"]).properties(width=200, height=200).facet(
        facet=alt.Facet("panel:N", title=None, sort=list(titles.values())), columns=4).resolve_scale(y="independent")


def _panel_title(method: str, points: pd.DataFrame) -> str:
    x, y = points["truth"].to_numpy(float), points["reward"].to_numpy(float)
    r = np.corrcoef(x, y)[0, 1] if len(x) > 1 and np.std(x) > 0 and np.std(y) > 0 else math.nan
    name = METHOD_LABELS.get(method, method).split(" (")[0]
    return f"{name} (r = {r:.2f})" if math.isfinite(r) else name


def reward_curves_chart(curves: dict[str, list[tuple[float, float]]]):
    """altair: mean reward per RL step, one line per stage ({stage: [(step, reward)]}, `report.training_curves`),
    in its model's colour; each method's reward is standardised by RL (z-scored by its reward model's training
    mean and sd), so the lines share one scale."""
    import altair as alt
    frame = pd.DataFrame([{"stage": stage, "step": step, "reward": value}
                          for stage, values in curves.items() for step, value in sorted(values)],
                         columns=["stage", "step", "reward"])
    colors = {stage: model_color(stage) for stage in curves}
    return alt.Chart(frame).mark_line().encode(
        x=alt.X("step:Q", title="step"), y=alt.Y("reward:Q", title=REWARD_TITLE),
        color=alt.Color("stage:N", title="stage", sort=list(curves), scale=_scale(colors)),
        tooltip=["stage", "step", alt.Tooltip("reward:Q", format=".3f")]).properties(width=520, height=220)


def run_curves_chart(curves: dict[str, dict[str, list[tuple[float, float]]]], key: str = "reward"):
    """altair: one metric per RL step of several runs overlaid ({run: {stage: [(step, value)]}}): one panel per
    stage (a reward method's RL), one line per run (solid, dashed, dotted…), in the stage's model colour. The
    reward is the standardised one RL logs, so runs and methods compare on one scale."""
    import altair as alt
    frame = pd.DataFrame([{"run": run, "stage": stage, "step": step, key: value}
                          for run, stages in curves.items() for stage, values in stages.items()
                          for step, value in sorted(values)], columns=["run", "stage", "step", key])
    stages = list(dict.fromkeys(frame["stage"]))
    dashes = alt.Scale(domain=list(curves), range=[[1, 0], [6, 3], [2, 2], [8, 2, 2, 2]][:max(1, len(curves))])
    return alt.Chart(frame).mark_line(point=len(frame) < 60).encode(
        x=alt.X("step:Q", title="step"), y=alt.Y(f"{key}:Q", title=REWARD_TITLE if key == "reward" else key),
        color=alt.Color("stage:N", scale=_scale({s: model_color(s) for s in stages}), legend=None),
        strokeDash=alt.StrokeDash("run:N", scale=dashes, title="run", sort=list(curves)),
        tooltip=["run", "stage", "step", alt.Tooltip(f"{key}:Q", format=".3f")]
    ).properties(width=260, height=180).facet(facet=alt.Facet("stage:N", title=None, sort=stages), columns=3)


# ------------------------------------------------------------------ inline SVG for the report
_ATTRS = r'(?:\s[\w:-]+="[^"]*")*?'
_NAMESPACES = re.compile(r'\sxmlns(?::\w+)?="[^"]*"')
_CIRCLE = re.compile(rf'<path({_ATTRS}) transform="translate\(([-\d.e]+),([-\d.e]+)\)" '
                     rf'd="M([\d.e]+),0A\4,\4,0,1,1,-\4,0A\4,\4,0,1,1,\4,0"({_ATTRS})\s*/>')
_LINE = re.compile(rf'<path({_ATTRS} aria-roledescription="line mark") d="M([-\d.e]+,[-\d.e]+(?:L[-\d.e]+,[-\d.e]+)+)"'
                   rf'({_ATTRS})\s*/>')


def chart_svg(chart) -> str:
    """The chart as SVG to place inside an HTML page, rendered offline by vl-convert (no JavaScript).

    Inline SVG in HTML needs no namespace declarations, so they go (the page then names no URL at all).
    vega draws every point and line as a generic <path>; circles become <circle> and straight lines
    <polyline>, the SVG's own shapes, so the page says what it draws (one <circle> per point of a scatter)."""
    import vl_convert
    svg = _NAMESPACES.sub("", vl_convert.vegalite_to_svg(chart.to_dict()))
    svg = _CIRCLE.sub(lambda m: f'<circle{m[1]} cx="{m[2]}" cy="{m[3]}" r="{m[4]}"{m[5]}/>', svg)
    return _LINE.sub(lambda m: f'<polyline{m[1]} points="{m[2].replace("L", " ")}" fill="none"{m[3]}/>', svg)
