"""The SAP score (Kumar, Sattigeri & Balakrishnan 2018, *Variational Inference of Disentangled
Latent Concepts from Unlabeled Observations*, ICLR 2018, Sec. 3).

For each latent j and factor k, a score S_jk of how well latent j alone predicts factor k; SAP is
the mean over factors of the gap between the best and second-best latent. For discrete factors
(disentanglement_lib's setting for the study of Locatello et al. 2019, followed here), S_jk is the
test accuracy of a linear SVM (C = 0.01, balanced classes) trained on the one latent. With one
input a linear classifier separates few classes, so even a perfect code scores well below 1 on
factors with many values; compare SAP between runs, not with 1.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.svm import LinearSVC


def score_matrix(
    codes: np.ndarray, factors: np.ndarray, codes_test: np.ndarray, factors_test: np.ndarray
) -> np.ndarray:
    """(D, K) test accuracy of predicting each factor from each single latent."""
    d, k = codes.shape[1], factors.shape[1]
    out = np.zeros((d, k))
    for j in range(d):
        for f in range(k):
            if len(np.unique(factors[:, f])) < 2:
                continue  # nothing to predict
            clf = LinearSVC(C=0.01, class_weight="balanced")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                clf.fit(codes[:, j : j + 1], factors[:, f])
            out[j, f] = np.mean(clf.predict(codes_test[:, j : j + 1]) == factors_test[:, f])
    return out


def sap(
    codes: np.ndarray, factors: np.ndarray, codes_test: np.ndarray, factors_test: np.ndarray
) -> dict:
    matrix = score_matrix(codes, factors, codes_test, factors_test)
    ordered = np.sort(matrix, axis=0)[::-1]
    second = ordered[1] if len(ordered) > 1 else np.zeros(matrix.shape[1])
    gap = ordered[0] - second
    return {"score": float(np.mean(gap)), "per_factor": gap.tolist(), "matrix": matrix.tolist()}
