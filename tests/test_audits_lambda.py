"""The λ audit: on a table built so that validation error prefers a weak λ (month-specific event words predict the
monthly traffic of validation rows) while the held-out pairs prefer a strong one (within a test, naming the event
says nothing about which headline wins), the rule that needs no experiment picks a stronger λ than validation and
ranks the pairs better; the leakage measure and the rule's logic have known answers; bad grids are refused."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from deconfound import cli
from deconfound.audits import ABAuditConfig, check_grid, lambda_audit, monthly_leakage, parse_grid, rule_pick
from deconfound.data import Roles
from deconfound.errors import DeconfoundError

STYLES = {"amazing": 0.004, "simple": 0.0, "shocking": -0.002, "gentle": 0.002, "quick": 0.001, "bold": 0.003}


def event_table(seed: int = 0, n_tests: int = 1000, month_sd: float = 0.0015, noise: float = 0.002) -> pd.DataFrame:
    """Two-variant tests over 12 months; CTR = 5% + month effect + style effect + noise. The first variant of each
    test names the month's event (festivalM), which has no effect of its own."""
    rng = np.random.default_rng(seed)
    words = list(STYLES)
    month_effect = rng.normal(0, month_sd, 12)
    rows = []
    for t in range(n_tests):
        month = int(rng.integers(12))
        for k, style in enumerate(rng.choice(len(words), 2, replace=False)):
            text = f"{words[style]} story" + (f" about festival{month}" if k == 0 else "") + \
                f" number {rng.integers(50)}"
            ctr = 0.05 + month_effect[month] + STYLES[words[style]] + rng.normal(0, noise)
            impressions = 200_000
            rows.append({"test": f"t{t}", "arm": f"t{t}-{k}", "headline": text, "impressions": impressions,
                         "clicks": int(rng.binomial(impressions, min(max(ctr, 0.001), 0.5))),
                         "created_at": pd.Timestamp("2020-01-01") + pd.DateOffset(months=month)
                         + pd.Timedelta(days=int(rng.integers(25)))})
    frame = pd.DataFrame(rows)
    frame["ctr"] = frame["clicks"] / frame["impressions"]
    return frame


ROLES = Roles(text="headline", outcome="ctr", timestamp="created_at", experiment="test", arm="arm")


@pytest.fixture(scope="module")
def event_store(tmp_path_factory):
    from deconfound.data import Store
    store = Store(tmp_path_factory.mktemp("lambda") / "lambda.duckdb")
    store.ingest_frame(event_table(), "events")
    store.save_roles("events", ROLES)
    return store


def test_rule_picks_the_stronger_lambda_that_the_held_out_pairs_prefer(event_store):
    result = lambda_audit(event_store, "events", ABAuditConfig(embeddings="tfidf"))
    picks, curve = result.picks, result.curve
    assert picks["validation"] < picks["test"]  # the table does what it was built for
    assert picks["validation"] < picks["rule"] <= picks["test"]
    assert result.at(picks["rule"], "test_auc") > result.at(picks["validation"], "test_auc") + 0.005
    assert result.at(picks["rule"], "leakage") < result.at(picks["validation"], "leakage")
    best = curve["valid_mse"].min()
    se = curve.loc[curve["valid_mse"].idxmin(), "valid_se"]
    assert result.at(picks["rule"], "valid_mse") <= best + se  # within one standard error
    assert curve["leakage"].iloc[0] > curve["leakage"].iloc[-1]  # strong λ stops following the months
    payload = result.to_dict()
    assert payload["auc_at_picks"]["rule"] > payload["auc_at_picks"]["validation"]
    assert "does better" in result.verdict()
    from deconfound.audits import lambda_chart
    from deconfound.evaluate import chart_svg
    svg = chart_svg(lambda_chart(result))
    assert svg.startswith("<svg") and "held-out pair AUC" in svg and "rule" in svg


def test_monthly_leakage_known_answers():
    times = pd.Series(pd.date_range("2020-01-01", periods=12, freq="MS").repeat(5))
    train_y = np.repeat(np.arange(12.0), 5)
    assert monthly_leakage(train_y * 3 + 1, times, train_y, times) == pytest.approx(1.0)
    assert monthly_leakage(-train_y, times, train_y, times) == pytest.approx(-1.0)
    assert math.isnan(monthly_leakage(np.ones(60), times, train_y, times))  # predictions do not vary
    two = pd.Series(pd.to_datetime(["2020-01-01", "2020-02-01"] * 3))
    assert math.isnan(monthly_leakage(np.arange(6.0), two, np.arange(6.0), two))  # fewer than 3 months


def test_rule_logic_on_a_hand_made_curve():
    curve = pd.DataFrame({"lambda": [0.1, 1, 10, 100, 1000], "valid_mse": [1.2, 1.0, 1.05, 1.09, 1.5],
                          "valid_se": [0.1] * 5, "leakage": [0.9, 0.8, 0.3, 0.7, 0.1]})
    lam, why = rule_pick(curve)
    assert lam == 10 and "below 0.5" in why  # 100 is within 1 SE but leaks; 1000 is outside 1 SE
    lam, why = rule_pick(curve.assign(leakage=0.9))
    assert lam == 100 and "none of those" in why
    lam, why = rule_pick(curve.assign(leakage=np.nan))
    assert lam == 100 and "no monthly leakage" in why


def test_lambda_audit_on_a_plain_log_has_no_pairs(store):
    from deconfound.sim import QA_ROLES, simulate_qa
    store.ingest_frame(simulate_qa(n_questions=300, seed=2), "qa")
    store.save_roles("qa", QA_ROLES)
    result = lambda_audit(store, "qa", ABAuditConfig(embeddings="tfidf", grid=[0.1, 10, 1000]))
    assert "test" not in result.picks and "test_auc" not in result.curve
    assert result.curve["train_mse"].is_monotonic_increasing  # more penalty, worse fit to the training rows
    assert any("no held-out A/B pairs" in n for n in result.notes)


@pytest.mark.parametrize("grid, words", [([0, 1], "must be positive"), ([-1.0], "must be positive"),
                                         ([], "empty"), ([float("inf")], "must be positive")])
def test_bad_grids_are_one_sentence(grid, words):
    with pytest.raises(DeconfoundError, match=words):
        check_grid(grid)


def test_grid_text_and_cli_exit_2_with_nothing_written(event_store, capsys, home):
    assert parse_grid("logspace:-1:1:3") == pytest.approx([0.1, 1.0, 10.0])
    assert parse_grid("10, 1") == [1.0, 10.0] and parse_grid("") is None
    for bad in ("0,1", "a,b", "logspace:1:2"):
        code = cli.main(["audit", "lambda", "--table", "events", f"--grid={bad}", "--embeddings", "tfidf",
                         "--db", str(event_store.path)])
        err = capsys.readouterr().err
        assert code == 2 and len(err.strip().splitlines()) == 1 and "grid" in err, err
    assert not (home / "audits").exists()
    code = cli.main(["audit", "lambda", "--table", "events", "--grid", "1,100", "--embeddings", "tfidf", "--json",
                     "--db", str(event_store.path)])
    payload = json.loads(capsys.readouterr().out)
    assert code == 0 and [row["lambda"] for row in payload["curve"]] == [1.0, 100.0]
    assert set(payload["picks"]) == {"validation", "rule", "test"}
