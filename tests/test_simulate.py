"""The simulated corpus has the causal structure of the paper's MIND experiment (§4.1)."""
import dataclasses
import json
import re

import numpy as np
import pandas as pd
import pytest

from deconfound.data import PAPER_SPLITS, split_counts
from deconfound.sim import (SCENARIOS, TEAM_REGION, TEAMS, TRUE_POPULARITY_COEF, SimulationConfig, corpus,
                            mentioned_region, quality_scores, simulate)

N = 20_000
REGION_CODE = {"None": 0, "West": 1, "Central": 2, "East": 3}


@pytest.fixture(scope="module")
def entangled():
    return simulate(scenario="entangled", n=N, seed=7)


@pytest.fixture(scope="module")
def orthogonal():
    return simulate(SimulationConfig(scenario="orthogonal", n=N, seed=7))


def corr(a, b) -> float:
    return float(np.corrcoef(np.asarray(a, float), np.asarray(b, float))[0, 1])


def test_same_seed_same_data_and_scenarios_share_the_corpus():
    a, b = simulate(n=300, seed=3), simulate(n=300, seed=3)
    pd.testing.assert_frame_equal(a, b)
    assert not simulate(n=300, seed=4)["text"].equals(a["text"])
    ortho = simulate(scenario="orthogonal", n=300, seed=3)
    shared = [c for c in a.columns if c not in ("popularity", "outcome")]
    pd.testing.assert_frame_equal(a[shared], ortho[shared])
    # Same noise draws: the scenarios differ by exactly -10.5 * s(abstract).
    np.testing.assert_allclose(a["popularity"] - ortho["popularity"],
                               -10.5 * a["abstract_quality"], atol=1e-12)


def test_columns_types_and_paper_split_proportions(entangled):
    df = entangled
    for col in ("id", "context", "text", "outcome", "popularity", "team_region", "team",
                "quality", "abstract_quality", "published_at", "split"):
        assert col in df.columns
    assert df["id"].tolist() == list(range(N))
    assert set(df["team_region"]) == {"West", "Central", "East", "None"}
    assert df["quality"].between(0, 1).all() and df["abstract_quality"].between(0, 1).all()
    shares = df["split"].value_counts(normalize=True)
    total = sum(PAPER_SPLITS.values())
    for split, size in PAPER_SPLITS.items():
        assert shares[split] == pytest.approx(size / total, abs=0.002)
    assert split_counts(total) == PAPER_SPLITS
    assert sum(split_counts(10).values()) == 10 and min(split_counts(10).values()) >= 1
    regions = df["team_region"].value_counts(normalize=True)
    assert regions["None"] == pytest.approx(0.25, abs=0.02)
    assert regions["East"] > regions["West"]


def test_publication_times_span_two_years_with_a_weekday_pattern(entangled):
    when = pd.to_datetime(entangled["published_at"])
    assert when.is_monotonic_increasing
    assert (when.max() - when.min()).days > 700
    per_day = when.dt.day_name().value_counts()
    assert per_day["Monday"] > 1.5 * per_day["Saturday"]
    per_month = when.dt.month.value_counts()
    assert per_month[10] > 1.3 * per_month[7]  # October is busier than July


def test_team_named_in_headline_is_independent_of_quality(entangled):
    code = entangled["team_region"].map(REGION_CODE)
    assert abs(corr(code, entangled["quality"])) < 0.05
    assert abs(corr(code > 0, entangled["quality"])) < 0.05
    assert abs(corr(code, entangled["abstract_quality"])) < 0.05


def test_headline_and_abstract_sentiment_correlate_but_not_perfectly(entangled):
    r = corr(entangled["quality"], entangled["abstract_quality"])
    assert 0.45 < r < 0.8
    assert entangled["quality"].std() > 0.2  # a wide spread of quality
    by_tone = entangled.groupby("tone")["quality"].mean()
    assert by_tone["positive"] > by_tone["neutral"] > by_tone["negative"]


def test_popularity_is_entangled_with_quality_only_in_the_entangled_scenario(
        entangled, orthogonal):
    assert abs(corr(orthogonal["popularity"], orthogonal["quality"])) < 0.05
    assert corr(entangled["popularity"], entangled["quality"]) < -0.4


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_ols_on_true_popularity_recovers_the_true_coefficients(scenario, entangled, orthogonal):
    df = entangled if scenario == "entangled" else orthogonal
    X = np.column_stack([np.ones(len(df)), df["quality"], df["popularity"]])
    _, b_quality, b_pop = np.linalg.lstsq(X, df["outcome"].to_numpy(), rcond=None)[0]
    assert b_pop == pytest.approx(TRUE_POPULARITY_COEF, abs=0.01)
    assert b_quality == pytest.approx(1.0, abs=0.05)
    residual = df["outcome"] - df["quality"] - TRUE_POPULARITY_COEF * df["popularity"]
    assert residual.std() == pytest.approx(0.1, abs=0.01)


def test_headlines_are_varied_and_sized_like_news(entangled):
    text, context = entangled["text"], entangled["context"]
    assert (text.str.strip() != "").all()
    assert text.nunique() / len(text) >= 0.6
    assert text.str.split().str.len().between(5, 14).all()
    assert context.str.split().str.len().between(25, 60).all()
    assert context.str.count(r"[.!?](?:\"|$|\s)").between(1, 3).all()
    assert entangled["sport"].nunique() == 5 and entangled["story"].nunique() > 20


def test_team_name_in_headline_iff_region_is_not_none(entangled):
    pattern = re.compile("|".join(map(re.escape, TEAM_REGION)))
    for text, context, region, team in entangled[
            ["text", "context", "team_region", "team"]].itertuples(index=False):
        found = pattern.findall(text)
        if region == "None":
            assert not found and team == "" and mentioned_region(text) == "None"
        else:
            assert found == [team] and TEAM_REGION[team] == region
            assert mentioned_region(text) == region and team in context


def test_teams_constant_has_eight_or_more_teams_per_region():
    assert set(TEAMS) == {"West", "Central", "East"}
    assert all(len(teams) >= 8 for teams in TEAMS.values())
    assert mentioned_region("Condors cruise past rivals") == "West"  # nickname alone counts
    assert mentioned_region("no team here") == "None"


def test_names_carry_no_sentiment_so_the_instrument_stays_valid():
    from vaderSentiment.vaderSentiment import (BOOSTER_DICT, NEGATE, SentimentIntensityAnalyzer)
    special = set(SentimentIntensityAnalyzer().lexicon) | set(BOOSTER_DICT) | set(NEGATE)
    words = set()
    for group in (corpus.FIRST_NAMES, corpus.SURNAMES, corpus.VENUE_PREFIXES,
                  corpus.SUBJECT_STANDINS, corpus.ABSTRACT_STANDINS, list(TEAM_REGION)):
        for name in group:
            words |= {w.removesuffix("'s").lower() for w in name.split()}
    assert not words & special


def test_headlines_only_state_facts_every_lead_states():
    slot = re.compile(r"\{(\w+)\}")
    alias = {"last": "player", "clast": "coach", "hstat": "stat", "nth": "n", "n2th": "n2",
             "round_n": "round", "year_end": "years", "unit_s": "unit", "a_score": "score",
             "a_body": "body", "team_poss": "team"}
    base = lambda k: alias.get(re.sub(r"_(t|cap)$", "", k), re.sub(r"_(t|cap)$", "", k))  # noqa
    everywhere = {"T", "unit", "game", "post", "post_adj", "title", "late", "extra"}
    assert set(corpus.STORY_WEIGHTS) == set(corpus.STORIES)
    for name, story in corpus.STORIES.items():
        in_every_lead = set.intersection(*({base(k) for k in slot.findall(lead)}
                                           for lead in story["lead"]))
        for level in ("flat", "mild", "strong", "counter"):
            for headline in story[level]:
                assert headline.count("{T}") == 1, (name, headline)
                extra = {base(k) for k in slot.findall(headline)} - in_every_lead - everywhere
                assert not extra, (name, headline, extra)


def test_quality_scores_match_vader_exactly():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
    vader = SentimentIntensityAnalyzer()
    df = simulate(n=400, seed=11)
    texts = list(df["text"]) + list(df["context"]) + [
        "The Condors were NOT very good!!! Kind of great, but at least...", "no good or bad",
        "THE GREAT WIN", "the shit was the bomb", "to die for?? really??", "kiss of death",
        "Without doubt, never so happy :)", "Okafor isn't bad! Okafor!! Okafor!!!", "",
        "kind of     terrible ???", "Condors \U0001F600 win", "I LOVE it but fans hate it"]
    expected = [(vader.polarity_scores(t)["compound"] + 1) / 2 for t in texts]
    np.testing.assert_array_equal(quality_scores(texts), expected)
    np.testing.assert_array_equal(df["quality"], quality_scores(df["text"]))
    assert quality_scores([None, float("nan")]).tolist() == [0.5, 0.5]
    assert quality_scores("Great win!")[0] > 0.8


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="scenario"):
        simulate(scenario="sideways", n=100)
    with pytest.raises(ValueError, match="at least 10"):
        SimulationConfig(n=5)
    with pytest.raises(ValueError, match="region_shares"):
        SimulationConfig(region_shares=(1, 2))


def test_config_round_trips_through_json():
    cfg = SimulationConfig(scenario="orthogonal", n=50, seed=2)
    again = SimulationConfig(**json.loads(json.dumps(dataclasses.asdict(cfg))))
    assert again == cfg
    assert all(f.metadata.get("help") for f in dataclasses.fields(SimulationConfig))
