"""Free bits (Kingma et al. 2016, eq. 15) in its documented variants.

The KL is split into groups (each latent dimension, ``groups`` contiguous groups, or the
total) and each group pays ``max(lam, KL_group)``: below ``lam`` nats there is no gradient.
``average=batch`` takes the hinge after averaging over the minibatch (Kingma's form);
``average=example`` per image before averaging, which is stricter. With the threshold active
the objective is no longer a bound on log p(x); the run record keeps the unthresholded ELBO.
"""

from __future__ import annotations

import torch

from vaesweep.config import FreeBitsKL
from vaesweep.control.base import KLControl, RunShape
from vaesweep.objective.terms import LossTerms


def group_kl(kl_per_dim: torch.Tensor, mode: str, groups: int) -> torch.Tensor:
    """(B, M) per-dimension KL -> (B, G) per-group KL for the free-bits ``mode``."""
    if mode == "dim":
        return kl_per_dim
    if mode == "total":
        return kl_per_dim.sum(1, keepdim=True)
    parts = torch.tensor_split(kl_per_dim, min(groups, kl_per_dim.shape[1]), dim=1)
    return torch.stack([p.sum(1) for p in parts], dim=1)


def free_bits_penalty(
    kl_per_dim: torch.Tensor, lam: float, mode: str, groups: int, average: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """(thresholded KL summed over groups, batch-mean scalar; share of groups below ``lam``)."""
    per_group = group_kl(kl_per_dim, mode, groups)
    if average == "batch":
        mean_group = per_group.mean(0)
        return mean_group.clamp(min=lam).sum(), (mean_group < lam).float().mean()
    return per_group.clamp(min=lam).sum(1).mean(), (per_group < lam).float().mean()


class FreeBits(KLControl):
    """``beta * sum_groups max(lam, KL_group)``; ``beta_t`` is beta, the weight above threshold."""

    method = "free_bits"

    def __init__(self, cfg: FreeBitsKL, beta: float, shape: RunShape) -> None:
        super().__init__(beta, shape)
        self.cfg = cfg
        self._share = 0.0

    def kl_penalty(self, terms: LossTerms, step: int) -> torch.Tensor:
        penalty, share = free_bits_penalty(
            terms.kl_per_dim, self.cfg.lam, self.cfg.mode, self.cfg.groups, self.cfg.average
        )
        self._share = float(share)
        return self.beta * penalty

    def stats(self, terms: LossTerms | None = None) -> dict[str, float]:
        if terms is not None:
            _, share = free_bits_penalty(
                terms.kl_per_dim, self.cfg.lam, self.cfg.mode, self.cfg.groups, self.cfg.average
            )
            return {"free_bits_share": float(share)}
        return {"free_bits_share": self._share}
