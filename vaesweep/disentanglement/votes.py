"""The two scores that fix one factor and vary the others: BetaVAE and FactorVAE.

BetaVAE score (Higgins et al. 2017, *β-VAE: Learning Basic Visual Concepts with a Constrained
Variational Framework*, ICLR 2017): pick a factor k, draw L pairs of images that share factor k
(everything else random), and average |z₁ − z₂| over the pairs; a linear classifier (logistic
regression) learns k from that mean difference. The score is its accuracy on fresh votes. It
saturates: it reaches 100% once K − 1 factors are each in their own latents.

FactorVAE score (Kim & Mnih 2018, *Disentangling by Factorising*, ICML 2018): pick a factor k,
draw L images sharing it, divide each latent's variance over the batch by its variance over the
data, and vote (argmin latent, k); latents with std below 0.05 are pruned first. A majority-vote
classifier latent -> factor is fit on training votes; the score is its accuracy on fresh votes.

Both render images for chosen factors, so they need a complete factor grid. Settings follow
disentanglement_lib (Locatello et al. 2019); votes are drawn in chunks to bound memory.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from vaesweep.disentanglement.sampling import FactorSource, Representation, fixed_factor_batches

_CHUNK = 500  # votes drawn (and encoded) at once


def _codes(represent: Representation, factors: np.ndarray) -> np.ndarray:
    n, batch, k = factors.shape
    return np.asarray(represent(factors.reshape(-1, k)), dtype=np.float64).reshape(n, batch, -1)


def beta_vae_features(
    source: FactorSource, represent: Representation, n: int, batch: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """n mean absolute code differences (n, D) and the shared factor of each (n,)."""
    features, labels = [], []
    for start in range(0, n, _CHUNK):
        m = min(_CHUNK, n - start)
        first, k = fixed_factor_batches(source, m, batch, rng)
        second = source.sample_factors(m * batch, rng).reshape(m, batch, -1)
        rows = np.arange(m)
        second[rows, :, k] = first[rows, :, k]
        diff = np.abs(_codes(represent, first) - _codes(represent, second)).mean(axis=1)
        features.append(diff)
        labels.append(k)
    return np.concatenate(features), np.concatenate(labels)


def beta_vae_score(
    source: FactorSource,
    represent: Representation,
    num_train: int,
    num_test: int,
    batch: int,
    rng: np.random.Generator,
    seed: int = 0,
) -> dict:
    x_train, y_train = beta_vae_features(source, represent, num_train, batch, rng)
    x_test, y_test = beta_vae_features(source, represent, num_test, batch, rng)
    model = LogisticRegression(max_iter=1000, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x_train, y_train)
    return {
        "score": float(model.score(x_test, y_test)),
        "train_accuracy": float(model.score(x_train, y_train)),
    }


def factor_vae_votes(
    source: FactorSource,
    represent: Representation,
    n: int,
    batch: int,
    scale: np.ndarray,
    active: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Vote counts (K, D): how often latent d had the least normalised variance for factor k."""
    votes = np.zeros((len(source.sizes), len(scale)), dtype=np.int64)
    candidates = np.flatnonzero(active)
    for start in range(0, n, _CHUNK):
        m = min(_CHUNK, n - start)
        factors, k = fixed_factor_batches(source, m, batch, rng)
        local = _codes(represent, factors).var(axis=1, ddof=1)  # (m, D)
        ratio = local[:, candidates] / scale[candidates]
        np.add.at(votes, (k, candidates[np.argmin(ratio, axis=1)]), 1)
    return votes


def factor_vae_score(
    source: FactorSource,
    represent: Representation,
    num_train: int,
    num_test: int,
    batch: int,
    num_variance: int,
    prune_std: float,
    rng: np.random.Generator,
) -> dict:
    codes = np.asarray(represent(source.sample_factors(num_variance, rng)), dtype=np.float64)
    variance = codes.var(axis=0, ddof=1)
    active = np.sqrt(variance) >= prune_std
    if not active.any():
        return {"score": 0.0, "train_accuracy": 0.0, "active_latents": 0, "votes": []}
    train = factor_vae_votes(source, represent, num_train, batch, variance, active, rng)
    test = factor_vae_votes(source, represent, num_test, batch, variance, active, rng)
    # The majority-vote classifier: each latent predicts the factor it was most often voted for.
    predicted = np.argmax(train, axis=0)
    columns = np.arange(train.shape[1])
    return {
        "score": float(test[predicted, columns].sum() / test.sum()),
        "train_accuracy": float(train[predicted, columns].sum() / train.sum()),
        "active_latents": int(active.sum()),
        "votes": test.tolist(),
    }
