"""A stack's members as runs: each member's directory, record writer, hooks and train.log.

A member of a stack (:mod:`vaesweep.run.stack_job`) keeps the record of a single run: its
record writer (:class:`~vaesweep.run.record_hooks.RecordHooks`) is handed the member's state
where a single run hands its own, and the lines logged while a member is being reported go to
that member's train.log only (those logged for the whole stack go to every member's).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from vaesweep.config import Config
from vaesweep.record import RunRecord
from vaesweep.run.record_hooks import RecordHooks
from vaesweep.run.stack_parts import check_stop
from vaesweep.tracking import Trackers, TrackingContext
from vaesweep.training.trainer import EpochResult, TrainHooks


@dataclass
class Member:
    config: Config
    run_dir: Path
    overrides: list[str]
    #: What the member's trackers show of its sweep (as :func:`run_job`'s ``tracking``).
    tracking: TrackingContext | None = None
    record: RunRecord | None = None
    handler: logging.Handler | None = None
    trackers: Trackers = field(default_factory=lambda: Trackers([]))


class OnlyMember(logging.Filter):
    """Lets a member's train.log take the lines logged while that member is reported (in the
    thread that reports it: members' end-of-run outputs run in parallel threads); lines
    logged outside any member go to every member's log."""

    _local = threading.local()

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name

    @classmethod
    @contextmanager
    def reporting(cls, name: str) -> Iterator[None]:
        """Lines logged inside go to the train.log of the member whose run is ``name``."""
        cls._local.name = name
        try:
            yield
        finally:
            cls._local.name = None

    def filter(self, record: logging.LogRecord) -> bool:
        return getattr(self._local, "name", None) in (None, self.name)


class MemberHooks(TrainHooks):
    """Member k's record writer, with its log lines routed to its own train.log."""

    def __init__(self, k: int, inner: RecordHooks, stack: Any, name: str) -> None:
        self.k, self.inner, self.stack, self.name = k, inner, stack, name

    def on_step(self, step: int, loss: torch.Tensor) -> None:
        check_stop()  # a part in another thread ends here when the job is stopped

    def on_epoch_end(self, result: EpochResult, state: Any) -> None:
        with OnlyMember.reporting(self.name):
            member = MemberModel(state, self.stack, self.k)
            self.inner.on_epoch_end(result, member)  # type: ignore[arg-type]


class MemberModel:
    """Member k's state as the record writer sees a single run's: ``state_dict()`` for the
    checkpoint and, for the trackers' grids, ``model``: a single VAE holding member k's
    current weights (built only when asked for)."""

    def __init__(self, state: Any, stack: Any, k: int) -> None:
        self.state, self.stack, self.k = state, stack, k

    def state_dict(self) -> dict[str, Any]:
        return self.state.state_dict()

    def snapshot(self) -> dict[str, Any]:
        return self.state.state_dict()  # a member's state is built from copies

    @property
    def model(self) -> Any:
        return self.stack.model.member_view(self.k)


class OnceAcrossMembers(logging.Filter):
    """A tracker failing the same way for every member (a store gone, a full disk) warns
    once for the stack, as it would for a single run."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        text = record.getMessage()
        if text in self.seen:
            return False
        self.seen.add(text)
        return True


@contextmanager
def member_logs(members: Sequence[Member]) -> Iterator[None]:
    root = logging.getLogger()
    fmt = logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] %(message)s")
    for m in members:
        m.handler = logging.FileHandler(m.run_dir / "train.log")
        m.handler.setFormatter(fmt)
        m.handler.addFilter(OnlyMember(m.run_dir.name))
        root.addHandler(m.handler)
    try:
        yield
    finally:
        for m in members:
            if m.handler is not None:
                root.removeHandler(m.handler)
                m.handler.close()
