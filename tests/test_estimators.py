"""Estimators against the simulation's known truth: popularity's effect on the outcome is 0.1."""

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from deconfound.causal import (EstimateResult, EstimatorConfig, column_terms, compare_estimates,
                               corrected_columns_table, corrected_sample, deconfounded_outcome, estimate,
                               estimates_chart, estimator_choices, explain_test, fit_dml, fit_iv, fit_ols,
                               outcome_density_chart, spec_tests_table, time_effects, truth_correlations,
                               write_deconfounded_column)
from deconfound.causal.terms import reference_level
from deconfound.cli import main
from deconfound.data import Roles, Store, quote_ident
from deconfound.errors import DeconfoundError
from deconfound.sim import DEMO_ROLES, TRUE_POPULARITY_COEF, load_demo

TRUTH = TRUE_POPULARITY_COEF


@pytest.fixture(scope="module")
def frames(demo):
    return {s: demo.read_frame(f"demo_{s}") for s in ("entangled", "orthogonal")}


@pytest.mark.parametrize("scenario", ["entangled", "orthogonal"])
def test_iv_recovers_the_true_coefficient(demo, scenario):
    result = estimate(demo, f"demo_{scenario}", "iv")
    assert result.n >= 20_000
    assert abs(result.coef["popularity"] - TRUTH) <= 0.01
    lo, hi = result.conf_int["popularity"]
    assert lo < result.coef["popularity"] < hi and hi - lo < 0.02
    stage = result.first_stage["popularity"]
    assert stage["f_stat"] > 100 and 0 < stage["partial_r2"] < 1
    # three region dummies for one endogenous variable: over-identified, and the instrument is valid
    sargan = result.tests["sargan"]
    assert sargan["df"] == 2 and sargan["pvalue"] > 0.01
    assert not any("weak instrument" in w for w in result.warnings)
    payload = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    for key in ("method", "n", "coef", "std_err", "conf_int", "first_stage", "tests", "warnings"):
        assert key in payload
    assert set(payload["first_stage"]["popularity"]) >= {"f_stat", "partial_r2"}
    assert EstimateResult.from_dict(payload).coef == result.coef


def test_ols_is_biased_only_when_entangled(demo):
    entangled = estimate(demo, "demo_entangled", "ols")
    orthogonal = estimate(demo, "demo_orthogonal", "ols")
    assert abs(entangled.coef["popularity"] - TRUTH) > 0.03  # ≈ 0.05: sad stories are popular
    assert abs(orthogonal.coef["popularity"] - TRUTH) < 0.01
    # Wu–Hausman sees the endogeneity where it exists
    assert estimate(demo, "demo_entangled", "iv").tests["wu_hausman"]["pvalue"] < 1e-6
    assert estimate(demo, "demo_orthogonal", "iv").tests["wu_hausman"]["pvalue"] > 0.01
    assert entangled.tests["sargan"] == {"reason": "over-identification tests apply to IV only"}


def test_absorbed_time_effects_equal_explicit_dummies(frames):
    """Weekday and month fixed effects are absorbed (Frisch–Waugh); linearmodels with every dummy agrees."""
    from linearmodels.iv import IV2SLS
    data = frames["entangled"]
    ours = fit_iv(data, DEMO_ROLES)
    exog = pd.concat([pd.DataFrame({"const": 1.0}, index=data.index), time_effects(data["published_at"])], axis=1)
    assert exog.shape[1] > 20
    instruments, _ = column_terms(data, ["team_region"])
    ref = IV2SLS(data["outcome"], exog, data[["popularity"]], instruments).fit(cov_type="robust")
    assert ours.coef["popularity"] == pytest.approx(ref.params["popularity"], rel=1e-9)
    assert ours.std_err["popularity"] == pytest.approx(ref.std_errors["popularity"], rel=1e-6)
    assert ours.tests["sargan"]["stat"] == pytest.approx(ref.sargan.stat, rel=1e-6)
    assert ours.tests["wu_hausman"]["stat"] == pytest.approx(ref.wu_hausman().stat, rel=1e-6)
    diag = ref.first_stage.diagnostics.loc["popularity"]
    assert ours.first_stage["popularity"]["partial_r2"] == pytest.approx(diag["partial.rsquared"], rel=1e-6)
    assert ours.first_stage["popularity"]["f_stat"] == pytest.approx(diag["f.stat"] / 3, rel=1e-6)


def synthetic(n=4000, strength=1.0, seed=0, instrument="categorical"):
    """y = 0.1·p + u with p confounded by u; the instrument moves p by `strength` per level."""
    rng = np.random.default_rng(seed)
    u = rng.normal(0, 1, n)
    level = rng.integers(0, 4, n)
    p = strength * level + 2.0 * u + rng.normal(0, 1, n)
    frame = pd.DataFrame({"y": 0.1 * p + u + rng.normal(0, 0.1, n), "p": p, "text": "x"})
    if instrument == "categorical":
        frame["z"] = np.array(["None", "W", "C", "E"])[level]
    else:
        frame["z"] = level.astype(float)
    return frame


def test_weak_instrument_warns_loudly():
    roles = Roles(text="text", outcome="y", confounders=["p"], instruments=["z"])
    weak = fit_iv(synthetic(strength=0.02), roles)
    assert weak.first_stage["p"]["f_stat"] < 10
    assert any("weak instrument" in w for w in weak.warnings)
    assert "weak" in weak.verdict()
    strong = fit_iv(synthetic(strength=1.0), roles)
    assert strong.first_stage["p"]["f_stat"] > 100
    assert abs(strong.coef["p"] - 0.1) < 0.05 and not strong.warnings


def test_exactly_identified_sargan_gives_a_reason():
    roles = Roles(text="text", outcome="y", confounders=["p"], instruments=["z"])
    result = fit_iv(synthetic(instrument="numeric"), roles)
    assert "reason" in result.tests["sargan"] and "stat" not in result.tests["sargan"]
    assert "stat" in result.tests["wu_hausman"]


def test_categorical_columns_become_dummies_with_a_reference():
    assert reference_level(pd.Series(["E", "None", "E", "W"])) == "None"
    assert reference_level(pd.Series(["b", "a", "b", "c"])) == "b"  # else the most frequent
    rng = np.random.default_rng(1)
    tier = rng.choice(["basic", "plus", "pro"], size=3000, p=[0.5, 0.3, 0.2])
    effect = pd.Series(tier).map({"basic": 0.0, "plus": 0.5, "pro": 1.0}).to_numpy()
    data = pd.DataFrame({"y": effect + rng.normal(0, 0.1, 3000), "tier": tier, "text": "x"})
    result = fit_ols(data, Roles(text="text", outcome="y", confounders=["tier"]))
    assert result.terms == ["tier[plus]", "tier[pro]"]
    assert result.coef["tier[plus]"] == pytest.approx(0.5, abs=0.02)
    assert result.coef["tier[pro]"] == pytest.approx(1.0, abs=0.02)
    corrected, offset = deconfounded_outcome(data, result, centre=False)
    assert offset == 0.0
    assert np.std(corrected) < 0.12  # only the noise is left


def test_iv_without_instrument_is_a_clear_error(frames):
    with pytest.raises(DeconfoundError, match="instrument"):
        fit_iv(frames["entangled"], replace(DEMO_ROLES, instruments=[]))


def test_dml_without_instrument_beats_naive_ols(frames):
    """No instrument: DML partials out what the headline predicts. Here the outcome's non-confounder part is
    a function of the headline (its sentiment), so that removes the entangled channel; it would not if the
    link ran through something the text features cannot see."""
    roles = replace(DEMO_ROLES, instruments=[])
    data = frames["entangled"]
    dml = fit_dml(data, roles, EstimatorConfig(folds=3))
    ols = fit_ols(data, roles)
    assert abs(dml.coef["popularity"] - TRUTH) < 0.01
    assert abs(dml.coef["popularity"] - TRUTH) < abs(ols.coef["popularity"] - TRUTH) / 3
    assert dml.first_stage == {} and "reason" in dml.tests["sargan"]
    assert 0.3 < dml.nuisance["r2"]["popularity"] < 1
    assert any("unbiased only if" in n for n in dml.notes)


def test_deconfounded_column_round_trips_with_meta(demo):
    table = "demo_entangled"
    with demo.connect() as con:
        before = con.execute(f"SELECT sum(outcome), sum(outcome * id) FROM {quote_ident(table)}").fetchone()
    result = estimate(demo, table, "iv")
    meta = write_deconfounded_column(demo, table, result, name="outcome_iv_test", replace=True)
    assert meta["column"] == "outcome_iv_test" and meta["method"] == "iv"
    stored = demo.column_meta(table)["outcome_iv_test"]
    for key in ("method", "coef", "std_err", "formula", "created_at", "source_outcome"):
        assert key in stored
    assert stored["source_outcome"] == "outcome" and stored["coef"]["popularity"] == result.coef["popularity"]
    frame = demo.read_frame(table, ["outcome", "popularity", "quality", "outcome_iv_test"])
    expected = frame["outcome"] - result.coef["popularity"] * (frame["popularity"] - frame["popularity"].mean())
    np.testing.assert_allclose(frame["outcome_iv_test"], expected, atol=1e-9)
    assert frame["outcome_iv_test"].mean() == pytest.approx(frame["outcome"].mean())  # centred: same scale
    # the corrected outcome follows quality; the raw one barely does in the entangled scenario
    raw = np.corrcoef(frame["outcome"], frame["quality"])[0, 1]
    fixed = np.corrcoef(frame["outcome_iv_test"], frame["quality"])[0, 1]
    assert fixed > 0.9 and fixed > raw + 0.3
    with demo.connect() as con:
        after = con.execute(f"SELECT sum(outcome), sum(outcome * id) FROM {quote_ident(table)}").fetchone()
    assert after == before
    with pytest.raises(DeconfoundError, match="never overwritten"):
        write_deconfounded_column(demo, table, result, name="outcome", replace=True)
    with pytest.raises(DeconfoundError, match="already exists"):
        write_deconfounded_column(demo, table, result, name="outcome_iv_test")


def test_cli_estimate_json_and_write_column(home, capsys):
    store = Store(home / "studio.duckdb")
    load_demo(store, scenarios=("orthogonal",))
    code = main(["estimate", "--table", "demo_orthogonal", "--method", "iv", "--json", "--write-column", "y_iv"])
    assert code == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["method"] == "iv" and payload["n"] == 20_000
    assert abs(payload["coef"]["popularity"] - TRUTH) <= 0.01
    assert len(payload["conf_int"]["popularity"]) == 2
    assert set(payload["first_stage"]["popularity"]) >= {"f_stat", "partial_r2"}
    assert set(payload["tests"]) == {"sargan", "wu_hausman"} and isinstance(payload["warnings"], list)
    assert payload["written_column"]["column"] == "y_iv" and "y_iv" in store.column_meta("demo_orthogonal")
    code = main(["estimate", "--table", "demo_orthogonal", "--method", "ols"])
    assert code == 0 and "Naive OLS" in capsys.readouterr().out
    store.save_roles("demo_orthogonal", replace(DEMO_ROLES, instruments=[]))
    assert main(["estimate", "--table", "demo_orthogonal", "--method", "iv"]) == 2
    assert "instrument" in capsys.readouterr().err


def test_dml_on_a_large_table_samples_and_says_so(demo):
    result = estimate(demo, "demo_orthogonal", "dml", EstimatorConfig(dml_max_rows=3000, folds=2))
    assert result.n == 3000
    assert "random sample of 3,000 of 20,000 rows" in result.notes[0]
    assert any("unbiased only if" in n for n in result.notes)
    assert abs(result.coef["popularity"] - TRUTH) < 0.03


def test_estimator_choices_follow_the_tagged_roles():
    full = Roles(text="text", outcome="y", confounders=["p"], instruments=["z"])
    assert estimator_choices(full) == (["ols", "iv", "dml"], "iv")
    assert estimator_choices(replace(full, instruments=[])) == (["ols", "dml"], "dml")
    assert estimator_choices(replace(full, text=None)) == (["ols", "iv"], "iv")
    assert estimator_choices(replace(full, text=None, instruments=[])) == (["ols"], "ols")


def hand_result(method, coef, lo, hi, n, tests=None):
    return EstimateResult(method=method, n=n, outcome="y", coef={"p": coef, "const": 1.0}, std_err={"p": 0.01},
                          conf_int={"p": [lo, hi]}, pvalues={"p": 0.0},
                          confounder_terms=[{"term": "p", "column": "p", "level": None}], tests=tests or {})


def test_compare_estimates_and_the_iv_tests_table():
    results = {"ols": hand_result("ols", 0.2, 0.19, 0.21, 100), "iv": hand_result("iv", 0.1, 0.08, 0.12, 90)}
    compare = compare_estimates(results)
    assert compare.to_dict(orient="records") == [
        {"method": "Naive OLS", "term": "p", "coefficient": 0.2, "CI low": 0.19, "CI high": 0.21, "rows": 100},
        {"method": "IV (2SLS)", "term": "p", "coefficient": 0.1, "CI low": 0.08, "CI high": 0.12, "rows": 90}]
    spec = estimates_chart(compare).to_dict()
    assert spec["facet"]["row"]["field"] == "term" and spec["spec"]["height"] == 120  # 60 px per method
    assert [layer["mark"]["type"] for layer in spec["spec"]["layer"]] == ["point", "errorbar"]

    tests = {"sargan": {"reason": "exactly identified"},
             "wu_hausman": {"stat": 1234.5678, "pvalue": 0.0001234, "df": 1}}
    table = spec_tests_table(hand_result("iv", 0.1, 0.08, 0.12, 90, tests))
    assert table.to_dict(orient="records") == [
        {"test": "Sargan", "statistic": "–", "p-value": "–", "what it means": "does not apply: exactly identified"},
        {"test": "Wu–Hausman", "statistic": "1,234.57", "p-value": "0.000123",
         "what it means": "the confounder moves with the unexplained outcome: naive OLS is biased, use IV"}]
    assert explain_test("sargan", {"pvalue": 0.01}).startswith("the instruments disagree")
    assert explain_test("sargan", {"pvalue": 0.5}) == "the instruments agree with each other"
    assert explain_test("wu_hausman", {"pvalue": 0.5}) == "no evidence that naive OLS is biased"


def test_corrected_sample_tracks_the_truth_and_saved_columns_are_listed(store):
    rng = np.random.default_rng(0)
    truth = rng.normal(size=300)
    p = rng.normal(size=300)
    store.ingest_frame(pd.DataFrame({"text": ["t"] * 300, "y": truth + 2 * p, "p": p, "q": truth}), "known")
    result = hand_result("iv", 2.0, 1.9, 2.1, 300)
    sample = corrected_sample(store, "known", result, truth="q", rows=200)
    assert list(sample.columns) == ["raw outcome", "corrected", "truth"] and len(sample) == 200
    raw_r, corrected_r = truth_correlations(sample)
    assert corrected_r == pytest.approx(1.0)           # y − 2p (centred) is the truth plus a constant
    assert raw_r == pytest.approx(np.corrcoef(sample["raw outcome"], sample["truth"])[0, 1])
    assert list(corrected_sample(store, "known", result, rows=5000).columns) == ["raw outcome", "corrected"]
    assert len(corrected_sample(store, "known", result, rows=5000)) == 300
    long = outcome_density_chart(sample).to_dict()
    assert long["transform"][0]["density"] == "value" and long["height"] == 240

    assert corrected_columns_table(store, "known").empty
    store.save_roles("known", Roles(text="text", outcome="y", confounders=["p"]))
    write_deconfounded_column(store, "known", result, name="y_fixed")
    saved = corrected_columns_table(store, "known")
    assert list(saved.columns) == ["column", "method", "effect", "created"]
    assert saved.iloc[0]["column"] == "y_fixed" and saved.iloc[0]["method"] == "iv"
    assert json.loads(saved.iloc[0]["effect"]) == {"p": 2.0}

