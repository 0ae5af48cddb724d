"""AppTest of the Train page: it launches a real background job (tiny settings through
$DECONFOUND_TRAIN_OVERRIDES) and cancels it; nothing trains inside Streamlit."""

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from deconfound import runs
from deconfound.data import Roles
from deconfound.sim import DEMO_ROLES, simulate

ROOT = Path(__file__).resolve().parents[1]
TINY = {"model.tiny_layers": 2, "model.tiny_width": 64, "model.tiny_vocab": 1000, "sft.max_steps": 200,
        "rl.max_steps": 4, "n_eval_prompts": 10, "threads": 1}


@pytest.fixture
def page(store, monkeypatch):
    monkeypatch.setenv("DECONFOUND_TRAIN_OVERRIDES", json.dumps(TINY))
    store.ingest_frame(simulate(scenario="entangled", n=300, seed=2), "sim")
    store.save_roles("sim", DEMO_ROLES)
    at = AppTest.from_file(str(ROOT / "pages" / "5_Train.py"), default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_page_launches_and_cancels_a_job(page):
    at = page
    assert at.multiselect(key="train_methods").value == ["oracle", "oracle_noise", "naive", "confounder_text",
                                                         "confounder_layer", "odin", "deconfounded"]
    at.multiselect(key="train_methods").set_value(["naive", "deconfounded"]).run()
    at.button(key="launch").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("Started run" in s.value for s in at.success)
    listed = runs.list_jobs()
    assert len(listed) == 1 and listed[0]["table"] == "sim" and listed[0]["methods"] == ["naive", "deconfounded"]
    job_id = listed[0]["id"]
    assert at.selectbox(key="train_run").value == job_id
    status = runs.job_status(job_id)
    assert status["state"] in runs.ACTIVE_STATES
    assert (Path(status["run_dir"]) / "data.parquet").is_file()
    assert "accelerate launch --num_processes 2 -m deconfound.worker" in at.code[-1].value
    pgid = json.loads((Path(status["run_dir"]) / "process.json").read_text())["pgid"]

    at.button(key="cancel").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert runs.job_status(job_id)["state"] == "cancelled"
    assert not runs.group_alive(pgid)
    assert any("Cancelled" in w.value for w in at.warning)
    assert not at.button(key="resume").disabled and at.button(key="cancel").disabled


def test_page_explains_missing_roles_and_methods(store, monkeypatch):
    frame = simulate(scenario="orthogonal", n=100, seed=0)
    store.ingest_frame(frame, "untagged")
    at = AppTest.from_file(str(ROOT / "pages" / "5_Train.py"), default_timeout=60).run()
    assert any("no column roles" in w.value for w in at.warning)
    store.save_roles("untagged", Roles(text="text", context="context", outcome="outcome"))
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    # No truth and no confounder tagged: only the naive method can run.
    assert at.multiselect(key="train_methods").options == ["naive"]
    at.multiselect(key="train_methods").set_value([]).run()
    assert at.button(key="launch").disabled


def test_run_list_and_status_come_from_job_status(page):
    """The run list shows name, table, methods, status, duration, created time and the note given at launch;
    the selector names a run by fixed facts only (a browser keeps showing an option's first label, so a state
    in it went stale), and the state shown is runs.job_status's, also after a cancel from elsewhere."""
    at = page
    at.multiselect(key="train_methods").set_value(["naive"]).run()
    at.text_input(key="train_name").set_value("first try")
    at.text_input(key="train_note").set_value("naive only, to see the pipeline").run()
    at.button(key="launch").click().run()
    assert not at.exception, [e.value for e in at.exception]
    (job,) = runs.list_jobs()
    assert (job["name"], job["note"]) == ("first try", "naive only, to see the pipeline")
    labels = at.selectbox(key="train_run").options                  # as the browser shows them (formatted)
    assert not any(state in label for label in labels for state in (*runs.ACTIVE_STATES, *runs.FINAL_STATES))
    assert "first try" in labels[0]
    runs.cancel_job(job["id"])                                       # e.g. `deconfound cancel` in a terminal
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert runs.job_status(job["id"])["state"] == "cancelled"
    assert any(m.value == "**Status: cancelled**" for m in at.markdown)
    listed = at.dataframe[0].value
    assert list(listed.columns) == ["name", "table", "methods", "status", "progress", "duration", "created", "note"]
    row = listed.iloc[0]
    assert (row["name"], row["table"], row["methods"], row["status"], row["note"]) == \
        ("first try", "sim", "naive", "cancelled", "naive only, to see the pipeline")
    assert row["created"] == job["created_at"][:19].replace("T", " ") and row["duration"] != ""
    assert not at.button(key="resume").disabled and at.button(key="cancel").disabled


def test_methods_choice_survives_reruns_and_reloads(page):
    at = page
    at.multiselect(key="train_methods").set_value(["naive", "deconfounded"]).run()
    at.radio(key="train_preset").set_value("cpu").run()
    assert at.multiselect(key="train_methods").value == ["naive", "deconfounded"]
    # a reload: the browser's URL holds the bound choice (?train_methods=naive&train_methods=deconfounded)
    reloaded = AppTest.from_file(str(ROOT / "pages" / "5_Train.py"), default_timeout=60)
    reloaded.query_params["train_methods"] = ["naive", "deconfounded"]
    reloaded.run()
    assert not reloaded.exception, [e.value for e in reloaded.exception]
    assert reloaded.multiselect(key="train_methods").value == ["naive", "deconfounded"]


def test_rl_algorithm_starts_from_the_presets_default_and_reaches_the_config(page):
    """The cpu preset samples and ranks by default (bench/results/rl_algorithms.md); GRPO stays a choice, and the
    choice is the run's rl.algorithm (what `--config` would repeat)."""
    at = page
    assert at.selectbox(key="train_algorithm_smoke").value == "grpo"
    at.radio(key="train_preset").set_value("cpu").run()
    assert at.selectbox(key="train_algorithm_cpu").value == "sample_rank"
    at.selectbox(key="train_algorithm_cpu").set_value("grpo").run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("RL grpo" in t.value for t in at.text), [t.value for t in at.text]
