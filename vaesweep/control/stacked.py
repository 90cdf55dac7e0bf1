"""KL control of K stacked members: each member keeps its own single-run controller.

Member k's controller is the very object its single run would build (its own beta and
``kl.*`` numbers, its own state), fed member k's terms, so schedules, GECO's multiplier and
the PI controller behave per member exactly as they do alone, and ``beta_t``, ``stats`` and
``state_dict`` are the single run's. Methods whose objective is the plain
``recon_scale * mean(recon) + beta_t * mean(KL)`` (constant, warm-up, cyclical) are evaluated
for all members in one vectorised expression; the others call each member's controller
(a few scalar operations each, measured negligible next to the stacked step).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from vaesweep.control.base import KLControl
from vaesweep.objective.stacked import StackedTerms


def _plain(control: KLControl) -> bool:
    cls = type(control)
    return cls.objective is KLControl.objective and cls.kl_penalty is KLControl.kl_penalty


class StackedControl:
    """K controllers behind one interface taking :class:`StackedTerms`."""

    def __init__(self, controls: Sequence[KLControl]) -> None:
        self.controls = list(controls)
        self.vectorised = all(_plain(c) for c in self.controls)
        scales = {c.shape.recon_scale for c in self.controls}
        self.recon_scale = scales.pop() if len(scales) == 1 else None
        self._observers = [
            k for k, c in enumerate(self.controls) if type(c).observe is not KLControl.observe
        ]
        self._betas: tuple[list[float], torch.Tensor] | None = None

    def __len__(self) -> int:
        return len(self.controls)

    def betas(self, step: int, like: torch.Tensor) -> torch.Tensor:
        """(K,) beta_t of every member at ``step``, as a tensor like ``like`` (cached)."""
        values = [c.beta_t(step) for c in self.controls]
        if self._betas is None or self._betas[0] != values or self._betas[1].device != like.device:
            tensor = torch.tensor(values, dtype=like.dtype, device=like.device)
            self._betas = (values, tensor)
        return self._betas[1]

    def objective(self, terms: StackedTerms, step: int) -> torch.Tensor:
        """(K,) each member's scalar objective, the value its single run minimises."""
        if self.vectorised and self.recon_scale is not None:
            recon = terms.recon.mean(1)
            if self.recon_scale != 1.0:
                recon = self.recon_scale * recon
            return recon + self.betas(step, recon) * terms.kl.mean(1)
        return torch.stack(
            [c.objective(terms.member(k), step) for k, c in enumerate(self.controls)]
        )

    def observe(self, terms: StackedTerms, step: int, alive: Sequence[bool]) -> None:
        """Feed each live member's terms to its feedback controller (GECO, PI, capacity)."""
        for k in self._observers:
            if alive[k]:
                self.controls[k].observe(terms.member(k), step)
