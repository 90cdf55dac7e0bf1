"""A stack's members trained as sub-stacks side by side on a CPU, one thread each.

On a GPU one stack feeds the device. On a CPU, torch's intra-op threads scale poorly on the
small operations of a VAE step (one default digits run trains only 1.4x faster with 2 threads
than with 1), while independent single-threaded computations use every core (torch releases
the GIL inside its kernels). So a stack job on a CPU with T torch threads trains its members
as T sub-stacks, each in its own thread with torch single-threaded; each member is still
stacked with the others of its part, and every member's numbers are its single run's within
the kernels' rounding, as in one stack. Measured on the 2-core CPU, one step of 8 default
digits members: one stack with 2 threads 14.7-19.2 ms, two stacks of 4 side by side
12.7-14.9 ms; the whole 8-beta sweep: 35.3 s as one stack, 32.3-33.2 s as two stacks in two
processes (``--jobs 2 --stack-size 4``, each paying its own start-up).

Ctrl-C (or a launcher's SIGTERM, delivered as KeyboardInterrupt to the main thread) sets
:data:`STOP`; the members' hooks check it every step and stop their part, whose records are
flushed as after any interrupt, and the interrupt is raised again once every part stopped.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import torch

from vaesweep import testhooks

#: Set while a stack job is being stopped: every part ends at its next step.
STOP = threading.Event()


class Stopped(KeyboardInterrupt):
    """Raised inside a part's thread when the job is being stopped."""


def check_stop() -> None:
    """Called by the members' hooks every step (from any thread)."""
    if STOP.is_set():
        raise Stopped("the stack job is stopping")


def part_count(device: torch.device, n_members: int) -> int:
    """How many sub-stacks to train side by side: torch's thread count on a CPU, else 1."""
    if device.type != "cpu":
        return 1
    return max(1, min(torch.get_num_threads(), n_members))


def split(indices: Sequence[int], parts: int) -> list[list[int]]:
    """``indices`` cut into ``parts`` consecutive parts whose sizes differ by at most one."""
    parts = max(1, min(parts, len(indices)))
    size, extra = divmod(len(indices), parts)
    out, start = [], 0
    for i in range(parts):
        end = start + size + (1 if i < extra else 0)
        out.append(list(indices[start:end]))
        start = end
    return [p for p in out if p]


def run_side_by_side(tasks: Sequence[Callable[[], None]], workers: int) -> None:
    """Run ``tasks`` in ``workers`` threads with torch single-threaded (restored afterwards);
    one worker runs them here, in order. The first error of a task is raised here once every
    task has ended; an interrupt of this thread stops the others first (see :data:`STOP`)."""
    STOP.clear()
    testhooks.HOLDS_RELEASED.clear()
    if workers <= 1 or len(tasks) <= 1:
        for task in tasks:
            task()
        return
    queue = list(tasks)
    lock = threading.Lock()
    errors: list[BaseException] = []

    def worker(done: threading.Event) -> None:
        try:
            while True:
                with lock:
                    if not queue or STOP.is_set():
                        return
                    task = queue.pop(0)
                try:
                    task()
                except BaseException as err:  # handed to the main thread
                    errors.append(err)
                    STOP.set()  # the job fails as a whole: stop the other parts too
                    return
        finally:
            done.set()

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # inherited by the threads created below
    dones = [threading.Event() for _ in range(min(workers, len(tasks)))]
    pool = [
        threading.Thread(target=worker, args=(d,), name=f"vaesweep-part-{i}", daemon=True)
        for i, d in enumerate(dones)
    ]
    # Waited for with events, not Thread.join: a KeyboardInterrupt inside join() marks the
    # thread finished while it still runs (CPython's bpo-45274 fix), and a second join()
    # would then return at once.
    try:
        for t in pool:
            t.start()
        for d in dones:
            d.wait()
    except BaseException:  # Ctrl-C: stop every part, wait for their records, re-raise
        STOP.set()
        testhooks.HOLDS_RELEASED.set()
        for d in dones:
            d.wait()
        raise
    finally:
        torch.set_num_threads(threads)
        STOP.clear()
        testhooks.HOLDS_RELEASED.clear()
    real = [e for e in errors if not isinstance(e, Stopped)]
    if real:
        raise real[0]
    if errors:
        raise errors[0]
