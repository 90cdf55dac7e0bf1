"""The stacked core without training: member k of a stack is its single run's model.

Initialisation, forward pass, unstacked checkpoint keys, Adam's per-member update, per-member
gradient clipping and the per-member objectives, each against the single-run code.
"""

from __future__ import annotations

import pytest
import torch

from vaesweep.config import (
    Config,
    ConstantKL,
    ConvConfig,
    DataConfig,
    GecoKL,
    LossConfig,
    MLPConfig,
    TrainConfig,
    WarmupKL,
)
from vaesweep.config.stacking import group_stacks, stack_key
from vaesweep.control import KLControl, RunShape, build_control
from vaesweep.control.stacked import StackedControl
from vaesweep.model import build_model
from vaesweep.model.layout import place
from vaesweep.model.stacked import StackedVAE
from vaesweep.model.stacked_layers import StackedConv2d, StackedConvTranspose2d
from vaesweep.objective.stacked import shared_likelihood, stacked_loss_terms
from vaesweep.objective.terms import loss_terms
from vaesweep.run.stack_assembly import assemble_stack
from vaesweep.training.adam import FusedAdam
from vaesweep.training.stacked_state import clip_member_grads

SHAPE = (1, 8, 8)
SMALL = ConvConfig(width=8, hidden_dim=32, latent_dim=4)


def _config(beta: float, seed: int, **kw: object) -> Config:
    fields: dict[str, object] = {"model": SMALL, "kl": ConstantKL(), "beta": beta, "seed": seed}
    fields.update(kw)
    return Config(**fields)  # type: ignore[arg-type]


def _single(config: Config, shape: tuple[int, int, int] = SHAPE) -> torch.nn.Module:
    torch.manual_seed(config.seed)
    return build_model(config.model, config.loss, shape)


def test_member_init_is_the_single_runs_bit_for_bit() -> None:
    configs = [_config(0.1, 3), _config(1.0, 7), _config(0.01, 3)]
    state = assemble_stack(configs, device=torch.device("cpu"))[1]
    for k, c in enumerate(configs):
        single = _single(c).state_dict()
        member = state.model.member_state_dict(k)
        assert list(member) == list(single)
        for name, tensor in single.items():
            assert member[name].shape == tensor.shape
            assert torch.equal(member[name], tensor), name


@pytest.mark.parametrize(
    ("model", "shape"),
    [
        (SMALL, SHAPE),
        (ConvConfig(width=4, hidden_dim=16, latent_dim=3), (3, 17, 23)),
        (MLPConfig(hidden=[32, 16], latent_dim=3), (1, 28, 28)),
    ],
)
@pytest.mark.parametrize(
    ("kernels", "per_member"),
    [
        (("auto", "auto"), None),
        (("unfold", "fold"), False),
        (("grouped", "grouped"), False),
        (("grouped", "grouped"), True),
    ],
)
def test_member_forward_equals_single_forward(
    model: object,
    shape: tuple[int, int, int],
    kernels: tuple[str, str],
    per_member: bool | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Stacked forward and backward (grouped, or member by member in the channels-last
    layout, ``per_member``) against each member's single model, in either layout."""
    monkeypatch.setattr(StackedConv2d, "kernel", kernels[0])
    monkeypatch.setattr(StackedConvTranspose2d, "kernel", kernels[1])
    singles = []
    for seed in range(3):
        torch.manual_seed(seed)
        singles.append(build_model(model, LossConfig(), shape))  # type: ignore[arg-type]
        if per_member:  # the single model in the layout the member computes in
            place(singles[-1], torch.device("cpu"), shape)
    stack = StackedVAE(singles, per_member)
    assert stack.per_member is (per_member or (per_member is None and shape[1] * shape[2] > 64))
    x = torch.rand(3, 5, *shape)
    eps = torch.randn(3, 5, stack.latent_dim)
    mu, logvar = stack.encode(x)
    out = stack.decode(stack.reparameterize(mu, logvar, eps))
    assert out.is_contiguous() or not stack.per_member
    (out.square().sum() + mu.sum() + logvar.sum()).backward()
    grads = {name: view(t.grad) for name, t, view in stack.member_slots(1)}
    for k, single in enumerate(singles):
        mu_k, logvar_k = single.encode(x[k])
        out_k = single.decode(single.reparameterize(mu_k, logvar_k, eps[k]))
        torch.testing.assert_close(mu[k], mu_k, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(out[k], out_k, rtol=1e-5, atol=1e-6)
        if k == 1:
            (out_k.square().sum() + mu_k.sum() + logvar_k.sum()).backward()
            for name, p in single.named_parameters():
                if name in grads:
                    torch.testing.assert_close(grads[name], p.grad, rtol=1e-4, atol=1e-5)


def test_unstacked_state_loads_into_a_single_model_and_back() -> None:
    configs = [_config(0.1, s, loss=LossConfig(likelihood="gaussian_learned")) for s in range(3)]
    state = assemble_stack(configs, device=torch.device("cpu"))[1]
    single = _single(configs[0])
    single.load_state_dict(state.model.member_state_dict(2), strict=True)
    other = assemble_stack(configs, device=torch.device("cpu"))[1]
    other.model.load_member_state_dict(0, state.model.member_state_dict(2))
    for name, tensor in other.model.member_state_dict(0).items():
        assert torch.equal(tensor, state.model.member_state_dict(2)[name])
    view = state.model.member_view(1)
    assert view.likelihood is state.model.likelihoods[1]
    assert torch.equal(view.encoder.head[1].weight, state.model.encoder.head[1].weight[1].t())


def test_adam_on_stacked_tensors_is_each_members_own_update() -> None:
    torch.manual_seed(0)
    members = [torch.randn(4, 3) for _ in range(3)]
    grads = [[torch.randn(4, 3) for _ in range(3)] for _ in range(5)]
    stacked = torch.nn.Parameter(torch.stack(members))
    opt = FusedAdam([stacked], lr=1e-2, weight_decay=0.1)
    singles = [torch.nn.Parameter(m.clone()) for m in members]
    opts = [FusedAdam([p], lr=1e-2, weight_decay=0.1) for p in singles]
    for step_grads in grads:
        stacked.grad = torch.stack(step_grads)
        opt.step()
        for p, o, g in zip(singles, opts, step_grads):
            p.grad = g.clone()
            o.step()
    for k, p in enumerate(singles):
        assert torch.equal(stacked.detach()[k], p.detach())


def test_gradient_clipping_is_per_member() -> None:
    configs = [_config(0.1, s) for s in range(3)]
    state = assemble_stack(configs, device=torch.device("cpu"))[1]
    scale = [0.01, 1.0, 100.0]
    for p in state.model.stacked_parameters():
        p.grad = torch.stack([torch.ones_like(p[k]) * scale[k] for k in range(3)])
    expected = []
    for k in range(3):
        grads = [p.grad[k].clone() for p in state.model.stacked_parameters()]
        params = [torch.nn.Parameter(torch.zeros_like(g)) for g in grads]
        for p, g in zip(params, grads):
            p.grad = g
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        expected.append([p.grad for p in params])
    clip_member_grads(state.model, 1.0)
    for k in range(3):
        for p, g in zip(state.model.stacked_parameters(), expected[k]):
            torch.testing.assert_close(p.grad[k], g, rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("kl", [ConstantKL(), WarmupKL(epochs=1.0), GecoKL()])
def test_stacked_objective_is_each_members_objective(kl: object) -> None:
    shape = RunShape.for_run(200, 64, 2, SHAPE, 4, "sum")
    controls = [build_control(kl, beta, shape) for beta in (0.01, 0.1, 1.0)]
    stacked = StackedControl(controls)
    singles = [_single(_config(0.1, s)) for s in range(3)]
    model = StackedVAE(singles)
    x = torch.rand(3, 6, *SHAPE)
    mu, logvar = model.encode(x)
    out = model.decode(model.reparameterize(mu, logvar, torch.randn_like(mu)))
    terms = stacked_loss_terms(x, out, mu, logvar, model.likelihoods, None)
    shared = stacked_loss_terms(
        x, out, mu, logvar, model.likelihoods, shared_likelihood(list(model.likelihoods))
    )
    objectives = stacked.objective(terms, 5)
    for k, control in enumerate(controls):
        single = loss_terms(x[k], out[k], mu[k], logvar[k], singles[k].likelihood)
        torch.testing.assert_close(shared.member(k).recon, single.recon)
        torch.testing.assert_close(objectives[k], control.objective(single, 5))
    assert stacked.vectorised == (type(controls[0]).objective is KLControl.objective)


def test_stack_key_separates_what_changes_shapes_or_data() -> None:
    base = _config(0.1, 0)
    assert stack_key(base) == stack_key(_config(3.0, 5, loss=LossConfig(sigma=0.3)))
    assert stack_key(base) != stack_key(_config(0.1, 0, model=ConvConfig(latent_dim=8)))
    assert stack_key(base) != stack_key(_config(0.1, 0, data=DataConfig(limit=50)))
    assert stack_key(base) != stack_key(_config(0.1, 0, train=TrainConfig(lr=1e-2)))
    assert stack_key(base) != stack_key(_config(0.1, 0, kl=WarmupKL()))
    assert stack_key(_config(0.1, 0, kl=WarmupKL(epochs=1))) == stack_key(
        _config(0.1, 0, kl=WarmupKL(epochs=3))
    )


def test_group_stacks_keeps_order_and_cuts_at_the_size() -> None:
    small = [_config(b, s) for s in range(2) for b in (0.1, 1.0, 3.0)]
    wide = [_config(0.1, s, model=ConvConfig(latent_dim=8)) for s in range(2)]
    configs = [*small[:3], *wide, *small[3:]]
    assert group_stacks(configs, 16) == [[0, 1, 2, 5, 6, 7], [3, 4]]
    assert group_stacks(configs, 4) == [[0, 1, 2, 5], [3, 4], [6, 7]]
    assert group_stacks(configs, 1) == [[i] for i in range(8)]
