"""AppTest of the Audits page: it loads the audit demo tables, runs the A/B and λ audits with a verdict first,
refuses bad input in one sentence, and starts a marker audit as a background job that it can cancel; nothing
trains inside Streamlit."""

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from deconfound import audits
from deconfound.runs import group_alive

ROOT = Path(__file__).resolve().parents[1]
TINY = {"model.tiny_layers": 2, "model.tiny_width": 64, "model.tiny_vocab": 600, "sft.max_steps": 400,
        "train_seeds": [0], "gen_seeds": [0], "n_eval_prompts": 10, "threads": 1}


@pytest.fixture
def page(home, monkeypatch):
    monkeypatch.setenv(audits.OVERRIDES_ENV, json.dumps(TINY))
    at = AppTest.from_file(str(ROOT / "pages" / "7_Audits.py"), default_timeout=120).run()
    assert not at.exception, [e.value for e in at.exception]
    at.button(key="load_audit_demo").click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_ab_and_lambda_audits_show_their_verdicts(page):
    at = page
    at.selectbox(key="table_picker").set_value("demo_ab").run()
    at.radio(key="ab_embeddings").set_value("tfidf").run()
    at.button(key="ab_run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("held-out A/B pairs" in s.value and "AUC" in s.value for s in [*at.success, *at.warning])
    at.radio(key="lambda_embeddings").set_value("tfidf").run()
    at.text_input(key="lambda_grid").set_value("0,1").run()
    at.button(key="lambda_run").click().run()
    assert [e.value for e in at.error] == ["every λ in the grid must be positive (got 0): λ is an L2 penalty "
                                           "strength, e.g. 0.1,1,10,100"]
    at.text_input(key="lambda_grid").set_value("0.1,10,1000").run()
    at.button(key="lambda_run").click().run()
    assert not at.exception and not at.error
    assert any("Validation error alone picks" in i.value for i in at.info)


def test_a_table_without_ab_columns_is_explained(page):
    at = page
    at.selectbox(key="table_picker").set_value("demo_qa").run()
    assert any("needs A/B data" in i.value and "experiment and arm" in i.value for i in at.info)


def test_marker_audit_starts_in_the_background_and_cancels(page):
    at = page
    at.selectbox(key="table_picker").set_value("demo_qa").run()
    at.text_input(key="marker_phrase").set_value("").run()
    at.button(key="marker_launch").click().run()
    assert any("marker phrase is empty" in e.value for e in at.error) and not audits.list_audit_jobs()
    at.text_input(key="marker_phrase").set_value("Happy Monday!").run()
    at.button(key="marker_launch").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("Started audit" in s.value for s in at.success)
    listed = audits.list_audit_jobs("demo_qa")
    assert len(listed) == 1 and listed[0]["rule"] == "weekday=Mon" and listed[0]["marker"] == "Happy Monday!"
    job_id = listed[0]["id"]
    assert at.selectbox(key="marker_job").value == job_id
    assert audits.audit_status(job_id)["state"] in ("queued", "running")
    config = json.loads((Path(listed[0]["run_dir"]) / "config.json").read_text())
    assert config["kind"] == "audit/marker" and config["sft"]["max_steps"] == 400
    pgid = json.loads((Path(listed[0]["run_dir"]) / "process.json").read_text())["pgid"]
    at.button(key="marker_cancel").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert audits.audit_status(job_id)["state"] == "cancelled" and not group_alive(pgid)
    assert not at.button(key="marker_resume").disabled and at.button(key="marker_cancel").disabled
