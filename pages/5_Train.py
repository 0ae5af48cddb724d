"""Step 5 — Train: launch a background training run, watch it live, cancel or resume it, compare its curves.

Training never runs inside Streamlit: the page creates a run folder and starts a worker process
(`deconfound.jobs`); the live panel and the run list only read the files that worker writes, and every
status they show is `runs.job_status`'s (read again on each refresh).
"""

import os

import altair as alt
import pandas as pd
import streamlit as st

from deconfound import evaluate, runs
from deconfound.presets import PRESETS
from deconfound.rewards import METHODS, REWARD_METHODS, usable_methods
from deconfound.train.settings import RL_ALGORITHMS
from ui.common import get_store, page_setup, tagged_table_or_stop, training_blocked, user_errors

page_setup("5 · Train", "🏋️")
st.markdown(
    "Fine-tune a generator on this table's logs and compare **reward methods**: each one trains a reward model "
    "on the logged outcomes in its own way, then teaches the generator (RL with a leash to the original model) "
    "to write texts that reward likes. The run happens in the background — you can leave this page, close the "
    "browser or restart the app, and come back to it here."
)

store = get_store()
table, roles = tagged_table_or_stop(store, "its text, context and outcome")
table_runs = [j for j in runs.list_jobs() if j.get("table") == table]

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
    preset_algorithm = PRESETS[preset].rl.get("algorithm", "grpo")
    algorithm = st.selectbox(
        "RL algorithm", list(RL_ALGORITHMS), index=list(RL_ALGORITHMS).index(preset_algorithm),
        key=f"train_algorithm_{preset}",  # one choice per preset: each preset starts from its own default
        format_func=lambda a: a.replace("_", " ") + (" (this size's default)" if a == preset_algorithm else ""),
        help="How the generator learns from a reward. " + " ".join(
            f"**{a.replace('_', ' ')}**: {text}." for a, text in RL_ALGORITHMS.items()))
with right:
    usable = usable_methods(roles)
    # The choice survives reruns, page switches (session) and reloads (the URL); a first visit starts from the
    # methods of this table's latest run, else every method the table allows.
    last = [m for m in (table_runs[0]["methods"] if table_runs else []) or [] if m in usable]
    methods = st.multiselect("Reward methods to compare", usable, default=last or usable, key="train_methods",
                             format_func=lambda m: m.replace("_", " "), bind="query-params", persist_state="session",
                             help="Each method trains one reward model and one fine-tuned generator.")
    with st.expander("What the methods mean"):
        st.markdown("\n".join(f"- **{m.replace('_', ' ')}** — {REWARD_METHODS[m].meaning}" for m in METHODS))
        if len(usable) < len(METHODS):
            st.caption("Methods that need a ground-truth column or a confounder this table lacks are not offered.")
name_col, note_col = st.columns([1, 2])
run_name = name_col.text_input("Run name (optional)", key="train_name", max_chars=runs.jobs.MAX_NAME,
                               placeholder="e.g. IV vs naive",
                               help="Shown in the run list and on Compare; empty: the run's id.")
note = note_col.text_input("Note (optional)", key="train_note", max_chars=runs.jobs.MAX_NOTE,
                           placeholder="what this run tries, e.g. 'May logs, new instrument'",
                           help="Stored in the run folder (about.json) and shown in the run list.")

config = None
blocked = training_blocked(table, roles)
if blocked:  # the same sentence the Roles page shows (data.training_blockers)
    st.warning(blocked)
else:
    overrides = runs.env_overrides()  # tests and demos shrink runs through $DECONFOUND_TRAIN_OVERRIDES
    overrides.update({"methods": methods, "run_dpo": run_dpo, "rl.algorithm": algorithm})
    if model.strip():
        overrides["model.name"] = model.strip()
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
        job = runs.create_job(config, store=store, name=run_name, note=note)
        runs.start_job(job.id, num_processes=processes)
        st.session_state["train_run"] = job.id  # the live panel follows the new run
        st.success(f"Started run {job.id}. It runs in the background; progress appears below.")
        table_runs = [j for j in runs.list_jobs() if j.get("table") == table]

# ------------------------------------------------------------------ runs of this table
if not table_runs:
    st.info("No runs for this table yet.")
    st.stop()

st.subheader("Runs")
ids = [j["id"] for j in table_runs]
polling = any(j["state"] in runs.ACTIVE_STATES for j in table_runs)


def run_label(job: dict) -> str:
    """What the selector shows: fixed facts only. The state changes while the page is open, so it is shown by
    the live panel below (from `runs.job_status`), never frozen into a label."""
    name = job["name"] if job["name"] != job["id"] else ""
    created = (job.get("created_at") or "")[:16].replace("T", " ")
    return " · ".join(p for p in [name, job["id"], created, ", ".join(job["methods"] or [])] if p)


def run_list() -> None:
    """Every run of this table with its state and duration (re-read every 2 s while one runs)."""
    rows = [j for j in runs.list_jobs() if j.get("table") == table]
    if any(j["state"] in runs.ACTIVE_STATES for j in rows) != polling:
        st.rerun()  # a run started or ended elsewhere: redraw the page (buttons, polling)
    frame = pd.DataFrame([{"name": j["name"], "table": j["table"], "methods": ", ".join(j["methods"] or []),
                           "status": j["state"], "progress": j["progress"],
                           "duration": runs.format_seconds(j["duration_s"]) if j["duration_s"] is not None else "–",
                           "created": (j.get("created_at") or "")[:19].replace("T", " "), "note": j["note"]}
                          for j in rows])
    st.dataframe(frame, hide_index=True, width="stretch", key="run_list",
                 column_config={"progress": st.column_config.ProgressColumn("progress", format="percent",
                                                                            min_value=0.0, max_value=1.0)})


st.fragment(run_list, run_every=2 if polling else None)()

if st.session_state.get("train_run") not in ids:  # another table's run, or a run deleted from disk
    st.session_state.pop("train_run", None)
labels = {j["id"]: run_label(j) for j in table_runs}
job_id = st.selectbox("Run", ids, key="train_run", format_func=lambda i: labels.get(i, i),
                      help="Newest first. The live panel follows the run chosen here.")
state_at_load = runs.job_status(job_id).get("state")
active = state_at_load in runs.ACTIVE_STATES


def metric_charts(run_dir: str) -> None:
    """Reward (standardised, one panel per method), KL and loss per training step, in each model's colour."""
    records = runs.RunFolder(run_dir).metrics()
    if not records:
        return
    frame = pd.DataFrame(records)
    columns = st.columns(3)
    for column, (key, title) in zip(columns, [("reward", "Reward (RL, standardised)"),
                                              ("kl", "KL to the starting model"), ("loss", "Loss")]):
        if key not in frame:
            continue
        data = frame.loc[frame[key].notna(), ["stage", "step", key]]
        if key in ("reward", "kl"):
            data = data[data["stage"].str.startswith("rl/")]
        if data.empty:
            continue
        stages = list(dict.fromkeys(data["stage"]))
        colors = alt.Scale(domain=stages, range=[evaluate.model_color(s) for s in stages])
        y_title = evaluate.REWARD_TITLE if key == "reward" else key
        chart = alt.Chart(data, title=title).mark_line(point=len(data) < 40).encode(
            x=alt.X("step:Q", title="step"), y=alt.Y(f"{key}:Q", title=y_title),
            color=alt.Color("stage:N", title="stage", scale=colors), tooltip=["stage", "step", key])
        column.altair_chart(chart, width="stretch")


def live_panel() -> None:
    """State, progress, curves and sample texts of the chosen run, all from its folder (re-read every 2 s)."""
    status = runs.job_status(job_id)
    state = status.get("state")
    if active and state not in runs.ACTIVE_STATES:  # it just ended: redraw the page (buttons, no more polling)
        st.rerun()
    progress = float(status.get("progress") or 0.0)
    eta = f" · about {runs.format_seconds(status['eta_s'])} left" if status.get("eta_s") else ""
    step = f" (step {status['stage_step']}/{status['stage_total']})" if status.get("stage_total") else ""
    st.markdown(f"**Status: {state}**")
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


st.fragment(live_panel, run_every=2 if active else None)()

left, right, _ = st.columns([1, 1, 4])
if left.button("Cancel", key="cancel", disabled=not active,
               help="Stops the run at its next step; it keeps everything finished so far."):
    with user_errors("Cancelling the run"), st.spinner("Stopping the worker…"):
        runs.cancel_job(job_id)
        st.rerun()
resumable = state_at_load in ("failed", "cancelled")
if right.button("Resume", key="resume", disabled=not resumable,
                help="Continues a failed or cancelled run: finished stages are skipped."):
    with user_errors("Resuming the run"):
        runs.resume_job(job_id)
        st.rerun()

# ------------------------------------------------------------------ curves of several runs
with st.expander("Compare the reward curves of runs"):
    st.caption("Each RL step's mean reward, standardised the way RL sees it (each reward model's training mean 0, "
               "sd 1), one panel per reward method, one line style per run.")
    overlay = st.multiselect("Runs", ids, default=[job_id], max_selections=4, key="train_overlay",
                             format_func=lambda i: labels.get(i, i))
    curves = {labels.get(i, i): evaluate.training_curves(runs.job_dir(i)) for i in overlay}
    curves = {run: stages for run, stages in curves.items() if stages}
    if curves:
        st.altair_chart(evaluate.run_curves_chart(curves), width="content")
    else:
        st.caption("The chosen runs have no RL steps logged yet.")

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
