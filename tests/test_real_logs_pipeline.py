"""Training and judging on a real log's shape: no context column (the prompt is the instruction alone, or a
template over chosen columns), a time confounder on a log scale, no truth column (the independent evaluator,
fluency and the default marker groups judge the run)."""

import json

import pandas as pd
import pytest

from deconfound import evaluate, runs
from deconfound.data import NO_CONTEXT_PROMPT, Roles, assign_splits
from deconfound.runs.stages import eval_prompts
from test_real_logs import make_log

# A 2-layer, 64-wide model and a handful of steps (as test_jobs.py): the whole pipeline in well under a minute.
TINY = {"methods": "naive,deconfounded", "model.tiny_layers": 2, "model.tiny_width": 64, "model.tiny_vocab": 1000,
        "sft.max_steps": 6, "sft.batch_size": 8, "sft.save_steps": 3,
        "rl.max_steps": 8, "rl.prompts_per_step": 2, "rl.num_generations": 4, "rl.max_completion_length": 8,
        "rl.save_steps": 2, "rl.learning_rate": 1e-3, "n_eval_prompts": 30, "gen_max_new_tokens": 8, "threads": 1}

ROLES = Roles(text="title", outcome="votes", timestamp="posted", confounders=["posted"], outcome_scale="log1p")


def test_held_out_prompts_without_context_are_rows_and_templates_render():
    data = make_log(n=600)
    splits, _ = assign_splits(data, 0)
    plain = eval_prompts(data, splits, ROLES, 30, 0)
    assert len(plain) == 30 and plain["prompt_id"].is_unique and set(plain["context"]) == {NO_CONTEXT_PROMPT}
    assert set(plain["prompt_id"]) <= set(data.index[splits == "test"])
    templated = Roles(**ROLES.to_dict() | {"prompt_template": "A title for {posted}"})
    rendered = eval_prompts(data, splits, templated, 30, 0)
    first = rendered.iloc[0]
    assert first["context"] == f"A title for {data.loc[first['prompt_id'], 'posted']:%Y-%m-%d %H:%M}"
    assert rendered["context"].is_unique


@pytest.mark.slow
def test_a_run_without_context_or_truth_is_judged_by_the_evaluator(store):
    store.ingest_frame(make_log(n=700), "titles")
    store.save_roles("titles", ROLES)
    config = runs.preset_config("smoke", "titles", store=store, overrides=TINY)
    assert config.methods == ["naive", "deconfounded"] and config.estimator == "dml"
    assert any("editor instruction alone" in n for n in config.notes)
    job = runs.create_job(config, store)
    runs.run_pipeline(job.run_dir)

    generations = pd.read_csv(job.run_dir / "generations.csv", keep_default_na=False)
    assert list(generations.columns) == list(evaluate.GENERATION_COLUMNS)
    assert set(generations["context"]) == {NO_CONTEXT_PROMPT}
    sft = generations[generations["model"] == "sft"]
    assert sft["prompt_id"].nunique() == TINY["n_eval_prompts"] and sft["text"].nunique() > 5  # varied texts
    style = json.loads((job.run_dir / "models" / "sft" / "deconfound_prompt.json").read_text())
    assert style["user_template"] == "{context}"

    summary = json.loads((job.run_dir / "evaluator" / "summary.json").read_text())
    assert summary["backbone"] == "minilm" and summary["rl_backbone"] == "tfidf"  # not the rewards' backbone
    assert summary["target"].startswith("votes_deconf") and summary["holdout_pearson"] is not None
    result = evaluate.compare(job.run_dir, evaluate.EvalConfig(n_boot=50))
    assert result.scorer == "evaluator" and "independent deconfounded reward model" in result.scorer_label
    assert "held-out r =" in result.scorer_label
    assert all(m.perplexity and m.perplexity > 1 for m in result.models.values())
    # A time confounder's calendar names are counted by default (weekday + month calendar).
    assert {"Monday", "Sunday", "January"} <= set(result.marker_groups)
