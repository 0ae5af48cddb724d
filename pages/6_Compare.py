"""Step 6 — Compare: the models of a finished run side by side, with intervals, markers and exports."""

import json
from pathlib import Path

import pandas as pd
import streamlit as st

from deconfound import evaluate, runs
from deconfound.errors import DeconfoundError
from ui.common import page_setup, user_errors

page_setup("6 · Compare", "⚖️")
st.markdown(
    "Each finished run generated text for held-out prompts with every model it trained: the **base** "
    "model, **SFT** (imitates the logs), **naive RL** (rewarded by the raw outcome), the **baselines** and "
    "the **deconfounded** model (rewarded by the outcome with the confounders removed). Here you see which "
    "one writes better text, and which one learned to lean on spurious markers such as naming a popular team."
)


@st.cache_data(show_spinner="Scoring every generation…", max_entries=8)
def load_comparison(run_dir: str, stamp: float, scorer: str, markers: str, reference: str):
    """The comparison of one run (cached until generations.csv changes)."""
    config = evaluate.EvalConfig(scorer=scorer, markers=json.loads(markers) if markers else None,
                                   reference=reference)
    return evaluate.compare(run_dir, config)


@st.cache_data(show_spinner="Scoring validation rows with each reward model…", max_entries=4)
def load_points(run_dir: str, stamp: float):
    return evaluate.reward_truth_points(run_dir)


@st.cache_data(show_spinner="Scoring the same headlines with each group's names…", max_entries=4)
def load_preferences(run_dir: str, stamp: float, groups: str):
    return evaluate.reward_marker_preferences(run_dir, json.loads(groups))


finished = [j for j in runs.list_jobs() if (Path(j["run_dir"]) / "generations.csv").is_file()]
if not finished:
    st.info("No run has generations yet. Launch one on **Train**; when it has finished, its models appear here.")
    st.stop()

# Fixed facts only: a label is not redrawn when a run's state changes, so it never shows one.
labels = {j["run_dir"]: " · ".join(dict.fromkeys([j["name"], j["id"]])) + f" · {j.get('table') or '?'}"
          for j in finished}
run_dir = st.sidebar.selectbox("Run", list(labels), format_func=labels.get, key="compare_run",
                               help="Runs that have finished generating (newest first).")
methods = sorted(p.parent.name for p in Path(run_dir).glob("rewards/*/config.json"))
# The run's own default first: sentiment is the simulation's truth; a table without one is judged by the
# independent evaluator (`evaluate.defaults`), and VADER is not offered for it.
default_scorer = evaluate.default_scorer(run_dir)
scorer = st.sidebar.selectbox("Quality measure", [default_scorer] + [f"reward:{m}" for m in methods], key="scorer",
                              format_func=lambda s: {"sentiment": "sentiment (the simulation's truth)",
                                                     "evaluator": "independent evaluator"}.get(s, s),
                              help="Sentiment is the simulation's true quality. For other tables, the independent "
                                   "evaluator: a reward model trained on the deconfounded outcome from held-out rows "
                                   "with features no RL reward saw. A run's reward model scores text the way that "
                                   "method's reward saw it.")
markers_text = st.sidebar.text_area(
    "Markers to count", key="markers", placeholder='Happy, Monday   or   {"East": ["Boston", "New York"]}',
    help="Words whose use you want to track, as comma-separated words or JSON groups. Empty: the run's defaults — "
         "team names per region for the demo data; for other tables the phrases the Diagnostics flag as spurious, "
         "a categorical confounder's levels and a time confounder's weekday and month names.")
stamp = (Path(run_dir) / "generations.csv").stat().st_mtime

result = None
with user_errors("Comparing the models"):
    try:
        groups = evaluate.parse_marker_groups(markers_text)
    except DeconfoundError as exc:
        st.sidebar.error(f"{exc}; counting the default markers instead.")
        groups = None
    result = load_comparison(run_dir, stamp, scorer, "" if groups is None else json.dumps(groups), "sft")
if result is None:
    st.stop()

st.subheader("What this run shows")
st.info(result.conclusion())

st.subheader("Models side by side")
level = int(result.config["level"] * 100)
table = result.table1()
shown = pd.DataFrame({
    "model": table["label"], "generations": table["n"],
    "quality": [f"{q:.3f}{evaluate.stars(p)}" for q, p in zip(table["quality"], table["quality_p"])],
    f"{level}% CI": [f"{lo:.3f} – {hi:.3f}" for lo, hi in zip(table["quality_lo"], table["quality_hi"])],
})
for group in result.marker_groups:
    shown[f"names {group}"] = [f"{c} ({r:.1%}){evaluate.stars(p)}" for c, r, p in
                               zip(table[f"{group}_count"], table[f"{group}_rate"], table[f"{group}_p"])]
shown["length"] = table["length"].round(1)
shown["distinct-2"] = table["distinct_2"].round(3)
shown["repetition"] = table["repetition"].round(3)
shown["empty"] = table["empty_share"].map(lambda v: f"{v:.1%}")
if table["perplexity"].notna().any():  # fluency, measured for runs whose base model is pretrained
    shown["perplexity (base model)"] = table["perplexity"].round(1)
    shown["cut off"] = table["cut_off_share"].map(lambda v: "—" if v is None or v != v else f"{v:.1%}")
st.dataframe(shown, hide_index=True, width="stretch")
st.caption(f"Quality = {result.scorer_label}. Stars mark a difference from SFT (* p<0.05, ** p<0.01, "
           "*** p<0.001). Marker columns count generations that name the group. Distinct-2: share of word pairs "
           "that are new (higher = more varied); repetition: share of repeated words inside a text.")

st.markdown("**Mean quality with its interval**")
st.altair_chart(evaluate.quality_chart(result), width="stretch")
if result.marker_groups:
    st.markdown("**How often each model names each marker group** (bars: share of generations; lines: interval)")
    st.altair_chart(evaluate.marker_chart(result), width="content")
else:
    st.caption("No markers counted: give words to track in the sidebar.")

points = evaluate.cached_reward_points(run_dir)
if any(v.get("valid") is not None or v.get("train") is not None for v in result.reward_truth_corr.values()):
    st.subheader("How well each reward follows true quality")
    st.caption("Pearson correlation between each reward model's score and the true quality (simulation only). "
               "A reward that correlates poorly teaches the model the wrong thing.")
    st.dataframe(result.table2()[["label", "train", "valid"]].rename(columns={"label": "reward method"}),
                 hide_index=True)
    if points is None and st.button("Draw reward-vs-truth scatter", key="scatter",
                                    help="Scores a sample of validation rows with every reward model."):
        with user_errors("Scoring the validation rows"):
            points = load_points(run_dir, stamp)
    if points is not None and len(points):
        st.altair_chart(evaluate.scatter_chart(points))

if result.marker_groups and methods:
    st.markdown("**Does a reward favour a marker group?**")
    st.caption("Each reward model scores the same neutral headlines ('<name> Win Again', 'Injury Update for "
               "<name>', …) with every group's names filled in. A reward that learned the confounder scores one "
               "group higher (on the demo data the naive reward prefers the popular East teams); a deconfounded "
               "one scores them alike. Spread: highest minus lowest group, in the reward's units.")
    if st.button("Probe the rewards", key="probe", help="Loads each reward model of the run once."):
        st.session_state["probe_run"] = run_dir
    if st.session_state.get("probe_run") == run_dir:
        with user_errors("Probing the reward models"):
            prefs = load_preferences(run_dir, stamp, json.dumps(result.marker_groups))
            st.dataframe(prefs.drop(columns="method").rename(columns={"label": "reward method"}).round(3),
                         hide_index=True)

st.subheader("Generations for chosen prompts")
generations = evaluate.load_generations(run_dir)
prompts = generations.drop_duplicates("prompt_id")[["prompt_id", "context"]]
chosen = st.multiselect("Prompts", prompts["prompt_id"].tolist(), default=prompts["prompt_id"].tolist()[:3],
                        key="prompts", format_func=lambda pid: f"{pid}: " + str(
                            prompts.loc[prompts["prompt_id"] == pid, "context"].iloc[0])[:80])
labels = {name: m.label for name, m in result.models.items()}
models = st.multiselect("Models", list(result.models), default=list(result.models), key="models",
                        format_func=lambda name: labels.get(name, name))
if chosen and models:
    st.markdown(evaluate.generations_table_html(generations, models, result.marker_groups, prompt_ids=chosen,
                                              labels=labels),
                unsafe_allow_html=True)  # every generated text is HTML-escaped before markers are added

st.subheader("Export")
st.caption("Generations with their scores (CSV), every metric (JSON), a report that opens offline (HTML), "
           "or a trained model as a Hugging Face folder with a model card.")
name = Path(run_dir).name
c1, c2, c3 = st.columns(3)
# Each file is made when its button is clicked (a callable `data`), never on a rerun, and nothing is written.
c1.download_button("Generations (CSV)", lambda: evaluate.generations_csv(run_dir, result), f"{name}-generations.csv",
                   "text/csv", key="dl_csv")
c2.download_button("Metrics (JSON)", lambda: evaluate.metrics_json(run_dir, result), f"{name}-metrics.json",
                   "application/json", key="dl_json")
c3.download_button("Report (HTML)", lambda: evaluate.render_report(run_dir, result, points), f"{name}-evaluate.html",
                   "text/html", key="dl_html")
trained = list(evaluate.run_model_folders(run_dir))
if trained:
    pick, how = st.columns(2)
    model_name = pick.selectbox("Model to export", trained, key="export_model",
                                  format_func=lambda name: evaluate.model_label(name, run_dir))
    merge = how.radio("As", ["merged model", "LoRA adapter"], key="export_how", horizontal=True) == "merged model"
    zip_col, folder_col = st.columns(2)
    # The zip is built when the button is clicked (a temporary folder in the run folder, removed at once).
    zip_col.download_button("Download as a Hugging Face folder (zip)",
                            lambda: evaluate.export_model_zip(run_dir, model_name, merge=merge, result=result),
                            f"{name}-{model_name}{'-merged' if merge else ''}.zip", "application/zip",
                            key="dl_model_zip", type="primary",
                            help="The model (or adapter) files with a README.md model card, zipped.")
    if folder_col.button("Write it into the run folder instead", key="export",
                         help="For use on this machine: writes run_folder/outputs/<model>."):
        with user_errors("Exporting the model"), st.spinner("Writing the model folder…"):
            out = evaluate.export_model(run_dir, model_name, merge=merge, result=result)
            st.success(f"Written to `{out}` (with a README.md model card).")
