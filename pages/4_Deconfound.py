"""Step 4 — Deconfound: estimate how much the confounders add to the outcome, and remove it."""

import json

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from deconfound.causal import (ESTIMATOR_LABELS, deconfounded_outcome, default_column_name, estimate,
                               write_deconfounded_column)
from ui.common import get_store, page_setup, table_picker, user_errors

page_setup("4 · Deconfound", "⚖️")
st.markdown(
    "The outcome is part **text** (what we want the model to learn) and part **confounder** (popularity, price, "
    "season). This step estimates the confounder's share and writes a **corrected outcome** = outcome − that share, "
    "which the training step then uses as its reward. **Naive OLS** is biased when the confounder moves with the "
    "text's quality; **IV** uses an instrument (something that shifts the confounder but not quality) to avoid "
    "that; **DML** works without an instrument by first removing what the text itself predicts."
)

store = get_store()
table = table_picker(store)
if not table:
    st.stop()
roles = store.load_roles(table)
if roles is None or not roles.confounders:
    st.warning(f"'{table}' needs at least one **confounder** tagged on **Roles** before it can be deconfounded.")
    st.stop()

available = ["ols"] + (["iv"] if roles.instruments else []) + (["dml"] if roles.text else [])
default = "iv" if "iv" in available else "dml" if "dml" in available else "ols"
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
table_rows = [{"method": ESTIMATOR_LABELS[m], "term": t, "coefficient": r.coef[t], "CI low": r.conf_int[t][0],
               "CI high": r.conf_int[t][1], "rows": r.n} for m, r in results.items() for t in r.terms]
compare = pd.DataFrame(table_rows)
st.caption("The confounder's effect on the outcome per unit, with 95% intervals. When naive OLS and IV disagree, "
           "the confounder moves with the text's quality, and only the instrumented estimate removes the right "
           "amount.")
base = alt.Chart(compare).encode(y=alt.Y("method:N", title=None, sort=list(ESTIMATOR_LABELS.values())))
chart = (base.mark_point(filled=True, size=80).encode(x=alt.X("coefficient:Q", scale=alt.Scale(zero=False),
                                                                     title="effect per unit (95% interval)"),
                                                       color="method:N", tooltip=list(compare.columns))
         + base.mark_errorbar().encode(x=alt.X("CI low:Q", title="effect per unit (95% interval)"), x2="CI high:Q"))
st.altair_chart(chart.properties(height=60 * len(results)).facet(row=alt.Row("term:N", title=None)),
                width="stretch")
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
                   delta="strong" if stage["f_stat"] >= 10 else "weak instrument",
                   delta_color="normal" if stage["f_stat"] >= 10 else "inverse")
        col.caption(f"partial R² = {stage['partial_r2']:.3f}")
    def meaning(name: str, test: dict) -> str:
        if "reason" in test:
            return f"does not apply: {test['reason']}"
        small = test["pvalue"] < 0.05
        if name == "sargan":
            return ("the instruments disagree: one of them may affect the outcome directly" if small
                    else "the instruments agree with each other")
        return ("the confounder moves with the unexplained outcome: naive OLS is biased, use IV" if small
                else "no evidence that naive OLS is biased")

    tests = pd.DataFrame([{"test": {"sargan": "Sargan", "wu_hausman": "Wu–Hausman"}.get(name, name),
                           "statistic": f"{t['stat']:,.2f}" if "stat" in t else "–",
                           "p-value": f"{t['pvalue']:.3g}" if "pvalue" in t else "–",
                           "what it means": meaning(name, t)} for name, t in iv.tests.items()])
    st.dataframe(tests, hide_index=True, width="stretch")

# ------------------------------------------------------------------ raw vs corrected
st.subheader("Raw vs corrected outcome")
columns = list(dict.fromkeys([roles.outcome] + [t["column"] for t in chosen.confounder_terms]
                             + ([roles.truth] if roles.truth else [])))
with user_errors("Reading a sample"):
    sample = store.read_frame(table, columns, sample_rows=min(rows, 5000))
    corrected, offset = deconfounded_outcome(sample, chosen)
    dist = pd.DataFrame({"raw outcome": sample[roles.outcome].to_numpy(dtype=float), "corrected": corrected})
    long = dist.melt(var_name="outcome", value_name="value").dropna()
    st.caption(f"{ESTIMATOR_LABELS[chosen.method]} correction on a random sample of {len(sample):,} rows: the corrected "
               "outcome keeps the raw average (the removed part is centred) but no longer varies with the confounder.")
    st.altair_chart(alt.Chart(long).transform_density("value", groupby=["outcome"], as_=["value", "density"])
                    .mark_area(opacity=0.45).encode(x="value:Q", y=alt.Y("density:Q", stack=None), color="outcome:N")
                    .properties(height=240), width="stretch")
    if roles.truth:
        truth = sample[roles.truth].to_numpy(dtype=float)
        ok = np.isfinite(truth) & np.isfinite(corrected) & np.isfinite(dist["raw outcome"].to_numpy())
        left, right = st.columns(2)
        left.metric(f"corr(raw outcome, {roles.truth})", f"{np.corrcoef(dist['raw outcome'][ok], truth[ok])[0, 1]:+.3f}")
        right.metric(f"corr(corrected, {roles.truth})", f"{np.corrcoef(corrected[ok], truth[ok])[0, 1]:+.3f}",
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

derived = store.column_meta(table)
if derived:
    st.dataframe(pd.DataFrame([{"column": c, "method": m.get("method"), "effect": json.dumps(m.get("coef")),
                                "created": m.get("created_at")} for c, m in derived.items()]),
                 hide_index=True, width="stretch")
