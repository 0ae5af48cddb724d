"""Step 4 — Deconfound: estimate how much the confounders add to the outcome, and remove it."""

import json

import streamlit as st

from deconfound.causal import (ESTIMATOR_LABELS, WEAK_F, EstimatorConfig, baseline_note, compare_estimates,
                               corrected_columns_table, corrected_sample, default_column_name, estimate,
                               estimates_chart, estimator_choices, mark_recommended, outcome_density_chart,
                               page_verdict, recommended, refutations_from_store, refutations_table, robust_ci_table,
                               save_warning, saved_column_sentence, sensitivity_chart, spec_tests_table,
                               truth_correlations, write_deconfounded_column)
from deconfound.rewards import reward_band_from_store
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


cluster_options = ["(none: heteroskedasticity-robust)"] + [c for c in store.schema(table) if c != roles.outcome]
cluster = st.selectbox("Cluster the standard errors by", cluster_options, key="cluster",
                       help="Rows that share a context, an experiment or a month are not independent: clustering "
                            "by that column widens the intervals honestly (it needs many clusters).")
cluster = None if cluster == cluster_options[0] else cluster


@st.cache_data(show_spinner=False, max_entries=32)
def fit(db_path: str, table: str, roles_json: str, rows: int, method: str, cluster: str | None = None,
        gamma: tuple | None = None):
    """Cached on (database, table, roles, row count, method, cluster column, γ range)."""
    return estimate(store, table, method, EstimatorConfig(cluster=cluster, gamma_range=gamma))


@st.cache_data(show_spinner=False, max_entries=32)
def checks(db_path: str, table: str, roles_json: str, rows: int, method: str, cluster: str | None = None):
    """The refutations of one estimate, cached like the fit."""
    return refutations_from_store(store, table, method, EstimatorConfig(cluster=cluster))


@st.cache_data(show_spinner=False, max_entries=16)
def band(db_path: str, table: str, roles_json: str, rows: int, method: str, cluster: str | None, result_json: str):
    """The reward retrained at β̂ ± 2 se (TF-IDF features, at most 6,000 sampled rows: a few seconds)."""
    from deconfound.causal import EstimateResult
    return reward_band_from_store(store, table, EstimateResult.from_dict(json.loads(result_json)))


rows = store.row_count(table)
roles_json = json.dumps(roles.to_dict(), sort_keys=True)
gamma = st.session_state.get("gamma_range") if method == "iv" else None
results = {}
for m in available:
    if m == "dml" and not include_dml:
        continue
    with user_errors(f"The {ESTIMATOR_LABELS[m]} fit"), st.spinner(f"Fitting {ESTIMATOR_LABELS[m]} on {rows:,} rows…"):
        results[m] = fit(str(store.path), table, roles_json, rows, m, cluster, gamma if m == "iv" else None)
chosen = results.get(method)
if chosen is None:
    st.stop()
with user_errors("The refutations"), st.spinner("Running the placebo checks…"):
    chosen.refutations = checks(str(store.path), table, roles_json, rows, method, cluster)

# ------------------------------------------------------------------ the answer
best, why = recommended(results)
verdict = page_verdict(chosen)
(st.success if chosen.refutations.get("all_passed") else st.warning)(verdict)
st.caption(f"Recommended estimate: **{ESTIMATOR_LABELS[best]}** — {why}."
           + ("" if best == method else " Switch the method above to use it."))
for warning in chosen.warnings:
    (st.error if "weak instrument" in warning else st.warning)(warning)
st.info(chosen.verdict())

st.subheader("Naive vs IV vs DML")
compare = compare_estimates(results)
st.caption("The confounder's effect on the outcome per unit, with 95% intervals. When naive OLS and IV disagree, "
           "the confounder moves with the text's quality, and only the instrumented estimate removes the right "
           "amount.")
st.altair_chart(estimates_chart(compare), width="stretch")
st.dataframe(mark_recommended(compare, best), hide_index=True, width="stretch")
if baseline_note(chosen):
    st.caption(baseline_note(chosen))
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
    st.markdown("**Inference that stays valid when the instrument is weak**")
    st.caption("The **Anderson–Rubin** set keeps every effect the data cannot reject, however weak the instrument "
               "(unbounded = the instrument cannot pin the effect down). The **effective F** judges the strength "
               f"under the same {iv.robust_ci.get('covariance', {}).get('label', 'robust')} errors as the estimate. "
               "**LIML** beside 2SLS: when they agree, many or weak instruments are not biasing 2SLS.")
    st.dataframe(robust_ci_table(iv), hide_index=True, width="stretch")

# ------------------------------------------------------------------ sensitivity
st.subheader("How far can the assumptions bend?")
sens_terms = (chosen.sensitivity or {}).get("terms") or {}
if "reason" in (chosen.sensitivity or {}):
    (st.warning if "range" in chosen.sensitivity["reason"] else st.caption)(chosen.sensitivity["reason"])
if method == "iv" and chosen.terms and chosen.terms[0] in sens_terms and "grid" in sens_terms[chosen.terms[0]]:
    entry = sens_terms[chosen.terms[0]]
    st.caption("If the instrument also moved the outcome directly by γ (outcome units per standard deviation of "
               "its push on the confounder), the IV estimate would shift by γ ÷ that standard deviation. The band "
               "is the interval at each γ; the union of intervals (UCI) and the local-to-zero interval (LTZ) of "
               "Conley, Hansen & Rossi summarise the range.")
    low, high = entry["gamma_range"]
    left, right = st.columns(2)
    new_low = left.number_input("γ from", value=float(low), format="%.4f", key="gamma_low")
    new_high = right.number_input("γ to", value=float(high), format="%.4f", key="gamma_high")
    if (new_low, new_high) != (low, high) and st.button("Recompute the sensitivity", key="gamma_apply"):
        st.session_state["gamma_range"] = (new_low, new_high)
        st.rerun()
    st.altair_chart(sensitivity_chart(entry["grid"], chosen.terms[0]), width="stretch")
    st.caption(f"UCI [{entry['uci'][0]:.4g}, {entry['uci'][1]:.4g}] · LTZ [{entry['ltz'][0]:.4g}, "
               f"{entry['ltz'][1]:.4g}] · sign flips at γ = {entry['gamma_sign_flip']:.3g} · significance lost at "
               f"γ = {entry['gamma_significance_lost']:.3g}")
elif method == "dml" and chosen.terms and chosen.terms[0] in sens_terms:
    entry = sens_terms[chosen.terms[0]]
    st.caption(chosen.sensitivity.get("meaning", ""))
    st.metric("Robustness value RVa", f"{entry['rva']:.1%}",
              help="The share of the residual variation of both the outcome and the confounder that an omitted "
                   "confounder would need to explain to make the effect insignificant.")
    st.caption(f"θ bounds [{entry['theta_bounds'][0]:.4g}, {entry['theta_bounds'][1]:.4g}], with sampling error "
               f"[{entry['ci_bounds'][0]:.4g}, {entry['ci_bounds'][1]:.4g}].")

st.subheader("Placebo checks")
st.caption("Each check breaks the estimate on purpose: a shuffled confounder must have no effect, a random extra "
           "control must not move it, resamples must agree, and an instrument must not reach the outcome directly.")
st.dataframe(refutations_table(chosen.refutations), hide_index=True, width="stretch")

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

# ------------------------------------------------------------------ reward band
st.subheader("Does the interval matter for the reward?")
with user_errors("The reward band"), st.spinner("Retraining the reward at β̂ ± 2 se…"):
    chosen.reward_band = band(str(store.path), table, roles_json, rows, method, cluster,
                              json.dumps(chosen.to_dict(), sort_keys=True))
    reward = chosen.reward_band
    if "reason" in reward:
        st.caption(f"Reward band: {reward['reason']}")
    else:
        (st.warning if reward.get("choice_matters") else st.info)(reward["verdict"][:1].upper() + reward["verdict"][1:]
                                                                   + ".")
        st.caption(reward["note"] + ".")

# ------------------------------------------------------------------ save
st.subheader("Save the corrected outcome")
st.caption("Adds a new column to the table (the original outcome is never changed). Training uses it as the "
           "deconfounded reward; its method and estimate are recorded with it.")
name = st.text_input("Column name", value=default_column_name(chosen), key=f"column_name_{method}")
replace = st.checkbox("Replace a corrected column of the same name", key="replace_column")
caution = save_warning(method, results)
if caution:
    st.warning(caution)
if st.button("Save corrected column", type="primary", key="save_column"):
    with user_errors("Saving the column"):
        meta = write_deconfounded_column(store, table, chosen, name=name.strip(), replace=replace)
        st.success(saved_column_sentence(meta, table) + " Next: **Train**.")

derived = corrected_columns_table(store, table)
if len(derived):
    st.dataframe(derived, hide_index=True, width="stretch")
