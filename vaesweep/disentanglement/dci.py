"""DCI: disentanglement, completeness and informativeness (Eastwood & Williams 2018, *A Framework
for the Quantitative Evaluation of Disentangled Representations*, ICLR 2018).

A predictor of each factor from all latents gives an importance R_jk of latent j for factor k.
Disentanglement: D = Σ_j ρ_j (1 − H_K(P_j·)), with P_jk = R_jk / Σ_k R_jk, H_K the entropy in
base K and ρ_j = Σ_k R_jk / Σ R the latent's share of importance. Completeness: C = Σ_k ρ_k
(1 − H_D(P̃_·k)), with P̃_jk = R_jk / Σ_j R_jk. Informativeness: the predictor's test accuracy.
As in disentanglement_lib (Locatello et al. 2019), the predictor is scikit-learn's gradient-boosted
trees classifier with its defaults, and R is its impurity-based feature importance.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
from sklearn.ensemble import GradientBoostingClassifier

from vaesweep.cpus import usable_cpus

_TINY = 1e-11  # added before taking entropies, so an all-zero row is uniform, as in the paper


def entropy_along(p: np.ndarray, axis: int, base: int) -> np.ndarray:
    """Entropy in base ``base`` of the non-negative weights in ``p`` along ``axis``."""
    p = p + _TINY
    p = p / p.sum(axis=axis, keepdims=True)
    return -(p * np.log(p)).sum(axis=axis) / np.log(base)


def importance_matrix(
    codes: np.ndarray,
    factors: np.ndarray,
    codes_test: np.ndarray,
    factors_test: np.ndarray,
    seed: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Importance (D, K) and the train / test accuracy (K,) of one GBT classifier per factor."""
    d, k = codes.shape[1], factors.shape[1]
    importance = np.zeros((d, k))
    train_acc, test_acc = np.ones(k), np.ones(k)

    def fit(f: int) -> None:
        if len(np.unique(factors[:, f])) < 2:
            return  # a constant factor is predicted perfectly by nothing in particular
        model = GradientBoostingClassifier(random_state=seed)
        model.fit(codes, factors[:, f])
        importance[:, f] = np.abs(model.feature_importances_)
        train_acc[f] = np.mean(model.predict(codes) == factors[:, f])
        test_acc[f] = np.mean(model.predict(codes_test) == factors_test[:, f])

    # One classifier per factor, each its own seeded fit: in parallel threads (scikit-learn
    # builds trees without the GIL), with the same results as one after another.
    with ThreadPoolExecutor(max(1, min(k, usable_cpus()))) as pool:
        list(pool.map(fit, range(k)))
    return importance, train_acc, test_acc


def disentanglement(importance: np.ndarray) -> tuple[float, np.ndarray]:
    per_code = 1.0 - entropy_along(importance, axis=1, base=max(importance.shape[1], 2))
    total = importance.sum()
    weight = (
        importance.sum(axis=1) / total
        if total > 0
        else np.full(len(importance), 1 / len(importance))
    )
    return float(np.sum(per_code * weight)), per_code


def completeness(importance: np.ndarray) -> tuple[float, np.ndarray]:
    per_factor = 1.0 - entropy_along(importance, axis=0, base=max(importance.shape[0], 2))
    total = importance.sum()
    k = importance.shape[1]
    weight = importance.sum(axis=0) / total if total > 0 else np.full(k, 1 / k)
    return float(np.sum(per_factor * weight)), per_factor


def dci(
    codes: np.ndarray,
    factors: np.ndarray,
    codes_test: np.ndarray,
    factors_test: np.ndarray,
    seed: int = 0,
) -> dict:
    importance, train_acc, test_acc = importance_matrix(
        codes, factors, codes_test, factors_test, seed
    )
    d_score, per_code = disentanglement(importance)
    c_score, per_factor = completeness(importance)
    return {
        "disentanglement": d_score,
        "completeness": c_score,
        "informativeness_train": float(np.mean(train_acc)),
        "informativeness_test": float(np.mean(test_acc)),
        "disentanglement_per_latent": per_code.tolist(),
        "completeness_per_factor": per_factor.tolist(),
        "informativeness_per_factor": test_acc.tolist(),
        "importance": importance.tolist(),
    }
