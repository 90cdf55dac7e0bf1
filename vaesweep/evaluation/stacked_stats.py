"""Running sums of K stacked members in one set of tensors, split into single-run stats.

:class:`StackedSplitStats` accumulates what :class:`~vaesweep.evaluation.metrics.SplitStats`
accumulates, with a leading member axis and a handful of operations per batch for all
members, and :meth:`StackedSplitStats.member` hands member k's sums to the single-run
:func:`~vaesweep.evaluation.metrics.metrics_row`, so a member's row means what a run's row means.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vaesweep.evaluation.estimators import accumulation_dtype
from vaesweep.evaluation.metrics import SplitStats
from vaesweep.objective.stacked import StackedTerms

#: The per-image sums of :class:`SplitStats`, in the order they are stacked here.
SUM_KEYS = ("recon", "nll", "kl", "sse", "loss")


@dataclass
class StackedSplitStats:
    latent_dim: int
    n: int = 0
    sums: torch.Tensor | None = None  # (5, K) in SUM_KEYS order
    kl_dim: torch.Tensor | None = None  # (K, M)
    mu_sum: torch.Tensor | None = None  # (K, M)
    mu_sq: torch.Tensor | None = None  # (K, M)

    @torch.no_grad()
    def add(self, terms: StackedTerms, objectives: torch.Tensor, mu: torch.Tensor) -> None:
        """terms of a batch of B images per member; objectives (K,); mu (K, B, M)."""
        b = terms.recon.shape[1]
        acc = accumulation_dtype(mu.device)
        batch = torch.stack(
            [
                terms.recon.sum(1),
                terms.nll.sum(1),
                terms.kl.sum(1),
                terms.sse.sum(1),
                objectives.detach() * b,
            ]
        ).to(acc)
        kl_dim = terms.kl_per_dim.sum(1).to(acc)
        mu = mu.detach().to(acc)
        if self.sums is None:
            self.sums, self.kl_dim = batch, kl_dim
            self.mu_sum, self.mu_sq = mu.sum(1), mu.pow(2).sum(1)
        else:
            assert self.kl_dim is not None and self.mu_sum is not None and self.mu_sq is not None
            self.sums += batch
            self.kl_dim += kl_dim
            self.mu_sum += mu.sum(1)
            self.mu_sq += mu.pow(2).sum(1)
        self.n += b

    def member(self, k: int) -> SplitStats:
        """Member k's sums as the single run's :class:`SplitStats`."""
        assert self.sums is not None and self.kl_dim is not None
        assert self.mu_sum is not None and self.mu_sq is not None
        return SplitStats(
            self.latent_dim,
            n=self.n,
            sums={key: self.sums[i, k] for i, key in enumerate(SUM_KEYS)},
            kl_dim=self.kl_dim[k].clone(),
            mu_sum=self.mu_sum[k].clone(),
            mu_sq=self.mu_sq[k].clone(),
        )
