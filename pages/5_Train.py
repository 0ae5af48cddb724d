"""Step 5 — Train: launch a background training run, watch it live, cancel or resume it.

Training never runs inside Streamlit: the page creates a run folder and starts a worker process
(`deconfound.jobs`); the live panel only reads the files that worker writes.
"""

import os

import altair as alt
import pandas as pd
import streamlit as st

from deconfound import runs
from deconfound.presets import PRESETS
from deconfound.rewards import METHODS, REWARD_METHODS, usable_methods
from ui.common import get_store, page_setup, tagged_table_or_stop, user_errors

page_setup("5 · Train", "🏋️")
st.markdown(
    "Fine-tune a generator on this table's logs and compare **reward methods**: each one trains a reward model "
    "on the logged outcomes in its own way, then teaches the generator (RL with a leash to the original model) "
    "to write texts that reward likes. The run happens in the background — you can leave this page, close the "
    "browser or restart the app, and come back to it here."
)

store = get_store()
table, roles = tagged_table_or_stop(store, "its text, context and outcome")

# ------------------------------------------------------------------ what to train
st.subheader("New run")
left, right = st.columns([1, 1])
with left:
    preset = st.radio("Size", list(PRESETS), key="train_preset", horizontal=True,
                      format_func=lambda p: PRESETS[p].label,
                      help="How big and how long. Start with the smoke test to check the pipeline end to end.")
    st.caption(f"**{PRESETS[preset].label}**: {PRESETS[preset].expected}.")
    model = st.text_input("Generator", key="train_model", placeholder=PRESETS[preset].model,
                          help="Empty: the preset's model. Or a local model folder, or a Hugging Face model id that "
                               "is already downloaded on this machine (nothing is downloaded).")
    run_dpo = st.checkbox("Also train DPO models", key="train_dpo",
                          help="A second way to fine-tune: pairs of the model's own texts, the better one by each "
                               "reward, train it directly (no RL). Adds one model per method.")
with right:
    usable = usable_methods(roles)
    methods = st.multiselect("Reward methods to compare", usable, default=usable, key="train_methods",
                             format_func=lambda m: m.replace("_", " "),
                             help="Each method trains one reward model and one fine-tuned generator.")
    with st.expander("What the methods mean"):
        st.markdown("\n".join(f"- **{m.replace('_', ' ')}** — {REWARD_METHODS[m].meaning}" for m in METHODS))
        if len(usable) < len(METHODS):
            st.caption("Methods that need a ground-truth column or a confounder this table lacks are not offered.")

overrides = runs.env_overrides()  # tests and demos shrink runs through $DECONFOUND_TRAIN_OVERRIDES
overrides.update({"methods": methods, "run_dpo": run_dpo} | ({"model.name": model.strip()} if model.strip() else {}))
config = None
with user_errors("Preparing the settings"):
    if methods:
        config = runs.preset_config(preset, table, store=store, overrides=overrides)
if config is not None:
    with st.expander("Settings this run will use"):
        st.text(config.summary())
        st.caption("Every setting (and its help) is in the run folder's config.json; "
                   "`deconfound train --config config.json` repeats a run from the command line.")
elif not methods:
    st.info("Choose at least one reward method.")

processes = int(st.number_input(
    "Processes", min_value=1, max_value=512, value=1, step=1, key="train_processes",
    help="1: one worker process. N: `accelerate launch` with N processes on this machine (one per GPU, or one per "
         "CPU core without a GPU); batch sizes are per process, so each step sees N times the rows. The command is "
         "under “Run it on a GPU machine or a cluster”."))
if st.button("Launch", type="primary", key="launch", disabled=config is None):
    with user_errors("Launching the run"):
        runs.check_processes(processes, config.preset, config.rl.algorithm)  # before the run folder exists
        job = runs.create_job(config, store=store)
        runs.start_job(job.id, num_processes=processes)
        st.session_state["train_run"] = job.id  # the live panel follows the new run
        st.success(f"Started run {job.id}. It runs in the background; progress appears below.")

# ------------------------------------------------------------------ runs of this table
table_runs = [j for j in runs.list_jobs() if j.get("table") == table]
if not table_runs:
    st.info("No runs for this table yet.")
    st.stop()

st.subheader("Runs")
ids = [j["id"] for j in table_runs]
if st.session_state.get("train_run") not in ids:  # another table's run, or a run deleted from disk
    st.session_state.pop("train_run", None)
job_id = st.selectbox("Run", ids, key="train_run",
                      format_func=lambda i: next(f"{j['id']} · {j['state']} · {', '.join(j['methods'] or [])}"
                                                 for j in table_runs if j["id"] == i),
                      help="Newest first. The live panel follows the run chosen here.")


def metric_charts(run_dir: str) -> None:
    """Reward, KL and loss per training step, one line per stage."""
    records = runs.RunFolder(run_dir).metrics()
    if not records:
        return
    frame = pd.DataFrame(records)
    columns = st.columns(3)
    for column, (key, title) in zip(columns, [("reward", "Reward (RL)"), ("kl", "KL to the starting model"),
                                              ("loss", "Loss")]):
        if key not in frame:
            continue
        data = frame.loc[frame[key].notna(), ["stage", "step", key]]
        if key in ("reward", "kl"):
            data = data[data["stage"].str.startswith("rl/")]
        if data.empty:
            continue
        chart = alt.Chart(data, title=title).mark_line(point=len(data) < 40).encode(
            x=alt.X("step:Q", title="step"), y=alt.Y(f"{key}:Q", title=key),
            color=alt.Color("stage:N", title="stage"), tooltip=["stage", "step", key])
        column.altair_chart(chart, width="stretch")


def live_panel() -> None:
    """Progress, curves and sample texts of the chosen run (re-drawn every 2 s while it runs)."""
    status = runs.job_status(job_id)
    state = status.get("state")
    if active and state not in runs.ACTIVE_STATES:  # it just ended: redraw the page (buttons, no more polling)
        st.rerun()
    progress = float(status.get("progress") or 0.0)
    eta = f" · about {runs.format_seconds(status['eta_s'])} left" if status.get("eta_s") else ""
    step = f" (step {status['stage_step']}/{status['stage_total']})" if status.get("stage_total") else ""
    st.progress(min(max(progress, 0.0), 1.0), text=f"{state} · {progress:.0%} · {status.get('stage', '')}{step}{eta}")
    if state == "failed":
        st.error(status.get("message") or "the run failed")
        st.code("\n".join(status.get("log_tail") or []) or "(empty log)", language="text")
    elif state == "completed":
        st.success(f"{status.get('message', 'finished')}. Compare the models on **Compare**.")
    elif state == "cancelled":
        st.warning("Cancelled. Resume continues from the last finished stage and the last checkpoint.")
    else:
        st.caption(status.get("message") or "")
    metric_charts(status["run_dir"])
    samples = runs.RunFolder(status["run_dir"]).samples(last=6)
    if samples:
        st.caption("Latest sample texts (a few held-out prompts after each trained model)")
        shown = pd.DataFrame(samples)[["model", "context", "text", "reward"]]
        shown["context"] = shown["context"].str.slice(0, 120)
        st.dataframe(shown, hide_index=True, width="stretch")


active = next(j["state"] for j in table_runs if j["id"] == job_id) in runs.ACTIVE_STATES
st.fragment(live_panel, run_every=2 if active else None)()

left, right, _ = st.columns([1, 1, 4])
if left.button("Cancel", key="cancel", disabled=not active,
               help="Stops the run at its next step; it keeps everything finished so far."):
    with user_errors("Cancelling the run"), st.spinner("Stopping the worker…"):
        runs.cancel_job(job_id)
        st.rerun()
resumable = next(j["state"] for j in table_runs if j["id"] == job_id) in ("failed", "cancelled")
if right.button("Resume", key="resume", disabled=not resumable,
                help="Continues a failed or cancelled run: finished stages are skipped."):
    with user_errors("Resuming the run"):
        runs.resume_job(job_id)
        st.rerun()

with st.expander("Run history"):
    history = pd.DataFrame(table_runs)[["id", "state", "progress", "stage", "methods", "preset", "created_at", "run_dir"]]
    history["methods"] = history["methods"].map(lambda m: ", ".join(m or []))
    st.dataframe(history, hide_index=True, width="stretch",
                 column_config={"progress": st.column_config.ProgressColumn("progress", min_value=0.0, max_value=1.0)})

with st.expander("Run it on a GPU machine or a cluster"):
    st.markdown(f"On this machine with {processes} process{'es' if processes > 1 else ''} (what Launch and "
                "Resume start; set it beside Launch):")
    with user_errors("Building the command"):
        st.code(runs.launch_command(job_id, processes), language="bash")
    processes = st.number_input("Processes (GPUs in total)", min_value=1, max_value=512, value=2, key="accel_processes")
    st.markdown("Copy the run folder to the machine, run this there (with `--resume` it continues a stopped run), "
                "then copy the folder back into the runs folder; it shows up here like any other run.")
    with user_errors("Building the command"):
        st.code(runs.accelerate_command(job_id, int(processes)), language="bash")
    st.caption(f"Runs folder: {os.fspath(runs.job_dir(job_id).parent)}")
