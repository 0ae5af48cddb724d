"""The paths beyond one laptop, as far as a CPU machine can execute them: the cluster files of docs/cluster
(accelerate reads them as the documented set-ups; the SLURM template runs a laptop's run folder on two simulated
nodes of this machine), the GPU preset and device choice, and bench/gpu_check.sh (its --dry-run runs the
shortened gpu-preset pipeline on a tiny model; without CUDA and without --dry-run it refuses in one sentence)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from deconfound import cli, runs
from deconfound.data import Store
from deconfound.sim import DEMO_ROLES, simulate

ROOT = Path(__file__).resolve().parents[1]
CLUSTER = ROOT / "docs" / "cluster"
VENV = Path(sys.executable).parent.parent
TINY = {"model.tiny_layers": 2, "model.tiny_width": 64, "model.tiny_vocab": 1000, "sft.max_steps": 6,
        "sft.batch_size": 8, "rl.max_steps": 6, "rl.prompts_per_step": 2, "rl.num_generations": 4,
        "rl.max_completion_length": 8, "n_eval_prompts": 20, "gen_max_new_tokens": 8, "threads": 2}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tool_env(**extra) -> dict:
    """This checkout's sources first, the venv's scripts (deconfound, accelerate) on PATH."""
    path = f"{VENV / 'bin'}{os.pathsep}{os.environ['PATH']}"
    return dict(os.environ) | {"PYTHONPATH": str(ROOT / "src"), "PATH": path, "PYTHON": sys.executable} | extra


# ------------------------------------------------------------------ the cluster files
def test_accelerate_reads_the_cluster_configs_as_documented():
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.utils import DistributedType
    multinode = load_config_from_file(str(CLUSTER / "accelerate_multinode.yaml"))
    assert (multinode.distributed_type, multinode.num_machines, multinode.num_processes) == \
        (DistributedType.MULTI_GPU, 2, 8)
    assert multinode.mixed_precision == "no" and multinode.main_process_port == 29500  # bf16: the worker decides
    zero2 = load_config_from_file(str(CLUSTER / "accelerate_deepspeed_zero2.yaml"))
    assert zero2.distributed_type == DistributedType.DEEPSPEED
    ds_file = ROOT / zero2.deepspeed_config["deepspeed_config_file"]
    ds = json.loads(ds_file.read_text())
    assert ds["zero_optimization"]["stage"] == 2
    # Batch, accumulation and precision come from the run's TrainingArguments, not from a second source.
    batch_keys = ("train_micro_batch_size_per_gpu", "gradient_accumulation_steps", "train_batch_size")
    assert {ds[k] for k in batch_keys} == {"auto"}
    assert ds["bf16"]["enabled"] == "auto"
    assert subprocess.run(["bash", "-n", str(CLUSTER / "slurm_train.sbatch")]).returncode == 0


def test_docs_name_what_ran_here_and_what_did_not():
    text = (ROOT / "docs" / "CLUSTER.md").read_text()
    for name in ("slurm_train.sbatch", "accelerate_multinode.yaml", "deepspeed_zero2.json",
                 "accelerate_deepspeed_zero2.yaml", "deconfound train --config", "Executed here", "Not executed here"):
        assert name in text, name


@pytest.mark.slow
def test_slurm_template_runs_a_laptop_folder_on_two_simulated_nodes(tmp_path, monkeypatch, capsys):
    """srun and scontrol replaced by shims that start the template's per-node command twice on this machine
    (SLURM_NODEID 0 and 1, both nodes at 127.0.0.1): accelerate's multi-machine rendezvous from the shipped
    config, gloo instead of NCCL. The laptop's folder comes back and Compare reads it."""
    laptop = tmp_path / "laptop"
    monkeypatch.setenv("DECONFOUND_HOME", str(laptop))
    monkeypatch.setenv("DECONFOUND_DB", str(laptop / "studio.duckdb"))
    store = Store(laptop / "studio.duckdb")
    store.ingest_frame(simulate(scenario="entangled", n=300, seed=4), "sim")
    store.save_roles("sim", DEMO_ROLES)
    job = runs.create_job(runs.preset_config("smoke", "sim", store=store, overrides=TINY | {"methods": "naive"}), store)
    shared = tmp_path / "shared"
    shutil.copytree(job.run_dir, shared / "incoming" / job.id)
    shims = tmp_path / "shims"
    shims.mkdir()
    (shims / "scontrol").write_text('#!/bin/bash\nfor i in $(seq "$SLURM_NNODES"); do echo 127.0.0.1; done\n')
    (shims / "srun").write_text(
        '#!/bin/bash\nwhile [[ "$1" == --* ]]; do shift; done\npids=()\n'
        'for ((i = 0; i < SLURM_NNODES; i++)); do\n'
        '  SLURM_NODEID=$i "$@" > "$SHIM_LOGS/node$i.txt" 2>&1 & pids+=($!)\ndone\n'
        'rc=0; for p in "${pids[@]}"; do wait "$p" || rc=$?; done; exit $rc\n')
    for shim in shims.iterdir():
        shim.chmod(0o755)
    env = tool_env(PATH=f"{shims}{os.pathsep}{VENV / 'bin'}{os.pathsep}{os.environ['PATH']}", REPO=str(ROOT),
                   VENV=str(VENV), DECONFOUND_HOME=str(shared / "home"), DECONFOUND_DB=str(shared / "none.duckdb"),
                   RUN_CONFIG=str(shared / "incoming" / job.id / "config.json"), SLURM_NNODES="2",
                   SLURM_GPUS_PER_NODE="1", SLURM_JOB_NODELIST="node[1-2]", MAIN_PROCESS_PORT=str(free_port()),
                   SHIM_LOGS=str(tmp_path), OMP_NUM_THREADS="1")
    done = subprocess.run(["bash", str(CLUSTER / "slurm_train.sbatch")], env=env, capture_output=True, text=True,
                          timeout=600)
    logs = "".join(p.read_text() for p in sorted(tmp_path.glob("node*.txt")))
    assert done.returncode == 0, done.stdout + done.stderr + logs[-3000:]
    assert "completed - finished" in done.stdout
    assert "as process 1 of 2" in logs and "process group joined (gloo backend)" in logs
    run_dir = Path(next(line.split(": ", 1)[1] for line in done.stdout.splitlines() if line.startswith("run folder:")))
    assert run_dir.parent == shared / "home" / "runs"
    shutil.copytree(run_dir, laptop / "runs" / run_dir.name)  # back on the laptop
    assert next(j for j in runs.list_jobs() if j["id"] == run_dir.name)["state"] == "completed"
    assert cli.main(["compare", run_dir.name, "--json"]) == 0
    assert set(json.loads(capsys.readouterr().out)["models"]) == {"base", "sft", "rl_naive"}


# ------------------------------------------------------------------ the GPU path
def test_pick_device_chooses_cuda_with_bf16_where_supported(monkeypatch):
    import torch

    from deconfound.models import pick_device
    assert pick_device() == ("cpu", torch.float32)  # this machine: the CPU build of torch
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert pick_device() == ("cuda", torch.bfloat16)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)  # e.g. a V100
    assert pick_device() == ("cuda", torch.float32)


def test_gpu_preset_is_sized_for_one_large_gpu(tmp_path):
    from deconfound.train import RLSettings, rl_config
    store = Store(tmp_path / "db.duckdb")
    store.ingest_frame(simulate(scenario="entangled", n=200, seed=1), "sim")
    store.save_roles("sim", DEMO_ROLES)
    config = runs.preset_config("gpu", "sim", store=store)
    assert config.gen_batch_size == 256 and config.threads is None and config.n_eval_prompts == 3000
    sft = config.sft
    assert (sft.batch_size, sft.learning_rate, sft.lora_r, sft.lora_alpha) == (32, 2e-4, 16, 32)
    rl = rl_config(RLSettings.for_preset("gpu"), tmp_path)
    assert rl.per_device_train_batch_size == 128 and rl.per_device_train_batch_size % rl.num_generations == 0
    assert runs.preset_config("smoke", "sim", store=store).gen_batch_size == 32  # the other presets are unchanged


def test_gpu_check_refuses_a_machine_without_cuda(tmp_path):
    done = subprocess.run(["bash", str(ROOT / "bench" / "gpu_check.sh"), "--out", str(tmp_path / "gpu.md")],
                          env=tool_env(TMPDIR=str(tmp_path)), capture_output=True, text=True, timeout=300)
    assert done.returncode != 0 and "torch sees no CUDA device" in done.stderr
    assert not (tmp_path / "gpu.md").exists()
    bad = subprocess.run(["bash", str(ROOT / "bench" / "gpu_check.sh"), "--bogus"], env=tool_env(), capture_output=True,
                         text=True, timeout=60)
    assert bad.returncode == 2 and "unknown option --bogus" in bad.stderr


@pytest.mark.slow
def test_gpu_check_dry_run_times_every_stage(tmp_path):
    out = tmp_path / "gpu_dryrun.md"
    done = subprocess.run(["bash", str(ROOT / "bench" / "gpu_check.sh"), "--dry-run", "--out", str(out),
                           "--budget-s", "900"], env=tool_env(OMP_NUM_THREADS="1", TMPDIR=str(tmp_path)),
                          capture_output=True, text=True,
                          timeout=1200)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(out.with_suffix(".json").read_text())
    assert result["state"] == "completed" and result["mode"] == "cpu dry run" and result["within_target"] is False
    stages = {s["stage"]: s["seconds"] for s in result["stages"]}
    for stage in ("estimate", "base", "sft", "rewards/naive", "rewards/deconfounded", "rl/naive", "rl/deconfounded",
                  "generate"):
        assert stages[stage] is not None and stages[stage] >= 0, stage
    assert result["generations"] == 300 * 4  # base, sft and the two RL models, 300 held-out prompts each
    assert result["overrides"]["n_eval_prompts"] == 300
    assert all(v["steps"] == 4 and v["median_step_s"] > 0 for v in result["rl"].values())
    text = out.read_text()
    assert "NOT a GPU measurement" in text and "| rl/deconfounded |" in text
    config = json.loads((Path(result["run_dir"]) / "config.json").read_text())
    assert config["preset"] == "gpu" and config["reward"]["backbone"] == "finetune" and config["gen_batch_size"] == 256
