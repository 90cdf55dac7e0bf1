"""Schema of the ``eval`` config group (conf/eval/default.yaml): what each validation computes."""

from __future__ import annotations

from dataclasses import dataclass

from vaesweep.config.checks import finite_numbers, non_negative, one_of, positive, require

#: eval.disentanglement: ``published`` = disentanglement_lib's sample sizes (Locatello et al.
#: 2019), ``quick`` = a tenth of them, ``auto`` = published unless the factor grid has fewer
#: combinations than the 10,000 images they draw (data=shapes), ``off`` = none.
DISENTANGLEMENT_PRESETS = ("auto", "published", "quick", "off")
#: The most prior samples in samples.png (1,250 rows of 8), decoded and drawn in one piece:
#: ``eval.n_samples=1000000`` of 8 px digits (48 px cells) ran a 25 GB machine out of memory.
MAX_SAMPLES = 10_000


@dataclass
class EvalConfig:
    #: Validation images shown in reconstructions.png (the same images in every run).
    n_recon: int = 8
    #: Prior samples in samples.png (the same noise in every run).
    n_samples: int = 32
    #: Importance samples for the IWAE log-likelihood at the end of a run; 0 = skip.
    iwae_samples: int = 100
    #: Images used for the IWAE estimate (the first N of the split); None = all.
    iwae_images: int | None = 500
    #: Estimate I(x;z) and KL(q(z)||p(z)) each validation (cost grows with the square of
    #: ``mi_images``). The estimate can never exceed log N, so None = every image of the split.
    mutual_information: bool = True
    mi_images: int | None = None
    #: Reparameterisation draws averaged in each validation row (the same draws every epoch),
    #: so one unlucky draw cannot move the recorded ELBO.
    noise_draws: int = 4
    #: Expected gradients of recon and beta*KL w.r.t. the encoder outputs: this many batches
    #: of 64 images, each averaged over ``grad_draws`` reparameterisation draws.
    grad_batches: int = 1
    grad_draws: int = 32
    #: Split for the end-of-run evaluation and ``vaesweep eval``: val or test.
    split: str = "val"
    #: Disentanglement metrics at the end of a run on a dataset with known factors (dsprites,
    #: shapes): auto | published | quick | off (see :data:`DISENTANGLEMENT_PRESETS`).
    disentanglement: str = "auto"

    def __post_init__(self) -> None:
        finite_numbers(self, "eval")
        positive("eval.n_recon", self.n_recon)
        positive("eval.n_samples", self.n_samples)
        require(
            self.n_samples <= MAX_SAMPLES,
            "eval.n_samples",
            self.n_samples,
            f"samples.png shows at most {MAX_SAMPLES:,} prior samples, e.g. eval.n_samples=32",
        )
        non_negative("eval.iwae_samples", self.iwae_samples)
        positive("eval.iwae_images", self.iwae_images, allow_none=True)
        positive("eval.mi_images", self.mi_images, allow_none=True)
        positive("eval.noise_draws", self.noise_draws)
        non_negative("eval.grad_batches", self.grad_batches)
        positive("eval.grad_draws", self.grad_draws)
        one_of("eval.split", self.split, ("val", "test"))
        one_of("eval.disentanglement", self.disentanglement, DISENTANGLEMENT_PRESETS)
