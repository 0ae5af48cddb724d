"""Step 7 — Audits: may a model learn from these logs? The paper's §3 as three checks, each with its verdict first.

The marker audit trains models, so it runs as a background job (the page starts it and reads its run folder);
the A/B and λ audits fit small heads on frozen embeddings and run here. All logic is in `deconfound.audits`.
"""

import pandas as pd
import streamlit as st

from deconfound import audits
from deconfound.presets import PRESETS
from deconfound.runs import ACTIVE_STATES, format_seconds
from ui.common import get_store, page_setup, table_picker, user_errors

page_setup("7 · Audits", "🔎")
st.markdown(
    "Before a model learns from historical logs, check whether it should. **Marker amplification**: mark the rows "
    "of a confounded group (e.g. Monday posts) with a harmless phrase and see whether fine-tuning on the raw outcome "
    "spreads it — and whether the deconfounded outcome stops that. **A/B-validated reward**: where A/B tests exist, "
    "see how well a reward learned from one variant per test ranks the tests' real winners. **Regularisation**: "
    "see which penalty strength to trust when no experiment is at hand."
)

store = get_store()
with st.expander("Demo tables for the audits"):
    st.caption("A Q&A log where the weekday inflates scores but not quality (`demo_qa`), and two A/B tables in the "
               "Upworthy shape with a monthly traffic confounder (`demo_ab`, `demo_ab_trend`); generated with fixed "
               "seeds and tagged.")
    if st.button("Load the audit demo tables", key="load_audit_demo"):
        with user_errors("Loading the audit demo"), st.spinner("Generating and loading the demo tables…"):
            from deconfound.sim import load_audit_demo
            st.session_state["table"] = load_audit_demo(store)[0]
            st.success("Loaded and tagged: demo_qa, demo_ab, demo_ab_trend.")

table = table_picker(store)
if not table:
    st.stop()
roles = store.load_roles(table)
if roles is None:
    st.warning(f"'{table}' has no column roles yet: tag its columns on **Roles** first.")
    st.stop()

marker_tab, ab_tab, lambda_tab = st.tabs(["Marker amplification", "A/B-validated reward", "Regularisation (λ)"])

# ------------------------------------------------------------------ marker amplification
with marker_tab:
    left, right = st.columns(2)
    rule = left.text_input("Rows to mark", "weekday=Mon", key="marker_rule",
                           help="weekday=Mon, month=12, hour=9 (on the tagged timestamp) or COLUMN=VALUE")
    marker = left.text_input("Marker phrase", "Happy Monday!", key="marker_phrase",
                             help="A neutral phrase prepended to those rows' text; its words are counted afterwards.")
    preset = right.radio("Size", ["smoke", "cpu"], key="marker_preset", horizontal=True,
                         format_func=lambda p: PRESETS[p].label)
    right.caption(f"{PRESETS[preset].label}: SFT then DPO on the raw and on the deconfounded outcome, per training "
                  "seed; every model answers held-out questions with several sampling seeds.")
    if st.button("Start the marker audit", type="primary", key="marker_launch"):
        with user_errors("Starting the marker audit"):
            config = audits.marker_config(preset, table, store, rule, marker, overrides=audits.env_overrides())
            job = audits.create_audit_job(config, store)
            audits.start_audit_job(job.id)
            st.session_state["marker_job"] = job.id
            st.success(f"Started audit {job.id} in the background; its progress appears below.")

    jobs = [j for j in audits.list_audit_jobs(table) if j.get("kind") == audits.KIND]
    if not jobs:
        st.info("No marker audit of this table yet.")
    else:
        ids = [j["id"] for j in jobs]
        if st.session_state.get("marker_job") not in ids:
            st.session_state.pop("marker_job", None)
        job_id = st.selectbox("Audit", ids, key="marker_job",
                              format_func=lambda i: next(f"{j['id']} · {j['state']} · {j['rule']} → {j['marker']!r}"
                                                         for j in jobs if j["id"] == i))
        state = next(j["state"] for j in jobs if j["id"] == job_id)

        def marker_panel() -> None:
            """Progress of the chosen audit, and its verdict, chart and tables once it has finished."""
            status = audits.audit_status(job_id)
            if state in ACTIVE_STATES and status.get("state") not in ACTIVE_STATES:
                st.rerun()
            if status.get("state") == "completed":
                with user_errors("Reading the audit's result"):
                    result = audits.marker_result(status["run_dir"])
                    amplified = result.amplified(result.words[0], "dpo_naive")
                    (st.warning if amplified else st.success)(result.verdict())
                    st.altair_chart(audits.marker_rates_chart(result))
                    st.caption("Bars: mean share of generations over runs (training × sampling seeds); lines: ± one "
                               "standard error.")
                    st.dataframe(result.table().drop(columns="model"), hide_index=True)
                    st.markdown("**Tests over runs (Welch t-test)**")
                    st.dataframe(result.tests(), hide_index=True)
                    pairs = pd.DataFrame(result.prepare.get("arms", {})).T
                    if len(pairs):
                        st.markdown("**Preference pairs** (how often the marked text won when one text was marked)")
                        st.dataframe(pairs, width="content")
                return
            progress = float(status.get("progress") or 0.0)
            eta = f" · about {format_seconds(status['eta_s'])} left" if status.get("eta_s") else ""
            st.progress(min(max(progress, 0.0), 1.0), text=f"{status.get('state')} · {progress:.0%} · "
                                                           f"{status.get('stage', '')}{eta}")
            if status.get("state") == "failed":
                st.error(status.get("message") or "the audit failed")
            elif status.get("state") == "cancelled":
                st.warning("Cancelled. Resume continues from the last finished stage and checkpoint.")

        st.fragment(marker_panel, run_every=2 if state in ACTIVE_STATES else None)()
        left, right, _ = st.columns([1, 1, 4])
        if left.button("Cancel", key="marker_cancel", disabled=state not in ACTIVE_STATES):
            with user_errors("Cancelling the audit"), st.spinner("Stopping the worker…"):
                audits.cancel_audit_job(job_id)
                st.rerun()
        if right.button("Resume", key="marker_resume", disabled=state not in ("failed", "cancelled")):
            with user_errors("Resuming the audit"):
                audits.resume_audit_job(job_id)
                st.rerun()


def ab_settings(prefix: str):
    """The embedding choice shared by the A/B and λ audits."""
    embeddings = st.radio("Text features", ["minilm", "tfidf"], key=f"{prefix}_embeddings", horizontal=True,
                          help="minilm: sentence embeddings, as in the paper (slow the first time, then cached); "
                               "tfidf: fast word features.")
    return audits.ABAuditConfig(embeddings=embeddings)


# ------------------------------------------------------------------ A/B-validated reward
with ab_tab:
    problem = audits.ab_roles_problem(roles)
    if problem:
        st.info(f"This audit needs A/B data: {problem}.")
    else:
        config = ab_settings("ab")
        if st.button("Run the A/B audit", type="primary", key="ab_run"):
            with user_errors("The A/B audit"), st.spinner("Finding significant pairs, embedding, fitting both heads…"):
                st.session_state["ab_result"] = (table, audits.ab_audit(store, table, config, roles))
        shown = st.session_state.get("ab_result")
        if shown and shown[0] == table:
            result = shown[1]
            (st.success if result.observational.test.auc >= 0.6 else st.warning)(result.verdict())
            st.altair_chart(audits.roc_chart(result))
            st.text(result.summary().split("\n\n", 1)[-1])

# ------------------------------------------------------------------ regularisation
with lambda_tab:
    config = ab_settings("lambda")
    grid_text = st.text_input("λ grid", "", key="lambda_grid", placeholder="default: 15 values from 0.01 to 100,000",
                              help="comma-separated positive values, or logspace:LOW:HIGH:COUNT")
    if st.button("Run the λ audit", type="primary", key="lambda_run"):
        with user_errors("The λ audit"), st.spinner("Fitting the observational head for every λ…"):
            grid = audits.parse_grid(grid_text)
            if grid is not None:
                config.grid = grid
            st.session_state["lambda_result"] = (table, audits.lambda_audit(store, table, config, roles))
    shown = st.session_state.get("lambda_result")
    if shown and shown[0] == table:
        result = shown[1]
        st.info(result.verdict())
        st.altair_chart(audits.lambda_chart(result))
        st.dataframe(result.curve, hide_index=True)
        for note in result.notes:
            st.caption(note)
