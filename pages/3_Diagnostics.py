"""Step 3 — Diagnostics: does the outcome move with things that are not the text's quality?"""

import json

import altair as alt
import pandas as pd
import streamlit as st

from deconfound.causal import (DiagnosticsConfig, default_scores, diagnose, temporal_leakage)
from ui.common import get_store, page_setup, tagged_table_or_stop, user_errors

page_setup("3 · Diagnostics", "🔍")
st.markdown(
    "Before training on logged outcomes, check what else moves them. **Time** (weekday, month), **markers** "
    "(words that raise the outcome only because they travel with a confounder, like a popular team's name) and "
    "**entanglement** (the confounder moving with the text's quality) all teach a model the wrong lesson. "
    "Each check ends in one plain sentence; the charts below show the evidence."
)

store = get_store()
table, roles = tagged_table_or_stop(store, "its text, outcome and confounders")

with st.sidebar.expander("Diagnostics settings"):
    embeddings = st.radio("Text features for entanglement", ["tfidf", "minilm"], key="diag_embeddings",
                          help="TF-IDF is instant. MiniLM sentence embeddings understand meaning better but take "
                               "about a minute the first time on a laptop (then they are cached).")
    marker_rows = st.select_slider("Rows scanned for markers", [10_000, 50_000, 200_000], value=50_000,
                                   key="diag_marker_rows", help="Larger tables are sampled; the result says so.")


@st.cache_data(show_spinner=False, max_entries=16)
def run_diagnostics(db_path: str, table: str, roles_json: str, rows: int, scores: tuple, embeddings: str,
                    marker_rows: int):
    """Cached on (database, table, roles, row count, options): reruns only when something changed."""
    config = DiagnosticsConfig(embeddings=embeddings, marker_rows=marker_rows)
    return diagnose(store, table, config, scores=list(scores))


rows = store.row_count(table)
scores = tuple(default_scores(store, table, roles))
report = None
with user_errors("The diagnostics"), st.spinner(f"Checking {rows:,} rows…"):
    report = run_diagnostics(str(store.path), table, json.dumps(roles.to_dict(), sort_keys=True), rows, scores,
                             embeddings, marker_rows)
if report is None:
    st.stop()

# ------------------------------------------------------------------ verdicts first
st.subheader("Verdicts")
for verdict, needs_attention in report.findings():
    (st.warning if needs_attention else st.info)(verdict)
st.caption("Next: **Deconfound** estimates how much the confounders add to the outcome and removes it.")

# ------------------------------------------------------------------ time patterns
st.subheader("Outcome over time")
tp = report.time_patterns
if not tp.applicable:
    st.caption(tp.verdict)
else:
    st.caption("Average outcome per weekday and per month, with 95% confidence intervals. Bars that differ "
               "beyond their intervals mean the outcome depends on *when* a text was published.")


    def time_chart(frame: pd.DataFrame, title: str, sort: list | None) -> alt.LayerChart:
        base = alt.Chart(frame).encode(x=alt.X("level:N", sort=sort, title=title))
        bars = base.mark_bar(opacity=0.7).encode(
            y=alt.Y("mean:Q", title=f"mean {tp.outcome}", scale=alt.Scale(zero=False)),
            tooltip=["level", "n", alt.Tooltip("mean:Q", format=".4f"), alt.Tooltip("ci_low:Q", format=".4f"),
                     alt.Tooltip("ci_high:Q", format=".4f")])
        errors = base.mark_errorbar().encode(y=alt.Y("ci_low:Q", title=f"mean {tp.outcome} (95% CI)"), y2="ci_high:Q")
        return (bars + errors).properties(height=260)

    left, right = st.columns([1, 2])
    left.altair_chart(time_chart(tp.by_weekday, "weekday", list(tp.by_weekday["level"])), width="stretch")
    right.altair_chart(time_chart(tp.by_month, "month", None), width="stretch")
    tests = pd.DataFrame([{"effect": k, "F": t.get("f_stat"), "p-value": t.get("pvalue"),
                           "share of variance": t.get("share"), "matters": t.get("material")}
                          for k, t in tp.tests.items()])
    st.dataframe(tests, hide_index=True, width="stretch")

# ------------------------------------------------------------------ markers
def distinct_phrases(frame: pd.DataFrame, k: int) -> pd.DataFrame:
    """The first k phrases, skipping one that overlaps a chosen phrase and occurs in as many rows."""
    chosen = []
    for row in frame.itertuples():
        if not any((row.marker in c.marker or c.marker in row.marker) and row.n == c.n for c in chosen):
            chosen.append(row)
        if len(chosen) == k:
            break
    return frame.loc[[r.Index for r in chosen]]


st.subheader("Markers: phrases that lift the outcome")
mk = report.markers
if mk is not None and len(mk.markers):
    st.caption("Each bar is a frequent word or phrase: how much higher (or lower) the outcome is when it appears. "
               "The dot is what is left after removing the confounders' share "
               f"({mk.adjustment}). **Spurious** phrases lose most of their lift: a model trained on the raw "
               "outcome would learn to write them for nothing.")
    top_n = st.slider("Phrases shown", 10, 60, 30, key="diag_top_markers")
    # Half spurious (strongest evidence first), half kept or hidden effects (largest first); overlapping
    # phrases found in exactly the same rows ('strong finish' / 'by strong finish') are shown once.
    spurious = distinct_phrases(mk.spurious(), top_n // 2)
    others = mk.markers[mk.markers["status"].isin(["robust", "masked"])]
    others = distinct_phrases(others.reindex(others["lift"].abs().sort_values(ascending=False).index),
                              top_n - len(spurious))
    ranked = pd.concat([spurious, others]).sort_values("lift", ascending=False)
    ranked = ranked.assign(status=ranked["status"].replace({"masked": "hidden by confounder"}))
    order = list(ranked["marker"])
    colors = alt.Scale(domain=["spurious", "robust", "hidden by confounder"], range=["#d62728", "#2ca02c", "#9467bd"])
    base = alt.Chart(ranked).encode(y=alt.Y("marker:N", sort=order, title=None))
    bars = base.mark_bar(opacity=0.75).encode(
        x=alt.X("lift:Q", title="outcome lift when present"), color=alt.Color("status:N", scale=colors),
        tooltip=["marker", "n", "status", alt.Tooltip("lift:Q", format="+.4f"),
                 alt.Tooltip("adjusted_lift:Q", format="+.4f", title="after controlling")])
    dots = base.mark_point(filled=True, color="black", size=40).encode(x="adjusted_lift:Q")
    st.altair_chart((bars + dots).properties(height=max(240, 20 * len(ranked))), width="stretch")
    with st.expander("All markers as a table"):
        cols = ["marker", "n", "lift", "adjusted_lift", "lift_q", "adjusted_q", "status"] + \
               [c for c in mk.markers.columns if c.startswith("assoc_") and not c.endswith("_q")]
        st.dataframe(mk.markers[cols], hide_index=True, width="stretch")
    for note in mk.notes:
        st.caption(f"Note: {note}.")
elif mk is not None:
    st.caption("No phrase is frequent enough to test.")

# ------------------------------------------------------------------ entanglement
st.subheader("Entanglement: does the confounder move with quality?")
ent = report.entanglement
if ent is None or ent.reason:
    st.caption(ent.verdict if ent else "No confounder tagged.")
else:
    st.caption("How much of each confounder the text predicts (cross-validated R²): overall, what the instruments "
               "explain, and what the text predicts *beyond* the instruments. A large last bar — or a correlation "
               "with the true quality — means the confounder is entangled with what the text is about.")
    long = ent.confounders.melt(id_vars="confounder", value_vars=["r2_text", "r2_instruments",
                                                                  "r2_text_beyond_instruments"],
                                var_name="measure", value_name="R²").dropna()
    long["measure"] = long["measure"].map({"r2_text": "text", "r2_instruments": "instruments",
                                           "r2_text_beyond_instruments": "text beyond instruments"})
    chart = alt.Chart(long).mark_bar().encode(
        x=alt.X("R²:Q", scale=alt.Scale(domain=[min(0, float(long["R²"].min())), 1])),
        y=alt.Y("measure:N", title=None, sort=["text", "instruments", "text beyond instruments"],
                axis=alt.Axis(labelLimit=300)), row=alt.Row("confounder:N", title=None),
        color=alt.Color("measure:N", legend=None), tooltip=["confounder", "measure", alt.Tooltip("R²:Q", format=".3f")])
    st.altair_chart(chart.properties(height=110), width="stretch")
    if ent.truth:
        cols = st.columns(len(ent.confounders))
        for col, row in zip(cols, ent.confounders.itertuples()):
            col.metric(f"corr({row.confounder}, {ent.truth})", f"{row.corr_truth:+.2f}",
                       help="Correlation with the ground-truth quality (net of the instruments). Far from 0 = entangled.")
    for note in ent.notes:
        st.caption(f"Note: {note}.")

# ------------------------------------------------------------------ temporal leakage
st.subheader("Temporal leakage of a score")
st.caption("Pick any score column (a corrected outcome, a reward model's score): if its monthly averages follow "
           "the monthly outcome, it has absorbed the time pattern (paper Fig. 4d).")
numeric = [c for c, t in store.schema(table).items() if c != roles.outcome and
           t.upper().split("(")[0] in ("DOUBLE", "FLOAT", "REAL", "INTEGER", "BIGINT", "DECIMAL", "SMALLINT")]
if not roles.timestamp:
    st.caption("Tag a timestamp on **Roles** to enable this check.")
elif numeric:
    # Derived columns (corrected outcomes, reward scores) first, then the truth column, then the rest.
    preferred = [c for c in [*scores, roles.truth] if c in numeric]
    numeric = list(dict.fromkeys(preferred + numeric))
    score = st.selectbox("Score column", numeric, index=0, key="diag_score")
    with user_errors("The leakage check"):
        leak = temporal_leakage(store, table, roles, score)
        (st.warning if leak.leaks else st.info)(leak.verdict)
        if len(leak.months):
            months = leak.months.melt(id_vars="month", value_vars=["score_mean", "outcome_mean"], var_name="series")
            months["value"] = months.groupby("series")["value"].transform(lambda v: (v - v.mean()) / (v.std() or 1))
            months["series"] = months["series"].map({"score_mean": score, "outcome_mean": roles.outcome})
            st.altair_chart(alt.Chart(months).mark_line(point=True).encode(
                x=alt.X("month:N"), y=alt.Y("value:Q", title="monthly mean (standardised)"), color="series:N")
                .properties(height=240), width="stretch")

st.caption(f"Computed in {sum(report.seconds.values()):.1f} s "
           f"({', '.join(f'{k} {v:.1f} s' for k, v in report.seconds.items())}); cached until the table or its roles change.")
