"""Refutations, bad input, the reward band and what the Deconfound step says: known answers from the simulation
(a valid instrument, a planted leak), constructed bad tables, and the CLI's JSON."""

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from deconfound.causal import (EstimatorConfig, estimate, fit_iv, fit_ols, page_verdict, recommended, refute,
                               refutations_table, robust_ci_table, robustness_lines, save_warning,
                               saved_column_sentence, write_deconfounded_column)
from deconfound.cli import main
from deconfound.data import Roles, Store
from deconfound.errors import DeconfoundError
from deconfound.rewards import reward_band
from deconfound.sim import DEMO_ROLES, load_demo

ROLES = Roles(text="text", outcome="y", confounders=["p"], instruments=["z"])


@pytest.fixture(scope="module")
def entangled(demo):
    return demo.read_frame("demo_entangled")


def leaky(frame: pd.DataFrame, effect: float = 0.3) -> pd.DataFrame:
    """The demo with one instrument level (East) also moving the outcome directly: exclusion violated."""
    out = frame.copy()
    out["outcome"] = out["outcome"] + effect * (out["team_region"] == "East")
    return out


# ------------------------------------------------------------------ refutations
def test_refutations_pass_on_the_demo_and_the_placebo_instrument_catches_a_leak(entangled):
    valid = refute(entangled, DEMO_ROLES, "iv")
    assert valid["all_passed"] and valid["verdict"] == "placebo checks pass"
    checks = valid["checks"]
    assert set(checks) == {"placebo_confounder", "random_common_cause", "data_subsets", "placebo_instrument"}
    assert "weekday × month" in checks["placebo_confounder"]["verdict"]
    assert abs(checks["placebo_confounder"]["statistic"]) < 0.01          # vanishes (the real effect is 0.1)
    assert checks["random_common_cause"]["in_standard_errors"] < 0.5
    assert checks["data_subsets"]["same_sign_share"] == 1.0
    assert checks["placebo_instrument"]["kind"] == "exclusion (leave one instrument out)"
    bad = refute(leaky(entangled), DEMO_ROLES, "iv")
    placebo = bad["checks"]["placebo_instrument"]
    assert not placebo["passed"] and not bad["all_passed"]
    east = next(e for e in placebo["effects"] if e["instrument"] == "team_region[East]")
    assert east["direct_effect"] == pytest.approx(0.3, abs=0.05)           # the planted leak, recovered
    assert "placebo instrument" in bad["verdict"]
    # the leak also biases IV; the page's recommendation and save warning say so
    result = fit_iv(leaky(entangled), DEMO_ROLES)
    result.refutations = bad
    assert save_warning("iv", {"iv": result}).startswith("The exclusion restriction is in doubt")
    assert recommended({"iv": result, "ols": fit_ols(entangled, DEMO_ROLES)})[0] == "iv"  # nothing better fitted


def test_just_identified_placebo_instrument_is_a_permutation_check():
    rng = np.random.default_rng(0)
    n = 5000
    u, z = rng.normal(size=n), rng.normal(size=n)
    p = z + u + rng.normal(size=n)
    data = pd.DataFrame({"y": 0.1 * p + u, "p": p, "z": z, "text": "x"})
    out = refute(data, ROLES, "iv")
    check = out["checks"]["placebo_instrument"]
    assert check["kind"] == "permuted instrument" and check["passed"] and "cannot be tested" in check["note"]
    assert refutations_table(out)["result"].tolist() == ["pass"] * 4


def test_ols_refutations_and_clustered_bootstrap(entangled):
    out = refute(entangled, DEMO_ROLES, "ols", EstimatorConfig(cluster="context", bootstrap_draws=10))
    assert out["checks"]["placebo_instrument"]["reason"].startswith("does not apply, because")
    assert "whole clusters" in out["checks"]["data_subsets"]["verdict"]
    table = refutations_table(out)
    assert table.loc[table["check"] == "Placebo instrument", "result"].item() == "does not apply"


# ------------------------------------------------------------------ bad input
def test_rank_deficient_first_stage_drops_a_copy_or_says_why(entangled):
    numeric = entangled.assign(z1=(entangled["team_region"] == "East").astype(float))
    copy = numeric.assign(z2=2 * numeric["z1"])
    roles = replace(DEMO_ROLES, instruments=["z1", "z2"])
    result = fit_iv(copy, roles)
    assert any("'z2' is a linear combination" in n for n in result.notes)   # dropped, said, estimate stands
    assert set(result.first_stage["popularity"]) >= {"f_stat"} and result.first_stage["popularity"]["instruments"] == 1
    two = copy.assign(other=np.random.default_rng(0).normal(size=len(copy)))
    with pytest.raises(DeconfoundError, match="rank-deficient"):
        fit_iv(two, replace(roles, confounders=["popularity", "other"]))


def test_instrument_constant_within_the_estimation_sample_is_a_sentence(entangled):
    data = entangled.assign(z=np.where(np.arange(len(entangled)) < 100, 1.0, 0.0))
    data.loc[:99, "outcome"] = np.nan                  # the only rows where z varies have no outcome
    with pytest.raises(DeconfoundError, match="takes a single value in every row"):
        fit_iv(data, replace(DEMO_ROLES, instruments=["z"]))
    # an instrument that only varies between weekdays is absorbed by the weekday effects: dropped, said
    weekday = entangled.assign(wd=pd.to_datetime(entangled["published_at"]).dt.dayofweek.astype(float))
    result = fit_iv(weekday, replace(DEMO_ROLES, instruments=["team_region", "wd"]))
    assert any("'wd' does not vary once the controls and the weekday/month effects are removed" in n
               for n in result.notes)


def test_one_cluster_and_an_empty_gamma_range_leave_the_estimate_standing(entangled):
    data = entangled.assign(site="only")
    result = fit_iv(data, DEMO_ROLES, EstimatorConfig(cluster="site", gamma_range=(0.05, -0.05)))
    assert abs(result.coef["popularity"] - 0.1) < 0.01                   # the estimate stands
    cov = result.robust_ci["covariance"]
    assert cov["type"] == "robust" and cov["reason"].startswith("does not apply, because the cluster column 'site'")
    assert any("has one value" in w for w in result.warnings)
    assert result.sensitivity["reason"].startswith("does not apply, because the range of the direct effect γ is empty")
    assert "bounded" == result.robust_ci["terms"]["popularity"]["anderson_rubin"]["shape"]
    assert "sensitivity: does not apply" in result.summary()
    with pytest.raises(DeconfoundError, match="need a cluster column"):
        fit_iv(data, DEMO_ROLES, EstimatorConfig(cov_type="clustered"))
    few = fit_iv(entangled, DEMO_ROLES, EstimatorConfig(cluster="team_region"))
    assert any("only 4 clusters" in w for w in few.warnings)


def test_cli_bad_input_is_one_line(home, capsys):
    store = Store(home / "studio.duckdb")
    load_demo(store, scenarios=("orthogonal",))
    assert main(["estimate", "--table", "demo_orthogonal", "--cluster", "nope", "--no-reward-band"]) == 2
    assert "no column(s) 'nope'" in capsys.readouterr().err
    code = main(["estimate", "--table", "demo_orthogonal", "--gamma-range", "1", "0", "--no-refute",
                 "--no-reward-band", "--json"])
    payload = json.loads(capsys.readouterr().out)
    assert code == 0 and payload["sensitivity"]["reason"].startswith("does not apply, because")
    assert payload["refutations"]["reason"].startswith("not run")


# ------------------------------------------------------------------ what users see
def test_cli_estimate_json_has_the_new_keys_and_refute_runs_alone(home, capsys):
    store = Store(home / "studio.duckdb")
    load_demo(store, scenarios=("entangled",))
    assert main(["estimate", "--table", "demo_entangled", "--json", "--band-rows", "3000"]) == 0
    payload = json.loads(capsys.readouterr().out)
    for key in ("method", "n", "coef", "std_err", "conf_int", "first_stage", "tests", "warnings",
                "robust_ci", "sensitivity", "refutations", "reward_band"):
        assert key in payload
    ar = payload["robust_ci"]["terms"]["popularity"]["anderson_rubin"]
    assert ar["shape"] == "bounded" and ar["set"][0][0] < 0.1 < ar["set"][0][1]
    assert payload["refutations"]["all_passed"]
    assert payload["reward_band"]["rows"] == 3000 and payload["reward_band"]["sampled"]
    assert main(["refute", "--table", "demo_entangled", "--json"]) == 0
    alone = json.loads(capsys.readouterr().out)
    assert alone["method"] == "iv" and set(alone["checks"]) == set(payload["refutations"]["checks"])
    assert main(["refute", "--table", "demo_entangled", "--method", "ols"]) == 0
    assert "refutations of the ols estimate" in capsys.readouterr().out


def test_reward_band_on_the_simulation(entangled):
    """The corrected outcome at β̂ ± 2 se: on the demo the interval is narrow, so the three rewards rank texts
    alike and each tracks the truth."""
    result = fit_iv(entangled, DEMO_ROLES)
    band = reward_band(entangled, DEMO_ROLES, result, rows=3000)
    assert band["coef"]["low"]["popularity"] == pytest.approx(result.coef["popularity"]
                                                              - 2 * result.std_err["popularity"])
    assert band["min_spearman"] > 0.98 and not band["choice_matters"]
    assert all(v > 0.9 for v in band["pearson_truth"].values())
    # a wide interval (the naive estimate's errors blown up 50×) does change the reward
    wide = replace(result, std_err={**result.std_err, "popularity": 50 * result.std_err["popularity"]})
    spread = reward_band(entangled, DEMO_ROLES, wide, rows=3000)
    assert spread["min_spearman"] < band["min_spearman"]
    assert reward_band(entangled, replace(DEMO_ROLES, text=None), result)["reason"].startswith("does not apply")


def test_the_page_words_come_from_the_tests(demo, entangled):
    iv = estimate(demo, "demo_entangled", "iv", refutations=True)
    verdict = page_verdict(iv)
    assert verdict.startswith("The instrument is strong (effective F ")
    assert "the correction is robust to a direct effect of the instrument up to γ = " in verdict
    assert verdict.endswith("placebo checks pass.")
    ols = estimate(demo, "demo_entangled", "ols")
    assert recommended({"ols": ols, "iv": iv})[0] == "iv"
    assert "Wu–Hausman" in save_warning("ols", {"ols": ols, "iv": iv})
    assert save_warning("iv", {"ols": ols, "iv": iv}) is None
    orthogonal = {"ols": estimate(demo, "demo_orthogonal", "ols"), "iv": estimate(demo, "demo_orthogonal", "iv")}
    assert save_warning("ols", orthogonal) is None                      # OLS is fine when nothing is entangled
    weak = fit_iv(entangled.assign(z=np.random.default_rng(1).normal(size=len(entangled))),
                  replace(DEMO_ROLES, instruments=["z"]))
    assert recommended({"iv": weak, "dml": ols})[0] == "dml"            # a weak instrument hands over to DML
    assert page_verdict(weak).startswith("The instrument is weak")
    table = robust_ci_table(iv)
    assert table["check"].tolist()[:3] == ["Anderson–Rubin set", "Conditional LR set",
                                           "Effective F (Montiel Olea–Pflueger)"]
    meta = write_deconfounded_column(demo, "demo_entangled", iv, name="y_words", replace=True)
    sentence = saved_column_sentence(meta, "demo_entangled")
    assert sentence.startswith("Saved 'y_words' to 'demo_entangled': outcome minus the IV (2SLS) estimate")
    lines = robustness_lines(iv.to_dict())
    assert lines[0].startswith("Estimate (IV (2SLS)): popularity +0.1")
    assert lines[1].startswith("Weak-instrument-robust interval: Anderson–Rubin set [")
    assert lines[2].startswith("Sensitivity: the correction is robust")
    assert lines[3] == "Refutations: placebo checks pass."
