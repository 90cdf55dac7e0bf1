"""The PCA spectrum of the training images: the linear-Gaussian reference of the report.

For a linear VAE with decoder variance sigma^2 = beta_sum / 2, the optimum encodes principal
component i iff its eigenvalue lambda_i > sigma^2, with rate sum 1/2 ln(lambda_i / sigma^2) and
distortion sum min(lambda_i, sigma^2) over the top M components plus the variance beyond them
(Lucas et al. 2019; Tipping & Bishop 1999; reverse water-filling, Cover & Thomas ch. 10).
Eigenvalues are of the covariance of x in [0, 1] pixel units, i.e. per-image SSE units.

With ``data.binarize=dynamic`` the model sees (and is scored against) a fresh draw
x ~ Bernoulli(p) of each grey image p, whose covariance is Cov(p) + diag E[p (1 - p)]: the
Bernoulli noise adds ``E sum_i p_i (1 - p_i)`` of irreducible squared error per image, which the
spectrum of the grey images would leave out (the reference would then be unreachable).
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


def pca_spectrum(images: torch.Tensor, seed: int = 0, binarize: str = "none") -> dict[str, Any]:
    """Top eigenvalues and total variance of uint8 images (N, C, H, W) scaled to [0, 1].

    ``binarize="dynamic"``: of the binary draws the model is trained and scored on,
    Cov(p) + diag E[p(1 - p)]; ``bernoulli_noise`` is then E sum_i p_i (1 - p_i) per image
    (0 otherwise). Static binarisation has already thresholded ``images``.
    """
    n = len(images)
    if n > MAX_IMAGES:
        idx = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:MAX_IMAGES]
        images = images[idx]
    x = images.flatten(1).to(torch.float64).div_(255.0)
    noise_diag = (x * (1 - x)).mean(0) if binarize == "dynamic" else torch.zeros(x.shape[1])
    noise_diag = noise_diag.to(torch.float64)
    x = x - x.mean(0, keepdim=True)
    m, d = x.shape
    total = float(x.pow(2).sum() / max(m - 1, 1) + noise_diag.sum())
    k = min(d, MAX_EIGENVALUES, max(m - 1, 1) if binarize != "dynamic" else d)
    if d <= EXACT_LIMIT:
        cov = x.T @ x / max(m - 1, 1) + torch.diag(noise_diag)
        eig = torch.linalg.eigvalsh(cov).flip(0)[:k]
    elif binarize == "dynamic":
        # Too many pixels for the exact covariance: the spectrum of two Bernoulli draws of
        # every image, whose covariance estimates Cov(p) + diag E[p(1 - p)].
        gen = torch.Generator().manual_seed(seed)
        p = (x + images.flatten(1).to(torch.float64).div(255.0).mean(0)).clamp(0, 1)
        xb = torch.cat([torch.bernoulli(p, generator=gen) for _ in range(2)])
        xb = xb - xb.mean(0, keepdim=True)
        torch.manual_seed(seed)
        _, s, _ = torch.svd_lowrank(xb.float(), q=min(k + 10, min(len(xb), d)), niter=3)
        eig = (s.double().pow(2) / max(len(xb) - 1, 1))[:k]
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
        "binarize": binarize,
        "bernoulli_noise": float(noise_diag.sum()),
    }
