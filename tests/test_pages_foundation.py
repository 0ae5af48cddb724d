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
