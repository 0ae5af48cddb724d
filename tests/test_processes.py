"""One job on several processes (accelerate launch, gloo on CPU): the exact command the Train page shows runs
a run folder's SFT, RL and DPO stages to completion with one writer; cancel stops every process and resume
continues from the RL
checkpoint on as many processes; one dying process fails the job without hanging; a laptop's run folder runs
elsewhere with `train --config` and comes back for Compare; evaluation generations split across processes
equal one process's; bad process counts, a missing accelerate and the gpu preset without CUDA are refused in
one sentence.

The multi-process runs take 20-60 s each on 2 cores (tiny model, 2 processes of 1 thread): marked slow."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from deconfound import cli, runs
from deconfound.data import Store
from deconfound.errors import DeconfoundError
from deconfound.runs import launch as launch_module
from deconfound.sim import DEMO_ROLES, simulate

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = str(Path(sys.executable).parent)
# The tiny run of test_jobs, with more RL steps so a cancel lands inside RL after a checkpoint.
TINY = {"methods": "naive,deconfounded", "model.tiny_layers": 2, "model.tiny_width": 64, "model.tiny_vocab": 1000,
        "sft.max_steps": 6, "sft.batch_size": 8, "sft.save_steps": 3,
        "rl.max_steps": 8, "rl.prompts_per_step": 2, "rl.num_generations": 4, "rl.max_completion_length": 8,
        "rl.save_steps": 2, "rl.learning_rate": 1e-3, "n_eval_prompts": 30, "gen_max_new_tokens": 8, "threads": 2}
DPO = {"run_dpo": True, "dpo.max_steps": 4, "dpo.batch_size": 4, "dpo_prompts": 12}
WAIT_S = 420


@pytest.fixture(scope="module")
def sim_store(tmp_path_factory):
    """An isolated home with a 400-row entangled simulation tagged like the demo."""
    home = tmp_path_factory.mktemp("processes_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DECONFOUND_HOME", str(home))
        mp.setenv("DECONFOUND_DB", str(home / "studio.duckdb"))
        mp.setenv("HF_HOME", str(home / "hf"))  # no accelerate default_config.yaml of the machine's user
        store = Store(home / "studio.duckdb")
        store.ingest_frame(simulate(scenario="entangled", n=400, seed=1), "sim")
        store.save_roles("sim", DEMO_ROLES)
        yield store


def tiny_job(store, **extra) -> runs.Job:
    config = runs.preset_config("smoke", "sim", store=store, overrides=TINY | extra)
    return runs.create_job(config, store)


def rank_pids(job) -> dict[int, int]:
    """rank -> pid of the job's worker processes (from their environment), among the launcher's descendants."""
    launch = json.loads((job.run_dir / "process.json").read_text())
    found = {}
    for pid in runs.job_processes(launch["pgid"], launch["pid"]):
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        rank = next((int(e.split(b"=", 1)[1]) for e in env if e.startswith(b"RANK=")), None)
        if rank is not None and b"deconfound.worker" in cmdline:
            found[rank] = pid
    return found


def wait_until(predicate, job, what: str, timeout_s: float = WAIT_S):
    deadline = time.monotonic() + timeout_s
    while not predicate():
        status = runs.job_status(job.id)
        assert status["state"] in runs.ACTIVE_STATES, f"{what}: job ended early: {status}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}: {status}"
        time.sleep(0.1)


def complete_rl_checkpoint(job):
    found = sorted(job.run_dir.glob("checkpoints/rl_*/checkpoint-*/trainer_state.json"))
    return found[0].parent if found else None


def one_metrics_stream(folder: runs.RunFolder, stage: str, steps: int) -> None:
    """metrics.jsonl holds each step of `stage` exactly once (one writer, not one line per process)."""
    assert [m["step"] for m in folder.metrics() if m["stage"] == stage] == list(range(1, steps + 1)), stage


# ------------------------------------------------------------------ fast: commands and bad input
def test_commands_start_several_local_processes(sim_store):
    job = tiny_job(sim_store)
    argv = runs.worker_command(job.run_dir, num_processes=2)
    assert argv[1:6] == ["-m", "accelerate.commands.launch", "--num_processes", "2", "--multi_gpu"]
    assert argv[-3:] == ["-m", "deconfound.worker", str(job.run_dir)]
    assert runs.launch_command(job.id, 2) == (f"accelerate launch --num_processes 2 --multi_gpu --main_process_port 0 "
                                              f"-m deconfound.worker {job.run_dir}")
    assert runs.launch_command(job.id, 1, resume=True) == f"python -m deconfound.worker {job.run_dir} --resume"
    # The cluster command is unchanged (several GPUs: accelerate turns multi-GPU on by itself).
    cluster = runs.accelerate_command(job.id, 4)
    assert cluster == f"accelerate launch --num_processes 4 -m deconfound.worker {job.run_dir}"


def test_bad_process_counts_are_refused_in_one_sentence(sim_store, monkeypatch):
    cores = runs.cpu_cores()
    monkeypatch.setattr(launch_module, "cuda_device_count", lambda: 0)
    assert runs.check_processes(1) == 1 and runs.check_processes(cores) == cores
    for bad in (0, -2, 1.5, "two", None):
        with pytest.raises(DeconfoundError, match="at least 1"):
            runs.check_processes(bad)
    with pytest.raises(DeconfoundError, match=f"no GPU and {cores} CPU core.*at most {cores}"):
        runs.check_processes(cores + 1)
    monkeypatch.setattr(launch_module, "cuda_device_count", lambda: 2)  # a 2-GPU machine: one process per GPU
    assert runs.check_processes(2) == 2
    with pytest.raises(DeconfoundError, match=r"it has 2 GPU\(s\), so choose at most 2"):
        runs.check_processes(3)
    with pytest.raises(DeconfoundError, match="sample_rank RL algorithm runs in one process"):
        runs.check_processes(2, rl_algorithm="sample_rank")
    assert runs.check_processes(1, rl_algorithm="sample_rank") == 1
    monkeypatch.setattr(launch_module, "accelerate_installed", lambda: False)
    with pytest.raises(DeconfoundError, match="needs the accelerate package.*or use 1 process"):
        runs.check_processes(2)
    assert runs.check_processes(1) == 1  # one process never needs accelerate


def test_gpu_preset_without_cuda_is_refused(sim_store, monkeypatch):
    assert runs.cuda_device_count() == 0  # the CPU build of torch: no CUDA here (the probe runs in a child)
    with pytest.raises(DeconfoundError, match="gpu preset is sized for a CUDA GPU.*cpu preset"):
        runs.check_processes(1, "gpu")
    config = runs.preset_config("gpu", "sim", store=sim_store, overrides={"methods": "naive"})
    from deconfound.runs.runner import check_device
    with pytest.raises(DeconfoundError, match="gpu preset"):  # the worker refuses too (a hand-started run)
        check_device(config)
    monkeypatch.setenv(runs.GPU_PRESET_ON_CPU_ENV, "1")  # the dry run of bench/gpu_check.sh
    assert runs.check_processes(1, "gpu") == 1
    check_device(config)


def test_cli_refuses_bad_processes_without_leaving_a_job(sim_store, capsys):
    before = {j["id"] for j in runs.list_jobs()}
    base = ["train", "--table", "sim", "--preset", "smoke", "--methods", "naive"]
    assert cli.main(base + ["--processes", "0"]) == 2
    err = capsys.readouterr().err
    assert "--processes must be at least 1" in err and len(err.strip().splitlines()) == 1
    assert cli.main(base + ["--processes", str(runs.cpu_cores() + 1)]) == 2
    err = capsys.readouterr().err
    assert "more than this machine can run" in err and len(err.strip().splitlines()) == 1
    assert cli.main(["train", "--table", "sim", "--preset", "gpu", "--methods", "naive"]) == 2
    assert "gpu preset is sized for a CUDA GPU" in capsys.readouterr().err
    assert {j["id"] for j in runs.list_jobs()} == before  # nothing half-made in the job list
    assert cli.main(["resume", "20260101-000000-abcd", "--processes", "0"]) == 2
    assert "--processes must be at least 1" in capsys.readouterr().err


def test_train_page_refuses_bad_launches_in_one_sentence(sim_store):
    from streamlit.testing.v1 import AppTest
    before = {j["id"] for j in runs.list_jobs()}
    at = AppTest.from_file(str(ROOT / "pages" / "5_Train.py"), default_timeout=60).run()
    at.multiselect(key="train_methods").set_value(["naive"]).run()
    at.number_input(key="train_processes").set_value(runs.cpu_cores() + 1).run()
    at.button(key="launch").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("more than this machine can run" in e.value for e in at.error)
    at.number_input(key="train_processes").set_value(1).run()
    at.radio(key="train_preset").set_value("gpu").run()
    at.button(key="launch").click().run()
    assert any("gpu preset is sized for a CUDA GPU" in e.value for e in at.error)
    assert {j["id"] for j in runs.list_jobs()} == before  # no run folder made for a launch that was refused


def test_resume_defaults_to_the_last_process_count(sim_store):
    job = tiny_job(sim_store)
    assert runs.job_processes_count(job.id) == 1  # never started
    (job.run_dir / "process.json").write_text(json.dumps({"pid": 1, "num_processes": 2}))
    assert runs.job_processes_count(job.id) == 2
    assert next(j for j in runs.list_jobs() if j["id"] == job.id)["processes"] == 2


def test_shares_of_the_prompts_generate_what_one_process_does(tmp_path):
    """Known answer for the split: each process's share — whole batches of the single-process plan, dealt out
    in turn — merged back gives exactly the texts of one process, in bf16 as in fp32 (same batches, same
    padding, same per-prompt seeds)."""
    from deconfound.models import ModelSpec, generate, generate_with_stats, resolve_model_path
    from deconfound.runs.trained import _merge_shares
    frame = simulate(scenario="entangled", n=120, seed=3)
    corpus = frame["context"].tolist() + frame["text"].tolist()
    model = resolve_model_path(ModelSpec(name="tiny", tiny_layers=1, tiny_width=32, tiny_vocab=600), corpus=corpus,
                               out_dir=tmp_path / "tiny")
    contexts = frame["context"].tolist()[:23]
    for precision in ("fp32", "bf16"):
        alone = generate(model, contexts, seed=5, max_new_tokens=6, batch_size=4, precision=precision)
        shares = [generate_with_stats(model, contexts, seed=5, max_new_tokens=6, batch_size=4, precision=precision,
                                      share=(rank, 3)) for rank in range(3)]
        assert [len(s.texts) for s in shares] == [8, 8, 7]  # 6 batches of 4 (the last of 3), two per process
        assert sorted(i for s in shares for i in s.positions) == list(range(len(contexts)))
        assert _merge_shares([(s.positions, s.texts) for s in shares], len(contexts)) == alone, precision
    with pytest.raises(DeconfoundError, match="miss 1 of"):
        _merge_shares([(list(range(22)), alone[:22])], len(contexts))


# ------------------------------------------------------------------ slow: real processes
@pytest.mark.slow
def test_the_train_pages_command_runs_the_job_on_two_processes(sim_store, monkeypatch):
    from streamlit.testing.v1 import AppTest
    job = tiny_job(sim_store, **DPO)
    at = AppTest.from_file(str(ROOT / "pages" / "5_Train.py"), default_timeout=60).run()
    at.number_input(key="train_processes").set_value(2).run()
    at.selectbox(key="train_run").set_value(job.id).run()
    assert not at.exception, [e.value for e in at.exception]
    shown = [c.value for c in at.code if "--num_processes 2 --multi_gpu" in c.value]
    assert shown == [runs.launch_command(job.id, 2)]
    env = dict(os.environ) | {"PATH": VENV_BIN + os.pathsep + os.environ["PATH"], "PYTHONUNBUFFERED": "1"}
    with open(job.folder.log_path, "ab") as log:  # as a user would paste it into a terminal in the run folder
        done = subprocess.run(shown[0], shell=True, cwd=job.run_dir, env=env, stdout=log, stderr=subprocess.STDOUT,
                              timeout=WAIT_S)
    status = runs.job_status(job.id)
    assert done.returncode == 0 and status["state"] == "completed", status
    models = ["base", "sft", "rl_naive", "rl_deconfounded", "dpo_naive", "dpo_deconfounded"]
    assert status["summary"]["models"] == models
    log = job.folder.log_path.read_text()
    assert "as process 1 of 2" in log and "process group joined (gloo backend)" in log
    assert "process rank 1 finished its part of the run" in log
    for stage, steps in (("sft", TINY["sft.max_steps"]), ("rl/naive", TINY["rl.max_steps"]),
                         ("rl/deconfounded", TINY["rl.max_steps"]), ("dpo/naive", DPO["dpo.max_steps"]),
                         ("dpo/deconfounded", DPO["dpo.max_steps"])):
        one_metrics_stream(job.folder, stage, steps)
    assert [j["id"] for j in runs.list_jobs()].count(job.id) == 1
    # The models load and write like a single process's; the evaluation texts, split across the two processes,
    # equal one process's generation with the same models and seeds.
    generations = pd.read_csv(job.run_dir / "generations.csv", keep_default_na=False)
    assert generations.groupby("model").size().to_dict() == {m: TINY["n_eval_prompts"] for m in models}
    prompts = generations[generations["model"] == "base"][["prompt_id", "context"]].reset_index(drop=True)
    precision = job.folder.config()["precision"]  # the run's (the smoke preset computes in fp32)
    alone = runs.generate_frame(runs.run_models(job.run_dir), prompts, [0], max_new_tokens=TINY["gen_max_new_tokens"],
                                precision=precision)
    assert generations["text"].tolist() == alone["text"].tolist()
    summary = json.loads((job.run_dir / "models" / "rl_naive" / "training_summary.json").read_text())
    assert summary["steps"] == TINY["rl.max_steps"] and not list(job.run_dir.glob("checkpoints/*/checkpoint-*"))


@pytest.mark.slow
def test_cancel_stops_every_process_and_resume_continues_on_two(sim_store):
    job = tiny_job(sim_store, **{"rl.max_steps": 30})
    runs.start_job(job.id, num_processes=2)
    wait_until(lambda: complete_rl_checkpoint(job) is not None, job, "an RL checkpoint")
    ranks = rank_pids(job)
    launcher = json.loads((job.run_dir / "process.json").read_text())["pid"]
    assert sorted(ranks) == [0, 1]
    status = runs.cancel_job(job.id)
    assert status["state"] == "cancelled"
    assert not any(runs.pid_alive(p) for p in [launcher, *ranks.values()])  # the whole job, not only its group
    log = job.folder.log_path.read_text()
    assert "[rank 1 INFO] stop requested" in log and "cancelled:" in log
    finished_before = {s["stage"]: s["finished_at"] for s in job.folder.stages()}
    runs.resume_job(job.id)  # as many processes as before
    assert runs.job_processes_count(job.id) == 2
    final = runs.wait_job(job.id, timeout_s=WAIT_S, poll_s=0.5)
    assert final["state"] == "completed", final
    stages = {s["stage"]: s for s in job.folder.stages()}
    for name in ("estimate", "base", "sft", "rewards/naive", "rewards/deconfounded"):
        assert stages[name]["finished_at"] == finished_before[name]
    resumed = [p for p in job.run_dir.glob("models/rl_*/training_summary.json")
               if json.loads(p.read_text())["resumed_from"]]
    assert resumed, "no RL stage continued from its checkpoint"
    summary = json.loads(resumed[0].read_text())
    assert "checkpoint-" in summary["resumed_from"] and summary["steps"] == 30
    assert [h["step"] for h in summary["history"]] == list(range(1, 31))  # the steps before the cancel kept once


@pytest.mark.slow
def test_one_dying_process_fails_the_job_without_hanging(sim_store):
    job = tiny_job(sim_store, **{"sft.max_steps": 400})
    runs.start_job(job.id, num_processes=2)
    wait_until(lambda: runs.job_status(job.id).get("stage") == "sft" and len(job.folder.metrics()) >= 2, job,
               "SFT steps")
    ranks = rank_pids(job)
    os.kill(ranks[1], signal.SIGKILL)
    status = runs.wait_job(job.id, timeout_s=90, poll_s=0.5)
    assert status["state"] == "failed", status
    assert "processes" in status["message"] and status["log_tail"]
    launch = json.loads((job.run_dir / "process.json").read_text())
    deadline = time.monotonic() + 30
    while runs.job_processes(launch["pgid"], launch["pid"]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not runs.job_processes(launch["pgid"], launch["pid"]) and not runs.pid_alive(ranks[0])


@pytest.mark.slow
def test_laptop_folder_runs_on_the_cluster_and_comes_back_for_compare(sim_store, tmp_path, monkeypatch, capsys):
    """The docs/CLUSTER.md round trip on one machine: prepare here, run the copied folder with
    `train --config config.json --processes 2` in a home without the database, copy it back, compare."""
    overrides = [f"--set={k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in TINY.items()
                 if k != "methods"]
    assert cli.main(["train", "--table", "sim", "--preset", "smoke", "--methods", "naive", "--prepare", "--json",
                     *overrides]) == 0
    prepared = Path(json.loads(capsys.readouterr().out)["run_dir"])
    laptop_runs = prepared.parent
    cluster = tmp_path / "cluster"
    shutil.copytree(prepared, cluster / "incoming" / prepared.name)
    monkeypatch.setenv("DECONFOUND_HOME", str(cluster / "home"))
    monkeypatch.setenv("DECONFOUND_DB", str(cluster / "home" / "none.duckdb"))  # no table here
    code = cli.main(["train", "--config", str(cluster / "incoming" / prepared.name / "config.json"),
                     "--processes", "2", "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    finished = json.loads(out.out)
    assert finished["state"] == "completed" and Path(finished["run_dir"]).parent == cluster / "home" / "runs"
    shutil.copytree(finished["run_dir"], laptop_runs / finished["job_id"])
    monkeypatch.setenv("DECONFOUND_HOME", str(laptop_runs.parent))
    monkeypatch.setenv("DECONFOUND_DB", str(laptop_runs.parent / "studio.duckdb"))
    listed = next(j for j in runs.list_jobs() if j["id"] == finished["job_id"])
    assert listed["state"] == "completed" and listed["processes"] == 2  # another machine's run: left as it is
    assert cli.main(["compare", finished["job_id"], "--json"]) == 0
    compared = json.loads(capsys.readouterr().out)
    assert set(compared["models"]) == {"base", "sft", "rl_naive"}
    assert all(m["n"] == TINY["n_eval_prompts"] for m in compared["models"].values())
