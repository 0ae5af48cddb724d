"""AppTest of the real-log paths on the Data and Roles pages: the bad-lines error with its way on right under it,
the rejected lines shown with the table; a table without a context, a time confounder on a log scale."""

from pathlib import Path

from streamlit.testing.v1 import AppTest

from deconfound.data import Store

ROOT = Path(__file__).resolve().parents[1]
MESSY = (b"votes,title,posted\n3,good morning,2024-01-01 10:00:00\n5,broken\ntitle,2024-01-02 10:00:00\n"
         b'7,"quoted\nfine",2024-01-03 10:00:00\n9,last,2024-01-04 10:00:00\n')


def app(path):
    return AppTest.from_file(str(ROOT / path), default_timeout=60)


def test_data_page_offers_to_skip_bad_lines_and_shows_them(home):
    at = app("pages/1_Data.py").run()
    at.file_uploader(key="upload").set_value(("titles.csv", MESSY, "text/csv")).run()
    at.button(key="ingest").click().run()
    assert not at.exception
    assert any("2 lines could not be parsed" in e.value and "lines 3, 4" in e.value for e in at.error)
    store = Store(home / "studio.duckdb")
    assert store.tables() == []  # nothing loaded until the user says so
    assert at.button(key="ingest_skipping").disabled
    at.checkbox(key="skip_bad_rows").check().run()
    at.button(key="ingest_skipping").click().run()
    assert not at.exception
    assert store.row_count("titles") == 3 and store.rejected_count("titles") == 2
    assert any("2 lines rejected" in s.value for s in at.success)
    at.run()
    assert any("2 lines of the file were rejected" in e.label for e in at.expander)


def test_roles_page_without_context_and_time_as_confounder(home, tmp_path):
    store = Store(home / "studio.duckdb")
    path = tmp_path / "t.csv"
    path.write_text("title,votes,posted\nA b,3,2024-01-01 10:00:00\nC d,-1,2024-01-02 10:00:00\n")
    store.ingest(path, table="t")
    at = app("pages/2_Roles.py").run()
    assert not at.exception
    assert any("editor instruction alone" in c.value for c in at.caption)
    at.selectbox(key="role_outcome_t").set_value("votes").run()
    at.multiselect(key="role_confounders_t").set_value(["posted"]).run()
    at.radio(key="role_scale_t").set_value("log1p").run()
    assert any("negative values" in e.value for e in at.error)  # the data check, before saving
    assert at.button(key="save_roles").disabled
    at.radio(key="role_scale_t").set_value("raw").run()
    at.text_input(key="role_prompt_template_t").set_value("Posted at {posted}").run()
    assert any("column(s) posted" in c.value for c in at.caption)
    at.button(key="save_roles").click().run()
    assert not at.exception
    roles = store.load_roles("t")
    assert roles.context is None and roles.confounders == ["posted"] and roles.prompt_template == "Posted at {posted}"
