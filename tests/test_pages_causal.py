"""AppTest of pages 3 (Diagnostics) and 4 (Deconfound) on a temporary database with a tagged demo table."""

from dataclasses import replace
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from deconfound.data import Store, quote_ident
from deconfound.sim import DEMO_ROLES, load_demo

ROOT = Path(__file__).resolve().parents[1]


def page(path):
    return AppTest.from_file(str(ROOT / path), default_timeout=180)


def no_exception(at):
    assert not at.exception, [e.value for e in at.exception]


@pytest.fixture
def demo_db(home):
    store = Store(home / "studio.duckdb")
    load_demo(store, scenarios=("entangled",))
    return store


def test_diagnostics_page_shows_verdicts_then_charts(demo_db):
    at = page("pages/3_Diagnostics.py").run()
    no_exception(at)
    verdicts = [w.value for w in at.warning] + [i.value for i in at.info]
    assert any("travel with popularity" in v for v in verdicts)          # spurious markers
    assert any("popularity is entangled with the text" in v for v in verdicts)
    assert any("weekday" in v for v in verdicts)                         # time patterns
    assert at.subheader[0].value == "Verdicts"
    assert len(at.get("vega_lite_chart")) >= 4                      # time ×2, markers, entanglement
    # the leakage panel audits a chosen score column
    at.selectbox(key="diag_score").set_value("quality").run()
    no_exception(at)
    assert any("quality" in i.value and "monthly" in i.value for i in list(at.info) + list(at.warning))


def test_diagnostics_page_without_roles_explains(home):
    store = Store(home / "studio.duckdb")
    store.ingest_frame(__import__("pandas").DataFrame({"a": [1, 2]}), "untagged")
    at = page("pages/3_Diagnostics.py").run()
    no_exception(at)
    assert any("no column roles" in w.value for w in at.warning)


def test_deconfound_page_compares_and_saves_a_column(demo_db):
    at = page("pages/4_Deconfound.py").run()
    no_exception(at)
    assert at.radio(key="method").value == "iv"
    assert any("IV (2SLS) on 20,000 rows" in i.value for i in at.info)
    compare = at.dataframe[0].value
    assert set(compare["method"]) == {"Naive OLS", "IV (2SLS)"}
    iv = compare[compare["method"] == "IV (2SLS)"].iloc[0]
    assert abs(iv["coefficient"] - 0.1) < 0.01
    assert any("First-stage F" in m.label for m in at.metric)

    at.text_input(key="column_name_iv").set_value("outcome_fixed")
    at.button(key="save_column").click().run()
    no_exception(at)
    assert any("Saved 'outcome_fixed'" in s.value for s in at.success)
    meta = demo_db.column_meta("demo_entangled")
    assert meta["outcome_fixed"]["method"] == "iv"
    with demo_db.connect() as con:
        filled = con.execute(f"SELECT count(outcome_fixed) FROM {quote_ident('demo_entangled')}").fetchone()[0]
    assert filled == 20_000

    # refusing to overwrite the original outcome is a message, not a traceback
    at.text_input(key="column_name_iv").set_value("outcome")
    at.checkbox(key="replace_column").check()
    at.button(key="save_column").click().run()
    no_exception(at)
    assert any("never overwritten" in e.value for e in at.error)


def test_deconfound_page_without_instrument_offers_dml(demo_db):
    demo_db.save_roles("demo_entangled", replace(DEMO_ROLES, instruments=[]))
    at = page("pages/4_Deconfound.py").run()
    no_exception(at)
    assert at.radio(key="method").value == "dml"
    assert "iv" not in at.radio(key="method").options
    assert any("DML (partially linear)" in i.value for i in at.info)


def test_deconfound_page_without_confounder_says_what_to_tag(demo_db):
    demo_db.save_roles("demo_entangled", replace(DEMO_ROLES, confounders=[], instruments=[]))
    at = page("pages/4_Deconfound.py").run()
    no_exception(at)
    assert any("needs at least one **confounder** tagged on **Roles** before it can be deconfounded" in w.value
               for w in at.warning)
    assert not at.radio



def test_diagnostics_verdict_is_the_audit_its_section_shows(demo_db):
    """The verdicts and the leakage section read one audit: none until a score column exists or is picked (never
    a row id), then the same sentence in both places; p-values are written for people."""
    from deconfound.causal import estimate, temporal_leakage, write_deconfounded_column
    NO_SCORE_AUDITED = ("No score column was audited for temporal leakage yet: write a deconfounded outcome or "
                        "score the table with a reward model, then check whether its monthly means track the outcome.")
    at = page("pages/3_Diagnostics.py").run()
    no_exception(at)
    score = at.selectbox(key="diag_score")
    assert score.value is None and "id" not in score.options and "quality" in score.options
    texts = [w.value for w in at.warning] + [i.value for i in at.info]
    assert NO_SCORE_AUDITED in texts
    tests = at.dataframe[0].value
    assert list(tests["effect"]) == ["weekday", "month"] and all(isinstance(p, str) for p in tests["p-value"])
    at.selectbox(key="diag_score").set_value("quality").run()
    no_exception(at)
    texts = [w.value for w in at.warning] + [i.value for i in at.info]
    roles = demo_db.load_roles("demo_entangled")
    expected = temporal_leakage(demo_db, "demo_entangled", roles, "quality").verdict
    assert NO_SCORE_AUDITED not in texts and texts.count(expected) == 2    # verdicts and section agree
    # a corrected outcome is what the audit is for: a fresh visit audits it by default
    write_deconfounded_column(demo_db, "demo_entangled", estimate(demo_db, "demo_entangled", "iv"))
    fresh = page("pages/3_Diagnostics.py").run()
    no_exception(fresh)
    assert fresh.selectbox(key="diag_score").value == "outcome_deconf_iv"
    texts = [w.value for w in fresh.warning] + [i.value for i in fresh.info]
    verdict = temporal_leakage(demo_db, "demo_entangled", roles, "outcome_deconf_iv").verdict
    assert texts.count(verdict) == 2
