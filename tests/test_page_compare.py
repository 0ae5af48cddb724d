"""AppTest of page 6 (Compare) on a run folder built here."""

import html
import json
import re
from pathlib import Path

from streamlit.testing.v1 import AppTest
from test_evaluation import make_run

from deconfound import evaluate as ev

ROOT = Path(__file__).resolve().parents[1]


def page():
    return AppTest.from_file(str(ROOT / "pages/6_Compare.py"), default_timeout=90)


def test_compare_page_without_runs_explains(home):
    at = page().run()
    assert not at.exception
    assert any("No run has generations yet" in i.value for i in at.info)


def test_compare_page_shows_conclusion_table_and_generations(home):
    run = make_run(home / "runs" / "20250101-120000-ab12", n=40, seeds=(0,))
    (run / "status.json").write_text(json.dumps({"state": "completed", "progress": 1.0}))
    expected = ev.compare(run).conclusion()

    at = page().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.info[0].value == expected                      # the conclusion comes first
    assert "The deconfounded model" in expected
    table = at.dataframe[0].value
    assert list(table["model"])[:2] == ["Base (pre-trained)", "SFT"] and "names East" in table.columns
    naive_row = table[table["model"] == "RL: observed outcome (naive)"].iloc[0]
    assert naive_row["names East"].endswith("***")
    generations = [m.value for m in at.markdown if "<table class='gen'>" in m.value]
    assert generations and "<mark" in generations[0]

    # the user's own markers replace the team regions
    at.text_area(key="markers").set_value("brilliant, wonderful").run()
    assert not at.exception
    assert "names brilliant" in at.dataframe[0].value.columns
    assert re.search(r"'(brilliant|wonderful)' markers in 100.0% of generations", at.info[0].value)

    # only some models, and a hostile text stays text
    gens = run / "generations.csv"
    frame = ev.load_generations(run)
    frame.loc[(frame["model"] == "sft") & (frame["prompt_id"] == 0), "text"] = "<b>bold</b> headline"
    frame.to_csv(gens, index=False)
    at.multiselect(key="models").set_value(["sft", "rl_naive"]).run()
    assert not at.exception
    shown = next(m.value for m in at.markdown if "<table class='gen'>" in m.value)
    assert html.escape("<b>bold</b>") in shown and "<b>bold</b>" not in shown
    assert "RL: deconfounded" not in shown


def test_compare_page_bad_marker_json_is_a_message(home):
    run = make_run(home / "runs" / "20250101-120000-cd34", n=20, seeds=(0,))
    (run / "status.json").write_text(json.dumps({"state": "completed"}))
    at = page().run()
    at.text_area(key="markers").set_value('{"East": [').run()
    assert not at.exception
    assert any("not valid JSON" in e.value for e in at.error)


def test_compare_page_probes_which_marker_group_each_reward_favours(home):
    """Real TF-IDF rewards on the entangled simulation: the probe shows the naive reward preferring East teams."""
    from deconfound.rewards import RewardColumns, RewardConfig, train_reward
    from deconfound.sim import simulate
    run = make_run(home / "runs" / "20250101-120000-cd34", n=40, seeds=(0,))
    (run / "status.json").write_text(json.dumps({"state": "completed", "progress": 1.0}))
    data = simulate(scenario="entangled", n=6000, seed=5)
    data["corrected"] = data["outcome"] - 0.1 * data["popularity"]
    columns = RewardColumns(text="text", context="context", outcome="outcome", truth="quality", corrected="corrected")
    for method in ("naive", "deconfounded"):
        train_reward(RewardConfig(method=method, backbone="tfidf"), data[data["split"] != "rm_valid"],
                     data[data["split"] == "rm_valid"], columns, run / "rewards" / method)

    at = page().run()
    assert not at.exception, [e.value for e in at.exception]
    tables_before = len(at.dataframe)
    at.button(key="probe").click().run()
    assert not at.exception, [e.value for e in at.exception]
    probe = next(d.value for d in at.dataframe if "spread" in d.value.columns)
    assert len(at.dataframe) == tables_before + 1
    naive = probe[probe["reward method"] == "observed outcome (naive)"].iloc[0]
    deconfounded = probe[probe["reward method"] == "deconfounded (DeconfoundLM)"].iloc[0]
    assert naive["East"] > naive["Central"] > naive["West"]
    assert deconfounded["spread"] < 0.5 * naive["spread"]


def test_loading_the_compare_page_writes_no_export(home):
    """The downloads are made when their button is clicked (deferred): loading the page writes nothing."""
    run = make_run(home / "runs" / "20250101-120000-ef56", n=20, seeds=(0,))
    (run / "status.json").write_text(json.dumps({"state": "completed"}))
    before = {p: p.stat().st_mtime_ns for p in run.rglob("*")}
    at = page().run()
    assert not at.exception, [e.value for e in at.exception]
    downloads = at.get("download_button")
    assert [d.proto.label for d in downloads] == ["Generations (CSV)", "Metrics (JSON)", "Report (HTML)"]
    assert not (run / "outputs" / "generations.csv").exists() and not (run / "outputs" / "report.html").exists()
    assert {p: p.stat().st_mtime_ns for p in run.rglob("*")} == before   # no file written or touched


def test_compare_page_offers_the_model_as_a_zip(home):
    """A run with a trained model: the Hugging Face folder is a download (built on click), not only a write."""
    from test_report import _tiny_run_models
    run = make_run(home / "runs" / "20250101-120000-ab99", n=20, seeds=(0,))
    (run / "status.json").write_text(json.dumps({"state": "completed"}))
    _tiny_run_models(run)
    before = {p: p.stat().st_mtime_ns for p in run.rglob("*")}
    at = page().run()
    assert not at.exception, [e.value for e in at.exception]
    labels = [d.proto.label for d in at.get("download_button")]
    assert labels == ["Generations (CSV)", "Metrics (JSON)", "Report (HTML)", "Download as a Hugging Face folder (zip)"]
    assert {p: p.stat().st_mtime_ns for p in run.rglob("*")} == before   # nothing built until it is clicked
    assert at.selectbox(key="compare_run").options == ["20250101-120000-ab99 · demo_entangled"]  # no frozen state
