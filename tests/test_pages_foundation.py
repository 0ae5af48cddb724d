"""AppTest of the home, Data and Roles pages: load the demo, upload a file, tag roles."""

from pathlib import Path

from streamlit.testing.v1 import AppTest

from deconfound.data import Store

ROOT = Path(__file__).resolve().parents[1]


def app(path):
    return AppTest.from_file(str(ROOT / path), default_timeout=60)


def no_exception(at):
    assert not at.exception, [e.value for e in at.exception]


def test_home_loads_demo(home):
    at = app("app.py").run()
    no_exception(at)
    at.button(key="load_demo").click().run()
    no_exception(at)
    assert any("Loaded and tagged" in s.value for s in at.success)
    store = Store(home / "studio.duckdb")
    assert set(store.tables()) == {"demo_entangled", "demo_orthogonal"}
    assert store.load_roles("demo_entangled").instruments == ["team_region"]


def test_data_page_upload_clash_and_drop(home):
    at = app("pages/1_Data.py").run()
    no_exception(at)
    at.file_uploader(key="upload").set_value(("My Logs.csv", b"title,ctr\nA,0.1\nB,0.2\n", "text/csv")).run()
    assert at.text_input(key="upload_name").value == "my_logs"
    at.button(key="ingest").click().run()
    no_exception(at)
    store = Store(home / "studio.duckdb")
    assert store.tables() == ["my_logs"] and store.row_count("my_logs") == 2
    # Same name again: the page asks; keeping both loads under a new name.
    at.run()
    assert at.radio(key="clash_mode")
    at.button(key="ingest").click().run()
    assert sorted(store.tables()) == ["my_logs", "my_logs_2"]
    # Nothing is written outside the uploads folder, and staged files are removed.
    assert list((home / "uploads").iterdir()) == []


def test_data_page_bad_upload_is_a_message(home):
    at = app("pages/1_Data.py").run()
    at.file_uploader(key="upload").set_value(("evil'; DROP TABLE x;.csv", b"a,b\n1,2\n3,4,5\n", "text/csv")).run()
    at.button(key="ingest").click().run()
    no_exception(at)
    assert any("different numbers of fields" in e.value for e in at.error)
    assert Store(home / "studio.duckdb").tables() == []


def test_roles_page_tags_and_validates(home, tmp_path):
    store = Store(home / "studio.duckdb")
    csv = tmp_path / "t.csv"
    csv.write_text("headline,abstract,clicks,label,pop,region\nA,x,0.1,l,1.0,W\nB,y,0.2,m,2.0,E\n")
    store.ingest(csv, table="t")
    at = app("pages/2_Roles.py").run()
    no_exception(at)
    assert at.selectbox(key="role_text_t").value == "headline"  # guessed from the name
    at.selectbox(key="role_outcome_t").set_value("label").run()
    assert any("not numeric" in e.value for e in at.error)
    assert at.button(key="save_roles").disabled
    at.selectbox(key="role_outcome_t").set_value("clicks").run()
    at.multiselect(key="role_confounders_t").set_value(["pop"]).run()
    at.multiselect(key="role_instruments_t").set_value(["region"]).run()
    at.button(key="save_roles").click().run()
    no_exception(at)
    roles = store.load_roles("t")
    assert roles.outcome == "clicks" and roles.confounders == ["pop"] and roles.instruments == ["region"]


# ------------------------------------------------------------------ issue 15: what an analyst met
def test_upload_name_follows_each_file_and_the_picker_follows_the_load(home):
    store = Store(home / "studio.duckdb")
    at = app("pages/1_Data.py").run()
    at.file_uploader(key="upload").set_value(("tweets_clean.csv", b"text,likes\nA,1\nB,2\n", "text/csv")).run()
    assert at.text_input(key="upload_name").value == "tweets_clean"
    at.button(key="ingest").click().run()
    no_exception(at)
    # the second file of the session is proposed, and loaded, under its own name
    at.file_uploader(key="upload").set_value(("airbnb.csv", b"title,bookings\nC,3\nD,4\nE,5\n", "text/csv")).run()
    assert at.text_input(key="upload_name").value == "airbnb"
    assert not at.radio                                                 # no clash, nothing to overwrite
    at.button(key="ingest").click().run()
    no_exception(at)
    assert sorted(store.tables()) == ["airbnb", "tweets_clean"]
    assert store.row_count("tweets_clean") == 2 and store.row_count("airbnb") == 3
    assert at.selectbox(key="table_picker").value == "airbnb"          # the page now shows what was loaded


def test_a_delete_confirmation_belongs_to_one_table_and_one_click(home):
    store = Store(home / "studio.duckdb")
    for name in ("alpha", "beta"):
        store.ingest_frame(__import__("pandas").DataFrame({"text": ["a", "b"], "y": [1.0, 2.0]}), name)
    at = app("pages/1_Data.py").run()
    at.selectbox(key="table_picker").set_value("beta").run()
    assert at.query_params["table"] == "beta"
    (box,) = at.checkbox
    assert "beta" in box.label and at.button(key="drop").disabled
    box.check().run()
    assert not at.button(key="drop").disabled
    at.button(key="drop").click().run()
    no_exception(at)
    assert store.tables() == ["alpha"]
    assert any(s.value == "Deleted `beta`." for s in at.success)       # it says what it did
    assert at.selectbox(key="table_picker").value == "alpha" and at.query_params["table"] == "alpha"
    (box,) = at.checkbox
    assert "alpha" in box.label and not box.value and at.button(key="drop").disabled   # nothing stays armed


def test_roles_and_train_state_the_same_training_rule(home):
    """One rule (data.training_blockers), one sentence, on both pages — whatever the rule says."""
    from deconfound.data import training_blockers
    store = Store(home / "studio.duckdb")
    store.ingest_frame(__import__("pandas").DataFrame({"headline": ["a", "b"], "clicks": [0.1, 0.2]}), "t")
    roles = app("pages/2_Roles.py").run()
    no_exception(roles)
    roles.selectbox(key="role_text_t").set_value("headline")
    roles.selectbox(key="role_outcome_t").set_value("clicks").run()
    roles.button(key="save_roles").click().run()
    no_exception(roles)
    saved = store.load_roles("t")
    assert saved.text == "headline" and saved.outcome == "clicks" and saved.context is None
    train = app("pages/5_Train.py").run()
    no_exception(train)
    shown_roles = [w.value for w in roles.warning]
    shown_train = [w.value for w in train.warning] + [e.value for e in train.error]
    if training_blockers(saved):
        (said,) = [m for m in shown_train if "cannot be trained" in m]
        assert sum(said in w for w in shown_roles) == 1                 # Roles says exactly what Train says…
        assert train.button(key="launch").disabled
        for blocker in training_blockers(saved):                        # …from the rule, once
            assert blocker in said and sum(blocker in w for w in shown_roles) == 1
    else:
        assert not train.button(key="launch").disabled
        assert not any("cannot be trained" in w for w in shown_roles + shown_train)


def test_sidebar_names_the_home_page_home():
    import tomllib
    at = app("app.py").run()
    no_exception(at)
    links = [link.proto.label for link in at.sidebar.get("page_link")]
    assert links == ["Home", "1 · Data", "2 · Roles", "3 · Diagnostics", "4 · Deconfound", "5 · Train",
                         "6 · Compare"]
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["client"]["showSidebarNavigation"] is False          # Streamlit's own list would say "app"
    assert config["server"]["fileWatcherType"] == "none"               # defect 3: no watcher burning a core


def checklist(at) -> dict[str, bool]:
    names = ["Data", "Roles", "Diagnostics", "Deconfound", "Train", "Compare"]
    marks = [m.value for m in at.markdown if m.value in ("✅", "⬜")]
    assert len(marks) == len(names)
    return {name: mark == "✅" for name, mark in zip(names, marks)}


def test_home_checklist_ticks_what_is_stored(home):
    import json
    from dataclasses import replace

    from deconfound.causal import diagnose
    from deconfound.sim import DEMO_ROLES, load_demo
    store = Store(home / "studio.duckdb")
    load_demo(store, scenarios=("entangled",))
    at = app("app.py").run()
    no_exception(at)
    assert checklist(at) == {"Data": True, "Roles": True, "Diagnostics": False, "Deconfound": False,
                             "Train": False, "Compare": False}          # tagged, nothing run yet
    diagnose(store, "demo_entangled")
    assert checklist(at.run())["Diagnostics"]
    store.save_roles("demo_entangled", replace(DEMO_ROLES, controls=["sport"]))
    assert not checklist(at.run())["Diagnostics"]                        # ran on other roles: run it again
    store.save_roles("demo_entangled", DEMO_ROLES)
    # a finished run whose reward learned from the corrected outcome: Deconfound, Train and Compare are done
    run = home / "runs" / "20260101-120000-ab12"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"table": "demo_entangled", "methods": ["naive", "deconfounded"]}))
    (run / "status.json").write_text(json.dumps({"state": "completed", "progress": 1.0}))
    (run / "generations.csv").write_text("prompt_id,context,model,seed,text\n")
    assert checklist(at.run()) == dict.fromkeys(["Data", "Roles", "Diagnostics", "Deconfound", "Train", "Compare"],
                                                True)
    (run / "config.json").write_text(json.dumps({"table": "demo_entangled", "methods": ["naive"]}))
    assert not checklist(at.run())["Deconfound"]                         # a naive run removed nothing
