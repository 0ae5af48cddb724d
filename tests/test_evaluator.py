"""The pieces that judge a run without a truth column: perplexity (checked against transformers' own loss), the
independent evaluator (known signal, held-out correlation, a backbone the rewards did not use), and the default
scorer and marker groups of `evaluate.defaults`."""

import math

import numpy as np
import pandas as pd
import pytest

from deconfound.rewards import RewardColumns, evaluator_backbone, evaluator_label, train_evaluator

CORPUS = ["Great win for the team", "Tragic loss in the final", "New coach joins the club", "Fans cheer the record"] * 50


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from deconfound.models import build_tiny_model
    return build_tiny_model(CORPUS, tmp_path_factory.mktemp("ppl") / "base", layers=2, width=64, vocab_size=300)


def test_perplexity_equals_the_exp_of_transformers_loss(tiny):
    import torch

    from deconfound.models import load_generator, perplexity
    model, tok = load_generator(tiny, device="cpu")
    texts = ["Great win for the team", "Fans cheer", ""]
    ours = perplexity(tiny, texts, model=model, tokenizer=tok, batch_size=2)
    start = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
    for text, value in zip(texts[:2], ours[:2]):
        ids = torch.tensor([[start] + tok(text, add_special_tokens=False)["input_ids"]])
        with torch.inference_mode():
            loss = model(input_ids=ids, labels=ids).loss.item()
        assert value == pytest.approx(math.exp(loss), rel=1e-4)  # padding in a batch changes nothing
    assert math.isnan(ours[2])


def test_the_evaluator_learns_a_known_signal_and_reports_its_held_out_fit(tmp_path):
    rng = np.random.default_rng(0)
    good, plain = ["brilliant", "superb", "delightful"], ["river", "house", "winter", "garden", "letter", "road"]
    rows = []
    for _ in range(1500):
        words = [rng.choice(good) if rng.random() < 0.3 else rng.choice(plain) for _ in range(5)]
        quality = sum(w in good for w in words)
        rows.append({"text": " ".join(words), "outcome": quality + rng.normal(0, 0.5) + 3.0,
                     "outcome_deconf": quality + rng.normal(0, 0.5)})
    frame = pd.DataFrame(rows)
    columns = RewardColumns(text="text", outcome="outcome", corrected="outcome_deconf")
    model = train_evaluator(frame, columns, tmp_path / "evaluator", backbone="tfidf", max_rows=1200)
    holdout = model.metrics["holdout"]
    assert holdout["n"] == 240 and holdout["target"] == "outcome_deconf" and holdout["pearson_target"] > 0.8
    assert model.config.method == "deconfounded"
    label = evaluator_label(model.metrics)
    assert label.startswith("estimated by an independent deconfounded reward model (TF-IDF, held-out r = 0.")
    assert evaluator_backbone("tfidf") == "minilm" and evaluator_backbone("minilm") == "tfidf"
    assert evaluator_backbone("generator") == "minilm"


def test_defaults_judge_the_simulation_by_sentiment_and_other_tables_by_the_evaluator(tmp_path):
    from deconfound.evaluate import default_scorer
    from deconfound.sim import simulate
    assert default_scorer(None) == "sentiment" and default_scorer(tmp_path) == "sentiment"  # no data snapshot
    simulate(scenario="entangled", n=200, seed=0).to_parquet(tmp_path / "data.parquet")
    assert default_scorer(tmp_path) == "sentiment"
    pd.DataFrame({"title": ["a", "b"], "votes": [1, 2]}).to_parquet(tmp_path / "data.parquet")
    assert default_scorer(tmp_path) == "evaluator"
