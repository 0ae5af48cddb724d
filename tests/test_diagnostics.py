"""Diagnostics against known answers: planted time effects, the simulation's team names and sentiment."""

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from deconfound.causal import (DiagnosticsConfig, diagnose, entanglement, scan_markers, temporal_leakage, time_patterns)
from deconfound.cli import main
from deconfound.data import Roles, Store
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
