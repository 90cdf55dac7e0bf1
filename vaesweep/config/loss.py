"""Schema of the ``loss`` config group (conf/loss/default.yaml); consumed by :mod:`vaesweep.objective`.

The accounting is fixed (README, "What beta means"): the reconstruction term is summed over
pixels, the KL over latent dimensions, both averaged over the batch, so one image costs
``recon + beta * KL``. ``recon_reduction=mean`` divides the reconstruction term by the pixel
count D instead, as ``F.mse_loss`` does by default; the run record then reports the canonical
beta it amounts to (``beta_sum = beta * D``).
"""

from __future__ import annotations

from dataclasses import dataclass

from vaesweep.config.checks import finite_numbers, one_of, positive, require

#: The smallest ``loss.sigma``: a fixed Gaussian scores an image SSE / (2 sigma^2), which must
#: stay within float32 for the largest images (3 x 1024 x 1024 pixels, each error <= 1):
#: ``loss.sigma=1e-30`` made the first loss ``inf``. 8-bit rounding alone is 0.0011 RMS.
MIN_SIGMA = 1e-15

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
    #: sigma-VAE (Rybkin et al. 2021) learns one log sigma from 0 (sigma = 1, this
    #: ``loss.sigma``) with the model's Adam step, over tens of thousands of steps. Adam moves a
    #: parameter by at most about lr per step, so reaching sqrt(MSE) ~ 0.16 on digits
    #: (ln 0.16 = -1.8) takes at least 1,800 steps at lr 1e-3: more than the default 1,300.
    #: Measured on digits (default training, 50 epochs): at 1 sigma ended at 0.30 against
    #: val sqrt(MSE) 0.16 (an effective beta 2 sigma^2 = 0.18: KL 5.7 nats, val ELBO 3.5); at
    #: 10 sigma met sqrt(MSE) by epoch 10 and followed the training MSE to 0.078 (val sqrt(MSE)
    #: 0.088, KL 22.8 nats, val ELBO 40.7; README, "Beyond a constant beta").
    sigma_lr_scale: float = 10.0

    def __post_init__(self) -> None:
        finite_numbers(self, "loss")
        one_of("loss.likelihood", self.likelihood, LIKELIHOODS)
        positive("loss.sigma", self.sigma)
        require(
            self.sigma >= MIN_SIGMA,
            "loss.sigma",
            self.sigma,
            f"must be at least {MIN_SIGMA:g} (pixels lie in [0, 1]; a smaller scale makes "
            "each image's error over sigma overflow float32), e.g. loss.sigma=0.1",
        )
        one_of("loss.recon_reduction", self.recon_reduction, ("sum", "mean"))
        positive("loss.sigma_lr_scale", self.sigma_lr_scale)
