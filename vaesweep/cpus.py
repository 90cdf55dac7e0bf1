"""How many CPUs this process may use (the one count behind every thread and worker pool),
and how torch's threads wait for work on them.

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


#: How long torch's OpenMP threads (GNU libgomp, in the Linux wheels) spin waiting for the next
#: parallel region before they sleep: 50,000 spins instead of libgomp's 300,000. A waiting
#: thread that spins holds a core that another process (a second run, a browser, a test
#: worker) needs; libgomp only shortens its spin when its own process has more threads than
#: CPUs. Measured on the 2-core CPU, a 5-epoch default digits run beside two busy processes:
#: training 2.9-7.2 s spinning 300,000 times, 1.2-1.9 s with 50,000; on an idle machine,
#: 50-epoch runs in 6 alternating repeats, median 5.51 s against 5.42 s (no cost). Sleeping
#: at once (``OMP_WAIT_POLICY=PASSIVE``) made the idle run 4x slower (21-23 s).
OMP_SPIN_COUNT = "50000"


def spin_briefly() -> None:
    """Set :data:`OMP_SPIN_COUNT` for this process and those it starts, unless the user set
    ``GOMP_SPINCOUNT`` or ``OMP_WAIT_POLICY``. libgomp reads it when it loads, so this must
    run before torch is imported (the command line's first step)."""
    if "GOMP_SPINCOUNT" not in os.environ and "OMP_WAIT_POLICY" not in os.environ:
        os.environ["GOMP_SPINCOUNT"] = OMP_SPIN_COUNT
