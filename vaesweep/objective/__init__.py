"""Loss terms, likelihoods and the effective-beta bookkeeping (pure functions of tensors)."""

from vaesweep.objective.effective_beta import EffectiveBeta, effective_beta, recon_scale
from vaesweep.objective.likelihood_base import Likelihood
from vaesweep.objective.likelihoods import build_likelihood
from vaesweep.objective.terms import LossTerms, gaussian_kl, loss_terms

__all__ = [
    "EffectiveBeta",
    "Likelihood",
    "LossTerms",
    "build_likelihood",
    "effective_beta",
    "gaussian_kl",
    "loss_terms",
    "recon_scale",
]
