"""On an accelerator the training loop never waits for the device within a step.

Reading a number back (``.item()``, ``float(t)``, ``if t:``, ``.tolist()``) makes the host wait
until the device has finished everything queued, so a GPU step that reads anything runs at the
speed of the round trip. The loop reads its loss only every ``CHECK_EVERY`` steps and at the
end of an epoch, and controllers (GECO, PI, capacity) keep their state on the device. Tested on
the CPU with the CPU treated as an accelerator (``control.state.HOST_DEVICES`` emptied): the
code takes the accelerator's path, and every read of a tensor's value through Python is
counted per step. Reads inside torch's own C++ kernels (boolean-mask indexing, ``nonzero``)
do not pass through Python and are not seen here; the loop uses neither.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import torch

from vaesweep.config import (
    PIKL,
    CapacityKL,
    Config,
    ConstantKL,
    ConvConfig,
    DataConfig,
    EvalConfig,
    GecoKL,
    TrainConfig,
)
from vaesweep.control import state as control_state
from vaesweep.run.assembly import assemble
from vaesweep.run.stack_assembly import assemble_stack
from vaesweep.training.adam import make_adam
from vaesweep.training.stacked_trainer import StackedTrainer
from vaesweep.training.trainer import CHECK_EVERY, Trainer, TrainState

pytestmark = pytest.mark.slow

#: Tensor methods that hand a value to the host.
READS = ("item", "tolist", "numpy", "cpu", "__float__", "__int__", "__bool__", "__index__")
BATCH = 16
KL_METHODS = [ConstantKL(), GecoKL(), PIKL(), CapacityKL()]


class Reads:
    """Each read of a tensor's value, and the steps and epochs as the loop reports them."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    # -- the loop's hooks (single run and stack member alike)
    def on_epoch_start(self, epoch: int, n_steps: int) -> None:
        self.events.append(("epoch", epoch))

    def on_step(self, step: int, loss: torch.Tensor) -> None:
        self.events.append(("step", step))

    def on_epoch_end(self, result: Any, state: Any) -> None:
        self.events.append(("end", result.epoch))

    def per_step(self) -> dict[int, list[str]]:
        """The reads made during each step (before the loop reports it), by step number
        (1-based, as ``on_step`` reports it); those after an epoch's last step (its
        validation) are left out."""
        out: dict[int, list[str]] = {}
        pending: list[str] = []
        for kind, value in self.events:
            if kind == "read":
                pending.append(value)
            elif kind == "step":
                out[value] = pending
                pending = []
            else:
                pending = []
        return out


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> Iterator[Reads]:
    monkeypatch.setattr(control_state, "HOST_DEVICES", frozenset())
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    record = Reads()
    for name in READS:
        real = getattr(torch.Tensor, name)

        def counted(self: torch.Tensor, *args: Any, _real: Any = real, _name: str = name) -> Any:
            record.events.append(("read", _name))
            return _real(self, *args)

        monkeypatch.setattr(torch.Tensor, name, counted)
    yield record
    torch.set_num_threads(threads)


def _config(kl: Any, seed: int = 0, beta: float = 0.1) -> Config:
    return Config(
        data=DataConfig(limit=300),
        model=ConvConfig(width=8, hidden_dim=32, latent_dim=4),
        train=TrainConfig(epochs=2, batch_size=BATCH, progress="off", grad_clip=50.0),
        eval=EvalConfig(iwae_samples=0, mi_images=50, noise_draws=1, grad_draws=1),
        kl=kl,
        beta=beta,
        seed=seed,
    )


def _checked(step: int, steps_per_epoch: int, total: int) -> bool:
    """Whether the loop reads the loss at ``step`` (1-based): the step before it is a multiple
    of CHECK_EVERY, or it ends an epoch or the run."""
    return (step - 1) % CHECK_EVERY == 0 or step % steps_per_epoch == 0 or step == total


def _assert_no_reads_between_checks(record: Reads, n_train: int) -> None:
    steps_per_epoch = -(-n_train // BATCH)
    total = 2 * steps_per_epoch
    per_step = record.per_step()
    assert sorted(per_step) == list(range(1, total + 1))
    unchecked = {s: r for s, r in per_step.items() if not _checked(s, steps_per_epoch, total)}
    assert len(unchecked) > CHECK_EVERY  # the test sees steps the loop must not read in
    assert {s: r for s, r in unchecked.items() if r} == {}
    assert any(per_step[s] for s in per_step if _checked(s, steps_per_epoch, total))


def _train_single(config: Config, reads: Reads) -> int:
    """Train ``config`` as a single run; the number of training images."""
    run = assemble(config, device=torch.device("cpu"))
    splits, cfg = run.splits, run.config
    optimizer = make_adam(run.model, cfg.train.lr, cfg.train.weight_decay)
    generator = torch.Generator().manual_seed(cfg.seed)
    state = TrainState(run.model, optimizer, run.control, generator)
    Trainer(cfg.train, cfg.eval, hooks=reads).fit(state, splits.train.images, splits.val.images)
    return len(splits.train)


@pytest.mark.parametrize("kl", KL_METHODS, ids=lambda k: type(k).__name__)
def test_a_single_run_reads_nothing_back_between_checks(reads: Reads, kl: Any) -> None:
    _assert_no_reads_between_checks(reads, _train_single(_config(kl), reads))


@pytest.mark.parametrize("kl", KL_METHODS, ids=lambda k: type(k).__name__)
def test_a_stack_reads_nothing_back_between_checks(reads: Reads, kl: Any) -> None:
    configs = [_config(kl, seed=s, beta=b) for s, b in ((0, 0.1), (1, 1.0))]
    first, state = assemble_stack(configs, device=torch.device("cpu"))
    splits = first.splits
    hooks = [reads, Reads()]
    StackedTrainer(configs[0].train, configs[0].eval, hooks=hooks).fit(
        state, splits.train.images, splits.val.images
    )
    _assert_no_reads_between_checks(reads, len(splits.train))


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_lower_precision_reads_nothing_back_between_checks(reads: Reads, precision: str) -> None:
    """fp16's loss scaler must not read whether a step overflowed (torch's GradScaler does,
    unless the optimiser takes the scale and the overflow flag itself)."""
    config = _config(ConstantKL())
    config.train.precision = precision
    _assert_no_reads_between_checks(reads, _train_single(config, reads))
