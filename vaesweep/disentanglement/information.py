"""Mutual information between latents and factors, and the MIG (Chen et al. 2018).

MIG = (1/K) Σ_k [I(z_j(k); v_k) − max_{j≠j(k)} I(z_j; v_k)] / H(v_k), with j(k) = argmax_j
I(z_j; v_k). Chen, Li, Grosse & Duvenaud, *Isolating Sources of Disentanglement in VAEs*, NeurIPS
2018. As in disentanglement_lib (Locatello et al. 2019), each latent mean is discretised into a
histogram of equal-width bins (20 by default) over the sample and the information is the plug-in
discrete mutual information, in nats. A factor with more values than bins loses some information
in the discretisation, so even a perfect code scores below 1 on it (dSprites' 32 positions: 0.84).
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import mutual_info_score


def histogram_discretize(codes: np.ndarray, bins: int) -> np.ndarray:
    """codes (n, D) -> bin indices (n, D): each column cut into ``bins`` equal-width bins."""
    out = np.zeros(codes.shape, dtype=np.int64)
    for j in range(codes.shape[1]):
        edges = np.histogram(codes[:, j], bins)[1]
        out[:, j] = np.digitize(codes[:, j], edges[:-1])
    return out


def mutual_information(discrete_codes: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """Plug-in I(z_j; v_k) in nats, (D, K), from discrete codes (n, D) and factors (n, K)."""
    d, k = discrete_codes.shape[1], factors.shape[1]
    return np.array(
        [
            [mutual_info_score(factors[:, b], discrete_codes[:, a]) for b in range(k)]
            for a in range(d)
        ]
    ).reshape(d, k)


def factor_entropy(factors: np.ndarray) -> np.ndarray:
    """Plug-in entropy H(v_k) in nats, (K,)."""
    return np.array([mutual_info_score(f, f) for f in factors.T])


def mig(codes: np.ndarray, factors: np.ndarray, bins: int) -> dict:
    """The MIG of codes (n, D) for factors (n, K), with its latent-factor information matrix.

    Factors that take one value in the sample (H = 0) carry no information and are left out.
    """
    mi = mutual_information(histogram_discretize(codes, bins), factors)
    entropy = factor_entropy(factors)
    ordered = np.sort(mi, axis=0)[::-1]
    second = ordered[1] if len(ordered) > 1 else np.zeros(mi.shape[1])
    informative = entropy > 0
    gap = np.full(mi.shape[1], np.nan)
    gap[informative] = (ordered[0] - second)[informative] / entropy[informative]
    return {
        "score": float(np.nanmean(gap)) if informative.any() else float("nan"),
        "per_factor": gap.tolist(),
        "mutual_information": mi.tolist(),
        "normalised_mutual_information": (mi / np.where(entropy > 0, entropy, np.nan)).tolist(),
        "factor_entropy": entropy.tolist(),
        "top_latent": np.argmax(mi, axis=0).tolist(),
    }
