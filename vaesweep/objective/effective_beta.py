"""What a run's KL weight amounts to in the canonical convention (science notes, section 2.2).

For a per-step loss ``a * sum_pixels(l_rec) + beta_user * b * sum_latents(KL)``:

* ``beta_sum = beta_user * b / a``: the weight when both terms are per-image sums. vaesweep
  averages both over the batch (a = b = 1 per image), so ``beta_sum = beta_t`` with
  ``recon_reduction=sum`` and ``beta_t * D`` with ``mean``.
* ``sigma2_eff``: the Gaussian decoder variance that makes the objective a true ELBO
  (beta_sum / 2 for squared error; Rybkin et al. 2021, Lucas et al. 2019).
* ``beta_norm = beta_sum * M / D``: Higgins et al.'s normalised beta (2017).
* ``beta_calib = sigma2_eff / mse``: the weight relative to the maximum-likelihood noise level
  of a model whose per-pixel MSE is ``mse``; >> 1 means over-regularised (blur, collapse).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class EffectiveBeta:
    beta_sum: float
    beta_norm: float
    sigma2_eff: float
    beta_calib: float


def recon_scale(reduction: str, n_pixels: int) -> float:
    """Factor on the summed reconstruction term: 1 for ``sum``, 1/D for ``mean``."""
    return 1.0 / n_pixels if reduction == "mean" else 1.0


def effective_beta(
    beta_t: float,
    scale: float,
    n_pixels: int,
    latent_dim: int,
    sigma2_eff: Callable[[float], float],
    mse: float,
) -> EffectiveBeta:
    """``scale`` from :func:`recon_scale`; ``sigma2_eff`` maps beta_sum to the implied variance
    (``Likelihood.sigma2_eff``); ``mse`` is the per-pixel MSE on held-out data."""
    beta_sum = beta_t / scale
    beta_norm = beta_sum * latent_dim / n_pixels
    s2 = sigma2_eff(beta_sum)
    beta_calib = s2 / mse if mse > 0 and math.isfinite(s2) else math.nan
    return EffectiveBeta(beta_sum, beta_norm, s2, beta_calib)
