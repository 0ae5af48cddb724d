"""Jobs with a real worker process on a tiny model: a run killed with SIGKILL shows as failed, resumes
without redoing finished stages and completes with a full run folder; cancel stops the process group;
dead and reused pids are detected; the CLI's train / jobs / cancel / resume / generate commands."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from deconfound import cli, runs
from deconfound.data import Store
from deconfound.errors import DeconfoundError, NotFoundError
from deconfound.jsonio import write_json_atomic
from deconfound.sim import DEMO_ROLES, TRUE_POPULARITY_COEF, simulate

# A 2-layer, 64-wide model and a handful of steps: the whole pipeline in about a minute on 2 cores.
TINY = {"methods": "naive,deconfounded", "model.tiny_layers": 2, "model.tiny_width": 64, "model.tiny_vocab": 1000,
        "sft.max_steps": 6, "sft.batch_size": 8, "sft.save_steps": 3,
        "rl.max_steps": 8, "rl.prompts_per_step": 2, "rl.num_generations": 4, "rl.max_completion_length": 8,
        "rl.save_steps": 2, "rl.learning_rate": 1e-3, "n_eval_prompts": 30, "gen_max_new_tokens": 8, "threads": 1}
WAIT_S = 300


@pytest.fixture(scope="module")
def sim_store(tmp_path_factory):
    """An isolated home with a 400-row entangled simulation tagged like the demo."""
    home = tmp_path_factory.mktemp("jobs_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DECONFOUND_HOME", str(home))
        mp.setenv("DECONFOUND_DB", str(home / "studio.duckdb"))
        store = Store(home / "studio.duckdb")
        store.ingest_frame(simulate(scenario="entangled", n=400, seed=1), "sim")
        store.save_roles("sim", DEMO_ROLES)
        yield store


def tiny_job(store, **extra) -> runs.Job:
    config = runs.preset_config("smoke", "sim", store=store, overrides=TINY | extra)
    return runs.create_job(config, store)


def pgid_of(job) -> int:
    return json.loads((job.run_dir / "process.json").read_text())["pgid"]


def wait_for(predicate, job, what: str, timeout_s: float = WAIT_S):
    deadline = time.monotonic() + timeout_s
    while not predicate():
        status = runs.job_status(job.id)
        assert status["state"] in runs.ACTIVE_STATES, f"{what}: job ended early: {status}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}: {status}"
        time.sleep(0.1)


def complete_checkpoint(job):
    """An RL checkpoint the trainer has finished writing (trainer_state.json comes last)."""
    found = list(job.run_dir.glob("checkpoints/rl_*/checkpoint-*/trainer_state.json"))
    return found[0].parent if found else None


@pytest.fixture(scope="module")
def resumed(sim_store):
    """Start a job, SIGKILL its process group once RL has a checkpoint, record what the studio says, resume it."""
    job = tiny_job(sim_store)
    runs.start_job(job.id)
    wait_for(lambda: complete_checkpoint(job) is not None, job, "an RL checkpoint")
    checkpoint = complete_checkpoint(job)
    os.killpg(pgid_of(job), signal.SIGKILL)
    deadline = time.monotonic() + 30
    while runs.job_status(job.id)["state"] != "failed" and time.monotonic() < deadline:
        time.sleep(0.1)
    after_kill = runs.job_status(job.id)
    listed = next(j for j in runs.list_jobs() if j["id"] == job.id)
    finished_before = {s["stage"]: s["finished_at"] for s in job.folder.stages()}
    runs.resume_job(job.id)
    final = runs.wait_job(job.id, timeout_s=WAIT_S, poll_s=0.5)
    return SimpleNamespace(job=job, checkpoint=checkpoint, after_kill=after_kill, listed=listed,
                           finished_before=finished_before, final=final)


def test_killed_job_shows_failed_with_log_tail(resumed):
    status = resumed.after_kill
    assert status["state"] == "failed" and resumed.listed["state"] == "failed"
    assert "SIGKILL" in status["message"] and "rl/" in status["message"]
    assert status["log_tail"] and any("stage rl/" in line for line in status["log_tail"])
    assert status["stage"].startswith("rl/") and 0 < status["progress"] < 1


def test_resume_skips_finished_stages_and_continues_rl(resumed):
    assert resumed.final["state"] == "completed", resumed.final
    stages = {s["stage"]: s for s in resumed.job.folder.stages()}
    for name in ("estimate", "base", "sft", "rewards/naive", "rewards/deconfounded"):
        assert stages[name]["finished_at"] == resumed.finished_before[name]  # not redone
    log = (resumed.job.run_dir / "log.txt").read_text()
    assert "skip stage sft (finished before)" in log and log.count("stage sft\n") == 1
    method = resumed.checkpoint.parent.name.removeprefix("rl_")
    summary = json.loads((resumed.job.run_dir / "models" / f"rl_{method}" / "training_summary.json").read_text())
    assert summary["resumed_from"] and "checkpoint-" in summary["resumed_from"]
    assert summary["steps"] == TINY["rl.max_steps"]


def test_completed_run_folder(resumed):
    run_dir = resumed.job.run_dir
    status = resumed.final
    assert status["progress"] == 1.0 and status["summary"]["models"] == ["base", "sft", "rl_naive", "rl_deconfounded"]
    config = json.loads((run_dir / "config.json").read_text())
    assert runs.TrainConfig.from_dict(config).to_dict() == config and config["table"] == "sim"
    metrics = resumed.job.folder.metrics()
    for stage in ("sft", "rl/naive", "rl/deconfounded"):
        assert [m for m in metrics if m["stage"] == stage], stage
    rl_steps = [m for m in metrics if m["stage"] == "rl/naive"]
    assert all({"reward", "kl", "loss"} <= set(m) for m in rl_steps)
    # The estimate: in-run IV covers the true popularity effect; the deconfounded reward follows true
    # quality better than the naive one (the paper's Table 2, entangled scenario).
    estimate = json.loads((run_dir / "estimate.json").read_text())
    low, high = estimate["conf_int"]["popularity"]
    assert low < TRUE_POPULARITY_COEF < high
    rewards = {m: json.loads((run_dir / "rewards" / m / "metrics.json").read_text()) for m in ("naive", "deconfounded")}
    assert rewards["deconfounded"]["train"]["pearson_truth"] > rewards["naive"]["train"]["pearson_truth"]
    generations = pd.read_csv(run_dir / "generations.csv", keep_default_na=False)
    assert list(generations.columns) == ["prompt_id", "context", "model", "seed", "text"]
    assert generations.groupby("model").size().to_dict() == {m: 30 for m in status["summary"]["models"]}
    data = pd.read_parquet(run_dir / "data.parquet")
    assert set(data.loc[generations["prompt_id"].unique(), "split"]) == {"test"}
    samples = resumed.job.folder.samples()
    assert {"sft", "rl_naive", "rl_deconfounded"} <= {s["model"] for s in samples}
    assert not list(run_dir.glob("checkpoints/*/checkpoint-*"))  # cleaned up after finishing


def test_rl_changed_the_weights(resumed):
    from safetensors.torch import load_file
    models = resumed.job.run_dir / "models"
    sft = load_file(models / "sft" / "model.safetensors")
    rl = load_file(models / "rl_naive" / "model.safetensors")
    changed = [name for name in sft if not (sft[name] == rl[name]).all()]
    assert len(changed) > len(sft) // 2


def test_cli_generate_from_finished_run(resumed, tmp_path, capsys):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("The Boston team won a thrilling game last night.\nA painful injury ends the season.\n")
    out = tmp_path / "gen.csv"
    code = cli.main(["generate", "--run", str(resumed.job.run_dir), "--prompts", str(prompts),
                     "--models", "sft,rl_deconfounded", "--seed", "0,1", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    frame = pd.read_csv(out, keep_default_na=False)
    assert len(frame) == 2 * 2 * 2 and set(frame["model"]) == {"sft", "rl_deconfounded"}
    assert cli.main(["generate", "--run", resumed.job.id, "--prompts", str(prompts), "--models", "dpo_naive"]) == 2
    assert "not in this run" in capsys.readouterr().err
    assert cli.main(["resume", resumed.job.id, "--detach"]) == 2
    assert "only failed or cancelled" in capsys.readouterr().err


def test_cancel_stops_the_whole_process_group(sim_store):
    job = tiny_job(sim_store, **{"sft.max_steps": 200})
    runs.start_job(job.id)
    wait_for(lambda: runs.job_status(job.id).get("stage") == "sft", job, "the SFT stage")
    pgid = pgid_of(job)
    status = runs.cancel_job(job.id)
    assert status["state"] == "cancelled"
    assert not runs.group_alive(pgid)
    assert runs.job_status(job.id)["state"] == "cancelled"
    assert "stop requested" in (job.run_dir / "log.txt").read_text()  # the worker stopped itself on SIGTERM
    with pytest.raises(DeconfoundError, match="not running"):
        runs.cancel_job(job.id)


def test_dead_and_reused_pids_are_detected(sim_store):
    job = tiny_job(sim_store)
    folder = job.folder
    assert runs.job_status(job.id)["state"] == "queued"  # never started: not failed
    folder.log_path.write_text("2026-01-01 10:00:00 [INFO] stage rl/naive\nsome library noise\n")
    folder.update_status(state="running", stage="rl/naive")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    write_json_atomic(folder.process_path, {"pid": gone.pid, "pgid": gone.pid, "host": socket.gethostname()})
    status = runs.job_status(job.id)
    assert status["state"] == "failed" and "stage rl/naive" in status["message"]
    assert status["log_tail"][-1] == "some library noise"
    # A live pid that belongs to another program (different start time) is not our worker.
    folder.update_status(state="running")
    me = os.getpid()
    write_json_atomic(folder.process_path, {"pid": me, "pgid": me, "host": socket.gethostname(),
                                                 "proc_start": runs.process_start_time(me) + 1})
    assert runs.job_status(job.id)["state"] == "failed"
    folder.update_status(state="running")
    write_json_atomic(folder.process_path, {"pid": me, "pgid": me, "host": socket.gethostname(),
                                                 "proc_start": runs.process_start_time(me)})
    assert runs.job_status(job.id)["state"] == "running"  # alive and the same process
    # A run started on another machine cannot be checked here: left as it is.
    write_json_atomic(folder.process_path, {"pid": gone.pid, "host": "cluster-node-7"})
    assert runs.job_status(job.id)["state"] == "running"


def test_worker_reports_bad_input_as_failed(sim_store):
    job = tiny_job(sim_store)
    config = json.loads(job.folder.config_path.read_text())
    config["roles"]["text"] = "no_such_column"
    job.folder.config_path.write_text(json.dumps(config))
    runs.start_job(job.id, detach=False)
    status = runs.job_status(job.id)
    assert status["state"] == "failed" and "no_such_column" in status["message"]


def test_job_ids_paths_and_accelerate_command(sim_store):
    job = tiny_job(sim_store)
    assert runs.JOB_ID_RE.match(job.id) and runs.get_job(str(job.run_dir)).id == job.id
    listed = runs.list_jobs()
    assert listed[0]["id"] >= listed[-1]["id"]  # newest first
    assert {"id", "state", "progress", "stage", "run_dir", "table"} <= set(listed[0])
    for bad in ("../../etc", "nope", "20260101-000000-zzzz"):
        with pytest.raises(NotFoundError):
            runs.job_status(bad)
    command = runs.accelerate_command(job.id, 4)
    assert command == f"accelerate launch --num_processes 4 -m deconfound.worker {job.run_dir}"
    multi = runs.accelerate_command(job.id, 16, num_machines=2, resume=True)
    assert "--num_machines 2 --machine_rank $MACHINE_RANK" in multi and multi.endswith("--resume")
    assert runs.worker_command(job.run_dir, num_processes=2)[1:4] == ["-m", "accelerate.commands.launch",
                                                                       "--num_processes"]


def test_run_list_has_name_note_status_and_duration(sim_store, tmp_path):
    """What the Train page's run list shows: a name and a note given at launch (kept in the run folder), the
    state of `job_status`, the duration from the first start to the end (to now while it runs)."""
    config = runs.preset_config("smoke", "sim", store=sim_store, overrides=TINY)
    root = tmp_path / "runs"
    named = runs.create_job(config, sim_store, runs_root=root, name="  IV  vs naive ", note="May logs, new instrument")
    plain = runs.create_job(config, sim_store, runs_root=root)
    assert json.loads((named.run_dir / runs.ABOUT_FILE).read_text()) == {"name": "IV vs naive",
                                                                        "note": "May logs, new instrument"}
    assert not (plain.run_dir / runs.ABOUT_FILE).exists()
    named.folder.update_status(state="completed", started_at="2026-01-01T10:00:00+00:00",
                               ended_at="2026-01-01T10:03:30+00:00")
    plain.folder.update_status(state="running", started_at=runs.now_iso())  # no worker behind it: found dead
    rows = {row["id"]: row for row in runs.list_jobs(root)}
    first = rows[named.id]
    assert (first["name"], first["note"], first["state"], first["duration_s"]) == \
        ("IV vs naive", "May logs, new instrument", "completed", 210.0)
    assert first["table"] == "sim" and first["methods"] == ["naive", "deconfounded"] and first["created_at"]
    second = rows[plain.id]
    assert second["name"] == plain.id and second["note"] == ""
    assert second["state"] == runs.job_status(plain.id, runs_root=root)["state"]
    assert runs.run_duration({"state": "queued"}) is None
    assert 0 <= runs.run_duration({"state": "running", "started_at": runs.now_iso()}) < 60


def test_cli_train_errors_and_prepare(sim_store, tmp_path, capsys):
    assert cli.main(["train", "--table", "sim", "--preset", "smoke", "--methods", "naive,bogus"]) == 2
    assert "unknown method(s) bogus" in capsys.readouterr().err
    assert cli.main(["train", "--table", "missing", "--preset", "smoke"]) == 2
    assert "no table named 'missing'" in capsys.readouterr().err
    assert cli.main(["train", "--table", "sim", "--preset", "huge"]) == 2
    assert cli.main(["train", "--table", "sim"]) == 2
    assert "--preset" in capsys.readouterr().err
    assert cli.main(["train", "--table", "sim", "--preset", "smoke", "--methods", "naive", "--prepare",
                     "--processes", "2", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["state"] == "queued" and "--num_processes 2" in payload["accelerate_command"]
    run_dir = payload["run_dir"]
    assert os.path.isfile(os.path.join(run_dir, "data.parquet")) and os.path.isfile(os.path.join(run_dir, "config.json"))
    assert cli.main(["jobs", "--json"]) == 0
    assert payload["job_id"] in [j["id"] for j in json.loads(capsys.readouterr().out)]
    config_file = tmp_path / "run.json"
    config_file.write_text(json.dumps({"table": "sim", "preset": "smoke", "methods": ["naive"], "rl": {"beta": 0.2}}))
    assert cli.main(["train", "--config", str(config_file), "--set", "n_eval_prompts=5", "--prepare", "--json"]) == 0
    saved = json.loads((Path(json.loads(capsys.readouterr().out)["run_dir"]) / "config.json").read_text())
    assert saved["methods"] == ["naive"] and saved["rl"]["beta"] == 0.2 and saved["n_eval_prompts"] == 5
    assert cli.main(["cancel", payload["job_id"], "--json"]) == 0  # prepared, never started: marked cancelled
    assert json.loads(capsys.readouterr().out)["state"] == "cancelled"
    assert cli.main(["cancel", payload["job_id"]]) == 2
    assert "nothing to cancel" in capsys.readouterr().err


@pytest.mark.slow
def test_full_smoke_preset_on_the_demo_table(tmp_path, monkeypatch):
    """The default smoke preset, all seven methods, on the 20,000-row entangled demo table."""
    from deconfound.sim import load_demo
    monkeypatch.setenv("DECONFOUND_HOME", str(tmp_path))
    store = Store(tmp_path / "studio.duckdb")
    load_demo(store, scenarios=("entangled",))
    config = runs.preset_config("smoke", "demo_entangled", store=store)
    job = runs.create_job(config, store)
    runs.start_job(job.id)
    status = runs.wait_job(job.id, timeout_s=3 * 3600, poll_s=5)
    assert status["state"] == "completed", status
    generations = pd.read_csv(job.run_dir / "generations.csv", keep_default_na=False)
    assert generations.groupby("model").size().to_dict() == {m: 300 for m in status["summary"]["models"]}
    assert len(status["summary"]["models"]) == 2 + 7
    valid = status["summary"]["rewards_valid"]
    # Table 2, entangled: the deconfounded reward tracks true quality; the naive one does not.
    assert valid["deconfounded"]["pearson_truth"] > valid["naive"]["pearson_truth"] + 0.3
    assert valid["oracle"]["pearson_truth"] > 0.8
