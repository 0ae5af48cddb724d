"""The marker audit: rules and phrases are read (or refused in one sentence), the within-question estimate recovers
the planted weekday effects, pairs from the raw score favour the marked (Monday) answers while pairs from the
deconfounded score do not, and on tiny models naive DPO amplifies the planted marker while deconfounded DPO does
not; the audit runs as a background job that can be cancelled and resumed."""

import json
import time

import numpy as np
import pandas as pd
import pytest

from deconfound import audits, cli
from deconfound.errors import DeconfoundError
from deconfound.sim import QA_ROLES, QA_WEEKDAY_EFFECT, simulate_qa

# A 2-layer, 128-wide model; DPO strong enough to move it within a few dozen steps (measured: naive DPO took the
# marker from about 19% to about 44% of generations, deconfounded DPO left it near 20%).
TINY = {"model.tiny_layers": 2, "model.tiny_width": 128, "model.tiny_vocab": 1000, "sft.max_steps": 80,
        "sft.batch_size": 16, "sft.save_steps": 20, "dpo.max_steps": 30, "dpo.learning_rate": 5e-4,
        "dpo.save_steps": 15, "n_eval_prompts": 120, "threads": 1}


@pytest.fixture(scope="module")
def qa_store(tmp_path_factory):
    """A home with a 1,200-question Q&A log tagged like the demo."""
    home = tmp_path_factory.mktemp("marker_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DECONFOUND_HOME", str(home))
        mp.setenv("DECONFOUND_DB", str(home / "studio.duckdb"))
        from deconfound.data import Store
        store = Store(home / "studio.duckdb")
        store.ingest_frame(simulate_qa(n_questions=1200, seed=4), "qa")
        store.save_roles("qa", QA_ROLES)
        yield store


# ------------------------------------------------------------------ rules and phrases
@pytest.mark.parametrize("text, key, value", [("weekday=Mon", "weekday", "Mon"), ("Weekday = monday", "weekday", "Mon"),
                                              ("month=Dec", "month", "12"), ("month=3", "month", "3"),
                                              ("hour=09", "hour", "9"), ("team='East'", "team", "East")])
def test_rules_are_read(text, key, value):
    rule = audits.parse_rule(text)
    assert (rule.key, rule.value) == (key, value)


@pytest.mark.parametrize("text, words", [("weekday", "not KEY=VALUE"), ("=Mon", "not KEY=VALUE"),
                                         ("weekday=Funday", "not a weekday"), ("hour=25", "from 0 to 23"),
                                         ("month=13", "not a month")])
def test_bad_rules_are_one_sentence(text, words):
    with pytest.raises(DeconfoundError, match=words):
        audits.parse_rule(text)


def test_rule_groups_masks_and_marking():
    data = pd.DataFrame({"t": pd.to_datetime(["2024-01-01 10:00", "2024-01-02 11:00", "2024-01-08 09:00"]),
                         "team": ["East", "West", None], "text": ["a", "b", "c"]})
    groups = audits.rule_groups(data, audits.parse_rule("weekday=Mon"), "t")
    assert groups.tolist() == ["Mon", "Tue", "Mon"]
    mask = audits.rule_mask(groups, audits.parse_rule("weekday=Mon"))
    assert audits.mark_texts(data["text"], mask, " Happy Monday! ").tolist() == ["Happy Monday! a", "b",
                                                                                 "Happy Monday! c"]
    assert audits.rule_groups(data, audits.parse_rule("hour=9"), "t").tolist() == ["10", "11", "9"]
    with pytest.raises(DeconfoundError, match="matches no row"):
        audits.rule_mask(groups, audits.parse_rule("weekday=Sun"))
    with pytest.raises(DeconfoundError, match="matches every row"):
        audits.rule_mask(audits.rule_groups(data, audits.parse_rule("month=1"), "t"), audits.parse_rule("month=1"))
    with pytest.raises(DeconfoundError, match="no timestamp column"):
        audits.rule_groups(data, audits.parse_rule("weekday=Mon"), None)
    with pytest.raises(DeconfoundError, match="does not have"):
        audits.rule_groups(data, audits.parse_rule("region=East"), "t")
    assert audits.marker_words("Happy Monday!") == ["Happy", "Monday"]
    for empty in ("", "   ", "!!!"):
        with pytest.raises(DeconfoundError, match="marker phrase is empty"):
            audits.marker_words(empty)
    with pytest.raises(DeconfoundError, match="already contains"):
        audits.check_marker(pd.Series(["Happy Monday! x", "oh happy monday! y"]), "Happy Monday!")


# ------------------------------------------------------------------ the data and the pairs
@pytest.fixture(scope="module")
def prepared(qa_store):
    config = audits.marker_config("smoke", "qa", qa_store, "weekday=Mon", "Happy Monday!")
    data = qa_store.read_frame("qa")
    frame, info = audits.prepare_rows(data, config)
    return config, frame, info


def test_within_question_estimate_recovers_the_weekday_effects(prepared):
    _, frame, info = prepared
    coef, se = info["estimate"]["coef"], info["estimate"]["std_err"]
    reference = info["reference"]
    assert reference == "Mon"  # the busiest weekday is the reference level
    for day, effect in QA_WEEKDAY_EFFECT.items():
        if day != reference:
            term = f"rule_group[{day}]"
            assert abs(coef[term] - (effect - QA_WEEKDAY_EFFECT["Mon"])) < 3 * se[term] < 0.5, (day, coef[term])
    corrected = frame.groupby("group")["corrected"].mean()
    raw = frame.groupby("group")["outcome"].mean()
    assert raw["Mon"] - raw["Sun"] > 1.8 and abs(corrected["Mon"] - corrected["Sun"]) < 0.2


def test_raw_pairs_favour_marked_answers_and_deconfounded_pairs_do_not(prepared):
    from scipy.stats import binomtest
    config, frame, _ = prepared
    naive = audits.preference_pairs(frame, "outcome", config.max_pairs_per_context)
    fair = audits.preference_pairs(frame, "corrected", config.max_pairs_per_context)
    for pairs, skewed in ((naive, True), (fair, False)):
        one = pairs[pairs["chosen_marked"] != pairs["rejected_marked"]]
        p = binomtest(int(one["chosen_marked"].sum()), len(one), 0.5).pvalue
        assert (p < 1e-6) if skewed else (p > 0.01), (len(one), int(one["chosen_marked"].sum()), p)
    assert set(naive["prompt"]) <= set(frame.loc[frame["split"] == "pairs", "context"])
    assert (naive.groupby("prompt").size() <= 10).all()
    assert (naive["chosen_score"] > naive["rejected_score"]).all()


def test_at_most_max_pairs_per_context():
    outcome = np.concatenate([np.arange(40.0), [100.0, 200.0, 300.0, 400.0]])
    frame = pd.DataFrame({"context": ["q"] * 40 + ["r"] * 4, "text": [f"a{i}" for i in range(44)],
                          "outcome": outcome, "corrected": outcome, "marked": [False] * 44, "split": "pairs"})
    pairs = audits.preference_pairs(frame, "outcome", max_pairs=3)
    assert pairs.groupby("prompt").size().to_dict() == {"q": 3, "r": 2}


def test_contexts_are_split_whole_and_in_the_asked_shares():
    contexts = pd.Series([f"q{i // 3}" for i in range(3000)])
    split = audits.split_contexts(contexts, 0.35, 0.21, seed=0)
    assert (split.groupby(contexts).nunique() == 1).all()
    shares = split.groupby(contexts).first().value_counts(normalize=True)
    assert shares["sft"] == pytest.approx(0.35, abs=0.01) and shares["test"] == pytest.approx(0.21, abs=0.01)


@pytest.mark.parametrize("rule, marker, words", [
    ("weekday=Mon", "", "marker phrase is empty"), ("weekday=Sun", "x", None),
    ("question_id=-5", "Happy Monday!", "matches no row"), ("weekday=Mon", "I", "already contains"),
    ("answer=nothing", "x", "matches no row")])
def test_bad_marker_audits_exit_2_with_nothing_written(qa_store, rule, marker, words, capsys):
    if words is None:  # a valid rule: only the shape of the command is checked here, by --prepare
        code = cli.main(["audit", "marker", "--table", "qa", "--rule", rule, "--marker", marker, "--prepare",
                         "--json", "--db", str(qa_store.path)])
        payload = json.loads(capsys.readouterr().out)
        assert code == 0 and payload["state"] == "queued" and "deconfound.worker" in payload["command"]
        return
    before = sorted(p.name for p in audits.audits_dir().iterdir())
    code = cli.main(["audit", "marker", "--table", "qa", "--rule", rule, "--marker", marker,
                     "--db", str(qa_store.path)])
    err = capsys.readouterr().err
    assert code == 2 and words in err and len(err.strip().splitlines()) == 1, err
    assert sorted(p.name for p in audits.audits_dir().iterdir()) == before


def test_a_rule_matching_every_row_is_refused(qa_store, capsys):
    code = cli.main(["audit", "marker", "--table", "qa", "--rule", "answered_at=x", "--marker", "Hi",
                     "--db", str(qa_store.path)])
    assert code == 2 and "matches no row" in capsys.readouterr().err
    frame = simulate_qa(n_questions=50, seed=1).assign(source="forum")
    qa_store.ingest_frame(frame, "one_source")
    qa_store.save_roles("one_source", QA_ROLES)
    code = cli.main(["audit", "marker", "--table", "one_source", "--rule", "source=forum", "--marker", "Hi",
                     "--db", str(qa_store.path)])
    assert code == 2 and "matches every row" in capsys.readouterr().err


# ------------------------------------------------------------------ the job, end to end on tiny models
def wait_until(predicate, job_id, what: str, timeout_s: float = 600):
    deadline = time.monotonic() + timeout_s
    while not predicate():
        status = audits.audit_status(job_id)
        assert status["state"] in ("queued", "running"), f"{what}: the audit ended early: {status}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def finished(qa_store):
    """A marker audit job on tiny models: cancelled during SFT once it has a checkpoint, resumed, finished."""
    config = audits.marker_config("smoke", "qa", qa_store, "weekday=Mon", "Happy Monday!",
                                  overrides=TINY | {"train_seeds": [0], "gen_seeds": [0, 1, 2]})
    job = audits.create_audit_job(config, qa_store)
    audits.start_audit_job(job.id)
    wait_until(lambda: any(job.run_dir.glob("checkpoints/sft_s0/checkpoint-*/trainer_state.json")), job.id,
               "an SFT checkpoint")
    running = audits.audit_status(job.id)
    cancelled = audits.cancel_audit_job(job.id)
    before = {s["stage"]: s["finished_at"] for s in job.folder.stages()}
    audits.resume_audit_job(job.id)
    final = audits.wait_audit_job(job.id, timeout_s=900, poll_s=0.5)
    return job, running, cancelled, before, final


def test_the_audit_job_cancels_and_resumes(finished):
    job, running, cancelled, before, final = finished
    assert running["state"] == "running" and running["stage"].startswith("sft/") and 0 < running["progress"] < 1
    assert cancelled["state"] == "cancelled"
    assert final["state"] == "completed", final
    after = {s["stage"]: s["finished_at"] for s in job.folder.stages()}
    assert before["prepare"] == after["prepare"] and before["base"] == after["base"]  # not redone
    summary = json.loads((job.run_dir / "models" / "sft_s0" / "training_summary.json").read_text())
    assert summary["resumed_from"] and summary["steps"] == TINY["sft.max_steps"]
    assert job.id in [j["id"] for j in audits.list_audit_jobs("qa")]
    assert (job.run_dir / "result.json").is_file() and "Naive" in final["message"]


def test_naive_dpo_amplifies_the_marker_and_deconfounded_dpo_does_not(finished):
    job = finished[0]
    result = audits.marker_result(job.run_dir)
    table = result.table().set_index("model")
    assert list(table.index) == ["base", "sft", "dpo_naive", "dpo_deconfounded"]
    assert (table["runs"] == 3).all() and (table["generations_per_run"] == TINY["n_eval_prompts"]).all()
    for word in ("Happy", "Monday"):
        sft, naive, fair = (table.loc[m, f"{word} %"] for m in ("sft", "dpo_naive", "dpo_deconfounded"))
        assert result.amplified(word, "dpo_naive") and naive > sft + 10, result.summary()
        # One training seed: the runs differ only in sampling, so "not amplified" is read as a small change.
        assert abs(fair - sft) < 6 and fair < naive - 10, result.summary()
    assert "amplifies the spurious marker" in result.verdict()
    from deconfound.evaluate import chart_svg
    svg = chart_svg(audits.marker_rates_chart(result))
    assert svg.startswith("<svg") and "DPO on the deconfounded outcome" in svg


@pytest.mark.slow
def test_two_training_seeds_amplification_is_significant_only_for_naive_dpo(qa_store, tmp_path):
    """The replication the paper uses: several training seeds × generation seeds, t-tests over runs."""
    from deconfound.audits.marker_run import run_marker_audit
    config = audits.marker_config("smoke", "qa", qa_store, "weekday=Mon", "Happy Monday!",
                                  overrides=TINY | {"sft.max_steps": 120, "dpo.max_steps": 40, "n_eval_prompts": 200,
                                                    "train_seeds": [0, 1], "gen_seeds": [0, 1]})
    job = audits.create_audit_job(config, qa_store)
    run_marker_audit(job.run_dir)
    result = audits.marker_result(job.run_dir)
    assert (result.table()["runs"] == [2, 4, 4, 4]).all()
    for word in ("Happy", "Monday"):
        assert result.amplified(word, "dpo_naive"), result.summary()
        assert not result.amplified(word, "dpo_deconfounded"), result.summary()
        naive_vs_fair = result.tests().query("word == @word and a == 'dpo_naive' and b == 'dpo_deconfounded'").iloc[0]
        assert naive_vs_fair["difference"] < -0.1 and naive_vs_fair["pvalue"] < 0.01
