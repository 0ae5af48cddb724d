"""TrainConfig and presets from a table's roles, splits, progress bookkeeping, and the estimate stage
(known answer: the simulation's true popularity coefficient). The whole pipeline runs in test_jobs.py."""

import json
import threading

import numpy as np
import pandas as pd
import pytest

from deconfound import runs
from deconfound.data import Roles, assign_splits, split_counts
from deconfound.errors import DeconfoundError
from deconfound.rewards import METHODS
from deconfound.runs import RunFolder, create_job
from deconfound.runs.stages import RunState, stage_estimate
from deconfound.sim import DEMO_ROLES, TRUE_POPULARITY_COEF, simulate


@pytest.fixture
def sim_store(store):
    """A 2,000-row entangled simulation, tagged like the demo, plus an untagged-truth copy without split."""
    frame = simulate(scenario="entangled", n=2000, seed=3)
    store.ingest_frame(frame, "sim")
    store.save_roles("sim", DEMO_ROLES)
    bare = frame.drop(columns=["split", "quality", "abstract_quality"])
    store.ingest_frame(bare, "bare")
    store.save_roles("bare", Roles(text="text", context="context", outcome="outcome", confounders=["popularity"]))
    return store


def test_preset_config_defaults_from_roles(sim_store):
    config = runs.preset_config("smoke", "sim", store=sim_store)
    assert config.methods == list(METHODS)  # truth and instrument tagged: the paper's full set
    assert config.estimator == "iv" and config.corrected_column is None
    assert config.model.name == "tiny" and config.reward.backbone == "tfidf"
    assert config.roles["instruments"] == ["team_region"]
    assert config.sft.torch_threads == config.threads  # one place decides the CPU threads
    cpu = runs.preset_config("cpu", "sim", store=sim_store)
    assert cpu.model.name == "smollm2-135m" and cpu.sft.use_lora and cpu.reward.backbone == "minilm"
    assert runs.preset_config("gpu", "sim", store=sim_store).n_eval_prompts == 3000


def test_methods_without_truth_or_instrument(sim_store):
    config = runs.preset_config("smoke", "bare", store=sim_store)
    assert "oracle" not in config.methods and "oracle_noise" not in config.methods
    assert "deconfounded" in config.methods
    assert any("ground-truth" in note for note in config.notes)
    assert config.estimator == "dml"  # no instrument tagged
    with pytest.raises(DeconfoundError, match="oracle"):
        runs.preset_config("smoke", "bare", store=sim_store, methods="naive,oracle")
    with pytest.raises(DeconfoundError, match="instrument"):
        runs.preset_config("smoke", "bare", store=sim_store, estimator="iv")
    with pytest.raises(DeconfoundError, match="unknown method"):
        runs.preset_config("smoke", "sim", store=sim_store, methods="naive,bogus")
    with pytest.raises(DeconfoundError, match="unknown preset"):
        runs.preset_config("huge", "sim", store=sim_store)


def test_saved_corrected_column_is_used(sim_store):
    from deconfound.causal import estimate, write_deconfounded_column
    result = estimate(sim_store, "sim", "iv")
    meta = write_deconfounded_column(sim_store, "sim", result)
    config = runs.preset_config("smoke", "sim", store=sim_store)
    assert config.corrected_column == meta["column"] == "outcome_deconf_iv"
    assert config.estimator == "iv" and config.corrected_meta["estimate"]["method"] == "iv"
    assert any("Deconfound page" in note for note in config.notes)


def test_config_json_round_trip_and_overrides(sim_store, tmp_path):
    config = runs.preset_config("smoke", "sim", store=sim_store,
                                    overrides={"rl.max_steps": "7", "methods": "naive,deconfounded",
                                               "gen_seeds": "0,1", "model.tiny_width": 64})
    assert config.rl.max_steps == 7 and config.methods == ["naive", "deconfounded"]
    assert config.gen_seeds == [0, 1] and config.model.tiny_width == 64
    data = json.loads(json.dumps(config.to_dict()))
    again = runs.TrainConfig.from_dict(data)
    assert again.to_dict() == config.to_dict()
    assert isinstance(again.rl, type(config.rl)) and isinstance(again.model, type(config.model))
    with pytest.raises(DeconfoundError, match="unknown rl setting"):
        runs.apply_overrides(config, {"rl.max_stepz": 3})
    with pytest.raises(DeconfoundError, match="unknown training setting"):
        runs.TrainConfig.from_dict(data | {"bogus": 1})
    # A partial config file is completed from the table's roles and the preset.
    partial = tmp_path / "run.json"
    partial.write_text(json.dumps({"table": "sim", "preset": "smoke", "methods": ["naive"], "rl": {"beta": 0.2}}))
    loaded = runs.load_config_file(partial, store=sim_store)
    from deconfound.train import RLSettings
    assert loaded.methods == ["naive"] and loaded.rl.beta == 0.2
    assert loaded.rl.max_steps == RLSettings.for_preset("smoke").max_steps


def test_splits_from_column_or_seeded(sim_store):
    data = sim_store.read_frame("sim")
    splits, note = assign_splits(data, seed=0)
    assert note is None and (splits == data["split"]).all()
    bare = sim_store.read_frame("bare")
    first, note = assign_splits(bare, seed=5)
    again, _ = assign_splits(bare, seed=5)
    assert note and (first == again).all()
    assert first.value_counts().to_dict() == split_counts(len(bare))
    prompts = runs.eval_prompts(data, splits, "context", 50, seed=0)
    assert len(prompts) == 50 and prompts["context"].is_unique
    assert set(data.loc[prompts["prompt_id"], "split"]) == {"test"}


def test_run_progress_writes_status_metrics_and_stops(tmp_path):
    folder = RunFolder(tmp_path)
    folder.write_status({"state": "running"})
    stop = threading.Event()
    progress = runs.RunProgress(folder, {"sft": 10.0, "rl/naive": 30.0}, stop=stop, min_interval_s=0.0)
    progress.begin("sft")
    progress("sft", 5, 10, {"loss": 2.5})
    status = folder.status()
    assert status["state"] == "running" and status["stage"] == "sft"
    assert status["progress"] == pytest.approx(5 / 40)
    progress.finish("sft")
    progress.begin("rl/naive")
    progress("rl/naive", 15, 30, {"reward": 0.3, "kl": 0.01})
    assert folder.status()["progress"] == pytest.approx((10 + 15) / 40)
    assert [(m["stage"], m["step"]) for m in folder.metrics()] == [("sft", 5), ("rl/naive", 15)]
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temp files
    stop.set()
    from deconfound.train import Cancelled
    with pytest.raises(Cancelled):
        progress("rl/naive", 16, 30, {"reward": 0.3})


def test_eta_starts_from_the_plan_then_follows_the_pace_smoothly(tmp_path, monkeypatch):
    """The first ETA is the plan's seconds (measured per-unit costs); once a stage has run at half the planned
    speed the ETA converges on twice the planned remainder, without jumping there in one write."""
    from deconfound.runs import progress as progress_module
    clock = [1000.0]
    monkeypatch.setattr(progress_module.time, "monotonic", lambda: clock[0])
    folder = RunFolder(tmp_path)
    folder.write_status({"state": "running"})
    progress = runs.RunProgress(folder, {"sft": 300.0, "rl/naive": 300.0}, min_interval_s=0.0)
    progress.begin("sft")
    assert folder.status()["eta_s"] == pytest.approx(600.0)   # nothing done: the plan
    etas = []
    for step in range(1, 11):                                   # the stage takes 600 s instead of 300
        clock[0] += 60.0
        progress("sft", step, 10, {})
        etas.append(folder.status()["eta_s"])
    assert max(abs(b - a) for a, b in zip(etas, etas[1:])) < 150  # no swings
    progress.finish("sft")
    for _ in range(30):                                         # status keeps being written while RL starts
        clock[0] += 1.0
        progress("rl/naive", 0, 10, {})
    assert folder.status()["eta_s"] == pytest.approx(600.0 - 30.0, rel=0.15)  # 300 planned s at half speed


def test_plan_weights_follow_settings(sim_store):
    config = runs.preset_config("smoke", "sim", store=sim_store, methods="naive,deconfounded")
    plan = runs.plan_stages(config)
    assert list(plan) == ["estimate", "base", "sft", "rewards/naive", "rewards/deconfounded", "rl/naive",
                          "rl/deconfounded", "generate", "summary"]
    longer = runs.apply_overrides(config, {"rl.max_steps": config.rl.max_steps * 2})
    assert runs.plan_stages(longer)["rl/naive"] > plan["rl/naive"]
    with_dpo = runs.apply_overrides(config, {"run_dpo": True})
    assert "dpo/naive" in runs.plan_stages(with_dpo) and "dpo_pairs/deconfounded" in runs.plan_stages(with_dpo)


def test_estimate_stage_recovers_true_coefficient(sim_store, home):
    """The in-run IV estimate of the popularity effect covers the simulation's true 0.1, and the corrected
    outcome tracks true quality better than the raw outcome (the entangled confounder removed)."""
    config = runs.preset_config("smoke", "sim", store=sim_store, methods="naive,deconfounded")
    job = create_job(config, sim_store)
    folder = RunFolder(job.run_dir)
    data = runs.load_run_data(folder)
    splits, _ = assign_splits(data, 0)
    run = RunState(folder=folder, config=config, progress=runs.RunProgress(folder, {"estimate": 1.0}),
                        resume=False, main=True, data=data, splits=splits)
    out = stage_estimate(run)
    estimate = json.loads((job.run_dir / "estimate.json").read_text())
    low, high = estimate["conf_int"]["popularity"]
    assert low < TRUE_POPULARITY_COEF < high
    assert estimate["n"] == int((data["split"] != "test").sum())  # the held-out prompts are not used
    saved = pd.read_parquet(job.run_dir / "data.parquet")
    corrected = saved[out["corrected_column"]]
    assert np.corrcoef(corrected, saved["quality"])[0, 1] > np.corrcoef(saved["outcome"], saved["quality"])[0, 1] + 0.2


def test_read_prompts(tmp_path):
    txt = tmp_path / "p.txt"
    txt.write_text("first abstract\n\n second abstract \n")
    assert runs.read_prompts(txt) == ["first abstract", "second abstract"]
    csv = tmp_path / "p.csv"
    pd.DataFrame({"context": ["a", "b"], "other": [1, 2]}).to_csv(csv, index=False)
    assert runs.read_prompts(csv) == ["a", "b"]
    pd.DataFrame({"abstract": ["a"]}).to_csv(csv, index=False)
    with pytest.raises(DeconfoundError, match="context"):
        runs.read_prompts(csv)


def test_cpu_plan_prices_the_chosen_rl_algorithm_and_reused_embeddings(sim_store):
    """The first ETA prices each RL step by the algorithm it runs (measured per-unit costs of the preset), and the
    reward models after the first reuse its sentence embeddings."""
    config = runs.preset_config("cpu", "sim", store=sim_store, methods="naive,deconfounded")
    assert config.rl.algorithm == "sample_rank"
    plan = runs.plan_stages(config)
    grpo = runs.plan_stages(runs.apply_overrides(config, {"rl.algorithm": "grpo"}))
    assert grpo["rl/naive"] > plan["rl/naive"]
    assert plan["rewards/deconfounded"] < plan["rewards/naive"]
    assert "fluency" in plan  # a pretrained base: perplexity of every model's headlines
