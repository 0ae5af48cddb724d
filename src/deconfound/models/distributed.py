"""Several processes of one job (`accelerate launch`, i.e. torchrun): which process this is, the process group,
and the few collectives the pipeline needs outside a trainer (a barrier, gathering Python objects).

`accelerate launch --multi_gpu --num_processes N` starts N copies of the worker with RANK, LOCAL_RANK and
WORLD_SIZE set. `init_distributed` joins them into one group at the worker's start (gloo on CPU, NCCL on CUDA,
each process on its own GPU), so every later stage can synchronise; trainers reuse that group. Everything
here is a no-op in a single process. torch is imported only inside the functions.
"""

from __future__ import annotations

import os


def _env_int(*names: str, default: int) -> int:
    for name in names:
        value = os.environ.get(name)
        if value not in (None, ""):
            try:
                return int(value)
            except ValueError:
                continue
    return default


def _initialized() -> bool:
    import sys
    if "torch" not in sys.modules:  # never import torch just to learn we run alone
        return False
    import torch.distributed as dist
    return dist.is_available() and dist.is_initialized()


def world() -> tuple[int, int]:
    """(rank, number of processes): from the process group when it exists, else from the launcher's env."""
    if _initialized():
        import torch.distributed as dist
        return dist.get_rank(), dist.get_world_size()
    return _env_int("RANK", default=0), max(1, _env_int("WORLD_SIZE", default=1))


def joined() -> bool:
    """Whether this process is in a process group (collectives work); False alone or before `init_distributed`."""
    return _initialized()


def local_world_size() -> int:
    """Processes of this job on this machine (threads and GPUs are shared among them)."""
    return max(1, _env_int("LOCAL_WORLD_SIZE", default=1))


def is_main_process() -> bool:
    """Rank 0: the one process that writes the run folder."""
    return world()[0] == 0


def init_distributed() -> str | None:
    """Join the launcher's processes into one group (a no-op alone or when already joined); returns the
    backend ('gloo' on CPU, 'nccl' on CUDA) or None for a single process.

    Through accelerate's PartialState, as the trainers do, so their later set-up finds the same group; on
    CUDA it also puts each process on its own GPU (LOCAL_RANK), so a bare "cuda" means that GPU."""
    if _env_int("WORLD_SIZE", default=1) <= 1:
        return None
    import torch
    import torch.distributed as dist
    if not dist.is_initialized():
        from accelerate import PartialState
        PartialState(cpu=not torch.cuda.is_available())
    return dist.get_backend() if dist.is_initialized() else None


def barrier() -> None:
    """Wait until every process gets here (no-op alone). Only for short waits: the group's timeout applies."""
    if _initialized():
        import torch.distributed as dist
        dist.barrier()


def all_gather_objects(value) -> list:
    """Every process's `value` (picklable), in rank order, on every process ([value] alone)."""
    if not _initialized():
        return [value]
    import torch.distributed as dist
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, value)
    return out
