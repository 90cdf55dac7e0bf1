"""Assemble a stack from the typed configs of its members (no Hydra, no files).

Member k is built exactly as its single run builds its model, controller and generator:
the global RNG is seeded with the member's seed (``seed_everything``) right before its model
is built, so its initial weights are its single run's, bit for bit; its controller is built
from its own ``kl`` config and ``beta``; its generator is seeded with its seed.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from vaesweep.config import Config
from vaesweep.config.stacking import stack_key
from vaesweep.control import RunShape, build_control
from vaesweep.control.stacked import StackedControl
from vaesweep.model import build_model
from vaesweep.model.stacked import StackedVAE
from vaesweep.training.adam import make_adam
from vaesweep.training.device import seed_everything
from vaesweep.training.stacked_state import StackState


def build_stack(
    configs: Sequence[Config],
    image_shape: tuple[int, int, int],
    n_train: int,
    device: torch.device,
) -> StackState:
    """A fresh :class:`StackState` whose member k starts as ``configs[k]``'s single run."""
    keys = {stack_key(c) for c in configs}
    if len(keys) != 1:
        raise ValueError("these runs differ in more than beta, seed, kl parameters and loss.sigma")
    first = configs[0]
    members = []
    for c in configs:
        seed_everything(c.seed, c.train.deterministic, device)
        members.append(build_model(c.model, c.loss, image_shape).to(device))
    model = StackedVAE(members).to(device)
    controls = []
    for c in configs:
        shape = RunShape.for_run(
            n_train,
            c.train.batch_size,
            c.train.epochs,
            image_shape,
            c.model.latent_dim,
            c.loss.recon_reduction,
        )
        controls.append(build_control(c.kl, c.beta, shape))
    optimizer = make_adam(model, first.train.lr, first.train.weight_decay)
    generators = [torch.Generator(device=device).manual_seed(c.seed) for c in configs]
    return StackState(model, optimizer, StackedControl(controls), generators)
