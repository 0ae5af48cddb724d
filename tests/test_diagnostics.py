"""Diagnostics against known answers: planted time effects, the simulation's team names and sentiment."""

import json
import re
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from deconfound.causal import (NO_SCORE_AUDITED, DiagnosticsConfig, DiagnosticsReport, EntanglementResult,
                               LeakageResult, MarkerScanResult, TimePatternsResult, default_score, diagnose,
                               distinct_phrases, entanglement, entanglement_chart, leakage_candidates, leakage_chart,
                               looks_like_id, marker_chart, marker_chart_rows, marker_table, pvalue_text,
                               readable_pvalues, scan_markers, standardised_months, temporal_leakage, time_chart,
                               time_patterns, time_tests_table)
from deconfound.cli import main
from deconfound.data import Roles, Store, step_record
from deconfound.sim import DEMO_ROLES, TEAMS, load_demo, quality_scores


@pytest.fixture(scope="module")
def entangled_scan(demo):
    return scan_markers(demo.read_frame("demo_entangled"), DEMO_ROLES)


def valence_free_team_names() -> list[str]:
    """Team names VADER scores as neutral, so any outcome lift they have comes from popularity."""
    names = [t for teams in TEAMS.values() for t in teams]
    return [t.lower() for t, q in zip(names, quality_scores(names)) if q == 0.5]


def test_team_names_are_spurious_and_sentiment_is_not(demo, entangled_scan):
    markers = entangled_scan.markers.set_index("marker")
    teams = [t for t in valence_free_team_names() if t in markers.index]
    assert len(teams) >= 20
    significant = [t for t in teams if markers.loc[t, "lift_q"] < 0.01]
    assert len(significant) >= 10
    assert all(markers.loc[t, "status"] == "spurious" for t in significant), markers.loc[significant, "status"]
    assert not any(markers.loc[t, "status"] == "robust" for t in teams)

    # The truth: each marker's lift on the quality column itself. Markers flagged spurious carry (almost) no
    # quality; markers that carry a lot of it (sentiment words) are never flagged.
    truth = scan_markers(demo.read_frame("demo_entangled", ["text", "quality"]),
                         Roles(text="text", outcome="quality")).markers.set_index("marker")["lift"]
    spurious = entangled_scan.spurious()["marker"]
    assert len(spurious) >= 10
    assert truth.reindex(spurious).abs().max() < 0.1
    sentimental = truth[truth.abs() >= 0.2].index
    assert len(sentimental) >= 20
    assert not (markers.loc[sentimental, "status"] == "spurious").any()
    for word in ("great", "brutal", "loss"):
        assert markers.loc[word, "status"] in ("robust", "masked")
    assert "travel with popularity" in entangled_scan.verdict and entangled_scan.adjustment.startswith("IV")


def test_marker_scan_samples_large_tables_and_says_so(demo):
    from deconfound.causal import scan_markers_table
    result = scan_markers_table(demo, "demo_orthogonal", DEMO_ROLES, DiagnosticsConfig(marker_rows=3000))
    assert result.rows_scanned == 3000 and result.rows_total == 20_000 and result.sampled
    assert "sample of 3,000 of 20,000" in result.verdict
    assert any("sample" in n for n in result.notes)


def test_entanglement_flags_entangled_demo_only(demo):
    config = DiagnosticsConfig()
    results = {}
    for scenario in ("entangled", "orthogonal"):
        sample = demo.read_frame(f"demo_{scenario}", sample_rows=4000)
        results[scenario] = entanglement(sample, DEMO_ROLES, config, rows_total=20_000)
        # without the truth column the text-based check alone must agree
        no_truth = entanglement(sample, replace(DEMO_ROLES, truth=None), config)
        assert no_truth.entangled == (scenario == "entangled")
    ent, orth = (results[s].confounders.iloc[0] for s in ("entangled", "orthogonal"))
    assert results["entangled"].entangled and not results["orthogonal"].entangled
    assert ent["corr_truth"] < -0.3 and abs(orth["corr_truth"]) < 0.05
    assert ent["r2_text_beyond_instruments"] > 0.3 and orth["r2_text_beyond_instruments"] < 0.05
    assert orth["r2_instruments"] > 0.7  # in the orthogonal world the team's region is most of popularity
    assert "entangled" in results["entangled"].verdict and "not entangled" in results["orthogonal"].verdict
    assert "sample of 4,000 of 20,000" in results["entangled"].verdict


def planted_table(store, effect: float, seed: int = 0, n: int = 6000) -> str:
    rng = np.random.default_rng(seed)
    stamps = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 365 * 24 * 60, n), unit="min")
    y = rng.normal(0, 1, n) + effect * (stamps.dayofweek == 0)
    name = f"planted_{seed}_{int(effect * 100)}"
    store.ingest_frame(pd.DataFrame({"text": "a headline", "y": y, "ts": stamps,
                                     "score": y + rng.normal(0, 1, n)}), name)
    return name


def test_time_patterns_find_a_planted_weekday_effect_and_not_a_null(store):
    roles = Roles(text="text", outcome="y", timestamp="ts")
    found = time_patterns(store, planted_table(store, 0.4), roles)
    assert found.tests["weekday"]["material"] and found.tests["weekday"]["pvalue"] < 1e-6
    assert not found.tests["month"]["significant"]
    by_day = found.by_weekday.set_index("level")
    assert by_day.loc["Mon", "mean"] - by_day.drop("Mon")["mean"].mean() == pytest.approx(0.4, abs=0.12)
    assert by_day.loc["Mon", "ci_low"] > by_day.drop("Mon")["ci_high"].max()
    assert "weekday" in found.verdict and "moves with time" in found.verdict

    null_table = planted_table(store, 0.0, seed=1)
    null = time_patterns(store, null_table, roles)
    assert not null.tests["weekday"]["significant"] and not null.tests["month"]["significant"]
    assert null.verdict.startswith("No clear weekday or month pattern")
    # DuckDB's group statistics equal pandas' on the same rows
    frame = store.read_frame(null_table)
    means = frame.groupby(frame["ts"].dt.dayofweek)["y"].mean().to_numpy()
    np.testing.assert_allclose(null.by_weekday["mean"].to_numpy(), means, rtol=1e-9)
    assert null.by_weekday["n"].sum() == len(frame)


def test_time_patterns_without_timestamp_give_a_reason(store):
    result = time_patterns(store, "unused", Roles(text="t", outcome="y"))
    assert not result.applicable and "no timestamp" in result.verdict


def test_temporal_leakage_of_a_score(store):
    rng = np.random.default_rng(3)
    n = 4000
    stamps = pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.integers(0, 730, n), unit="D")
    season = np.sin(stamps.month.to_numpy() / 12 * 2 * np.pi)
    y = season + rng.normal(0, 1, n)
    store.ingest_frame(pd.DataFrame({"text": "x", "y": y, "ts": stamps,
                                     "leaky": 0.5 * season + rng.normal(0, 1, n),
                                     "clean": rng.normal(0, 1, n)}), "scores")
    roles = Roles(text="text", outcome="y", timestamp="ts")
    leaky = temporal_leakage(store, "scores", roles, "leaky")
    clean = temporal_leakage(store, "scores", roles, "clean")
    assert len(leaky.months) == 24
    assert leaky.leaks and leaky.corr > 0.8 and "track" in leaky.verdict
    assert not clean.leaks and abs(clean.corr) < 0.5
    assert "not checked" in temporal_leakage(store, "scores", Roles(text="text", outcome="y"), "clean").verdict


def test_diagnose_report_and_cli(home, capsys):
    store = Store(home / "studio.duckdb")
    load_demo(store, scenarios=("orthogonal",))
    report = diagnose(store, "demo_orthogonal", scores=["quality"])
    text = json.dumps(report.to_dict(), allow_nan=False)
    assert len(report.verdicts()) == 4 and all(v.endswith(".") for v in report.verdicts())
    assert '"kind": "markers"' in text and report.seconds["markers"] > 0
    assert main(["diagnose", "--table", "demo_orthogonal"]) == 0
    out = capsys.readouterr().out
    assert "not entangled" in out and "top spurious markers" in out
    assert main(["diagnose", "--table", "demo_orthogonal", "--json", "--score", "quality"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert {"time_patterns", "markers", "entanglement", "leakage", "verdicts"} <= set(payload)
    assert payload["leakage"][0]["score"] == "quality"


def test_embeddings_minilm_cached_and_tfidf(home, monkeypatch):
    """MiniLM vectors are unit-length, similar texts are closer, a second call reads the on-disk cache."""
    from deconfound.causal import text_features as embeddings
    texts = ["Great win for the home team", "Brilliant victory for the home side", "Tragic injury ends season"]
    first = embeddings.embed_texts(texts, model="minilm", batch_size=2, threads=1)
    assert first.shape == (3, 384) and first.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)
    assert first[0] @ first[1] > first[0] @ first[2]
    assert list((home / "cache" / "embeddings").glob("*.sqlite"))
    monkeypatch.setattr(embeddings, "_encode", lambda *a, **k: pytest.fail("cache miss"))
    np.testing.assert_array_equal(embeddings.embed_texts(texts, model="minilm"), first)
    words = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima".split()
    corpus = [f"{words[i % 12]} {words[(i * 5) % 11]} {words[(i * 7) % 9]}" for i in range(200)]
    tfidf = embeddings.embed_texts(corpus, model="tfidf", dim=8)
    assert tfidf.shape == (200, 8)
    np.testing.assert_allclose(np.linalg.norm(tfidf, axis=1), 1.0, atol=1e-5)


def test_entanglement_with_minilm_embeddings(demo, home):
    sample = demo.read_frame("demo_entangled", sample_rows=600)
    result = entanglement(sample, replace(DEMO_ROLES, truth=None), DiagnosticsConfig(embeddings="minilm", folds=3))
    row = result.confounders.iloc[0]
    assert result.embeddings == "minilm" and row["r2_text_beyond_instruments"] > 0.2 and result.entangled


def test_distinct_phrases_shows_overlapping_phrases_once():
    phrases = ["omaha ironmen", "omaha", "strong finish", "by strong finish", "great", "ironmen win"]
    assert distinct_phrases(phrases, 3) == ["omaha ironmen", "strong finish", "great"]
    assert distinct_phrases(phrases, 10) == ["omaha ironmen", "strong finish", "great", "ironmen win"]
    assert distinct_phrases(phrases, 0) == []


def hand_scan() -> MarkerScanResult:
    rows = [("omaha ironmen", "spurious", 0.30, 1e-10, 0.01), ("omaha", "spurious", 0.25, 1e-9, 0.0),
            ("boston", "spurious", 0.20, 1e-8, 0.02), ("denver", "spurious", 0.35, 1e-6, 0.03),
            ("great", "robust", 0.40, 1e-12, 0.35), ("great win", "robust", 0.38, 1e-11, 0.33),
            ("loss", "robust", -0.50, 1e-12, -0.45), ("brutal", "masked", -0.10, 0.5, -0.30),
            ("the", "", 0.9, 0.6, 0.9)]
    markers = pd.DataFrame(rows, columns=["marker", "status", "lift", "lift_p", "adjusted_lift"])
    markers = markers.assign(n=100, lift_q=markers["lift_p"], adjusted_q=0.5, assoc_popularity=0.2,
                             assoc_popularity_q=0.01)
    return MarkerScanResult(markers=markers, rows_scanned=1000, rows_total=1000, confounders=["popularity"],
                            min_count=30, alpha=0.01)


def test_marker_chart_rows_half_spurious_half_kept_overlaps_once():
    scan = hand_scan()
    # the verdict's examples follow the same rule: 'omaha' is inside 'omaha ironmen'
    assert "(e.g. 'omaha ironmen', 'boston', 'denver')" in scan.verdict
    small = marker_chart_rows(scan, 4)  # 2 spurious by evidence, 2 kept by |lift|
    assert list(small["marker"]) == ["great", "omaha ironmen", "boston", "loss"]
    assert list(small["status"]) == ["robust", "spurious", "spurious", "robust"]
    rows = marker_chart_rows(scan, 10)
    assert list(rows["marker"]) == ["great", "denver", "omaha ironmen", "boston", "brutal", "loss"]
    assert rows.set_index("marker").loc["brutal", "status"] == "hidden by confounder"
    spec = marker_chart(rows).to_dict()
    assert spec["height"] == 240 and spec["layer"][0]["encoding"]["y"]["sort"] == list(rows["marker"])
    assert spec["layer"][0]["encoding"]["color"]["scale"]["domain"] == ["spurious", "robust", "hidden by confounder"]
    assert list(marker_table(scan).columns) == ["marker", "n", "lift", "adjusted_lift", "lift_q", "adjusted_q",
                                                "status", "assoc_popularity"]


def test_time_tests_table_and_chart():
    weekday = {"f_stat": 12.5, "df1": 6, "df2": 993, "pvalue": 1e-9, "share": 0.07, "significant": True,
               "material": True}
    month = {"reason": "needs at least two groups with data", "significant": False}
    result = TimePatternsResult(applicable=True, outcome="y", timestamp="ts", tests={"weekday": weekday, "month": month})
    table = time_tests_table(result)
    assert list(table.columns) == ["effect", "F", "p-value", "share of variance", "matters"]
    assert table.iloc[0].to_dict() == {"effect": "weekday", "F": 12.5, "p-value": 1e-9, "share of variance": 0.07,
                                       "matters": True}
    assert table.iloc[1]["effect"] == "month" and pd.isna(table.iloc[1]["F"])
    frame = pd.DataFrame({"level": ["Mon", "Tue"], "n": [10, 12], "mean": [0.1, 0.2], "sd": [1.0, 1.0],
                          "ci_low": [0.0, 0.1], "ci_high": [0.2, 0.3]})
    spec = time_chart(frame, "weekday", "y", ["Mon", "Tue"]).to_dict()
    assert spec["height"] == 260 and spec["layer"][0]["encoding"]["y"]["title"] == "mean y"
    assert spec["layer"][1]["encoding"]["y"]["title"] == "mean y (95% CI)"


def test_leakage_candidates_and_standardised_months(store):
    frame = pd.DataFrame({"text": ["a", "b", "c"], "y": [1.0, 2.0, 3.0], "ts": pd.to_datetime(["2024-01-01"] * 3),
                          "flag": [True, False, True], "small": np.array([1, 2, 3], dtype="int8"),
                          "count": np.array([4, 5, 6], dtype="int32"), "q": [0.1, 0.2, 0.3]})
    store.ingest_frame(frame, "kinds")
    rowids = store.read_frame("kinds", ["y"], with_rowid=True)["_rowid"].to_numpy()
    store.write_column("kinds", "derived", np.array([0.5, 0.6, 0.7]), rowids, meta={"kind": "deconfounded_outcome"})
    roles = Roles(text="text", outcome="y", timestamp="ts", truth="q")
    # derived scores first, then the truth, then the other numbers; never the outcome, text, time or booleans
    assert leakage_candidates(store, "kinds", roles) == ["derived", "q", "small", "count"]

    months = pd.DataFrame({"month": ["2024-01", "2024-02", "2024-03"], "n": [5, 5, 5],
                           "score_mean": [1.0, 2.0, 3.0], "outcome_mean": [2.0, 2.0, 5.0]})
    leak = LeakageResult(score="s", outcome="y", months=months, corr=0.87, pvalue=0.3, threshold=0.5)
    long = standardised_months(leak)
    assert list(long["series"]) == ["s"] * 3 + ["y"] * 3
    np.testing.assert_allclose(long["value"], [-1, 0, 1, -1 / np.sqrt(3), -1 / np.sqrt(3), 2 / np.sqrt(3)])
    flat = standardised_months(LeakageResult(score="s", outcome="y", months=months.assign(score_mean=4.0),
                                             corr=np.nan, pvalue=np.nan, threshold=0.5))
    assert (flat["value"][:3] == 0).all()  # a flat series stays at 0 instead of dividing by 0
    spec = leakage_chart(long).to_dict()
    assert spec["mark"] == {"type": "line", "point": True} and spec["height"] == 240


def test_entanglement_chart_shows_the_three_r2():
    rows = pd.DataFrame({"confounder": ["p", "c"], "r2_text": [0.3, 0.1], "r2_instruments": [0.6, np.nan],
                         "r2_text_beyond_instruments": [-0.02, 0.1], "entangled": [True, False]})
    result = EntanglementResult(confounders=rows, rows=100, rows_total=100, embeddings="tfidf", truth=None,
                                instruments=["z"])
    spec = entanglement_chart(result).to_dict()
    (values,) = spec["datasets"].values()
    assert len(values) == 5  # the missing R² of the instruments is left out
    assert {v["measure"] for v in values} == {"text", "instruments", "text beyond instruments"}
    assert spec["encoding"]["x"]["scale"]["domain"] == [-0.02, 1]
    assert spec["encoding"]["row"]["field"] == "confounder" and spec["height"] == 110



# ------------------------------------------------------------------ readable charts and numbers (issue 15)
def test_marker_chart_labels_every_bar_under_the_dashboard_theme():
    """30 phrases → 30 labels, none hidden for overlap or cut short, as Streamlit's theme draws them."""
    from chart_render import render, visible_texts
    words = ["encouraged", "strong", "despite loss", "confident", "lose but", "but take positives into next",
             "positives into", "into next week", "hopeful", "ahead", "rival beats", "hope to", "norfolk", "clippers",
             "wanderers", "worcester wanderers", "monarchs", "providence", "leaders", "club", "road", "young",
             "beat rival", "roster", "past rival", "sloppy", "extend", "scare", "survive", "defense"]
    rows = pd.DataFrame({"marker": words, "n": 50, "lift": np.linspace(0.6, -0.5, 30),
                         "adjusted_lift": np.linspace(0.3, -0.2, 30),
                         "status": ["spurious", "robust", "hidden by confounder"] * 10})
    svg = render(marker_chart(rows), width=700)
    labels = visible_texts(svg, "axis-label")
    assert [w for w in words if w in labels] == words                     # every bar labelled, in order
    assert not any(t.endswith("…") for t in labels)
    assert visible_texts(svg, "axis-title") == ["outcome lift when present"]


def test_time_charts_one_axis_title_and_a_readable_105_month_axis():
    from chart_render import render, visible_texts
    months = pd.period_range("2016-01", periods=105, freq="M").astype(str)
    frame = pd.DataFrame({"level": months, "n": 100, "mean": np.linspace(0, 1, 105), "sd": 1.0})
    frame = frame.assign(ci_low=frame["mean"] - 0.1, ci_high=frame["mean"] + 0.1)
    svg = render(time_chart(frame, "month", "outcome_deconf_iv"), width=800)
    assert visible_texts(svg, "axis-title") == ["month", "mean outcome_deconf_iv"]   # one title, not two joined
    labels = [t for t in visible_texts(svg, "axis-label") if not re.fullmatch(r"−?[\d.]+", t)]
    # a label a year or so apart, horizontal, in calendar order (not 105 labels nor every 4th month on its side)
    assert 5 <= len(labels) <= 20 and labels[0] == "Jan 2016"
    dates = pd.to_datetime(labels, format="%b %Y")
    assert dates.is_monotonic_increasing and dates[-1] <= pd.Timestamp("2024-09-01")
    assert "rotate(" not in re.search(r'role-axis-label".*?</g>', svg, re.S).group(0)
    weekday = frame.head(7).assign(level=["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"])
    svg = render(time_chart(weekday, "weekday", "y", list(weekday["level"])), width=300)
    assert visible_texts(svg, "axis-title") == ["weekday", "mean y"]
    assert [t for t in visible_texts(svg, "axis-label") if t.isalpha()] == list(weekday["level"])


def test_leakage_chart_title_is_whole():
    from chart_render import render, visible_texts
    months = pd.DataFrame({"month": pd.period_range("2022-01", periods=24, freq="M").astype(str), "n": 5,
                           "score_mean": np.sin(np.arange(24)), "outcome_mean": np.cos(np.arange(24))})
    leak = LeakageResult(score="outcome_deconf_iv", outcome="outcome", months=months, corr=0.1, pvalue=0.6,
                         threshold=0.5)
    svg = render(leakage_chart(standardised_months(leak)), width=700)
    assert visible_texts(svg, "axis-title") == ["month", "z-score of monthly mean"]


def test_pvalues_are_written_for_people():
    assert [pvalue_text(p) for p in (0.043, 0.5, 1.0, 0.0012, 3.14e-8, 1e-300, 0.0, float("nan"), None)] == \
        ["0.043", "0.5", "1", "0.0012", "3.1e-08", "1.0e-300", "< 1e-300", "–", "–"]
    weekday = {"f_stat": 900.0, "df1": 6, "df2": 10**6, "pvalue": 0.0, "share": 0.05, "significant": True,
               "material": True}
    result = TimePatternsResult(applicable=True, outcome="y", timestamp="ts", tests={"weekday": weekday})
    assert "p < 1e-300" in result.verdict and "p = 0)" not in result.verdict
    shown = readable_pvalues(time_tests_table(result))
    assert shown.loc[0, "p-value"] == "< 1e-300" and shown.loc[0, "F"] == 900.0
    assert time_tests_table(result).loc[0, "p-value"] == 0.0                 # the numbers stay numbers


def test_leakage_default_is_a_derived_score_never_an_id(store):
    frame = pd.DataFrame({"id": np.arange(40), "user_id": np.arange(40) * 7, "Unnamed: 0": np.arange(40),
                          "text": "x", "y": np.linspace(0, 1, 40), "ts": pd.date_range("2024-01-01", periods=40),
                          "q": np.linspace(1, 0, 40), "clicks": np.arange(40) % 5})
    store.ingest_frame(frame, "ids")
    roles = Roles(text="text", outcome="y", timestamp="ts", truth="q")
    assert leakage_candidates(store, "ids", roles) == ["q", "clicks"]
    assert default_score(store, "ids", roles) is None                       # nothing to audit by default yet
    rowids = store.read_frame("ids", ["y"], with_rowid=True)["_rowid"].to_numpy()
    store.write_column("ids", "y_deconf_iv", np.zeros(40), rowids, meta={"kind": "deconfounded_outcome",
                                                                        "created_at": "2026-01-01T00:00:00"})
    store.write_column("ids", "y_deconf_dml", np.ones(40), rowids, meta={"kind": "deconfounded_outcome",
                                                                        "created_at": "2026-02-01T00:00:00"})
    assert default_score(store, "ids", roles) == "y_deconf_dml"             # the newest corrected outcome
    assert [looks_like_id(c) for c in ("id", "user_id", "Index", "rowid", "column0", "idea", "paid", "quality")] == \
        [True, True, True, True, True, False, False, False]


def test_report_verdicts_use_the_audit_they_are_given():
    scan = hand_scan()
    tp = TimePatternsResult(applicable=False, reason="no timestamp column is tagged")
    report = DiagnosticsReport(table="t", rows=10, time_patterns=tp, markers=scan, entanglement=None, leakage=[])
    assert report.findings()[-1] == (NO_SCORE_AUDITED, False)
    months = pd.DataFrame({"month": ["2024-01", "2024-02", "2024-03"], "n": 5, "score_mean": [1.0, 2.0, 3.0],
                           "outcome_mean": [1.0, 2.0, 3.1]})
    leak = LeakageResult(score="s", outcome="y", months=months, corr=0.99, pvalue=0.01, threshold=0.5)
    assert report.findings(leakage=[leak])[-1] == (leak.verdict, True)
    assert NO_SCORE_AUDITED not in [v for v, _ in report.findings(leakage=[leak])]


def test_diagnostics_are_recorded_for_the_roles_they_ran_on(store):
    frame = pd.DataFrame({"text": ["good game", "bad loss"] * 30, "y": np.linspace(0, 1, 60),
                          "ts": pd.date_range("2024-01-01", periods=60, freq="W")})
    store.ingest_frame(frame, "log")
    roles = Roles(text="text", outcome="y", timestamp="ts")
    store.save_roles("log", roles)
    assert step_record(store, "log", "diagnostics") is None
    diagnose(store, "log")
    record = step_record(store, "log", "diagnostics")
    assert record["detail"]["rows"] == 60 and record["recorded_at"]
    rowids = store.read_frame("log", ["y"], with_rowid=True)["_rowid"].to_numpy()
    store.write_column("log", "y_fixed", np.zeros(60), rowids, meta={"kind": "deconfounded_outcome"})
    assert step_record(store, "log", "diagnostics") is not None              # a derived column changes nothing
    store.save_roles("log", replace(roles, timestamp=None))
    assert step_record(store, "log", "diagnostics") is None                  # other roles: not diagnosed yet
    store.save_roles("log", roles)
    assert step_record(store, "log", "diagnostics") is not None
    store.drop("log")
    store.ingest_frame(frame.head(50), "log")                                # another table under the same name
    store.save_roles("log", roles)
    assert step_record(store, "log", "diagnostics") is None
    assert "_deconfound_steps" not in store.tables()
