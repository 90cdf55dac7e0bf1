"""FusedAdam against torch.optim.Adam: the same updates, interchangeable state, no dynamo import."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from host_traffic import NoHostTraffic

from vaesweep.training.adam import FusedAdam, fused_kernel_available, make_adam

pytestmark = pytest.mark.skipif(
    not fused_kernel_available(torch.device("cpu")), reason="no fused Adam kernel on this CPU"
)


def _net(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.SiLU(), torch.nn.Linear(7, 3))


def _train(model: torch.nn.Module, opt, steps: int, seed: int = 1) -> None:
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x = torch.randn(11, 5, generator=g)
        opt.zero_grad(set_to_none=True)
        model(x).pow(2).sum().backward()
        opt.step()


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_updates_are_bitwise_those_of_torch_fused_adam(weight_decay):
    ours, ref = _net(), _net()
    _train(ours, FusedAdam(ours.parameters(), lr=1e-2, weight_decay=weight_decay), 25)
    _train(
        ref, torch.optim.Adam(ref.parameters(), lr=1e-2, weight_decay=weight_decay, fused=True), 25
    )
    for p, q in zip(ours.parameters(), ref.parameters()):
        assert torch.equal(p, q)


def test_close_to_the_reference_single_tensor_adam():
    ours, ref = _net(), _net()
    _train(ours, FusedAdam(ours.parameters(), lr=1e-2), 25)
    _train(ref, torch.optim.Adam(ref.parameters(), lr=1e-2, foreach=False), 25)
    for p, q in zip(ours.parameters(), ref.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_state_dicts_are_interchangeable_with_torch_adam():
    """A checkpoint of either optimiser continues bitwise in the other."""
    a, b = _net(), _net()
    opt_a = FusedAdam(a.parameters(), lr=3e-3)
    opt_b = torch.optim.Adam(b.parameters(), lr=3e-3, fused=True)
    _train(a, opt_a, 5)
    _train(b, opt_b, 5)
    # swap the optimisers' states and keep training: still identical
    state_a, state_b = opt_a.state_dict(), opt_b.state_dict()
    assert state_a["param_groups"][0].keys() == state_b["param_groups"][0].keys()
    opt_a.load_state_dict(state_b)
    opt_b.load_state_dict(state_a)
    _train(a, opt_a, 5, seed=2)
    _train(b, opt_b, 5, seed=2)
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)
    assert float(opt_a.state_dict()["state"][0]["step"]) == 10.0


def test_lr_lives_in_param_groups_and_zero_grad_clears():
    model = _net()
    opt = FusedAdam(model.parameters(), lr=0.5)
    assert opt.param_groups[0]["lr"] == 0.5
    model(torch.ones(2, 5)).sum().backward()
    opt.zero_grad()
    assert all(p.grad is None for p in model.parameters())
    opt.step()  # no gradients: nothing happens, no state is created
    assert opt.state_dict()["state"] == {}


def test_mismatched_state_is_refused():
    opt = FusedAdam(_net().parameters(), lr=1e-3)
    other = torch.optim.Adam(torch.nn.Linear(2, 2).parameters(), lr=1e-3)
    with pytest.raises(ValueError, match="does not match"):
        opt.load_state_dict(other.state_dict())


def test_make_adam_picks_the_fused_class_on_cpu():
    assert isinstance(make_adam(_net(), 1e-3, 0.0), FusedAdam)


@pytest.mark.slow
def test_a_training_run_never_imports_torch_dynamo(tmp_path):
    """torch.optim imports torch._dynamo (about 1.5 s); a vaesweep run must not."""
    code = (
        "import sys; from pathlib import Path\n"
        "from vaesweep.config import Config, ConstantKL, ConvConfig, TrainConfig\n"
        "from vaesweep.run import run_job\n"
        "cfg = Config(model=ConvConfig(), kl=ConstantKL(), train=TrainConfig(epochs=1, progress='off'))\n"
        f"assert run_job(cfg, Path({str(tmp_path)!r}))['status'] == 'completed'\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _scaled_steps(model: torch.nn.Module, opt, scaler: torch.amp.GradScaler) -> list[float]:
    """Five fp16-style steps through a grad scaler, the third with an overflowing gradient."""
    g = torch.Generator().manual_seed(2)
    scales = []
    for i in range(5):
        x = torch.randn(11, 5, generator=g)
        if i == 2:
            x[0, 0] = float("inf")
        opt.zero_grad(set_to_none=True)
        scaler.scale(model(x).pow(2).sum()).backward()
        scaler.unscale_(opt)  # as the trainer does before clipping
        scaler.step(opt)
        scaler.update()
        scales.append(scaler.get_scale())
    return scales


def test_a_grad_scaler_steps_it_as_it_steps_torch_fused_adam():
    """The scaler hands the step its inf flag: the overflowing step is skipped on the device
    (parameters, moments and step count untouched) exactly as torch's fused Adam skips it."""
    ours, ref = _net(), _net()
    opt_ours, opt_ref = (
        FusedAdam(ours.parameters(), lr=1e-2),
        torch.optim.Adam(ref.parameters(), lr=1e-2, fused=True),
    )
    scales = _scaled_steps(ours, opt_ours, torch.amp.GradScaler("cpu", init_scale=256.0))
    assert scales == _scaled_steps(ref, opt_ref, torch.amp.GradScaler("cpu", init_scale=256.0))
    assert scales[2] < scales[1]  # the overflow backed the scale off
    for p, q in zip(ours.parameters(), ref.parameters()):
        assert torch.equal(p, q)
    steps = {float(s["step"]) for s in opt_ours.state.values()}
    assert steps == {4.0}  # five steps, one skipped


def test_a_grad_scaler_step_reads_nothing_back():
    """Without the flag handed over, GradScaler reads it back to decide whether to step: on a
    GPU every fp16 step would wait for the host."""
    model = _net()
    opt = FusedAdam(model.parameters(), lr=1e-2)
    scaler = torch.amp.GradScaler("cpu")
    scaler.scale(model(torch.randn(3, 5)).pow(2).sum()).backward()
    with NoHostTraffic():
        scaler.unscale_(opt)
        scaler.step(opt)
        scaler.update()


def test_moments_loaded_into_a_parameter_of_another_layout_update_it_correctly():
    """A checkpoint's moments in the default layout, loaded for a channels-last parameter
    (``model.layout``): the fused kernel walks memory order, so a moment in another layout
    would pair each weight with another weight's moment (it did: max error 0.17)."""
    torch.manual_seed(0)
    w, g = torch.randn(8, 4, 3, 3), torch.randn(8, 4, 3, 3)
    ref = torch.nn.Parameter(w.clone())
    ref_opt = FusedAdam([ref], lr=0.1)
    ref.grad = g.clone()
    ref_opt.step()
    saved = ref_opt.state_dict()
    cl = torch.nn.Parameter(ref.detach().clone().contiguous(memory_format=torch.channels_last))
    opt = FusedAdam([cl], lr=0.1)
    opt.load_state_dict(saved)
    for p, o in ((ref, ref_opt), (cl, opt)):
        p.grad = g.clone().contiguous(
            memory_format=torch.channels_last if p is cl else torch.contiguous_format
        )
        o.step()
    assert cl.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(cl.detach(), ref.detach(), rtol=0, atol=0)
