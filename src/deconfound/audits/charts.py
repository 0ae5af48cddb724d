"""The audits' charts, one altair definition each (the Audits page shows them; `evaluate.chart_svg` renders any of
them offline): marker rates per model with standard-error bars, ROC curves of the reward heads on held-out A/B
pairs, and the λ curves with the validation, rule and test optima marked. altair is imported inside.
"""

from __future__ import annotations

import pandas as pd

PICK_COLORS = {"validation": "#4c78a8", "rule": "#54a24b", "test": "#e45756"}
PICK_LABELS = {"validation": "validation-optimal λ", "rule": "rule's λ (no experiment)", "test": "test-optimal λ"}
CURVES = (("train_mse", "training MSE"), ("valid_mse", "validation MSE"), ("test_auc", "held-out pair AUC"),
          ("leakage", "monthly leakage r"))


def marker_rates_chart(result):
    """altair: per marker word, each model's mean share of generations containing it (bars) ± one standard error
    over runs (rules)."""
    import altair as alt
    table = result.table()
    rows = []
    for _, row in table.iterrows():
        for word in result.words:
            mean, se = row[f"{word} %"] / 100, row[f"{word} se"] / 100 if pd.notna(row[f"{word} se"]) else 0.0
            rows.append({"model": row["label"], "word": word, "rate": mean, "lo": max(0.0, mean - se),
                         "hi": mean + se, "runs": int(row["runs"])})
    frame = pd.DataFrame(rows)
    order = table["label"].tolist()
    base = alt.Chart().encode(y=alt.Y("model:N", sort=order, title=None, axis=alt.Axis(labelLimit=260)))
    bars = base.mark_bar().encode(
        x=alt.X("rate:Q", title="share of generations containing the word", axis=alt.Axis(format="%")),
        color=alt.Color("model:N", sort=order, legend=None),
        tooltip=["model", "word", alt.Tooltip("rate:Q", format=".2%"), alt.Tooltip("lo:Q", format=".2%"),
                 alt.Tooltip("hi:Q", format=".2%"), "runs"])
    rules = base.mark_rule(color="black").encode(x="lo:Q", x2="hi:Q")
    return alt.layer(bars, rules, data=frame).properties(width=260).facet(
        column=alt.Column("word:N", title=None, sort=list(result.words)))


def roc_chart(result):
    """altair: ROC curves of the observational and experimental heads (and the true effects when known) on the
    held-out pairs, with the chance diagonal."""
    import altair as alt
    curves = [(f"observational (AUC {result.observational.test.auc:.2f})", result.observational.test),
              (f"experimental (AUC {result.experimental.test.auc:.2f})", result.experimental.test)]
    if result.truth is not None:
        curves.append((f"true effects (AUC {result.truth.auc:.2f})", result.truth))
    frame = pd.concat([pd.DataFrame({"reward": name, "line": "truth" if name.startswith("true") else "head",
                                     **{k: v for k, v in ranking.to_dict(201).items() if k in ("fpr", "tpr")}})
                       for name, ranking in curves])
    lines = alt.Chart(frame).mark_line().encode(
        x=alt.X("fpr:Q", title="false positive rate"), y=alt.Y("tpr:Q", title="true positive rate"),
        color=alt.Color("reward:N", title=None, legend=alt.Legend(orient="bottom-right")),
        strokeDash=alt.StrokeDash("line:N", legend=None,
                                  scale=alt.Scale(domain=["head", "truth"], range=[[1, 0], [4, 3]])))
    diagonal = alt.Chart(pd.DataFrame({"fpr": [0, 1], "tpr": [0, 1]})).mark_line(color="gray", strokeDash=[2, 2]) \
        .encode(x="fpr:Q", y="tpr:Q")
    return (diagonal + lines).properties(width=360, height=320)


def lambda_chart(result):
    """altair: one small panel per curve against λ (log scale) — training and validation MSE, held-out pair AUC
    (A/B tables), monthly leakage — with vertical rules at the validation, rule and test optima."""
    import altair as alt
    curve = result.curve
    picks = pd.DataFrame([{"pick": PICK_LABELS[k], "lambda": v, "kind": k} for k, v in result.picks.items()])
    color = alt.Color("pick:N", title=None, scale=alt.Scale(domain=[PICK_LABELS[k] for k in result.picks],
                                                            range=[PICK_COLORS[k] for k in result.picks]),
                      legend=alt.Legend(orient="bottom"))
    panels = []
    for column, title in CURVES:
        if column not in curve or curve[column].isna().all():
            continue
        x = alt.X("lambda:Q", scale=alt.Scale(type="log"), title="λ (L2 strength)")
        line = alt.Chart(curve).mark_line(point=True, color="#333").encode(
            x=x, y=alt.Y(f"{column}:Q", title=title, scale=alt.Scale(zero=False)),
            tooltip=[alt.Tooltip("lambda:Q", format=".3g"), alt.Tooltip(f"{column}:Q", format=".4g")])
        rules = alt.Chart(picks).mark_rule(strokeWidth=2, opacity=0.8).encode(
            x="lambda:Q", color=color, tooltip=["pick", alt.Tooltip("lambda:Q", format=".3g")])
        panels.append((line + rules).properties(width=210, height=170, title=title))
    return alt.hconcat(*panels).resolve_scale(color="shared")
