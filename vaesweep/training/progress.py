"""A rich progress bar per epoch for single runs on a terminal."""

from __future__ import annotations

import sys

import torch
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)


class EpochProgress:
    """Shows ``epoch e/E [bar] steps loss`` and prints one summary line per epoch."""

    def __init__(self, epochs: int, console: Console) -> None:
        self.epochs = epochs
        self.console = console
        self.bar = Progress(
            TextColumn("epoch {task.fields[epoch]}/{task.fields[epochs]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4g}"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        self.task: TaskID | None = None
        self._steps = 0
        self.bar.start()

    @classmethod
    def create(cls, mode: str, epochs: int) -> EpochProgress | None:
        """``on``, ``off`` or ``auto`` (only when stderr is a terminal)."""
        console = Console(stderr=True)
        if mode == "off" or (mode == "auto" and not (sys.stderr.isatty() and console.is_terminal)):
            return None
        return cls(epochs, console)

    def start_epoch(self, epoch: int, n_steps: int) -> None:
        if self.task is not None:
            self.bar.remove_task(self.task)
        self.task = self.bar.add_task(
            "train", total=n_steps, epoch=epoch, epochs=self.epochs, loss=float("nan")
        )

    def advance(self, loss: torch.Tensor) -> None:
        if self.task is None:
            return
        self._steps += 1
        if self._steps % 10 == 1:  # reading the loss syncs a GPU: refresh it now and then
            self.bar.update(self.task, advance=1, loss=float(loss))
        else:
            self.bar.update(self.task, advance=1)

    def end_epoch(self, line: str) -> None:
        self.console.print(line, highlight=False)

    def close(self) -> None:
        self.bar.stop()
