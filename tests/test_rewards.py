"""Reward models (paper Tables 1–2) on the shipped simulation, where the truth (headline sentiment) is known.

Fast tests use the TF-IDF backbone on the demo's rm / rm_valid splits; one test runs MiniLM on a subsample;
the fine-tuned LM head and the frozen generator backbone run on a tiny model in a `slow` test.
The deconfounded outcome comes from the project's 2SLS (`causal.fit_iv`: popularity endogenous,
team-region dummies as instruments).
"""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from deconfound.errors import DeconfoundError
from deconfound.rewards import (METHODS, FeatureCache, RewardColumns, RewardConfig, RewardModel, reward_inputs,
                                reward_table, train_all, train_reward)

COLUMNS = RewardColumns(text="text", context="context", outcome="outcome", truth="quality",
                        confounder="popularity", corrected="corrected")


def demo_frame(scenario: str) -> pd.DataFrame:
    """The demo table with the IV-deconfounded outcome as column `corrected`."""
    import torch

    from deconfound import causal
    from deconfound.paths import demo_data_dir
    from deconfound.sim import DEMO_ROLES, simulate
    torch.set_num_threads(1)
    path = demo_data_dir() / f"demo_{scenario}.csv"
    frame = pd.read_csv(path, parse_dates=["published_at"]) if path.exists() else \
        simulate(scenario=scenario, n=20_000, seed=0)
    result = causal.fit_iv(frame, DEMO_ROLES)
    assert abs(result.coef["popularity"] - 0.1) < 0.02  # the IV recovers the simulation's true effect
    frame["corrected"], _ = causal.deconfounded_outcome(frame, result)
    return frame


def splits(frame: pd.DataFrame):
    return (frame[frame["split"] == "rm"].reset_index(drop=True),
            frame[frame["split"] == "rm_valid"].reset_index(drop=True))


@pytest.fixture(scope="module")
def entangled():
    return demo_frame("entangled")


@pytest.fixture(scope="module")
def orthogonal():
    return demo_frame("orthogonal")


@pytest.fixture(scope="module")
def entangled_models(entangled, tmp_path_factory):
    """Every method trained once on the entangled demo (TF-IDF backbone)."""
    train, valid = splits(entangled)
    root = tmp_path_factory.mktemp("rewards_entangled")
    return train_all(METHODS, train, valid, COLUMNS, root, RewardConfig(method="naive", backbone="tfidf"))


def valid_corr(models, method):
    return models[method].metrics["valid"]["pearson_truth"]


# ------------------------------------------------------------------ every method trains, saves, reloads
def test_every_method_trains_saves_and_reloads(entangled_models, entangled):
    train, valid = splits(entangled)
    sample = valid.iloc[:50]
    for method in METHODS:
        model = entangled_models[method]
        folder = model.out_dir
        assert (folder / "config.json").exists() and (folder / "metrics.json").exists()
        saved = json.loads((folder / "metrics.json").read_text())
        assert saved["method"] == method and saved["backbone"] == "tfidf"
        assert (saved["n_train"], saved["n_valid"]) == (len(train), len(valid))
        for split in ("train", "valid"):
            assert {"pearson_truth", "r2_outcome"} <= set(saved[split])
        assert saved["lambda"] in model.config.l2_grid
        reloaded = RewardModel.load(folder)
        args = (sample["text"].tolist(), sample["context"].tolist(), sample["popularity"].to_numpy())
        np.testing.assert_allclose(reloaded.score(*args), model.score(*args), rtol=1e-6, atol=1e-9)
        assert method in model.summary()


def test_reload_in_a_fresh_process(entangled_models, entangled):
    _, valid = splits(entangled)
    sample = valid.iloc[:20]
    texts, pops = sample["text"].tolist(), sample["popularity"].tolist()
    folders = {m: str(entangled_models[m].out_dir) for m in ("confounder_text", "odin", "deconfounded")}
    script = ("import json, sys; from deconfound.rewards import RewardModel; a = json.loads(sys.argv[1]); "
              "print(json.dumps({m: RewardModel.load(f).score(a['texts'], None, a['pops']).tolist() "
              "for m, f in a['folders'].items()}))")
    payload = json.dumps({"texts": texts, "pops": pops, "folders": folders})
    done = subprocess.run([sys.executable, "-c", script, payload], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    fresh = json.loads(done.stdout.strip().splitlines()[-1])
    for method in folders:
        np.testing.assert_allclose(fresh[method], entangled_models[method].score(texts, None, pops), rtol=1e-6)


# ------------------------------------------------------------------ Table 2: entangled and orthogonal
def test_entangled_deconfounded_reward_tracks_the_truth_and_baselines_do_not(entangled_models):
    deconfounded = valid_corr(entangled_models, "deconfounded")
    # Measured 0.986 on the demo (TF-IDF reads VADER's words almost exactly).
    assert deconfounded >= 0.90
    assert valid_corr(entangled_models, "oracle") >= 0.95
    # The paper's failure: trained on the raw outcome, the reward barely follows the truth.
    naive = valid_corr(entangled_models, "naive")
    assert naive < 0.5                                             # measured 0.23
    assert deconfounded >= naive + 0.3
    assert deconfounded > valid_corr(entangled_models, "confounder_text") + 0.3   # measured 0.18
    assert deconfounded > valid_corr(entangled_models, "confounder_layer") + 0.3  # measured 0.16
    assert deconfounded > valid_corr(entangled_models, "odin") + 0.2              # measured 0.58
    table = reward_table(entangled_models)
    assert list(table["method"]) == list(METHODS)
    assert table.set_index("method").loc["deconfounded", "valid_pearson_truth"] == pytest.approx(deconfounded)


def test_orthogonal_naive_reward_is_fine_and_deconfounded_still_best(orthogonal, tmp_path):
    train, valid = splits(orthogonal)
    models = train_all(["naive", "deconfounded"], train, valid, COLUMNS, tmp_path,
                       RewardConfig(method="naive", backbone="tfidf"))
    assert valid_corr(models, "deconfounded") >= 0.90  # measured 0.986
    assert valid_corr(models, "naive") >= 0.7          # measured 0.91: confounding is orthogonal to quality


def test_confounder_layer_learns_the_true_popularity_effect(entangled_models, entangled):
    model = entangled_models["confounder_layer"]
    per_unit = model.head.ridge.coef_[-1] / model.state["confounder_sd"]
    assert 0.07 < per_unit < 0.13  # the simulation's true coefficient is 0.1 (ridge shrinks it a little)
    text = ["Rebels Roll to a Thrilling Win"]
    assert model.score(text, None, [3.0])[0] - model.score(text, None, [0.0])[0] == pytest.approx(3 * per_unit)
    # With the confounder held fixed (as within one RL prompt) the text part follows the truth.
    assert model.metrics["valid"]["pearson_truth_text_only"] > 0.9


def test_odin_quality_head_is_decorrelated_from_the_confounder(entangled_models, entangled):
    model = entangled_models["odin"]
    assert abs(model.metrics["train"]["pearson_confounder"]) < 0.05
    weight = model.head.weight
    cosine = weight[0] @ weight[1] / np.linalg.norm(weight[0]) / np.linalg.norm(weight[1])
    assert abs(cosine) < 0.05
    # A reward uncorrelated with popularity can correlate with quality at most sqrt(1 - ρ²), ρ = corr(quality,
    # popularity) (≈ -0.6 when entangled): ODIN must lose the part of quality that is entangled with it.
    _, valid = splits(entangled)
    rho = np.corrcoef(valid["quality"], valid["popularity"])[0, 1]
    assert valid_corr(entangled_models, "odin") < np.sqrt(1 - rho ** 2) + 0.03


def test_oracle_noise_is_seeded_and_sized(entangled):
    train, valid = splits(entangled)
    train, valid = train.iloc[:1500], valid.iloc[:300]
    from deconfound.rewards import training_target
    config = RewardConfig(method="oracle_noise", backbone="tfidf", seed=3)
    target = training_target(config, train, COLUMNS)
    assert np.std(target - train["quality"]) == pytest.approx(0.5 * train["quality"].std(), rel=0.08)
    assert 0.85 < np.corrcoef(target, train["quality"])[0, 1] < 0.93
    np.testing.assert_array_equal(target, training_target(config, train, COLUMNS))
    assert not np.array_equal(target, training_target(RewardConfig(method="oracle_noise", seed=4, backbone="tfidf"),
                                                      train, COLUMNS))


# ------------------------------------------------------------------ the RL callable
def test_reward_func_is_trl_compatible_standardised_and_bounded(entangled_models, entangled):
    train, _ = splits(entangled)
    deconfounded = entangled_models["deconfounded"].reward_func()
    assert deconfounded.__name__ == "reward_deconfounded"
    rewards = np.array(deconfounded(train["text"].tolist(), prompts=None))
    assert abs(rewards.mean()) < 0.05 and abs(rewards.std() - 1) < 0.05
    conversational = [[{"role": "assistant", "content": t}] for t in train["text"].iloc[:8]]
    np.testing.assert_allclose(deconfounded(conversational, prompts=["p"] * 8, trainer_state=None),
                               rewards[:8], rtol=1e-6)
    happy, sad = deconfounded(["Brilliant, joyful win for the team", "Tragic, painful loss and injury"])
    assert happy > sad
    assert max(abs(v) for v in deconfounded(["win " * 300])) <= entangled_models["deconfounded"].config.clip

    in_text = entangled_models["confounder_text"].reward_func()
    values = in_text(["Great win"] * 2, prompts=None, popularity=[3.0, -5.0], context=["a", "b"])
    assert len(values) == 2 and values[0] != values[1]  # the prompt row's confounder is read
    with pytest.raises(DeconfoundError, match="popularity"):
        in_text(["Great win"], prompts=None)


def test_reward_inputs_and_include_context(entangled, tmp_path):
    assert reward_inputs(["Win"]) == ["Win"]
    assert reward_inputs(["Win"], ["Abstract."], [2.345], confounder_name="popularity") == \
        ["popularity: 2.3 | context: Abstract. | text: Win"]
    train, valid = splits(entangled)
    model = train_reward(RewardConfig(method="naive", backbone="tfidf", include_context=True),
                         train.iloc[:800], valid.iloc[:200], COLUMNS, tmp_path / "ctx")
    assert model.input_format == "context+text"
    with pytest.raises(DeconfoundError, match="context"):
        model.score(["Win"])
    assert len(model.reward_func()(["Win"], prompts=None, context=["An abstract"])) == 1


def test_user_errors_say_what_to_do(entangled, tmp_path):
    train, valid = splits(entangled)
    with pytest.raises(DeconfoundError, match="unknown reward method"):
        RewardConfig(method="magic")
    with pytest.raises(DeconfoundError, match="model_path"):
        train_reward(RewardConfig(method="naive", backbone="finetune"), train, valid, COLUMNS, tmp_path / "f")
    no_truth = RewardColumns(text="text", outcome="outcome")
    with pytest.raises(DeconfoundError, match="ground-truth"):
        train_reward(RewardConfig(method="oracle", backbone="tfidf"), train, valid, no_truth, tmp_path / "a")
    with pytest.raises(DeconfoundError, match="Deconfound step"):
        train_reward(RewardConfig(method="deconfounded", backbone="tfidf"), train, valid, no_truth, tmp_path / "b")
    with pytest.raises(DeconfoundError, match="confounder"):
        train_reward(RewardConfig(method="odin", backbone="tfidf"), train, valid, no_truth, tmp_path / "c")
    with pytest.raises(DeconfoundError, match="train it first"):
        RewardModel.load(tmp_path / "nothing")


# ------------------------------------------------------------------ MiniLM backbone
def test_minilm_backbone_deconfounded_beats_naive(entangled, tmp_path, home):
    train, valid = splits(entangled)
    train, valid = train.sample(600, random_state=0), valid.sample(300, random_state=0)
    cache = FeatureCache("minilm")
    models = train_all(["naive", "deconfounded"], train, valid, COLUMNS, tmp_path,
                       RewardConfig(method="naive", backbone="minilm"), features=cache)
    distinct = set(train["text"]) | set(valid["text"])
    assert len(cache.featurizer("text", []).memo) == len(distinct)  # each text embedded once for both methods
    assert valid_corr(models, "deconfounded") >= 0.75     # measured 0.94 with 3.7k rows
    assert valid_corr(models, "deconfounded") >= valid_corr(models, "naive") + 0.3
    reloaded = RewardModel.load(models["deconfounded"].out_dir)
    np.testing.assert_allclose(reloaded.score(valid["text"].iloc[:5].tolist()),
                               models["deconfounded"].score(valid["text"].iloc[:5].tolist()), rtol=1e-5)


# ------------------------------------------------------------------ LM backbones (tiny model)
@pytest.mark.slow
def test_finetuned_and_generator_backbones_on_a_tiny_lm(entangled, tmp_path, home):
    import torch

    from deconfound.models import build_tiny_model
    torch.set_num_threads(2)
    train, valid = splits(entangled)
    train, valid = train.iloc[:1000], valid.iloc[:300]
    lm = build_tiny_model(entangled["text"].iloc[:2000].tolist(), tmp_path / "tiny", layers=2, width=64,
                          vocab_size=800)
    base = RewardConfig(method="naive", backbone="finetune", model_path=str(lm), lr=2e-3)
    results = train_all(["naive", "deconfounded"], train, valid, COLUMNS, tmp_path / "ft", base)
    assert valid_corr(results, "deconfounded") >= 0.6
    assert valid_corr(results, "deconfounded") >= valid_corr(results, "naive") + 0.3
    # The LM itself was fine-tuned, not only the head.
    from transformers import AutoModel
    tuned = AutoModel.from_pretrained(results["deconfounded"].out_dir / "backbone").state_dict()
    start = AutoModel.from_pretrained(lm).state_dict()
    assert any(not torch.allclose(tuned[k], start[k]) for k in tuned if k in start)

    lora = train_all(["odin", "confounder_layer"], train, valid, COLUMNS, tmp_path / "lora",
                     RewardConfig(method="naive", backbone="finetune", model_path=str(lm), lr=2e-3, lora=True))
    sample = valid.iloc[:16]
    for model in list(results.values()) + list(lora.values()):
        reloaded = RewardModel.load(model.out_dir)
        args = (sample["text"].tolist(), None, sample["popularity"].to_numpy())
        np.testing.assert_allclose(reloaded.score(*args), model.score(*args), rtol=1e-4, atol=1e-5)
    assert (lora["odin"].out_dir / "adapter" / "adapter_config.json").exists()

    frozen = train_reward(RewardConfig(method="deconfounded", backbone="generator", model_path=str(lm)),
                          train, valid, COLUMNS, tmp_path / "gen")
    assert frozen.metrics["valid"]["pearson_truth"] is not None
    np.testing.assert_allclose(RewardModel.load(frozen.out_dir).score(sample["text"].tolist()),
                               frozen.score(sample["text"].tolist()), rtol=1e-5)
