"""Schema of the ``loss`` config group (conf/loss/default.yaml); consumed by :mod:`vaesweep.objective`.

The accounting is fixed (README, "What beta means"): the reconstruction term is summed over
pixels, the KL over latent dimensions, both averaged over the batch, so one image costs
``recon + beta * KL``. ``recon_reduction=mean`` divides the reconstruction term by the pixel
count D instead, as ``F.mse_loss`` does by default; the run record then reports the canonical
beta it amounts to (``beta_sum = beta * D``).
"""

from __future__ import annotations

from dataclasses import dataclass

from vaesweep.config.checks import finite_numbers, one_of, positive

LIKELIHOODS = (
    "mse",
    "gaussian",
    "gaussian_learned",
    "gaussian_optimal",
    "bernoulli",
    "cbernoulli",
    "laplace",
    "dlogistic",
)


@dataclass
class LossConfig:
    #: ``mse``: squared error (exactly ||x - x_hat||^2 + beta * KL); ``gaussian``: N(x_hat, sigma^2);
    #: ``gaussian_learned``: one learned sigma; ``gaussian_optimal``: sigma^2 = batch MSE
    #: (sigma-VAE); ``bernoulli``; ``cbernoulli`` (continuous Bernoulli); ``laplace`` (scale
    #: sigma); ``dlogistic`` (discretised logistic for 8-bit pixels, learned scale).
    likelihood: str = "mse"
    #: Standard deviation of the fixed Gaussian (data units, pixels in [0, 1]); Laplace scale.
    sigma: float = 1.0
    #: ``sum`` (canonical) or ``mean`` (reconstruction averaged over the D pixels).
    recon_reduction: str = "sum"
    #: ``gaussian_learned`` only: log sigma's learning rate as a multiple of ``train.lr``.
    sigma_lr_scale: float = 1.0

    def __post_init__(self) -> None:
        finite_numbers(self, "loss")
        one_of("loss.likelihood", self.likelihood, LIKELIHOODS)
        positive("loss.sigma", self.sigma)
        one_of("loss.recon_reduction", self.recon_reduction, ("sum", "mean"))
        positive("loss.sigma_lr_scale", self.sigma_lr_scale)
