"""How many CPUs this process may use: the one count behind every thread and worker pool.

``os.cpu_count()`` counts the machine's CPUs, which is wrong wherever the process is given
fewer: a SLURM job's allocation, ``taskset``, a container's CPU set. The affinity mask is
what the scheduler lets this process run on.
"""

from __future__ import annotations

import os


def usable_cpus() -> int:
    """CPUs in this process's affinity mask (all of the machine's where there is none)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS has no affinity masks
        return os.cpu_count() or 1
