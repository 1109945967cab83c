"""What this process may use of the machine: cores (affinity, cgroup quota) and torch threads."""

from __future__ import annotations

import os
from pathlib import Path

# cgroup v2: "max 100000" or "<quota> <period>" (containers started with --cpus)
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def usable_cores() -> int:
    """Cores this process may actually use: its CPU affinity, capped by a cgroup CPU quota."""
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        quota, period = CGROUP_CPU_MAX.read_text().split()[:2]
        if quota != "max":
            n = min(n, max(1, int(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return n


def set_threads(n: int = 0) -> int:
    """torch intra-op threads = the cores this process may use (not the machine's count).

    More threads than free cores made an LSTM step 20-50x slower on a 2-core machine when
    another process was busy (docs/operations.md, "Threads and processes").
    """
    import torch  # here: a bundle's predictor reads usable_cores() without importing torch

    if n <= 0:
        n = usable_cores()
    torch.set_num_threads(n)
    return n


def rank_and_world() -> tuple[int, int]:
    """This process's rank and the world size under torch.distributed; (0, 1) without it."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1
