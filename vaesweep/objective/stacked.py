"""The loss terms of K stacked members at once: the single-run functions on a member axis.

Shapes gain a leading K: recon, nll, sse (K, B); KL per dimension (K, B, M). Where the
members' likelihoods are interchangeable (same kind and fixed numbers, no learned or running
state: mse, Bernoulli, a shared fixed sigma...) the member axis is folded into the batch and
the single-run :meth:`Likelihood.terms` runs once; otherwise each member's own likelihood
scores its own slice. Either way member k's terms are those :func:`loss_terms` gives its
single run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import torch

from vaesweep.objective.likelihood_base import Likelihood
from vaesweep.objective.terms import LossTerms, gaussian_kl


@dataclass(frozen=True)
class StackedTerms:
    """Per-image terms of one stacked batch (K members, B images, M latent dims)."""

    recon: torch.Tensor  # (K, B)
    nll: torch.Tensor  # (K, B)
    kl_per_dim: torch.Tensor  # (K, B, M)
    sse: torch.Tensor  # (K, B)

    @cached_property
    def kl(self) -> torch.Tensor:
        """(K, B) KL per image, nats."""
        return self.kl_per_dim.sum(-1)

    def member(self, k: int) -> LossTerms:
        """Member k's terms as the single-run :class:`LossTerms` (views, no copies)."""
        return LossTerms(self.recon[k], self.nll[k], self.kl_per_dim[k], self.sse[k])

    def images(self, start: int, stop: int) -> StackedTerms:
        """The terms of images ``start:stop`` of every member (views, no copies)."""
        at = slice(start, stop)
        return StackedTerms(
            self.recon[:, at], self.nll[:, at], self.kl_per_dim[:, at], self.sse[:, at]
        )


def _signature(lik: Likelihood) -> tuple[object, ...] | None:
    """What makes likelihoods interchangeable; None if this one has parameters or state."""
    if any(True for _ in lik.parameters()) or any(True for _ in lik.buffers()):
        return None
    return (type(lik), getattr(lik, "sigma", None), getattr(lik, "scale", None))


def shared_likelihood(likelihoods: Sequence[Likelihood]) -> Likelihood | None:
    """One likelihood that scores every member's slice the same way, if there is one."""
    first = _signature(likelihoods[0])
    if first is None or any(_signature(lik) != first for lik in likelihoods[1:]):
        return None
    return likelihoods[0]


def stacked_likelihood_terms(
    x: torch.Tensor,
    params: torch.Tensor,
    likelihoods: Sequence[Likelihood],
    shared: Likelihood | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(recon, nll, sse), each (K, B): every member's :meth:`Likelihood.terms` of its slice.

    x, params (K, B, C, H, W); ``shared`` from :func:`shared_likelihood` scores all at once.
    """
    k, b = x.shape[:2]
    if shared is not None:
        recon, nll, sse = shared.terms(params.flatten(0, 1), x.flatten(0, 1))
        return recon.view(k, b), nll.view(k, b), sse.view(k, b)
    parts = [lik.terms(params[i], x[i]) for i, lik in enumerate(likelihoods)]
    recon, nll, sse = (torch.stack(t) for t in zip(*parts))
    return recon, nll, sse


def stacked_loss_terms(
    x: torch.Tensor,
    params: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    likelihoods: Sequence[Likelihood],
    shared: Likelihood | None = None,
) -> StackedTerms:
    """x, params (K, B, C, H, W); mu, logvar (K, B, M); ``shared`` from :func:`shared_likelihood`."""
    recon, nll, sse = stacked_likelihood_terms(x, params, likelihoods, shared)
    return StackedTerms(recon=recon, nll=nll, kl_per_dim=gaussian_kl(mu, logvar), sse=sse)
