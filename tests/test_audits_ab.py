"""The A/B-validated reward audit: pairs are kept by the two-proportion test statsmodels computes, splits share no
text, one variant per training test is observational, both heads beat chance on the simulation's held-out pairs
and the true effects rank them almost perfectly; bad tables get one clear sentence (UI and CLI exit 2) and
nothing is written."""

import json

import numpy as np
import pandas as pd
import pytest

from deconfound import cli
from deconfound.audits import (ABAuditConfig, ab_audit, load_ab_table, prepare_ab, split_tests,
                               two_proportion_pvalues, variant_pairs)
from deconfound.data import Roles
from deconfound.errors import DeconfoundError
from deconfound.sim import AB_ROLES, simulate_ab

AB = Roles(text="headline", outcome="ctr", timestamp="created_at", experiment="test", arm="arm")


def ab_frame(rows):
    """A small A/B table from (test, arm, headline, clicks, impressions) tuples."""
    frame = pd.DataFrame(rows, columns=["test", "arm", "headline", "clicks", "impressions"])
    frame["ctr"] = frame["clicks"] / frame["impressions"]
    frame["created_at"] = pd.Timestamp("2020-01-01")
    return frame


@pytest.fixture(scope="module")
def sim_store(tmp_path_factory):
    from deconfound.data import Store
    store = Store(tmp_path_factory.mktemp("ab") / "ab.duckdb")
    store.ingest_frame(simulate_ab(n_tests=1200, seed=5), "ab")
    store.save_roles("ab", AB_ROLES)
    return store


def test_pvalues_match_statsmodels():
    from statsmodels.stats.proportion import proportions_ztest
    rng = np.random.default_rng(0)
    n1, n2 = rng.integers(200, 5000, 50), rng.integers(200, 5000, 50)
    k1, k2 = rng.binomial(n1, 0.03), rng.binomial(n2, 0.035)
    ours = two_proportion_pvalues(k1, n1, k2, n2)
    theirs = [proportions_ztest([a, b], [c, d])[1] for a, b, c, d in zip(k1, k2, n1, n2)]
    assert np.allclose(ours, theirs, rtol=1e-10)


def test_pairs_are_kept_by_significance_and_rows_of_an_arm_are_summed(store):
    frame = ab_frame([("t1", "a", "Clear winner here", 300, 10_000), ("t1", "b", "Clear loser here", 100, 10_000),
                      ("t2", "a", "Tiny edge", 101, 10_000), ("t2", "b", "No edge", 100, 10_000),
                      ("t3", "a", "Split row one", 50, 5_000), ("t3", "a", "Split row one", 50, 5_000),
                      ("t3", "b", "Other arm", 200, 10_000), ("t4", "a", "Alone", 10, 1000)])
    store.ingest_frame(frame, "small")
    store.save_roles("small", AB)
    ab = load_ab_table(store, "small")
    t3 = ab.variants[(ab.variants["test"] == "t3") & (ab.variants["arm"] == "a")].iloc[0]
    assert (t3["clicks"], t3["impressions"], t3["ctr"]) == (100, 10_000, 0.01)
    pairs = variant_pairs(ab, alpha=0.05).set_index("test")
    assert set(pairs.index) == {"t1", "t2", "t3"}  # t4 has one variant: no pair
    assert pairs.loc["t1", "significant"] and pairs.loc["t1", "winner"] == 1
    assert not pairs.loc["t2", "significant"]
    assert pairs.loc["t3", "significant"] and pairs.loc["t3", "winner"] == 0  # b (2%) beat a (1%)


def test_splits_share_no_text_even_when_headlines_repeat_across_tests():
    rng = np.random.default_rng(1)
    texts = [f"headline {i}" for i in range(150)]
    rows = [(f"t{t}", str(k), texts[rng.integers(len(texts))] if k == 0 else f"unique {t}-{k}", 1, 1)
            for t in range(400) for k in range(3)]
    pairs = pd.DataFrame([(t, a, b) for t in range(400) for a, b in ((0, 1), (0, 2), (1, 2))],
                         columns=["test", "i", "j"])
    by_test = {(r[0], int(r[1])): r[2] for r in rows}
    pairs = pd.DataFrame({"test": [f"t{t}" for t in pairs["test"]],
                          "text_a": [by_test[(f"t{t}", i)] for t, i in zip(pairs["test"], pairs["i"])],
                          "text_b": [by_test[(f"t{t}", j)] for t, j in zip(pairs["test"], pairs["j"])]})
    split = split_tests(pairs, (0.6, 0.2, 0.2), seed=0)
    pairs["split"] = pairs["test"].map(split)
    texts_in = {s: set(pairs.loc[pairs["split"] == s, ["text_a", "text_b"]].to_numpy().ravel())
                for s in ("train", "valid", "test")}
    assert not texts_in["train"] & texts_in["valid"] and not texts_in["train"] & texts_in["test"]
    assert not texts_in["valid"] & texts_in["test"]
    shares = pairs["split"].value_counts(normalize=True)
    assert abs(shares["train"] - 0.6) < 0.1 and abs(shares["test"] - 0.2) < 0.1


def test_observational_subset_keeps_one_variant_per_training_and_validation_test(sim_store):
    prep = prepare_ab(sim_store, "ab", ABAuditConfig(embeddings="tfidf"))
    obs = prep.observational
    assert obs["test"].is_unique
    assert set(obs["split"]) == {"train", "valid"}
    split_of = prep.pairs.drop_duplicates("test").set_index("test")["split"]
    assert (obs["split"] == obs["test"].map(split_of)).all()
    assert set(obs["test"]) == set(split_of[split_of.isin(["train", "valid"])].index)
    assert prep.pairs["pvalue"].lt(0.05).all()
    assert (prep.ab.variants.loc[prep.obs_rows, "text"].to_numpy() == obs["text"].to_numpy()).all()


def test_both_heads_rank_held_out_pairs_and_the_truth_is_the_ceiling(sim_store):
    result = ab_audit(sim_store, "ab", ABAuditConfig(embeddings="tfidf"))
    assert result.truth.auc > 0.97  # the simulation's true effects decide the significant pairs
    assert result.experimental.test.auc > 0.7 and result.observational.test.auc > 0.6
    c = result.counts
    assert c["train_pairs"] + c["valid_pairs"] + c["test_pairs"] == c["significant_pairs"] < c["pairs"]
    assert c["obs_train"] == c["train_tests"] and c["obs_valid"] == c["valid_tests"]
    payload = result.to_dict()
    assert {"verdict", "counts", "observational", "experimental", "truth"} <= set(payload)
    assert payload["experimental"]["test"]["fpr"][0] == 0.0 and payload["experimental"]["test"]["tpr"][-1] == 1.0
    assert "AUC" in result.verdict()
    from deconfound.audits import roc_chart
    from deconfound.evaluate import chart_svg
    svg = chart_svg(roc_chart(result))
    assert svg.startswith("<svg") and "experimental (AUC" in svg and "true effects" in svg


BAD_TABLES = {
    "no_ab_columns": (Roles(text="headline", outcome="ctr"), "no experiment and arm columns tagged"),
    "one_variant": (AB, "single variant"),
    "no_significant": (AB, "no pair of variants"),
}


@pytest.mark.parametrize("case", list(BAD_TABLES))
def test_bad_ab_tables_get_one_sentence_and_exit_2_with_nothing_written(store, case, capsys, home):
    rows = {"no_ab_columns": [("t1", "a", "A", 10, 100), ("t1", "b", "B", 50, 100)],
            "one_variant": [("t1", "a", "A", 10, 100), ("t2", "a", "B", 50, 100)],
            "no_significant": [("t1", "a", "A", 10, 1000), ("t1", "b", "B", 11, 1000)]}[case]
    store.ingest_frame(ab_frame(rows), "bad")
    roles, words = BAD_TABLES[case]
    store.save_roles("bad", roles)
    with pytest.raises(DeconfoundError, match=words):
        ab_audit(store, "bad", ABAuditConfig(embeddings="tfidf"))
    before, tables = written(home), store.tables()
    for command in ("ab", "lambda"):
        if case != "no_ab_columns" or command == "ab":
            code = cli.main(["audit", command, "--table", "bad", "--embeddings", "tfidf", "--db", str(store.path)])
            err = capsys.readouterr().err
            assert code == 2 and words in err and len(err.strip().splitlines()) == 1, err
    assert written(home) == before and store.tables() == tables


def written(home) -> list[str]:
    """Files under the home, except the CLI's own log."""
    return sorted(str(p.relative_to(home)) for p in home.rglob("*") if p.name != "cli.log")


def test_cli_ab_json(sim_store, capsys):
    code = cli.main(["audit", "ab", "--table", "ab", "--embeddings", "tfidf", "--json", "--db", str(sim_store.path)])
    payload = json.loads(capsys.readouterr().out)
    assert code == 0 and payload["kind"] == "ab_audit"
    assert payload["observational"]["lambda"] > 0 and 0.5 < payload["experimental"]["test"]["auc"] <= 1
