"""KL control methods against their formulas (science notes 3.1-3.5).

Schedules: warm-up beta*min(1, t/T) (Sonderby et al. 2016), cyclical annealing (Fu et al.
2019), capacity C_t (Burgess et al. 2018). Free bits (Kingma et al. 2016): exactly zero KL
gradient below the threshold, per dimension / group / total, batch- vs example-averaged.
Feedback: GECO's multiplier (Rezende & Viola 2018) and ControlVAE's PI controller (Shao et al.
2020), driven with synthetic batches.
"""

from __future__ import annotations

import math
from itertools import pairwise
from typing import Any

import pytest
import torch

from vaesweep.config import PIKL, CapacityKL, CyclicalKL, FreeBitsKL, GecoKL, WarmupKL
from vaesweep.control import RunShape, build_control, state
from vaesweep.control.feedback import Geco, PIController
from vaesweep.control.free_bits import FreeBits, free_bits_penalty
from vaesweep.control.schedules import Capacity, Cyclical, Warmup
from vaesweep.objective.terms import LossTerms


def _terms(
    kl_per_dim: torch.Tensor, sse: torch.Tensor | None = None, recon: torch.Tensor | None = None
) -> LossTerms:
    b = kl_per_dim.shape[0]
    sse = torch.zeros(b, dtype=kl_per_dim.dtype) if sse is None else sse
    recon = sse if recon is None else recon
    return LossTerms(recon=recon, nll=recon, kl_per_dim=kl_per_dim, sse=sse)


def _shape(steps_per_epoch: int = 10, epochs: int = 10, d: int = 64, m: int = 4) -> RunShape:
    return RunShape(steps_per_epoch, steps_per_epoch * epochs, d, m)


# ------------------------------------------------------------------------------ schedules


def test_warmup_is_linear_then_flat() -> None:
    control = build_control(WarmupKL(epochs=2.5), 4.0, _shape())
    assert isinstance(control, Warmup) and control.warm_steps == 25
    for t in (0, 1, 7, 12, 24, 25, 26, 60, 99):
        assert control.beta_t(t) == pytest.approx(4.0 * min(1.0, t / 25), rel=1e-15, abs=0)
    assert control.beta_t(0) == 0.0


def frange_cycle_linear(n_iter: int, n_cycle: int, ratio: float) -> list[float]:
    """The reference schedule of Fu et al.'s repository (haofuml/cyclical_annealing)."""
    weights = [1.0] * n_iter
    period = n_iter / n_cycle
    step = 1.0 / (period * ratio)
    for c in range(n_cycle):
        v, i = 0.0, 0
        while v <= 1.0 and int(i + c * period) < n_iter:
            weights[int(i + c * period)] = v
            v += step
            i += 1
    return weights


@pytest.mark.parametrize(("cycles", "ratio"), [(4, 0.5), (2, 0.8), (5, 1.0)])
def test_cyclical_matches_fu_et_al(cycles: int, ratio: float) -> None:
    shape = _shape(10, 10)  # T = 100 steps
    control = build_control(CyclicalKL(cycles=cycles, ratio=ratio), 2.0, shape)
    assert isinstance(control, Cyclical)
    reference = frange_cycle_linear(100, cycles, ratio)
    period = 100 / cycles
    for t in range(100):
        # eq. 6 with 0-based t: tau = mod(t, ceil(T/M)) / (T/M); f(tau) = tau / R, capped at 1.
        tau = (t % math.ceil(period)) / period
        expected = 2.0 * min(1.0, tau / ratio)
        assert control.beta_t(t) == pytest.approx(expected, rel=1e-12, abs=1e-15), t
        assert control.beta_t(t) == pytest.approx(2.0 * reference[t], rel=1e-9, abs=1e-12), t
    # Each cycle restarts from zero exactly once.
    assert sum(control.beta_t(t) == 0.0 for t in range(100)) == cycles


def test_cyclical_with_tail_and_non_integer_period() -> None:
    shape = _shape(10, 12)  # 120 steps, the last 2 epochs (20 steps) at constant beta
    control = build_control(CyclicalKL(cycles=3, ratio=0.5, tail=2.0), 1.5, shape)
    assert isinstance(control, Cyclical) and control.cycle_steps == 100
    period = 100 / 3
    for t in range(120):
        ramp = 1.5 * min(1.0, (t % math.ceil(period)) / period / 0.5)
        expected = 1.5 if t >= 100 else ramp
        assert control.beta_t(t) == pytest.approx(expected, rel=1e-12, abs=1e-15), t
    assert control.beta_t(119) == 1.5
    assert [t for t in range(120) if control.beta_t(t) == 0.0] == [0, 34, 68]


def test_capacity_target_penalty_and_logged_weight() -> None:
    cfg = CapacityKL(gamma=50.0, c_max=20.0, ramp_epochs=4)
    control = build_control(cfg, 1.0, _shape())
    assert isinstance(control, Capacity) and control.ramp_steps == 40
    for t in (0, 10, 20, 39, 40, 41, 99):
        assert control.capacity(t) == pytest.approx(20.0 * min(1.0, t / 40), rel=1e-15, abs=0)
    kl = torch.tensor([[3.0, 4.0], [5.0, 6.0]], dtype=torch.float64, requires_grad=True)
    terms = _terms(kl)
    # mean KL = 9 nats; at t=10 C = 5: penalty gamma * |9 - 5|, d/dKL_bj = gamma / B.
    penalty = control.kl_penalty(terms, 10)
    assert float(penalty.detach()) == pytest.approx(50.0 * 4.0, rel=1e-15)
    penalty.backward()
    torch.testing.assert_close(kl.grad, torch.full_like(kl, 50.0 / 2))
    # At t=30 C = 15 > 9: the penalty pushes the KL up (negative gradient).
    kl.grad = None
    control.kl_penalty(terms, 30).backward()
    torch.testing.assert_close(kl.grad, torch.full_like(kl, -50.0 / 2))
    # Logged beta_t: gamma while the running KL is clearly above C_t; NaN at or below the
    # target (the weight there is the R-D slope at C, unmeasured). kl_target logs the C_t the
    # next objective uses: after observing step t, C_{t+1}.
    control.observe(terms, 10)  # first observation: the running KL is 9 nats
    assert control.beta_t(10) == 50.0  # 9 > 5 * 1.05 + 0.1
    assert control.stats()["kl_target"] == pytest.approx(control.capacity(11))
    assert control.beta_t(16) == 50.0  # C = 8: 9 > 8 * 1.05 + 0.1 = 8.5
    assert math.isnan(control.beta_t(17))  # C = 8.5: 9 is within 8.5 * 1.05 + 0.1 = 9.025
    control.observe(terms, 30)
    assert math.isnan(control.beta_t(30))  # C_30 = 15 > 9: below target
    assert control.stats()["kl_target"] == pytest.approx(control.capacity(31))
    # The running KL: an exponential mean over about 20 steps, kept in the checkpoint state.
    low = _terms(torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=torch.float64))  # mean 1 nat
    control.observe(low, 31)
    assert control.state_dict()["kl_ema"] == pytest.approx(0.95 * 9.0 + 0.05 * 1.0)
    again = build_control(cfg, 1.0, _shape())
    again.load_state_dict(control.state_dict())
    assert again.state_dict() == control.state_dict()
    # Equilibrium at the target: NaN, not a flip between gamma and 0.
    for t in range(32, 200):
        control.observe(_terms(torch.tensor([[10.0, 10.0]], dtype=torch.float64)), t)
    assert all(math.isnan(control.beta_t(t)) for t in range(40, 60))  # C = 20, KL -> 20


# ------------------------------------------------------------------------------ free bits

KL = torch.tensor(
    [
        [0.10, 0.90, 2.00, 0.05],
        [0.20, 0.10, 2.00, 0.05],
        [0.32, 0.20, 2.00, 0.05],
        [0.20, 0.20, 2.00, 1.60],
    ],
    dtype=torch.float64,
)  # no entry equals a threshold used below
# Batch means per dim: 0.205, 0.35, 2.0, 0.4375; totals per image: 3.05, 2.35, 2.57, 4.0.
DIM_MEANS = [0.205, 0.35, 2.0, 0.4375]
TOTALS = [3.05, 2.35, 2.57, 4.0]


def _fb_grad(
    mode: str, average: str, lam: float, groups: int = 2
) -> tuple[torch.Tensor, float, float]:
    kl = KL.clone().requires_grad_(True)
    penalty, share = free_bits_penalty(kl, lam, mode, groups, average)
    penalty.backward()
    assert kl.grad is not None
    return kl.grad, float(penalty.detach()), float(share)


def test_free_bits_per_dim_batch_average() -> None:
    grad, penalty, share = _fb_grad("dim", "batch", 0.3)
    # Dim 0 (batch mean 0.205) is under 0.3: no gradient at all; the others get 1 / B each.
    assert torch.equal(grad[:, 0], torch.zeros(4, dtype=torch.float64))
    assert torch.equal(grad[:, 1:], torch.full((4, 3), 0.25, dtype=torch.float64))
    assert penalty == pytest.approx(0.3 + 0.35 + 2.0 + 0.4375, rel=1e-14)
    assert share == 0.25


def test_free_bits_per_dim_example_average_differs_from_batch() -> None:
    grad, penalty, share = _fb_grad("dim", "example", 0.3)
    # Per image: exactly zero where that image's KL_j < 0.3, 1 / B elsewhere.
    expected = torch.where(KL < 0.3, 0.0, 0.25).to(torch.float64)
    assert torch.equal(grad, expected)
    assert penalty == pytest.approx(float(KL.clamp(min=0.3).sum(1).mean()), rel=1e-14)
    assert share == pytest.approx(9 / 16, rel=1e-15)
    batch_grad, batch_penalty, _ = _fb_grad("dim", "batch", 0.3)
    # Dim 1 (batch mean 0.35 >= 0.3): the batch form passes gradient to every image, the
    # example form stops it for images 1..3, whose own KL_1 is under 0.3.
    assert torch.equal(batch_grad[:, 1], torch.full((4,), 0.25, dtype=torch.float64))
    assert torch.equal(grad[:, 1], torch.tensor([0.25, 0.0, 0.0, 0.0], dtype=torch.float64))
    # Dim 0 (batch mean 0.205 < 0.3): the batch form stops all of it, the example form lets
    # image 2 (KL 0.32) through.
    assert torch.equal(batch_grad[:, 0], torch.zeros(4, dtype=torch.float64))
    assert torch.equal(grad[:, 0], torch.tensor([0.0, 0.0, 0.25, 0.0], dtype=torch.float64))
    # mean(max(lam, KL)) >= max(lam, mean(KL)) (Jensen): the example form is stricter.
    assert penalty > batch_penalty


def test_free_bits_total_threshold() -> None:
    mean_total = sum(TOTALS) / 4  # 2.9925
    grad, penalty, share = _fb_grad("total", "batch", 3.0)
    assert torch.equal(grad, torch.zeros_like(grad))
    assert penalty == 3.0 and share == 1.0
    grad, penalty, share = _fb_grad("total", "batch", 2.5)
    assert torch.equal(grad, torch.full_like(grad, 0.25))
    assert penalty == pytest.approx(mean_total, rel=1e-14) and share == 0.0
    grad, penalty, share = _fb_grad("total", "example", 3.0)
    rows = torch.tensor([0.25, 0.0, 0.0, 0.25], dtype=torch.float64)  # totals 3.05 and 4.0 pass
    assert torch.equal(grad, rows[:, None].expand(4, 4))
    assert penalty == pytest.approx((3.05 + 3.0 + 3.0 + 4.0) / 4, rel=1e-14) and share == 0.5


def test_free_bits_groups() -> None:
    # Two groups of two dims; batch-mean group KL 0.555 and 2.4375.
    grad, penalty, share = _fb_grad("group", "batch", 1.0, groups=2)
    assert torch.equal(grad[:, :2], torch.zeros(4, 2, dtype=torch.float64))
    assert torch.equal(grad[:, 2:], torch.full((4, 2), 0.25, dtype=torch.float64))
    assert penalty == pytest.approx(1.0 + 2.4375, rel=1e-14) and share == 0.5


def test_free_bits_control_weights_thresholded_kl_and_logs_share() -> None:
    control = build_control(FreeBitsKL(lam=0.3, mode="dim", average="batch"), 2.0, _shape())
    assert isinstance(control, FreeBits)
    kl = KL.clone().requires_grad_(True)
    recon = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64)
    terms = _terms(kl, recon=recon)
    objective = control.objective(terms, 0)
    assert float(objective.detach()) == pytest.approx(2.5 + 2.0 * (0.3 + 0.35 + 2.0 + 0.4375))
    objective.backward()
    assert torch.equal(kl.grad[:, 0], torch.zeros(4, dtype=torch.float64))
    torch.testing.assert_close(kl.grad[:, 1:], torch.full((4, 3), 0.5, dtype=torch.float64))
    assert control.stats()["free_bits_share"] == 0.25
    assert control.stats(terms)["free_bits_share"] == 0.25
    assert control.beta_t(0) == 2.0


# ------------------------------------------------------------------------------ GECO


def _geco_batch(mse: float, d: int = 64, kl: float = 5.0) -> LossTerms:
    b = 4
    return _terms(
        torch.full((b, 2), kl / 2, dtype=torch.float64),
        sse=torch.full((b,), mse * d, dtype=torch.float64),
    )


def test_geco_follows_its_update_rule() -> None:
    cfg = GecoKL(kappa=0.1, alpha=0.5, nu=0.2, lambda_init=3.0)
    control = build_control(cfg, 1.0, _shape(d=64))
    assert isinstance(control, Geco)
    log_lam, c_bar = math.log(3.0), None
    for t, mse in enumerate([0.04, 0.03, 0.02, 0.005, 0.001, 0.001]):
        terms = _geco_batch(mse)
        c = mse / 0.1**2 - 1.0
        assert float(control.constraint(terms)) == pytest.approx(c, rel=1e-12)
        # Objective KL + lambda * C; its ratio of SSE weight to KL weight is 1 / beta_t.
        sse = terms.sse.clone().requires_grad_(True)
        kl = terms.kl_per_dim.clone().requires_grad_(True)
        obj = control.objective(LossTerms(sse, sse, kl, sse), t)
        assert float(obj.detach()) == pytest.approx(5.0 + math.exp(log_lam) * c, rel=1e-12)
        obj.backward()
        beta_t = float(kl.grad[0, 0] / sse.grad[0])
        assert control.beta_t(t) == pytest.approx(beta_t, rel=1e-12)
        assert control.beta_t(t) == pytest.approx(64 * 0.01 / math.exp(log_lam), rel=1e-12)
        control.observe(terms, t)
        c_bar = c if c_bar is None else 0.5 * c_bar + 0.5 * c
        log_lam += 0.2 * c_bar
        assert control.log_lambda == pytest.approx(log_lam, rel=1e-12)
        assert control.stats()["geco_constraint"] == pytest.approx(c_bar, rel=1e-12)


def test_geco_lambda_rises_while_mse_misses_kappa_and_falls_below() -> None:
    control = build_control(GecoKL(kappa=0.1, alpha=0.9, nu=0.05), 1.0, _shape(d=64))
    lambdas, betas = [], []
    for t in range(50):  # MSE 0.02 > kappa^2 = 0.01
        control.observe(_geco_batch(0.02), t)
        lambdas.append(control.stats()["geco_lambda"])
        betas.append(control.beta_t(t + 1))
    assert all(b > a for a, b in pairwise(lambdas))
    assert all(b < a for a, b in pairwise(betas))
    after = []
    for t in range(50, 200):  # MSE 0.002 < kappa^2: once the moving average turns, lambda falls
        control.observe(_geco_batch(0.002), t)
        after.append((control.c_bar, control.stats()["geco_lambda"]))
    # While C_bar is still positive lambda keeps rising; from the step C_bar < 0 it falls.
    turn = next(i for i, (c_bar, _) in enumerate(after) if c_bar < 0)
    assert 0 < turn < 50
    lam = [lambdas[-1]] + [v for _, v in after]
    assert all(b > a for a, b in pairwise(lam[: turn + 1]))
    assert all(b < a for a, b in pairwise(lam[turn:]))
    assert lam[-1] < lambdas[0]


def test_geco_respects_lambda_bounds() -> None:
    cfg = GecoKL(kappa=0.1, alpha=0.0, nu=1.0, lambda_init=1.0, lambda_min=0.5, lambda_max=4.0)
    control = build_control(cfg, 1.0, _shape(d=64))
    for t in range(20):
        control.observe(_geco_batch(1.0), t)  # C = 99: would explode without the clamp
        assert control.stats()["geco_lambda"] <= 4.0 * (1 + 1e-12)
    assert control.stats()["geco_lambda"] == pytest.approx(4.0, rel=1e-12)
    assert control.beta_t(20) == pytest.approx(64 * 0.01 / 4.0, rel=1e-12)
    for t in range(20, 40):
        control.observe(_geco_batch(0.0), t)  # C = -1
        assert control.stats()["geco_lambda"] >= 0.5 * (1 - 1e-12)
    assert control.stats()["geco_lambda"] == pytest.approx(0.5, rel=1e-12)
    # The initial lambda is clamped too.
    high = build_control(GecoKL(lambda_init=1e9, lambda_max=10.0), 1.0, _shape())
    assert high.stats()["geco_lambda"] == pytest.approx(10.0, rel=1e-12)


def test_geco_state_round_trip() -> None:
    a = build_control(GecoKL(alpha=0.7), 1.0, _shape())
    for t in range(5):
        a.observe(_geco_batch(0.02 + 0.01 * t), t)
    b = build_control(GecoKL(alpha=0.7), 1.0, _shape())
    b.load_state_dict(a.state_dict())
    for t in range(5, 10):
        a.observe(_geco_batch(0.003 * t), t)
        b.observe(_geco_batch(0.003 * t), t)
        assert a.beta_t(t) == b.beta_t(t)


# ------------------------------------------------------------------------------ PI controller


def _pi(beta: float = 0.5, **kw: float) -> PIController:
    values = {"target": 10.0, "kp": 0.01, "ki": 0.001, "beta_min": 0.0, "beta_max": 1.0, **kw}
    control = build_control(PIKL(**values), beta, _shape())
    assert isinstance(control, PIController)
    return control


def test_pi_matches_the_controlvae_formula() -> None:
    control = _pi()
    integral = 0.5  # bumpless start: the output starts at beta = 0.5
    for kl in (12.0, 15.0, 9.0, 4.0, 10.0, 30.0):
        e = 10.0 - kl
        p = 0.01 / (1 + math.exp(e))
        integral -= 0.001 * e  # never saturated here
        expected = min(max(p + integral, 0.0), 1.0)
        assert control.update(kl) == pytest.approx(expected, rel=1e-12)
        assert control.stats()["pi_error"] == e
        assert control.beta_t(0) == control.current


def test_pi_moves_beta_the_right_way_and_reaches_its_bounds() -> None:
    control = _pi(beta_min=0.1, beta_max=0.8, ki=0.01)
    above = [control.update(25.0) for _ in range(100)]  # KL above target -> beta up
    assert 0.5 < above[0] < 0.8
    assert all(b >= a for a, b in pairwise(above))
    # Steps of ki * |e| = 0.15 overshoot the bound at the second step: beta sits exactly on it.
    assert above[1] == 0.8 and above[-1] == 0.8 and max(above) <= 0.8
    below = [control.update(0.0) for _ in range(100)]  # KL below target -> beta down
    assert below[0] < 0.8
    assert all(b <= a for a, b in pairwise(below))
    assert below[-1] == 0.1 and min(below) >= 0.1


def test_pi_anti_windup_freezes_the_integral_and_recovers_fast() -> None:
    control = _pi(ki=0.01)
    saturated_at = None
    for i in range(1000):
        control.update(30.0)  # e = -20: the integral would grow by 0.2 per step
        if saturated_at is None and control.current == 1.0:
            saturated_at, frozen = i + 1, control.integral
    assert saturated_at == 3
    # Held at the bound for ~1000 steps, yet the integral did not move (no windup): it is
    # exactly what puts the output on the bound.
    assert control.integral == frozen
    p = 0.01 / (1 + math.exp(-20.0))
    assert control.integral == pytest.approx(1.0 - p, rel=1e-12)
    # Once the KL drops below target, beta leaves the bound at the very next step. Without
    # anti-windup the integral would be ~0.5 + 1000 * 0.2 = 200 and beta would stay at 1
    # for ~4000 steps of e = +5.
    recovery = [control.update(5.0) for _ in range(3)]
    assert recovery[0] < 1.0
    assert recovery[0] == pytest.approx(1.0 - p - 0.05 + 0.01 / (1 + math.exp(5.0)), rel=1e-12)
    assert recovery[2] < recovery[1] < recovery[0]


def test_pi_closes_the_loop_on_a_synthetic_plant() -> None:
    """KL responds to beta as KL = 40 / (1 + 10 beta); the target 20 needs beta = 0.1."""
    control = _pi(beta=0.9, target=20.0, kp=0.01, ki=0.002)
    kl = 40.0 / (1 + 10 * control.current)
    for _ in range(3000):
        control.update(kl)
        kl = 40.0 / (1 + 10 * control.current)
    assert kl == pytest.approx(20.0, abs=0.01)
    assert control.current == pytest.approx(0.1, abs=0.001)


def test_pi_state_round_trip() -> None:
    a = _pi()
    for kl in (30.0, 20.0, 15.0):
        a.update(kl)
    b = _pi()
    b.load_state_dict(a.state_dict())
    for kl in (5.0, 7.0, 40.0):
        assert a.update(kl) == b.update(kl)


# ------------------------------------------------------------------------------ on a GPU


class _DeviceOnly(torch.Tensor):
    """A tensor whose values the host may not read, as on a GPU (where a read stalls the step)."""

    READS = ("item", "tolist", "numpy", "__float__", "__int__", "__bool__", "__index__")

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        if getattr(func, "__name__", "") in cls.READS:
            raise AssertionError(f"a controller step read a value back to the host ({func})")
        return super().__torch_function__(func, types, args, kwargs or {})


@pytest.mark.parametrize(
    "cfg",
    [GecoKL(kappa=0.1), PIKL(target=10.0), CapacityKL(gamma=50.0, c_max=20.0)],
    ids=["geco", "pi", "capacity"],
)
def test_feedback_controllers_step_without_reading_the_batch_back(
    cfg: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On an accelerator (the CPU treated as one here) objective and observe keep the
    controller's state on the device: the same numbers as the CPU's Python floats, and no value
    of the batch or the state is read by the host."""
    plain = build_control(cfg, 0.5, _shape())
    monkeypatch.setattr(state, "HOST_DEVICES", frozenset())
    device_only = build_control(cfg, 0.5, _shape())
    for t in range(6):
        kl = torch.full((4, 2), 3.0 + t, dtype=torch.float64)
        sse = torch.full((4,), 0.3 * (t + 1), dtype=torch.float64)
        terms = _terms(kl, sse=sse)
        hidden = _terms(kl.as_subclass(_DeviceOnly), sse=sse.as_subclass(_DeviceOnly))
        monkeypatch.setattr(state, "HOST_DEVICES", frozenset({"cpu"}))
        expected = plain.objective(terms, t)
        plain.observe(terms, t)
        monkeypatch.setattr(state, "HOST_DEVICES", frozenset())
        got = device_only.objective(hidden, t)
        device_only.observe(hidden, t)
        assert torch.equal(got.as_subclass(torch.Tensor), expected)
    # On the CPU the state stayed Python numbers (a 0-d tensor op costs ~20x a float op).
    assert not any(isinstance(v, torch.Tensor) for v in vars(plain).values())

    # The log does read the state (capacity's in beta_t), once an epoch.
    def log() -> object:
        return device_only.beta_t(6) if cfg.method == "capacity" else device_only.stats()

    with pytest.raises(AssertionError, match="read a value back"):
        log()
