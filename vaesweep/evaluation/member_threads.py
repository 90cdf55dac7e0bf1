"""Per-member work of a stack on CPU threads, each running torch single-threaded.

A stack batches its members where a pass is small and dominated by per-operation overhead (a
training step: 2.1x faster than the members' steps one after another). Where a pass is large
and compute-bound, batching gains nothing and torch's intra-op threads are the weak point:
on the 2-core CPU one digits run trains only 1.4x faster with 2 threads than with 1, while
two independent single-threaded computations use both cores fully. So the large per-member
passes of a stack (the encoder-gradient norms of every validation, the end-of-run outputs)
run each member with the single-run code, in as many threads as torch had threads, each of
them single-threaded; torch releases the GIL inside its kernels.

Measured on the 2-core CPU (the gradient norms of one validation of a default digits stack of
8, 32 draws of 64 images per member): the batched stacked pass 280-345 ms, the members one
after another with torch's 2 threads 191-217 ms, two single-threaded threads 136-142 ms.

Each member's computation is single-threaded and its own, so the results do not depend on
how the members are spread over the threads.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import torch

T = TypeVar("T")


def map_members(fn: Callable[[int], T], members: Sequence[int], device: torch.device) -> list[T]:
    """``[fn(k) for k in members]``; on a CPU with several torch threads, the calls run in that
    many threads with torch single-threaded (restored afterwards). ``fn`` must not share
    mutable state between members (each needs its own model, e.g.
    :meth:`~vaesweep.model.stacked.StackedVAE.member_model`, and its own generator)."""
    threads = torch.get_num_threads()
    if device.type != "cpu" or threads < 2 or len(members) < 2:
        return [fn(k) for k in members]
    torch.set_num_threads(1)  # inherited by the threads created below
    try:
        with ThreadPoolExecutor(
            min(threads, len(members)), thread_name_prefix="vaesweep-member"
        ) as pool:
            return list(pool.map(fn, members))
    finally:
        torch.set_num_threads(threads)
