"""Evaluation of a run folder: known rates, significance, diversity, reward correlations, JSON shape."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from deconfound import evaluate as ev
from deconfound.cli import main
from deconfound.errors import DeconfoundError
from deconfound.sim import TEAMS, quality_scores, simulate, team_marker_groups

POSITIVE_TAIL = " - a brilliant, wonderful, joyful win"


def make_run(root, n: int = 120, seeds=(0, 1), table: str = "demo_entangled", rewards: dict | None = None):
    """A run folder with hand-built generations whose answers are known:
    sft = simulated headlines; rl_same = the same texts; rl_deconfounded = the headlines made clearly
    more positive; rl_naive = the headlines with an East team appended to the first 60% of them."""
    root.mkdir(parents=True, exist_ok=True)
    stories = simulate(scenario="entangled", n=max(400, n * 3), seed=3)
    headlines = stories["text"].tolist()[:n]
    contexts = stories["context"].tolist()[:n]
    east = TEAMS["East"][0]
    variants = {
        "base": headlines,
        "sft": headlines,
        "rl_same": headlines,
        "rl_deconfounded": [h + POSITIVE_TAIL for h in headlines],
        "rl_naive": [h + f" {east}" if i < int(0.6 * n) else h for i, h in enumerate(headlines)],
    }
    rows = [(i, contexts[i], model, seed, text) for model, texts in variants.items() for seed in seeds
            for i, text in enumerate(texts)]
    pd.DataFrame(rows, columns=list(ev.GENERATION_COLUMNS)).to_csv(root / "generations.csv", index=False)
    (root / "config.json").write_text(json.dumps({"table": table, "methods": ["naive", "deconfounded"],
                                                  "preset": "smoke", "estimator": "iv", "seeds": list(seeds)}))
    stories.to_parquet(root / "data.parquet")
    for method, (train, valid) in (rewards or {"naive": (0.41, -0.08), "deconfounded": (0.93, 0.9)}).items():
        folder = root / "rewards" / method
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "metrics.json").write_text(json.dumps({"method": method, "backbone": "tfidf",
                                                         "train": {"pearson_truth": train, "r2_outcome": 0.3},
                                                         "valid": {"pearson_truth": valid, "r2_outcome": 0.2}}))
    return root


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("eval") / "run")


@pytest.fixture(scope="module")
def result(run):
    return ev.compare(run, ev.EvalConfig(n_boot=400))


# ------------------------------------------------------------------ text measures
def test_distinct_n_and_repetition_on_known_strings():
    words = ev.tokens("A b a B")
    assert words == ["a", "b", "a", "b"]
    assert ev.repetition_rate(words) == 0.5          # two of four words repeat an earlier one
    assert ev.distinct_n([words], 1) == 0.5          # 2 unique / 4
    assert ev.distinct_n([words], 2) == pytest.approx(2 / 3)   # ab, ba, ab
    assert ev.distinct_n([["x", "y"], ["x", "z"]], 1) == 0.75
    assert ev.repetition_rate([]) == 0.0 and math.isnan(ev.distinct_n([[]], 2))


def test_markers_match_whole_words_case_insensitively():
    patterns = ev.compile_markers({"Happy": ["Happy"], "weekday": ["Monday", "happy monday"]})
    hits = ev.marker_hits(["happy MONDAY!", "Unhappy fans", "Happyness", "Monday's game"], patterns)
    assert hits["Happy"].tolist() == [True, False, False, False]
    assert hits["weekday"].tolist() == [True, False, False, True]
    assert ev.highlight_spans("Happy Monday", patterns) == [(0, 12, "weekday")]  # longest match, no overlap


def test_marker_groups_typed_as_json_words_or_a_file(tmp_path):
    assert ev.parse_marker_groups("") is None and ev.parse_marker_groups("  \n") is None and \
        ev.parse_marker_groups(None) is None                                      # empty: the run's default
    assert ev.parse_marker_groups("Happy, Monday ,") == {"Happy": ["Happy"], "Monday": ["Monday"]}
    assert ev.parse_marker_groups(' {"East": ["Boston", "New York"], "West": "Seattle"} ') == \
        {"East": ["Boston", "New York"], "West": ["Seattle"]}
    assert ev.parse_marker_groups("{}") == {}                                      # JSON: count no markers
    path = tmp_path / "markers.json"
    path.write_text(json.dumps({"weekday": ["Monday", "happy monday"]}))
    assert ev.parse_marker_groups(f"{path}\n", allow_files=True) == {"weekday": ["Monday", "happy monday"]}
    assert ev.parse_marker_groups(str(path)) == {str(path): [str(path)]}         # a dashboard box reads no files
    long = json.dumps({"East": [f"Team number {i}" for i in range(40)]})       # too long to be a file name
    assert len(ev.parse_marker_groups(long)["East"]) == 40
    with pytest.raises(DeconfoundError, match="not valid JSON"):
        ev.parse_marker_groups('{"East": [')
    assert ev.parse_marker_groups('["Happy", "Monday"]') == {"Happy": ["Happy"], "Monday": ["Monday"]}
    with pytest.raises(DeconfoundError, match="'East' must be a word or a list of words"):
        ev.parse_marker_groups('{"East": 3}')


def test_team_markers_cover_full_names_and_nicknames():
    groups = team_marker_groups()
    assert set(groups) == {"West", "Central", "East"}
    patterns = ev.compile_markers(groups)
    full = TEAMS["East"][0]
    nickname = next(w for w in groups["East"] if w in full and w != full)
    hits = ev.marker_hits([f"{full} win", f"The {nickname} lose", "No team here"], patterns)
    assert hits["East"].tolist() == [True, True, False]
    assert not hits["West"].any() and not hits["Central"].any()


def test_base_of_a_run_that_starts_from_a_fine_tuned_model_is_not_called_pre_trained(tmp_path):
    run_dir = make_run(tmp_path / "run", n=40, seeds=(0,))
    assert ev.compare(run_dir, ev.EvalConfig(n_boot=50)).models["base"].label == "Base (pre-trained)"
    earlier_sft = tmp_path / "earlier" / "models" / "sft"
    earlier_sft.mkdir(parents=True)
    (earlier_sft / "training_summary.json").write_text(json.dumps({"kind": "sft", "stage": "sft"}))
    config = json.loads((run_dir / "config.json").read_text())
    (run_dir / "config.json").write_text(json.dumps(config | {"model": {"name": str(earlier_sft)}, "run_sft": False}))
    result = ev.compare(run_dir, ev.EvalConfig(n_boot=50))
    assert result.models["base"].label == "Starting model (fine-tuned earlier)"
    assert "Starting model (fine-tuned earlier)" in result.summary()
    assert ev.model_label("base") == "Base (pre-trained)"  # without the run, the standard name


# ------------------------------------------------------------------ statistics
def test_bootstrap_ci_matches_normal_theory():
    values = np.random.default_rng(1).normal(2.0, 1.0, 2000)
    lo, hi = ev.bootstrap_ci(values, n_boot=2000, seed=0)
    se = values.std(ddof=1) / math.sqrt(len(values))
    assert lo < values.mean() < hi
    assert (hi - lo) == pytest.approx(2 * 1.96 * se, rel=0.15)
    assert ev.bootstrap_ci(values, n_boot=500, seed=3) == ev.bootstrap_ci(values, n_boot=500, seed=3)  # seeded


def test_proportion_test_small_and_large_counts():
    assert ev.proportion_pvalue(30, 100, 30, 100) == pytest.approx(1.0)
    assert ev.proportion_pvalue(60, 100, 20, 100) < 1e-6            # z-test path
    fisher = ev.proportion_pvalue(0, 20, 6, 20)                      # expected count < 5: Fisher
    assert 0.005 < fisher < 0.05
    assert ev.proportion_pvalue(0, 50, 0, 50) == 1.0


def test_marker_rate_of_thirty_percent(tmp_path):
    texts = ["Happy news for the club"] * 30 + ["News for the club"] * 70
    frame = pd.DataFrame({"prompt_id": range(100), "context": "c", "model": "sft", "seed": 0, "text": texts})
    frame = pd.concat([frame, frame.assign(model="dpo_naive", text=["Happy day"] * 45 + ["A day"] * 55)])
    (tmp_path / "config.json").write_text("{}")
    result = ev.compare(tmp_path, ev.EvalConfig(markers={"Happy": ["Happy"]}, n_boot=1000), generations=frame)
    sft, dpo = result.models["sft"], result.models["dpo_naive"]
    assert sft.marker_rates["Happy"] == 0.30 and sft.marker_counts["Happy"] == 30
    lo, hi = sft.marker_ci["Happy"]
    assert lo < 0.30 < hi and hi - lo < 0.25
    assert dpo.marker_rates["Happy"] == 0.45
    assert dpo.marker_pvalues["Happy"] == pytest.approx(ev.proportion_pvalue(45, 100, 30, 100))
    assert dpo.marker_pvalues["Happy"] < 0.05


# ------------------------------------------------------------------ a whole run
def test_clearly_better_model_is_significant_and_identical_is_not(result):
    sft, better, same = (result.models[k] for k in ("sft", "rl_deconfounded", "rl_same"))
    assert better.quality_mean > sft.quality_mean + 0.1
    assert better.pvalues["quality"] < 1e-6 and ev.stars(better.pvalues["quality"]) == "***"
    assert same.quality_mean == sft.quality_mean and same.pvalues["quality"] == 1.0
    assert ev.stars(same.pvalues["quality"]) == ""
    assert better.length_mean == pytest.approx(sft.length_mean + len(ev.tokens(POSITIVE_TAIL)))
    assert sft.quality_ci[0] < sft.quality_mean < sft.quality_ci[1]
    # the scorer is the simulation's truth: the mean is the mean VADER quality of the texts
    texts = pd.read_csv(result.run["run_dir"] + "/generations.csv").query("model == 'sft'")["text"]
    assert sft.quality_mean == pytest.approx(quality_scores(texts).mean())


def test_naive_model_over_uses_east_teams(result):
    sft, naive, deconf = (result.models[k] for k in ("sft", "rl_naive", "rl_deconfounded"))
    assert list(result.marker_groups) == ["West", "Central", "East"]     # the demo's default markers
    assert naive.marker_rates["East"] >= sft.marker_rates["East"] + 0.3
    assert naive.marker_pvalues["East"] < 1e-6
    assert naive.marker_pvalues["West"] == pytest.approx(1.0)
    assert deconf.marker_counts == sft.marker_counts
    # two seeds per model: the App. B test over per-seed rates is there too
    assert set(naive.seed_tests) == {"quality", "West", "Central", "East"}
    assert len(naive.seed_tests["East"]["values"]) == 2


def test_diversity_measures_per_model(result):
    sft, naive = result.models["sft"], result.models["rl_naive"]
    # appending the same team name to 60% of the headlines lowers the share of new word pairs
    assert naive.distinct_2 < sft.distinct_2
    assert naive.distinct_2_ci[0] <= naive.distinct_2 <= naive.distinct_2_ci[1]
    assert naive.pvalues["distinct_2"] < 0.05
    assert result.models["rl_same"].pvalues["distinct_2"] > 0.05


def test_reward_truth_correlations_and_json_shape(result):
    payload = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert payload["reward_truth_corr"] == {"naive": {"train": 0.41, "valid": -0.08},
                                            "deconfounded": {"train": 0.93, "valid": 0.9}}
    assert list(payload["models"]) == ["base", "sft", "rl_naive", "rl_deconfounded", "rl_same"]
    for model in payload["models"].values():
        assert {"quality_mean", "quality_ci", "marker_rates", "length_mean", "n"} <= set(model)
        assert len(model["quality_ci"]) == 2 and model["n"] == 240
        assert set(model["marker_rates"]) == {"West", "Central", "East"}
    assert payload["conclusion"] == result.conclusion()


def test_conclusion_is_computed_from_the_numbers(result):
    text = result.conclusion()
    deconf, naive, sft = (result.models[k] for k in ("rl_deconfounded", "rl_naive", "sft"))
    assert f"{deconf.quality_mean:.3f}" in text and f"{naive.quality_mean:.3f}" in text
    assert f"{sft.quality_mean:.3f}" in text
    assert "East teams" in text and f"{naive.marker_rates['East']:.1%}" in text
    assert "0.90" in text  # the deconfounded reward's validation correlation
    summary = result.summary()
    assert "RL: deconfounded" in summary and "***" in summary and "reward–truth" in summary
    table = result.table1()
    assert table.loc[table["model"] == "rl_naive", "East_count"].item() == naive.marker_counts["East"]


def test_missing_generations_is_a_clear_error(tmp_path):
    from deconfound.errors import NotFoundError
    with pytest.raises(NotFoundError, match="generate"):
        ev.compare(tmp_path)


def test_cli_compare_json_and_markers(run, capsys):
    assert main(["compare", str(run), "--json", "--n-boot", "200"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert set(payload) >= {"models", "reward_truth_corr"}
    assert payload["models"]["rl_naive"]["marker_rates"]["East"] > payload["models"]["sft"]["marker_rates"]["East"]
    assert main(["compare", str(run), "--markers", "brilliant, wonderful", "--n-boot", "100"]) == 0
    out = capsys.readouterr().out
    assert "brilliant" in out and "The deconfounded model" in out
    assert main(["compare", str(run), "--markers", "{bad json"]) == 2


def test_reward_model_as_scorer_and_reward_points(tmp_path):
    from deconfound.rewards import RewardColumns, RewardConfig, train_reward
    run = make_run(tmp_path / "run", n=60, seeds=(0,))
    data = pd.read_parquet(run / "data.parquet")
    columns = RewardColumns(text="text", context="context", outcome="outcome", truth="quality")
    model = train_reward(RewardConfig(method="oracle", backbone="tfidf"), data[data["split"] != "rm_valid"],
                         data[data["split"] == "rm_valid"], columns, run / "rewards" / "oracle")
    result = ev.compare(run, ev.EvalConfig(scorer="reward:oracle", n_boot=200))
    assert result.quality_name == "'oracle' reward score"
    assert result.models["rl_deconfounded"].quality_mean > result.models["sft"].quality_mean
    points = ev.reward_truth_points(run)
    assert set(points["method"]) == {"oracle"}          # the other two folders hold metrics only
    assert len(points) == (data["split"] == "rm_valid").sum()
    r = np.corrcoef(points["reward"], points["truth"])[0, 1]
    assert r == pytest.approx(model.metrics["valid"]["pearson_truth"], abs=1e-9)
    assert ev.cached_reward_points(run).equals(points)


def test_reward_marker_preference_finds_the_popular_teams_in_a_naive_reward(tmp_path):
    """Entangled simulation: the naive reward (outcome = quality + 0.1 · popularity) scores East teams (the
    popular ones) above West on the same headlines; the reward on the deconfounded outcome does not."""
    from deconfound.rewards import RewardColumns, RewardConfig, train_reward
    data = simulate(scenario="entangled", n=6000, seed=5)
    data["corrected"] = data["outcome"] - 0.1 * data["popularity"]
    train, valid = data[data["split"] != "rm_valid"], data[data["split"] == "rm_valid"]
    columns = RewardColumns(text="text", context="context", outcome="outcome", truth="quality", corrected="corrected")
    for method in ("naive", "deconfounded"):
        train_reward(RewardConfig(method=method, backbone="tfidf"), train, valid, columns, tmp_path / "rewards" / method)
    groups = team_marker_groups()
    naive = ev.reward_marker_preference(tmp_path, "naive", groups)
    deconfounded = ev.reward_marker_preference(tmp_path, "deconfounded", groups)
    assert set(naive) == {"West", "Central", "East"}
    assert naive["West"] < naive["Central"] < naive["East"]
    assert naive["East"] - naive["West"] > 0.1                       # ≈ 0.1 per region step, two steps
    assert max(deconfounded.values()) - min(deconfounded.values()) < 0.5 * (naive["East"] - naive["West"])
    with pytest.raises(DeconfoundError, match="no 'odin' reward model"):
        ev.reward_marker_preference(tmp_path, "odin", groups)


def test_paper_goal_checks_of_the_bench(run):
    """bench/reproduce_paper.py's four goals, on runs whose answers are known."""
    import importlib.util
    from pathlib import Path
    spec = importlib.util.spec_from_file_location("reproduce_paper", Path(__file__).parents[1] / "bench" /
                                                  "reproduce_paper.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    gens = ev.load_generations(run)
    gens = pd.concat([gens, gens[gens["model"] == "rl_deconfounded"].assign(model="rl_oracle"),
                      gens[gens["model"] == "rl_same"].assign(model="rl_odin")], ignore_index=True)
    good = ev.compare(run, ev.EvalConfig(n_boot=100), generations=gens)
    goals = bench.goal_checks({"orthogonal": good, "entangled": good})
    assert [g["met"] for g in goals] == [True, True, True, True]
    assert goals[2]["numbers"]["relative_gain"]["rl_naive"] > 0.16

    bad = ev.compare(run, ev.EvalConfig(n_boot=100), generations=gens.replace(
        {"model": {"rl_deconfounded": "rl_x", "rl_naive": "rl_deconfounded", "rl_x": "rl_naive"}}))
    bad.reward_truth_corr["deconfounded"]["valid"] = 0.5
    goals = bench.goal_checks({"orthogonal": good, "entangled": bad})
    assert [g["met"] for g in goals] == [False, False, False, False]  # low corr, below oracle, no gain, East teams
    assert goals[0]["numbers"] == {"orthogonal": 0.9, "entangled": 0.5}
    notes = bench.explain(goals, {"orthogonal": good, "entangled": bad}, "a test scale")
    assert any("below 0.9" in n for n in notes) and notes[-1] == "Scale of this run: a test scale."
    gain_note = next(n for n in notes if n.startswith("Entangled scenario"))
    assert "ODIN (two heads): deconfounded is +0.0% above it" in gain_note and "(paper -0.542)" in gain_note


def test_fluency_columns_count_empty_and_cut_off_generations(tmp_path):
    """Known shares: empty texts are counted from the generations; cut-off ones and perplexities from the
    run's fluency.csv (prompt_id, model, seed, perplexity, tokens, cut_off)."""
    run = make_run(tmp_path / "run", n=100, seeds=(0,))
    generations = pd.read_csv(run / "generations.csv", keep_default_na=False)
    sft = generations["model"] == "sft"
    generations.loc[sft & (generations["prompt_id"] < 10), "text"] = ""          # 10 of 100 SFT texts empty
    generations.to_csv(run / "generations.csv", index=False)
    fluency = generations[["prompt_id", "model", "seed"]].assign(
        perplexity=np.where(generations["model"] == "rl_naive", 40.0, 20.0), tokens=12,
        cut_off=(generations["model"] == "rl_naive") & (generations["prompt_id"] < 25))  # 25 of 100 cut off
    (run / "evaluator").mkdir()
    fluency.to_csv(run / "evaluator" / "fluency.csv", index=False)
    result = ev.compare(run)
    assert result.models["sft"].empty_share == pytest.approx(0.10)
    assert result.models["rl_naive"].empty_share == 0.0
    assert result.models["rl_naive"].cut_off_share == pytest.approx(0.25)
    assert result.models["sft"].cut_off_share == 0.0
    assert result.models["rl_naive"].perplexity == pytest.approx(40.0)
    assert result.to_dict()["models"]["rl_naive"]["cut_off_share"] == pytest.approx(0.25)
    assert "cut off" in result.summary()


def test_fluency_passed_in_covers_pooled_models_and_unmeasured_ones_show_none(tmp_path):
    """`compare(fluency=...)` replaces the run's fluency.csv (pooled runs scored under one reference model); a
    model those rows do not cover has no perplexity and no cut-off share (unknown, not 'never cut off')."""
    run = make_run(tmp_path / "run", n=50, seeds=(0,))
    generations = pd.read_csv(run / "generations.csv", keep_default_na=False)
    (run / "evaluator").mkdir()
    generations[["prompt_id", "model", "seed"]].assign(perplexity=99.0, tokens=5, cut_off=True).to_csv(
        run / "evaluator" / "fluency.csv", index=False)  # the run's own file: overridden below
    covered = generations[generations["model"] != "sft"]
    pooled = covered[["prompt_id", "model", "seed"]].assign(
        perplexity=30.0, tokens=8, cut_off=covered["prompt_id"] < 10)  # 10 of 50 cut off
    result = ev.compare(run, fluency=pooled)
    assert result.models["sft"].perplexity is None and result.models["sft"].cut_off_share is None
    assert result.models["rl_naive"].perplexity == pytest.approx(30.0)
    assert result.models["rl_naive"].cut_off_share == pytest.approx(0.2)
