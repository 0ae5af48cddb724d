"""Step 3 — Diagnostics: does the outcome move with things that are not the text's quality?"""

import json

import streamlit as st

from deconfound.causal import (DiagnosticsConfig, default_score, diagnose, entanglement_chart, leakage_candidates,
                               leakage_chart, marker_chart, marker_chart_rows, marker_table, readable_pvalues,
                               record_diagnostics, standardised_months, temporal_leakage, time_chart, time_tests_table)
from deconfound.data import step_record
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
def run_diagnostics(db_path: str, table: str, roles_json: str, rows: int, embeddings: str, marker_rows: int):
    """Cached on (database, table, roles, row count, options): reruns only when something changed. The
    temporal-leakage audit is not part of it: the page runs the one its leakage section shows."""
    config = DiagnosticsConfig(embeddings=embeddings, marker_rows=marker_rows)
    return diagnose(store, table, config, scores=[])


rows = store.row_count(table)
report = None
with user_errors("The diagnostics"), st.spinner(f"Checking {rows:,} rows…"):
    report = run_diagnostics(str(store.path), table, json.dumps(roles.to_dict(), sort_keys=True), rows,
                             embeddings, marker_rows)
if report is None:
    st.stop()
if step_record(store, table, "diagnostics") is None:  # a cached report of a table that was replaced since
    record_diagnostics(store, report, roles)

# The temporal-leakage audit the verdicts and the leakage section both show: the score chosen below (a
# derived score column by default; none when the table has none yet, never a row id).
SCORE_KEY = "diag_score"
candidates = leakage_candidates(store, table, roles) if roles.timestamp else []
if st.session_state.get(SCORE_KEY) not in candidates:
    st.session_state.pop(SCORE_KEY, None)
score = st.session_state.get(SCORE_KEY) or default_score(store, table, roles)
score = score if score in candidates else None
leak = None
if score:
    with user_errors("The leakage check"):
        leak = temporal_leakage(store, table, roles, score)

# ------------------------------------------------------------------ verdicts first
st.subheader("Verdicts")
for verdict, needs_attention in report.findings(leakage=[leak] if leak else []):
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

    left, right = st.columns([1, 2])
    left.altair_chart(time_chart(tp.by_weekday, "weekday", tp.outcome, list(tp.by_weekday["level"])), width="stretch")
    right.altair_chart(time_chart(tp.by_month, "month", tp.outcome), width="stretch")
    st.dataframe(readable_pvalues(time_tests_table(tp)), hide_index=True, width="stretch")

# ------------------------------------------------------------------ markers
st.subheader("Markers: phrases that lift the outcome")
mk = report.markers
if mk is not None and len(mk.markers):
    st.caption("Each bar is a frequent word or phrase: how much higher (or lower) the outcome is when it appears. "
               "The dot is what is left after removing the confounders' share "
               f"({mk.adjustment}). **Spurious** phrases lose most of their lift: a model trained on the raw "
               "outcome would learn to write them for nothing.")
    top_n = st.slider("Phrases shown", 10, 60, 30, key="diag_top_markers")
    # Half spurious, half kept or hidden effects; overlapping phrases are shown once.
    st.altair_chart(marker_chart(marker_chart_rows(mk, top_n)), width="stretch")
    with st.expander("All markers as a table"):
        st.dataframe(readable_pvalues(marker_table(mk)), hide_index=True, width="stretch")
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
    st.altair_chart(entanglement_chart(ent), width="stretch")
    if ent.truth:
        cols = st.columns(len(ent.confounders))
        for col, row in zip(cols, ent.confounders.itertuples()):
            col.metric(f"corr({row.confounder}, {ent.truth})", f"{row.corr_truth:+.2f}",
                       help="Correlation with the ground-truth quality (net of the instruments). Far from 0 = entangled.")
    for note in ent.notes:
        st.caption(f"Note: {note}.")

# ------------------------------------------------------------------ temporal leakage
st.subheader("Temporal leakage of a score")
st.caption("Pick a score column (a corrected outcome, a reward model's score): if its monthly averages follow "
           "the monthly outcome, it has absorbed the time pattern (paper Fig. 4d).")
if not roles.timestamp:
    st.caption("Tag a timestamp on **Roles** to enable this check.")
elif candidates:
    st.selectbox("Score column", candidates, index=candidates.index(score) if score else None, key=SCORE_KEY,
                 placeholder="Choose a score column",
                 help="Defaults to the newest corrected outcome saved on **Deconfound**. Row ids are not offered.")
    if leak is None:
        st.caption("No score column is chosen yet: save a corrected outcome on **Deconfound** or pick a column.")
    else:
        (st.warning if leak.leaks else st.info)(leak.verdict)
        if len(leak.months):
            st.altair_chart(leakage_chart(standardised_months(leak)), width="stretch")
else:
    st.caption("No numeric column to audit.")

st.caption(f"Computed in {sum(report.seconds.values()):.1f} s "
           f"({', '.join(f'{k} {v:.1f} s' for k, v in report.seconds.items())}); cached until the table or its roles change.")
