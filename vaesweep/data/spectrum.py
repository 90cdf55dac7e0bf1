"""The PCA spectrum of the training images: the linear-Gaussian reference of the report.

For a linear VAE with decoder variance sigma^2 = beta_sum / 2, the optimum encodes principal
component i iff its eigenvalue lambda_i > sigma^2, with rate sum 1/2 ln(lambda_i / sigma^2) and
distortion sum min(lambda_i, sigma^2) over the top M components plus the variance beyond them
(Lucas et al. 2019; Tipping & Bishop 1999; reverse water-filling, Cover & Thomas ch. 10).
Eigenvalues are of the covariance of x in [0, 1] pixel units, i.e. per-image SSE units.
"""

from __future__ import annotations

from typing import Any

import torch

#: Images used for the estimate; the covariance of more images changes the spectrum little.
MAX_IMAGES = 5000
#: Eigenvalues kept (the top ones); the tail enters through the total variance.
MAX_EIGENVALUES = 256
#: Up to this many pixels the covariance is diagonalised exactly; beyond, a randomised SVD.
EXACT_LIMIT = 4096


def pca_spectrum(images: torch.Tensor, seed: int = 0) -> dict[str, Any]:
    """Top eigenvalues and total variance of uint8 images (N, C, H, W) scaled to [0, 1]."""
    n = len(images)
    if n > MAX_IMAGES:
        idx = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:MAX_IMAGES]
        images = images[idx]
    x = images.flatten(1).to(torch.float64).div_(255.0)
    x = x - x.mean(0, keepdim=True)
    m, d = x.shape
    total = float(x.pow(2).sum() / max(m - 1, 1))
    k = min(d, MAX_EIGENVALUES, max(m - 1, 1))
    if d <= EXACT_LIMIT:
        cov = x.T @ x / max(m - 1, 1)
        eig = torch.linalg.eigvalsh(cov).flip(0)[:k]
    else:
        # svd_lowrank draws from the global RNG: seed it inside a fork, so that the run's
        # own seeding (model initialisation, which follows) is left as it was.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            _, s, _ = torch.svd_lowrank(x.float(), q=min(k + 10, min(m, d)), niter=3)
        s = s.double()
        eig = (s.pow(2) / max(m - 1, 1))[:k]
    return {
        "eigenvalues": [max(float(v), 0.0) for v in eig],
        "total_variance": total,
        "n_images": int(m),
    }
