"""Schema of the ``eval`` config group (conf/eval/default.yaml): what each validation computes."""

from __future__ import annotations

from dataclasses import dataclass

from vaesweep.config.checks import finite_numbers, non_negative, one_of, positive


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
    #: ``mi_images``).
    mutual_information: bool = True
    mi_images: int = 1000
    #: Gradient norms of recon and beta*KL w.r.t. the encoder outputs, on this many batches.
    grad_batches: int = 2
    #: Split for the end-of-run evaluation and ``vaesweep eval``: val or test.
    split: str = "val"

    def __post_init__(self) -> None:
        finite_numbers(self, "eval")
        positive("eval.n_recon", self.n_recon)
        positive("eval.n_samples", self.n_samples)
        non_negative("eval.iwae_samples", self.iwae_samples)
        positive("eval.iwae_images", self.iwae_images, allow_none=True)
        positive("eval.mi_images", self.mi_images)
        non_negative("eval.grad_batches", self.grad_batches)
        one_of("eval.split", self.split, ("val", "test"))
