"""Training a stack: member k against its single run, failure isolation, resume.

All on tiny digits (1 thread, a few steps per epoch); marked slow because they train.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import pytest
import torch

from vaesweep.config import (
    PIKL,
    Config,
    ConstantKL,
    ConvConfig,
    DataConfig,
    EvalConfig,
    GecoKL,
    LossConfig,
    TrainConfig,
)
from vaesweep.control import RunShape, build_control
from vaesweep.data import load_splits
from vaesweep.data.augment import Augment
from vaesweep.model import build_model
from vaesweep.model.layout import place
from vaesweep.run.stack_assembly import assemble_stack
from vaesweep.training.adam import make_adam
from vaesweep.training.device import seed_everything
from vaesweep.training.stacked_state import StackState
from vaesweep.training.stacked_trainer import StackedTrainer
from vaesweep.training.trainer import EpochResult, FitResult, Trainer, TrainHooks, TrainState

pytestmark = pytest.mark.slow

TIMING = {"seconds", "images_per_sec"}
CPU = torch.device("cpu")


class Rows(TrainHooks):
    """Keeps every epoch's rows and the last checkpoint state, as the record writer would."""

    def __init__(self) -> None:
        self.epochs: list[dict[str, tuple[dict[str, float], list[float]]]] = []
        self.state: dict[str, Any] | None = None

    def on_epoch_end(self, result: EpochResult, state: Any) -> None:
        self.epochs.append(result.rows)
        self.state = state.state_dict()


def _configs(epochs: int = 1, **kw: Any) -> list[Config]:
    common: dict[str, Any] = {
        "data": DataConfig(limit=300),
        "model": ConvConfig(width=8, hidden_dim=32, latent_dim=4),
        "train": TrainConfig(epochs=epochs, progress="off", grad_clip=50.0, weight_decay=1e-4),
        "eval": EvalConfig(
            iwae_samples=5,
            iwae_images=50,
            mi_images=100,
            grad_batches=1,
            noise_draws=1,
            grad_draws=1,
        ),
        "kl": ConstantKL(),
    }
    common.update(kw)
    return [Config(**common, beta=b, seed=s) for b, s in ((0.01, 0), (0.1, 1), (1.0, 2))]


@pytest.fixture(autouse=True)
def one_thread() -> Any:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _stack(configs: list[Config], splits: Any, **kw: Any) -> tuple[StackState, list[Rows], Any]:
    state = assemble_stack(configs, device=CPU)[1]
    hooks = [Rows() for _ in configs]
    data = configs[0].data
    trainer = StackedTrainer(
        configs[0].train,
        configs[0].eval,
        hooks=hooks,
        eval_seed=7,
        binarize=data.binarize,
        augment=Augment.from_config(data),
        **kw,
    )
    results = trainer.fit(state, splits.train.images, splits.val.images)
    return state, hooks, results


def _single(config: Config, splits: Any) -> Rows:
    return _single_run(config, splits, Rows())[0]


class _PoisonAfter(Rows):
    """Rows, and ``poison`` applied to the encoder head's bias after optimiser step ``step``."""

    def __init__(self, model: Any, step: int, poison: Callable[[torch.Tensor], None]) -> None:
        super().__init__()
        self.model, self.step, self.poison = model, step, poison

    def on_step(self, step: int, loss: torch.Tensor) -> None:
        if step == self.step:
            self.poison(self.model.encoder.head[1].bias)


def _single_result(
    config: Config, splits: Any, after_step: int, poison: Callable[[torch.Tensor], None]
) -> FitResult:
    return _single_run(config, splits, None, (after_step, poison))[1]


def _single_run(
    config: Config,
    splits: Any,
    hooks: Rows | None,
    poison: tuple[int, Callable[[torch.Tensor], None]] | None = None,
) -> tuple[Rows, FitResult]:
    seed_everything(config.seed, True, CPU)
    model = build_model(config.model, config.loss, splits.shape)
    place(model, CPU, splits.shape)  # as a run's assembly does
    shape = RunShape.for_run(
        len(splits.train), config.train.batch_size, config.train.epochs, splits.shape, 4, "sum"
    )
    state = TrainState(
        model,
        make_adam(model, config.train.lr, config.train.weight_decay),
        build_control(config.kl, config.beta, shape),
        torch.Generator().manual_seed(config.seed),
    )
    if hooks is None:
        assert poison is not None
        hooks = _PoisonAfter(model, *poison)
    result = Trainer(
        config.train,
        config.eval,
        hooks=hooks,
        eval_seed=7,
        binarize=config.data.binarize,
        augment=Augment.from_config(config.data),
    ).fit(state, splits.train.images, splits.val.images)
    return hooks, result


def _assert_rows_close(a: Rows, b: Rows, rel: float) -> None:
    assert len(a.epochs) == len(b.epochs)
    for rows_a, rows_b in zip(a.epochs, b.epochs):
        assert set(rows_a) == set(rows_b)
        for split in rows_a:
            row_a, row_b = rows_a[split][0], rows_b[split][0]
            assert set(row_a) == set(row_b)
            for key in set(row_a) - TIMING:
                assert row_b[key] == pytest.approx(row_a[key], rel=rel, abs=1e-6, nan_ok=True), (
                    split,
                    key,
                )
            assert rows_b[split][1] == pytest.approx(rows_a[split][1], rel=rel, abs=1e-6)


@pytest.mark.parametrize("kl", [ConstantKL(), GecoKL(kappa=0.2), PIKL(target=5.0)])
def test_each_member_matches_its_single_run_after_the_first_epoch(kl: object) -> None:
    configs = _configs(kl=kl)
    splits = load_splits(configs[0].data)
    _, stacked, results = _stack(configs, splits)
    assert [r.status for r in results] == ["completed"] * 3
    for k, config in enumerate(configs):
        _assert_rows_close(_single(config, splits), stacked[k], rel=1e-3)


def test_each_member_matches_its_single_run_at_the_default_eval_config() -> None:
    """Validation with the default draws (eval.noise_draws=4, eval.grad_draws=32): the rows a
    default sweep's members write are their single runs' rows."""
    configs = _configs(eval=EvalConfig(iwae_samples=5, iwae_images=50))
    assert configs[0].eval.noise_draws == EvalConfig().noise_draws > 1
    assert configs[0].eval.grad_draws == EvalConfig().grad_draws > 1
    splits = load_splits(configs[0].data)
    _, stacked, results = _stack(configs, splits)
    assert [r.status for r in results] == ["completed"] * 3
    for k, config in enumerate(configs):
        _assert_rows_close(_single(config, splits), stacked[k], rel=1e-3)


def test_members_of_larger_images_match_their_single_runs() -> None:
    """At 16 x 16 px the stack's convolutions run member by member and every model computes
    channels-last on the CPU (``model.layout``); the rows still are the single runs' rows."""
    configs = _configs(data=DataConfig(limit=300, image_size=16))
    splits = load_splits(configs[0].data)
    state, stacked, results = _stack(configs, splits)
    assert state.model.per_member
    assert [r.status for r in results] == ["completed"] * 3
    for k, config in enumerate(configs):
        _assert_rows_close(_single(config, splits), stacked[k], rel=1e-3)


def test_augmented_members_match_their_single_runs() -> None:
    """data.augment_flip / augment_crop (and dynamic binarisation after them): each member
    augments its batches from its own generator exactly as its single run does."""
    data = DataConfig(limit=300, augment_flip=True, augment_crop=0.8, binarize="dynamic")
    configs = _configs(data=data, loss=LossConfig(likelihood="bernoulli"))
    splits = load_splits(data)
    _, stacked, results = _stack(configs, splits)
    assert [r.status for r in results] == ["completed"] * 3
    for k, config in enumerate(configs):
        _assert_rows_close(_single(config, splits), stacked[k], rel=1e-3)
    # The augmentation is on: without it the first member trains differently.
    plain = _configs(data=DataConfig(limit=300, binarize="dynamic"))
    unaugmented = _single(plain[0], splits).epochs[0]["train"][0]["loss"]
    assert stacked[0].epochs[0]["train"][0]["loss"] != pytest.approx(unaugmented, rel=1e-3)


def test_bf16_members_match_their_bf16_single_runs() -> None:
    """train.precision=bf16: the stack's forward runs under autocast as the single run's does
    (bf16 keeps 8 bits of mantissa and batched and plain products round differently, hence
    0.5% where fp32 members agree to 0.1%); its loss terms and validation stay fp32."""
    train = TrainConfig(
        epochs=1, progress="off", grad_clip=50.0, weight_decay=1e-4, precision="bf16"
    )
    configs = _configs(train=train)
    splits = load_splits(configs[0].data)
    _, stacked, results = _stack(configs, splits)
    assert [r.status for r in results] == ["completed"] * 3
    for k, config in enumerate(configs):
        _assert_rows_close(_single(config, splits), stacked[k], rel=5e-3)
    fp32 = _single(_configs()[0], splits).epochs[0]["train"][0]["loss"]
    assert stacked[0].epochs[0]["train"][0]["loss"] != fp32  # autocast is on


def test_fp16_has_no_stacked_form() -> None:
    train = TrainConfig(epochs=1, progress="off", precision="fp16")
    configs = _configs(train=train)
    with pytest.raises(ValueError, match="fp16"):
        _stack(configs, load_splits(configs[0].data))


def test_members_with_their_own_sigma_match_their_single_runs() -> None:
    configs = _configs()
    for config, sigma in zip(configs, (0.1, 0.3, 1.0)):
        config.loss = LossConfig(likelihood="gaussian", sigma=sigma)
    splits = load_splits(configs[0].data)
    _, stacked, _ = _stack(configs, splits)
    _assert_rows_close(_single(configs[0], splits), stacked[0], rel=1e-3)
    assert stacked[0].epochs[0]["val"][0]["decoder_sigma"] == pytest.approx(0.1)
    assert stacked[2].epochs[0]["val"][0]["decoder_sigma"] == pytest.approx(1.0)


def test_a_diverging_member_leaves_the_others_untouched() -> None:
    configs = _configs(epochs=2)
    splits = load_splits(configs[0].data)
    _, clean, _ = _stack(configs, splits)

    def poison(state: StackState) -> None:
        if state.step == 3:
            with torch.no_grad():
                state.model.encoder.head[1].weight[1].fill_(math.nan)

    state, hooks, results = _stack(configs, splits, before_step=poison)
    assert results[1].status == "diverged"
    assert results[1].epochs_done == 0 and results[1].step == 3
    assert "non-finite loss" in (results[1].error or "") and "epoch 1" in (results[1].error or "")
    assert hooks[1].epochs == []  # no row for the epoch it died in, as a single run
    assert not state.alive[1]
    for k in (0, 2):
        assert results[k].status == "completed" and results[k].epochs_done == 2
        _assert_rows_close(clean[k], hooks[k], rel=0.0)
    # Its slice stopped updating: still the poisoned weights, no Adam drift.
    assert torch.isnan(state.model.encoder.head[1].weight[1]).all()


@pytest.mark.parametrize("image_size", [None, 16])
def test_resume_from_member_checkpoints_continues_exactly(image_size: int | None) -> None:
    """Also member by member (16 px), whose stacked weights and Adam moments are laid out
    channels-last per member while the checkpoints are a single run's."""
    data = DataConfig(limit=300, image_size=image_size)
    configs = _configs(epochs=2, data=data)
    splits = load_splits(configs[0].data)
    _, straight, _ = _stack(configs, splits)
    one = _configs(epochs=1, data=data)
    _, first, _ = _stack(one, splits)
    resumed = assemble_stack(configs, device=CPU)[1]
    for k, hooks in enumerate(first):
        assert hooks.state is not None
        resumed.load_member_state_dict(k, hooks.state)
    assert resumed.epoch == 1
    second = [Rows() for _ in configs]
    trainer = StackedTrainer(configs[0].train, configs[0].eval, hooks=second, eval_seed=7)
    trainer.fit(resumed, splits.train.images, splits.val.images)
    for k in range(3):
        assert len(second[k].epochs) == 1
        cont = Rows()
        cont.epochs = first[k].epochs + second[k].epochs
        _assert_rows_close(straight[k], cont, rel=0.0)


def test_member_checkpoint_is_a_single_runs_train_state() -> None:
    configs = _configs()
    splits = load_splits(configs[0].data)
    _, hooks, _ = _stack(configs, splits)
    config = configs[1]
    model = build_model(config.model, config.loss, splits.shape)
    shape = RunShape.for_run(len(splits.train), 64, 1, splits.shape, 4, "sum")
    single = TrainState(
        model,
        make_adam(model, config.train.lr, config.train.weight_decay),
        build_control(config.kl, config.beta, shape),
        torch.Generator(),
    )
    assert hooks[1].state is not None
    single.load_state_dict(hooks[1].state)
    assert single.epoch == 1 and single.step == 5
    assert set(hooks[1].state) == set(single.state_dict())


def test_a_kl_outside_the_objective_may_grow_without_diverging() -> None:
    """beta = 0 (a plain autoencoder, beta_t = 0): its KL is in no objective, so growing by
    orders of magnitude is not a divergence; with beta > 0 the same growth is. Every member's
    posterior variance is blown up (log-variance 30: a KL of ~1e13 nats per dimension) after
    step 3, with a still finite loss; a single run and a stack member agree on what they call it.
    (Before: `vaesweep train beta=0 train.lr=0.018` ended `diverged` on a KL of 2.6e4.)"""
    configs = [dataclasses.replace(c, beta=b) for c, b in zip(_configs(), (0.0, 1.0, 0.0))]
    splits = load_splits(configs[0].data)
    m = configs[0].model.latent_dim

    def blow_up(bias: torch.Tensor) -> None:
        with torch.no_grad():
            bias[m:].fill_(30.0)  # the log-variance half of the encoder's output

    def poison(state: StackState) -> None:
        if state.step == 3:
            for k in range(len(configs)):
                blow_up(state.model.encoder.head[1].bias[k])

    _, hooks, stacked = _stack(configs, splits, before_step=poison)
    for k, config in enumerate(configs):
        single = _single_result(config, splits, after_step=3, poison=blow_up)
        assert (single.status, stacked[k].status) == (
            ("diverged", "diverged") if config.beta > 0 else ("completed", "completed")
        ), (config.beta, single.error, stacked[k].error)
        if config.beta > 0:
            assert "KL grew" in (single.error or "") and "KL grew" in (stacked[k].error or "")
        else:
            assert hooks[k].epochs[-1]["train"][0]["kl"] > 1e6  # the KL did grow, far past 1000 x
