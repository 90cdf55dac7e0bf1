"""Multi-draw validation and augmented batches of a stack, without training.

Member k's validation row at the default evaluation settings (several reparameterisation
draws per image, the expected encoder gradients over many draws) equals what the single-run
:func:`evaluate` gives member k's model, and member k's augmented training batch is the one
its single run would augment, both drawn from the same generator states.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator

import pytest
import torch

from vaesweep.config import (
    Config,
    ConstantKL,
    ConvConfig,
    DataConfig,
    EvalConfig,
    FreeBitsKL,
    LossConfig,
)
from vaesweep.data.augment import Augment, augmented_unit
from vaesweep.evaluation import stacked_metrics
from vaesweep.evaluation.metrics import evaluate
from vaesweep.evaluation.stacked_metrics import evaluate_stack
from vaesweep.run.stack_assembly import assemble_stack
from vaesweep.training.stacked_state import StackState
from vaesweep.training.stacked_trainer import member_batches

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Two threads on a busy shared machine spin far slower than one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _stack(kl: object, loss: LossConfig, binarize: str = "none") -> StackState:
    data = DataConfig(limit=200, binarize=binarize)
    model = ConvConfig(width=8, hidden_dim=32, latent_dim=4)
    configs = [
        Config(data=data, model=model, kl=kl, loss=loss, beta=b, seed=s)  # type: ignore[arg-type]
        for b, s in ((0.01, 0), (0.3, 1), (2.0, 2))
    ]
    state = assemble_stack(configs, device=CPU)[1]
    # Move away from the initialisation, differently per member (an untrained decoder's
    # gradients are all alike).
    with torch.no_grad():
        for p in state.model.stacked_parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    return state


def _val(n: int = 150) -> torch.Tensor:
    gen = torch.Generator().manual_seed(5)
    return torch.randint(0, 256, (n, 1, 8, 8), generator=gen, dtype=torch.uint8)


def _assert_rows_equal_singles(
    state: StackState, val: torch.Tensor, cfg: EvalConfig, binarize: str, batch_size: int
) -> None:
    step = 40
    rows = evaluate_stack(
        state.model,
        val,
        state.control,
        step,
        cfg,
        [0, 1, 2],
        binarize=binarize,
        seed=11,
        batch_size=batch_size,
    )
    for k in range(3):
        single = copy.deepcopy(state.model.member_view(k))
        row, kl_dim = evaluate(
            single,
            val,
            state.control.controls[k],
            step,
            cfg,
            binarize=binarize,
            seed=11,
            batch_size=batch_size,
        )
        assert set(rows[k][0]) == set(row)
        for key, value in row.items():
            assert rows[k][0][key] == pytest.approx(value, rel=1e-4, abs=1e-6, nan_ok=True), (
                k,
                key,
            )
        assert rows[k][1] == pytest.approx(kl_dim, rel=1e-4, abs=1e-6)
        assert math.isfinite(row["grad_norm_recon"]) and math.isfinite(row["mi"])


@pytest.mark.parametrize(
    ("kl", "loss", "binarize"),
    [
        (ConstantKL(), LossConfig(), "none"),
        # Free bits: the objective is not linear in the batch, so each draw is scored alone.
        (FreeBitsKL(lam=0.2), LossConfig(likelihood="bernoulli"), "dynamic"),
        # Learned sigma: each member's own likelihood, no shared scoring.
        (ConstantKL(), LossConfig(likelihood="gaussian_learned"), "none"),
    ],
)
def test_member_rows_equal_single_evaluation_at_the_default_eval_config(
    kl: object, loss: LossConfig, binarize: str
) -> None:
    cfg = EvalConfig()
    assert cfg.noise_draws > 1 and cfg.grad_draws > 1  # what a default sweep evaluates
    state = _stack(kl, loss, binarize)
    # Two validation batches (the second one short), so draws cross batch boundaries.
    _assert_rows_equal_singles(state, _val(), cfg, binarize, batch_size=100)


def test_batched_gradient_norms_equal_single_evaluation(monkeypatch: pytest.MonkeyPatch) -> None:
    """The batched gradient pass (the one GPUs take) gives the single runs' rows too."""
    monkeypatch.setattr(stacked_metrics, "PER_MEMBER_GRADS", frozenset())
    cfg = EvalConfig(grad_batches=2)
    for binarize in ("none", "dynamic"):
        state = _stack(ConstantKL(), LossConfig(likelihood="bernoulli"), binarize)
        _assert_rows_equal_singles(state, _val(), cfg, binarize, batch_size=64)


def test_gradient_norms_in_member_threads_equal_single_evaluation() -> None:
    """With two torch threads the members' gradient norms run in two single-threaded threads:
    the same rows, and torch has its two threads back afterwards."""
    torch.set_num_threads(2)  # the autouse fixture restores the original count
    calls: list[str] = []
    original = stacked_metrics.estimators.expected_encoder_grads

    def spy(*args: object, **kwargs: object) -> object:
        import threading

        calls.append(f"{threading.current_thread().name}:{torch.get_num_threads()}")
        return original(*args, **kwargs)  # type: ignore[arg-type]

    state = _stack(FreeBitsKL(lam=0.2), LossConfig(likelihood="bernoulli"), "dynamic")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(stacked_metrics.estimators, "expected_encoder_grads", spy)
        rows = evaluate_stack(
            state.model,
            _val(),
            state.control,
            40,
            EvalConfig(),
            [0, 1, 2],
            binarize="dynamic",
            seed=11,
        )
    assert len(calls) == 3 and all(
        c.startswith("vaesweep-member") and c.endswith(":1") for c in calls
    )
    assert torch.get_num_threads() == 2
    torch.set_num_threads(1)
    alone = evaluate_stack(
        state.model, _val(), state.control, 40, EvalConfig(), [0, 1, 2], binarize="dynamic", seed=11
    )
    for k in range(3):
        for key in ("grad_norm_recon", "grad_norm_kl", "grad_cos", "loss", "mi"):
            assert rows[k][0][key] == pytest.approx(alone[k][0][key], rel=1e-5), (k, key)


def test_draws_split_into_passes_when_the_stack_is_large(monkeypatch: pytest.MonkeyPatch) -> None:
    """With room for one draw per pass the rows are the same: only the batching changes."""
    monkeypatch.setitem(stacked_metrics.PASS_ELEMENTS, "cpu", 1)
    cfg = EvalConfig(noise_draws=3, grad_draws=5, grad_batches=2, mi_images=60)
    for binarize in ("none", "dynamic"):
        state = _stack(ConstantKL(), LossConfig(likelihood="bernoulli"), binarize)
        _assert_rows_equal_singles(state, _val(), cfg, binarize, batch_size=64)


def test_draws_per_pass_stays_within_the_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(stacked_metrics.PASS_ELEMENTS, "cpu", 1 << 20)
    per = stacked_metrics.draws_per_pass(8, 64, 784, 32, CPU)  # a gradient batch of MNIST
    assert 1 < per < 32 and per * 8 * 64 * 784 <= 1 << 20
    assert stacked_metrics.draws_per_pass(8, 64, 64, 4, CPU) == 4  # digits: one pass
    assert stacked_metrics.draws_per_pass(64, 1024, 3 * 64 * 64, 4, CPU) == 1  # at least one
    cuda = torch.device("cuda")
    assert stacked_metrics.draws_per_pass(8, 64, 784, 32, cuda) == min(
        32, stacked_metrics.PASS_ELEMENTS["default"] // (8 * 64 * 784)
    )


@pytest.mark.parametrize(
    "augment", [Augment(flip=True), Augment(crop=0.7), Augment(flip=True, crop=0.8)]
)
@pytest.mark.parametrize("binarize", ["none", "dynamic"])
def test_augmented_batches_are_each_members_single_run_batches(
    augment: Augment, binarize: str
) -> None:
    gen = torch.Generator().manual_seed(3)
    train = torch.randint(0, 256, (50, 3, 9, 7), generator=gen, dtype=torch.uint8)
    index = torch.stack([torch.randperm(50, generator=gen)[:16] for _ in range(4)])
    gens = [torch.Generator().manual_seed(100 + k) for k in range(4)]
    alone = [torch.Generator().manual_seed(100 + k) for k in range(4)]
    x = member_batches(train, index, binarize, gens, augment)
    assert x.shape == (4, 16, 3, 9, 7)
    for k in range(4):
        single = augmented_unit(train[index[k]], augment, binarize, alone[k])
        torch.testing.assert_close(x[k], single, rtol=1e-6, atol=1e-6)
        # The generator is left where the single run's is: the next draw (its noise) agrees.
        assert torch.equal(torch.rand(3, generator=gens[k]), torch.rand(3, generator=alone[k]))
    # Members draw their own views: not all the same.
    assert not torch.equal(x[0], x[1])
