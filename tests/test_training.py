"""SFT, RL and DPO really train tiny models; generation is reproducible; guards and pairs behave.

One tiny model (2 layers × 128) is SFT'd once per module on a synthetic headline corpus in which
30% of headlines say "Win"; RL with a bounded "+1 if the headline says win" reward must raise that
share with a bounded KL.
"""

import json
import random

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl")

from deconfound.errors import DeconfoundError  # noqa: E402
from deconfound.models import (PromptStyle, build_tiny_model, generate, generate_with_stats,  # noqa: E402  # noqa: E402
                               is_adapter_folder, load_generator, row_seed)
from deconfound.text_measures import repetition_rate  # noqa: E402
from deconfound.train import (PRESETS, Cancelled, DPOSettings, GuardedReward, RLSettings, SFTSettings,  # noqa: E402
                              TrainingSummary, build_preference_pairs, rl_config, run_dpo, run_rl, run_sft)
from deconfound.train.callbacks import _Guards  # noqa: E402

TEAMS = ["Ironmen", "Condors", "Rebels", "Pilots", "Anchors", "Flyers", "Monarchs", "Coyotes"]
DAYS = ["Monday", "Tuesday", "Friday", "Sunday"]
WIN_TEMPLATES = ["{a} Win Over {b}", "{a} Win Big on {day}"]
OTHER_TEMPLATES = ["{a} Beat {b}", "{a} Top {b} on {day}", "{a} Edge {b}", "{b} Fall to {a}", "{a} Down {b} on {day}"]
SYSTEM = "Write a headline."


def headline_corpus(n: int = 400, seed: int = 0) -> pd.DataFrame:
    """Match reports → headlines; 30% of headlines use "Win"."""
    r = random.Random(seed)
    rows = []
    for _ in range(n):
        a, b = r.sample(TEAMS, 2)
        day, s1 = r.choice(DAYS), r.randint(3, 9)
        context = f"The {a} beat the {b} {s1}-{r.randint(0, s1 - 1)} on {day}. The {b} play again next week."
        template = r.choice(WIN_TEMPLATES) if r.random() < 0.3 else r.choice(OTHER_TEMPLATES)
        rows.append({"context": context, "text": template.format(a=a, b=b, day=day), "outcome": r.random()})
    return pd.DataFrame(rows)


def says_win(completions, prompts=None, **columns) -> list[float]:
    """A bounded known reward: 1 when the headline contains the word "win"."""
    return [float("win" in text.lower().split()) for text in completions]


def win_share(texts) -> float:
    return float(np.mean([says_win([t])[0] for t in texts]))


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def corpus():
    return headline_corpus()


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory, corpus):
    texts = corpus["context"].tolist() + corpus["text"].tolist()
    return build_tiny_model(texts, tmp_path_factory.mktemp("tiny") / "base", layers=2, width=128,
                            vocab_size=400, max_positions=128)


@pytest.fixture(scope="module")
def sft(tmp_path_factory, tiny_base, corpus):
    """The tiny model after 100 full fine-tuning steps (about 30 s), with the progress it reported."""
    settings = SFTSettings(use_lora=False, learning_rate=3e-3, batch_size=16, max_steps=100, max_length=64,
                           max_context_words=12, system_prompt=SYSTEM, warmup_ratio=0.1, save_steps=1000,
                           torch_threads=1)
    calls = []
    out = run_sft(tiny_base, corpus, settings, tmp_path_factory.mktemp("sft") / "model",
                  progress=lambda *args: calls.append(args))
    return out, calls


def _weights(path):
    from transformers import AutoModelForCausalLM
    return {k: v.clone() for k, v in AutoModelForCausalLM.from_pretrained(path).state_dict().items()}


def _changed(a: dict, b: dict) -> float:
    return max(float((a[k] - b[k]).abs().max()) for k in a)


# ------------------------------------------------------------------ SFT
def test_sft_lowers_loss_changes_weights_and_writes_headlines(sft, tiny_base, corpus):
    out, calls = sft
    summary = TrainingSummary.load(out)
    assert summary.steps == 100 and summary.kind == "sft"
    assert [c[1] for c in calls] == list(range(1, 101))  # progress after every step
    assert {c[0] for c in calls} == {"sft"} and all(c[2] == 100 for c in calls)
    assert summary.mean_of("loss", first=False) < 0.35 * summary.mean_of("loss", first=True)
    assert _changed(_weights(tiny_base), _weights(out)) > 1e-2
    assert PromptStyle.load(out).system_prompt == SYSTEM and PromptStyle.load(out).max_context_words == 12
    assert not (out / "checkpoints").exists()

    texts = generate(out, corpus["context"].tolist()[:48], seed=0, max_new_tokens=16)
    vocabulary = {w for t in corpus["text"] for w in t.split()}
    words = [w for t in texts for w in t.split()]
    assert np.mean([w in vocabulary for w in words]) > 0.7
    assert np.mean([any(team in t for team in TEAMS) for t in texts]) > 0.8
    # The random-initialised model it started from writes no such thing.
    before = generate(tiny_base, corpus["context"].tolist()[:16], seed=0, max_new_tokens=16)
    assert np.mean([w in vocabulary for t in before for w in t.split()]) < 0.3


def test_sft_with_lora_merges_into_a_full_folder(tiny_base, corpus, tmp_path):
    settings = SFTSettings(use_lora=True, lora_r=4, lora_alpha=8, learning_rate=5e-3, batch_size=8, max_steps=3,
                           max_length=64, max_context_words=12, torch_threads=1)
    # The base folder carries the long editor prompt: 64 tokens leave no room for the headline.
    with pytest.raises(DeconfoundError, match="max_length is 64"):
        run_sft(tiny_base, corpus.head(40), settings, tmp_path / "too_short")
    settings.system_prompt = SYSTEM
    out = run_sft(tiny_base, corpus.head(40), settings, tmp_path / "sft_lora")
    assert (out / "config.json").exists() and not is_adapter_folder(out)
    assert _changed(_weights(tiny_base), _weights(out)) > 1e-5


def test_sft_reports_missing_columns(tiny_base, tmp_path):
    with pytest.raises(DeconfoundError, match="text"):
        run_sft(tiny_base, pd.DataFrame({"context": ["a"]}), SFTSettings(), tmp_path / "x")


# ------------------------------------------------------------------ generation
def test_generate_is_reproducible_and_independent_of_batch_size(sft, corpus):
    out, _ = sft
    contexts = corpus["context"].tolist()[:12]
    first = generate_with_stats(out, contexts, seed=7, batch_size=12)
    assert first.per_second > 0 and len(first.texts) == 12
    assert generate(out, contexts, seed=7, batch_size=5) == first.texts
    assert generate(out, contexts, seed=8, batch_size=12) != first.texts
    # A prompt's text depends on its seed and position only, not on its batch neighbours.
    assert generate(out, contexts[:3], seed=7, batch_size=2) == first.texts[:3]
    assert all("\n" not in t for t in first.texts)
    greedy = generate(out, contexts[:4], seed=1, temperature=0)
    assert greedy == generate(out, contexts[:4], seed=2, temperature=0)
    assert row_seed(7, 0) != row_seed(7, 1) != row_seed(8, 1)


# ------------------------------------------------------------------ RL
def test_grpo_raises_a_bounded_reward_with_bounded_kl(sft, corpus, tmp_path):
    out, _ = sft
    settings = RLSettings(use_lora=False, learning_rate=1.5e-4, beta=0.05, max_steps=30, prompts_per_step=4,
                          num_generations=8, max_completion_length=12, save_steps=1000, torch_threads=1)
    seen = []
    rl = run_rl(out, says_win, corpus[["context", "outcome"]].head(200), settings, tmp_path / "rl",
                progress=lambda stage, step, total, metrics: seen.append((stage, step, metrics)),
                stage="rl/win")
    summary = TrainingSummary.load(rl)
    assert summary.steps == 30 and summary.stopped_early is None
    assert [s[1] for s in seen] == list(range(1, 31)) and seen[0][0] == "rl/win"
    for key in ("reward", "reward_raw", "kl", "loss", "completion_length", "repetition"):
        assert key in seen[-1][2], key
    start, end = summary.mean_of("reward_raw", True, 8), summary.mean_of("reward_raw", False, 8)
    assert end > start + 0.1, (start, end)
    kls = [h["kl"] for h in summary.history]
    assert max(kls) < settings.max_kl and max(kls) > 0  # anchored, yet moved
    assert all(abs(h["reward"]) <= settings.reward_clip for h in summary.history)
    # The policy itself changed: it says "win" more often than the SFT model on held-out prompts.
    held_out = corpus["context"].tolist()[200:296]
    after, before = win_share(generate(rl, held_out, seed=0)), win_share(generate(out, held_out, seed=0))
    assert after > before + 0.1, (before, after)


def test_rl_with_lora_cancels_cleanly_resumes_and_saves_an_adapter(sft, corpus, tmp_path):
    out, _ = sft
    received = {}

    def reward(completions, prompts=None, **columns):
        received.update(columns, prompts=prompts)
        return says_win(completions)

    settings = RLSettings(use_lora=True, lora_r=4, lora_alpha=8, learning_rate=5e-4, max_steps=6, prompts_per_step=2,
                          num_generations=4, max_completion_length=10, save_steps=100, torch_threads=1)
    prompts = corpus[["context", "outcome"]].head(40)

    def cancel_at_3(stage, step, total, metrics):
        if step == 3:
            raise Cancelled("stop please")

    with pytest.raises(Cancelled, match="step 3/6"):
        run_rl(out, reward, prompts, settings, tmp_path / "rl", progress=cancel_at_3)
    assert (tmp_path / "rl" / "checkpoints" / "checkpoint-3").is_dir()
    assert not (tmp_path / "rl" / "adapter_config.json").exists()
    # Every dataset column reached the reward; prompts are the raw contexts.
    assert set(received) >= {"context", "outcome", "prompts"} and received["prompts"] == received["context"]
    assert "trainer_state" not in received and "log_metric" not in received

    steps = []
    rl = run_rl(out, reward, prompts, settings, tmp_path / "rl", progress=lambda s, step, t, m: steps.append(step),
                resume=True)
    assert steps == [4, 5, 6]
    summary = TrainingSummary.load(rl)
    assert summary.resumed_from.endswith("checkpoint-3") and [h["step"] for h in summary.history] == list(range(1, 7))
    assert is_adapter_folder(rl) and not (rl / "checkpoints").exists()
    model, _ = load_generator(rl)
    assert not hasattr(model, "peft_config")  # merged for generation
    assert len(generate(rl, prompts["context"].tolist()[:3], seed=0)) == 3


def test_sample_rank_raises_a_bounded_reward_and_resumes_after_a_round(sft, corpus, tmp_path):
    """Sample-and-rank (sample texts, DPO on each prompt's best vs worst) moves the policy toward the reward
    like GRPO does, keeps its guards' metrics, and a run cancelled in a round resumes after the last round."""
    out, _ = sft
    settings = RLSettings(algorithm="sample_rank", use_lora=False, learning_rate=2e-4, max_steps=24, rounds=3,
                          prompts_per_step=8, num_generations=6, max_completion_length=12, rank_beta=0.2,
                          save_steps=1000, torch_threads=1)
    prompts = corpus[["context", "outcome"]].head(160)

    def cancel_in_round_1(stage, step, total, metrics):
        if step == 10:
            raise Cancelled("stop please")

    with pytest.raises(Cancelled, match="round 1"):
        run_rl(out, says_win, prompts, settings, tmp_path / "sr", progress=cancel_in_round_1, stage="rl/win")
    assert (tmp_path / "sr" / "checkpoints" / "rounds" / "round-0").is_dir()
    seen = []
    trained = run_rl(out, says_win, prompts, settings, tmp_path / "sr", resume=True, stage="rl/win",
                     progress=lambda stage, step, total, metrics: seen.append((step, total, metrics)))
    assert min(step for step, _, _ in seen) == 8 and all(total == 24 for _, total, _ in seen)  # round 0 not redone
    summary = TrainingSummary.load(trained)
    assert summary.steps == 24 and summary.stopped_early is None
    rounds = [h for h in summary.history if "pairs" in h]
    assert [h["round"] for h in rounds] == [0, 1, 2]  # the cancelled round's samples are dropped, redone
    assert all(key in rounds[-1] for key in ("reward", "repetition", "completion_length", "empty_share"))
    assert rounds[-1]["reward"] > rounds[0]["reward"], rounds  # later rounds sample better texts
    held_out = corpus["context"].tolist()[200:296]
    after, before = win_share(generate(trained, held_out, seed=0)), win_share(generate(out, held_out, seed=0))
    assert after > before + 0.1, (before, after)
    assert not (tmp_path / "sr" / "checkpoints").exists()


def test_rl_refuses_beta_zero_and_rloo_config_is_valid(tmp_path):
    with pytest.raises(DeconfoundError, match="beta > 0"):
        rl_config(RLSettings(beta=0.0), tmp_path)
    config = rl_config(RLSettings(algorithm="rloo", prompts_per_step=2, num_generations=4), tmp_path)
    assert type(config).__name__ == "RLOOConfig" and config.per_device_train_batch_size == 8
    assert config.beta == 0.05 and config.bf16 is (torch.cuda.is_available() and torch.cuda.is_bf16_supported())


def test_guarded_reward_scales_clips_and_penalises_repeats():
    settings = RLSettings(reward_clip=2.0, repetition_penalty=1.0)
    logged = {}
    reward = GuardedReward(lambda texts, prompts=None, **c: [0.0, 1.0, 100.0, 1.0], settings, stats=(1.0, 0.5))
    out = reward(prompts=[[{"role": "user", "content": "p"}]] * 4,
                 completions=[[{"role": "assistant", "content": t}] for t in ["a b", "c d", "e f", "go go go go"]],
                 context=["p"] * 4, log_metric=lambda name, value: logged.__setitem__(name, value))
    assert out == pytest.approx([-2.0, 0.0, 2.0, -0.75])  # z = (r − 1) / 0.5, clipped at ±2; 3/4 repeats
    assert logged["reward_raw"] == pytest.approx(25.5) and logged["repetition"] == pytest.approx(0.1875)
    calibrated = GuardedReward(lambda texts, prompts=None, **c: [1.0, 3.0], RLSettings())
    calibrated(completions=["x", "y"], context=["p", "q"])
    assert calibrated.stats == pytest.approx((2.0, 1.0))
    assert repetition_rate("Superb playoff superb friendly superb") == pytest.approx(0.4)
    assert repetition_rate("Ironmen Win Over Condors") == 0.0 and repetition_rate("") == 0.0


def test_guards_stop_on_kl_repetition_and_collapse_after_patience():
    guards = _Guards(RLSettings(max_kl=5.0, guard_patience=2))
    assert guards.check({"step": 1, "kl": 9.0}) is None  # one bad step is tolerated
    reason = guards.check({"step": 2, "kl": 12.0})
    assert "KL" in reason and "12.00" in reason and "step 2" in reason
    guards = _Guards(RLSettings(max_repetition=0.5, guard_patience=1))
    assert "repeats" in guards.check({"step": 1, "kl": 0.1, "repetition": 0.6})
    guards = _Guards(RLSettings(guard_patience=1))
    assert "shrank" in guards.check({"step": 1, "completion_length": 1.0})
    assert _Guards(RLSettings()).check({"step": 1, "kl": 0.1, "repetition": 0.1, "completion_length": 7}) is None


def test_rl_stops_early_when_kl_guard_fires(sft, corpus, tmp_path):
    out, _ = sft
    settings = RLSettings(use_lora=False, learning_rate=5e-3, max_steps=8, prompts_per_step=2, num_generations=4,
                          max_completion_length=10, max_kl=1e-4, guard_patience=2, save_steps=100,
                          torch_threads=1)
    rl = run_rl(out, says_win, corpus[["context"]].head(40), settings, tmp_path / "rl")
    summary = TrainingSummary.load(rl)
    assert summary.stopped_early and "KL" in summary.stopped_early
    assert summary.steps < 8 and (rl / "config.json").exists()


# ------------------------------------------------------------------ DPO and pairs
def test_build_preference_pairs_from_shared_contexts():
    rows = pd.DataFrame({
        "context": ["a"] * 4 + ["b"] * 2 + ["c"] * 2 + ["d"],
        "text": ["a1", "a2", "a3", "a4", "b1", "b2", "c1", "c2", "d1"],
        "outcome": [0.9, 0.1, 0.5, 0.47, 0.30, 0.31, 0.8, 0.2, 1.0],
    })
    pairs = build_preference_pairs(rows, min_pairs=1, min_gap=0.05)
    assert pairs.attrs["source"] == "observed"
    assert pairs[["prompt", "chosen", "rejected"]].values.tolist() == [
        ["a", "a1", "a2"], ["c", "c1", "c2"]]  # a3 vs a4 and b1 vs b2 are near-ties, d has no partner
    capped = build_preference_pairs(rows, min_pairs=1, min_gap=0.0, max_pairs_per_group=1)
    assert capped["prompt"].tolist() == ["a", "b", "c"]
    grouped = build_preference_pairs(rows.assign(exp=["x"] * 9), group="exp", min_pairs=1, max_pairs_per_group=9)
    assert grouped[["chosen", "rejected"]].values.tolist()[:2] == [["d1", "a2"], ["a1", "c2"]]
    with pytest.raises(DeconfoundError, match="policy_path and reward_fn"):
        build_preference_pairs(rows.drop_duplicates("context"))


def test_dpo_on_sampled_pairs_changes_weights(sft, corpus, tmp_path):
    out, _ = sft
    single = corpus.head(24)  # one text per context: pairs must be sampled from the SFT model
    pairs = build_preference_pairs(single, policy_path=out, reward_fn=says_win, samples_per_prompt=4, min_pairs=4)
    assert pairs.attrs["source"] == "sampled" and len(pairs) >= 4
    assert (pairs["chosen_score"] > pairs["rejected_score"]).all()
    assert all("win" in c.lower().split() for c in pairs["chosen"])
    settings = DPOSettings(use_lora=False, learning_rate=1e-4, max_steps=6, batch_size=4, max_length=64,
                           torch_threads=1)
    calls = []
    dpo = run_dpo(out, pairs, settings, tmp_path / "dpo", progress=lambda *a: calls.append(a), stage="dpo/win")
    assert [c[1] for c in calls] == list(range(1, 7)) and calls[0][0] == "dpo/win"
    assert "reward_margin" in calls[-1][3] and "loss" in calls[-1][3]
    assert _changed(_weights(out), _weights(dpo)) > 1e-5
    assert json.loads((dpo / "training_summary.json").read_text())["settings"]["loss_type"] == ["sigmoid", "sft"]


def test_dpo_with_lora_saves_a_loadable_adapter(sft, corpus, tmp_path):
    out, _ = sft
    pairs = pd.DataFrame({"prompt": corpus["context"].head(8), "chosen": corpus["text"].head(8),
                          "rejected": corpus["text"].iloc[8:16].values})
    settings = DPOSettings(lora_r=4, lora_alpha=8, max_steps=2, batch_size=4, max_length=64, torch_threads=1)
    dpo = run_dpo(out, pairs, settings, tmp_path / "dpo_lora")
    assert is_adapter_folder(dpo)
    assert len(generate(dpo, corpus["context"].tolist()[:2], seed=0)) == 2


# ------------------------------------------------------------------ settings
@pytest.mark.parametrize("cls", [SFTSettings, RLSettings, DPOSettings])
def test_presets_are_valid_and_round_trip(cls, tmp_path):
    for preset in PRESETS:
        settings = cls.for_preset(preset)
        assert cls.from_dict(json.loads(json.dumps(settings.to_dict()))) == settings
    assert cls.for_preset("cpu", seed=3).seed == 3
    with pytest.raises(DeconfoundError, match="preset"):
        cls.for_preset("huge")
    with pytest.raises(DeconfoundError, match="unknown"):
        cls.from_dict({"not_a_field": 1})
    if cls is RLSettings:
        gpu = rl_config(RLSettings.for_preset("gpu"), tmp_path)  # the paper-scale config trl accepts
        assert gpu.num_generations == 8 and gpu.max_steps == -1
        assert RLSettings.for_preset("smoke").use_lora is False and RLSettings.for_preset("cpu").use_lora
