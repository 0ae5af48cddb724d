"""Step 4 — Deconfound: estimate how much the confounders add to the outcome, and remove it."""

import json

import streamlit as st

from deconfound.causal import (ESTIMATOR_LABELS, WEAK_F, compare_estimates, corrected_columns_table, corrected_sample,
                               default_column_name, estimate, estimates_chart, estimator_choices,
                               outcome_density_chart, spec_tests_table, truth_correlations, write_deconfounded_column)
from ui.common import get_store, page_setup, tagged_table_or_stop, user_errors

page_setup("4 · Deconfound", "⚖️")
st.markdown(
    "The outcome is part **text** (what we want the model to learn) and part **confounder** (popularity, price, "
    "season). This step estimates the confounder's share and writes a **corrected outcome** = outcome − that share, "
    "which the training step then uses as its reward. **Naive OLS** is biased when the confounder moves with the "
    "text's quality; **IV** uses an instrument (something that shifts the confounder but not quality) to avoid "
    "that; **DML** works without an instrument by first removing what the text itself predicts."
)

store = get_store()
table, roles = tagged_table_or_stop(store, "its outcome and confounders", need=("confounders",),
                                   purpose="it can be deconfounded")

available, default = estimator_choices(roles)
method = st.radio("Method for the corrected outcome", available, index=available.index(default), key="method",
                  horizontal=True, format_func=ESTIMATOR_LABELS.get,
                  help="IV is the paper's method and needs an instrument; DML needs none but assumes the text "
                       "captures every link between text and confounder; naive OLS is shown for comparison.")
if "iv" not in available:
    st.caption("No instrument is tagged, so IV is not offered (tag one on **Roles** to enable it).")
include_dml = method == "dml" or ("dml" in available and st.checkbox(
    "Also fit DML for comparison", key="include_dml", help="Learns from the text itself: 10–60 s on a laptop."))


@st.cache_data(show_spinner=False, max_entries=32)
def fit(db_path: str, table: str, roles_json: str, rows: int, method: str):
    """Cached on (database, table, roles, row count, method)."""
    return estimate(store, table, method)


rows = store.row_count(table)
roles_json = json.dumps(roles.to_dict(), sort_keys=True)
results = {}
for m in available:
    if m == "dml" and not include_dml:
        continue
    with user_errors(f"The {ESTIMATOR_LABELS[m]} fit"), st.spinner(f"Fitting {ESTIMATOR_LABELS[m]} on {rows:,} rows…"):
        results[m] = fit(str(store.path), table, roles_json, rows, m)
chosen = results.get(method)
if chosen is None:
    st.stop()

# ------------------------------------------------------------------ the answer
for warning in chosen.warnings:
    (st.error if "weak instrument" in warning else st.warning)(warning)
st.info(chosen.verdict())

st.subheader("Naive vs IV vs DML")
compare = compare_estimates(results)
st.caption("The confounder's effect on the outcome per unit, with 95% intervals. When naive OLS and IV disagree, "
           "the confounder moves with the text's quality, and only the instrumented estimate removes the right "
           "amount.")
st.altair_chart(estimates_chart(compare), width="stretch")
st.dataframe(compare, hide_index=True, width="stretch")
if "dml" in results:
    st.caption("DML: " + " ".join(results["dml"].notes))

# ------------------------------------------------------------------ IV diagnostics
if "iv" in results:
    iv = results["iv"]
    st.subheader("Is the instrument any good?")
    st.caption("**First-stage F** measures how strongly the instrument moves the confounder (below 10 = weak, the "
               "estimate is unreliable). **Partial R²** is the share of the confounder it explains. **Sargan** "
               "checks that several instruments agree (needs more instruments than confounders). **Wu–Hausman** "
               "asks whether the confounder is really entangled (small p = naive OLS is biased).")
    cols = st.columns(max(2, len(iv.first_stage)))
    for col, (term, stage) in zip(cols, iv.first_stage.items()):
        col.metric(f"First-stage F · {term}", f"{stage['f_stat']:,.1f}",
                   delta="strong" if stage["f_stat"] >= WEAK_F else "weak instrument",
                   delta_color="normal" if stage["f_stat"] >= WEAK_F else "inverse")
        col.caption(f"partial R² = {stage['partial_r2']:.3f}")
    st.dataframe(spec_tests_table(iv), hide_index=True, width="stretch")

# ------------------------------------------------------------------ raw vs corrected
st.subheader("Raw vs corrected outcome")
with user_errors("Reading a sample"):
    sample = corrected_sample(store, table, chosen, truth=roles.truth)
    st.caption(f"{ESTIMATOR_LABELS[chosen.method]} correction on a random sample of {len(sample):,} rows: the corrected "
               "outcome keeps the raw average (the removed part is centred) but no longer varies with the confounder.")
    st.altair_chart(outcome_density_chart(sample), width="stretch")
    if roles.truth:
        raw_r, corrected_r = truth_correlations(sample)
        left, right = st.columns(2)
        left.metric(f"corr(raw outcome, {roles.truth})", f"{raw_r:+.3f}")
        right.metric(f"corr(corrected, {roles.truth})", f"{corrected_r:+.3f}",
                     help="Simulated data only: how well each outcome tracks the true quality.")

# ------------------------------------------------------------------ save
st.subheader("Save the corrected outcome")
st.caption("Adds a new column to the table (the original outcome is never changed). Training uses it as the "
           "deconfounded reward; its method and estimate are recorded with it.")
name = st.text_input("Column name", value=default_column_name(chosen), key=f"column_name_{method}")
replace = st.checkbox("Replace a corrected column of the same name", key="replace_column")
if st.button("Save corrected column", type="primary", key="save_column"):
    with user_errors("Saving the column"):
        meta = write_deconfounded_column(store, table, chosen, name=name.strip(), replace=replace)
        st.success(f"Saved '{meta['column']}' = {meta['formula']}. Next: **Train**.")

derived = corrected_columns_table(store, table)
if len(derived):
    st.dataframe(derived, hide_index=True, width="stretch")
