"""Stack assembly: the members' configs in, one :class:`StackState` out.

Each member is assembled by the one run assembly (:func:`vaesweep.run.assembly.assemble`),
as its single run would be (threads, device, seeding, model, KL controller, in that order),
so its initial weights are its single run's bit for bit; the images are loaded once and
shared. The stacked model is built from the members' models, one fused Adam over all of its
parameters, and one generator per member seeded with its seed.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from vaesweep.config import Config
from vaesweep.config.stacking import stack_key
from vaesweep.control.stacked import StackedControl
from vaesweep.model.stacked import StackedVAE
from vaesweep.run.assembly import Assembly, assemble
from vaesweep.training.adam import make_adam
from vaesweep.training.stacked_state import StackState


def assemble_stack(
    configs: Sequence[Config], *, device: torch.device | None = None, spectrum: bool = False
) -> tuple[Assembly, StackState]:
    """(the first member's assembly, with the shared data; the stack's training state)."""
    members = assemble_members(configs, device=device, spectrum=spectrum)
    return members[0], stack_state(members)


def assemble_members(
    configs: Sequence[Config], *, device: torch.device | None = None, spectrum: bool = False
) -> list[Assembly]:
    """Each member's assembly, the data loaded once (the first member's) and shared."""
    if len({stack_key(c) for c in configs}) != 1:
        raise ValueError("these runs differ in more than beta, seed, kl parameters and loss.sigma")
    first = assemble(configs[0], device=device, spectrum=spectrum)
    members = [first]
    for c in configs[1:]:
        members.append(assemble(c, device=first.device, splits=first.splits))
    return members


def stack_state(members: Sequence[Assembly]) -> StackState:
    """A fresh :class:`StackState` whose member k starts as ``members[k]``."""
    config = members[0].config
    model = StackedVAE([m.model for m in members])
    optimizer = make_adam(model, config.train.lr, config.train.weight_decay)
    generators = [torch.Generator(device=m.device).manual_seed(m.config.seed) for m in members]
    return StackState(model, optimizer, StackedControl([m.control for m in members]), generators)
