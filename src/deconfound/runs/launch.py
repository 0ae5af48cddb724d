"""How a job's worker is launched: the argv (one process, or `accelerate launch` with N), the command a user can
run by hand or on a cluster, and the checks that refuse a process count or preset this machine cannot run.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ..errors import DeconfoundError
from .processes import accelerate_installed, cpu_cores, cuda_device_count


GPU_PRESET_ON_CPU_ENV = "DECONFOUND_GPU_PRESET_ON_CPU"
SINGLE_PROCESS_RL = ("sample_rank",)  # its sampling, round state and final copy are not split across processes yet
GPU_PRESET_NEEDS_CUDA = ("the gpu preset is sized for a CUDA GPU and torch sees none on this machine, so it would run "
                         "for many hours on the CPU: choose the cpu preset, or prepare the run folder here "
                         "(`deconfound train ... --prepare`) and run it on a GPU machine (docs/CLUSTER.md)")
# How N processes start on one machine. `--multi_gpu` is accelerate's torchrun launcher, the only one of accelerate
# 1.16 that starts N local processes without MPI: `--cpu` (and no flag on a machine without several GPUs) goes to
# its simple launcher, which starts ONE process (checked: RANK unset, a single pid). The worker picks the device
# itself, so on a machine without CUDA every process runs on the CPU and they talk over gloo.
# Port 0: a free port, so two jobs on one machine do not both claim 29500.
LOCAL_LAUNCH_FLAGS = ("--multi_gpu", "--main_process_port", "0")


def worker_command(run_dir: Path, resume: bool = False, num_processes: int = 1,
                   python: str | None = None) -> list[str]:
    """The argv that runs the worker: plain `python -m deconfound.worker`, or `accelerate launch` for N>1."""
    python = python or sys.executable
    tail = ["-m", "deconfound.worker", str(run_dir)] + (["--resume"] if resume else [])
    if num_processes > 1:
        return [python, "-m", "accelerate.commands.launch", "--num_processes", str(num_processes),
                *LOCAL_LAUNCH_FLAGS] + tail
    return [python] + tail


def check_rl_algorithm(num_processes: int, rl_algorithm: str | None) -> None:
    """Refuse an RL algorithm that runs in one process only when the job has several."""
    if num_processes > 1 and rl_algorithm in SINGLE_PROCESS_RL:
        raise DeconfoundError(f"the {rl_algorithm} RL algorithm runs in one process (it samples and saves outside "
                              f"the trainer): use 1 process, or rl.algorithm grpo or rloo for {num_processes}")


def check_processes(num_processes, preset: str | None = None, rl_algorithm: str | None = None) -> int:
    """`num_processes` as an int once it is one this machine can run (else a one-sentence DeconfoundError):
    at least 1; accelerate installed for more; at most one per GPU where CUDA is visible, else one per CPU
    core; an RL algorithm that runs in several processes. Also refuses the gpu preset where torch sees no
    CUDA device (hours on a CPU), unless $DECONFOUND_GPU_PRESET_ON_CPU=1 (bench/gpu_check.sh --dry-run)."""
    try:
        n = int(num_processes)
    except (TypeError, ValueError):
        n = None
    if n is None or n != num_processes or n < 1:
        raise DeconfoundError(f"processes must be a whole number of at least 1 (got {num_processes!r}); 1 runs the "
                              "worker alone")
    check_rl_algorithm(n, rl_algorithm)
    if n > 1 and not accelerate_installed():
        raise DeconfoundError(f"running {n} processes needs the accelerate package, which is not installed here: "
                              "`pip install 'accelerate>=1.0'`, or use 1 process")
    gpus = cuda_device_count() if n > 1 or preset == "gpu" else 0
    if n > 1:
        cores = cpu_cores()
        limit, what = (gpus, f"{gpus} GPU(s)") if gpus else (cores, f"no GPU and {cores} CPU core(s)")
        if n > limit:
            raise DeconfoundError(f"{n} processes is more than this machine can run: it has {what}, so choose at "
                                  f"most {limit} (each process needs a {'GPU' if gpus else 'core'} of its own)")
    if preset == "gpu" and not gpus and os.environ.get(GPU_PRESET_ON_CPU_ENV) != "1":
        raise DeconfoundError(GPU_PRESET_NEEDS_CUDA)
    return n
