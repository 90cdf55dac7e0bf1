"""How many samples each disentanglement metric draws: the published defaults and a quick set.

``PUBLISHED`` are disentanglement_lib's settings for the study of Locatello et al. (2019), so
scores compare with theirs: BetaVAE and FactorVAE scores on 10,000 training and 5,000 evaluation
votes of 64-image batches, FactorVAE's variances on 10,000 images and dims with std < 0.05
pruned, MIG on 10,000 images with 20-bin histograms, SAP and DCI on 10,000 training and 5,000
test images. ``QUICK`` draws a tenth of that for tests and quick looks; its scores are noisier
and, for the classifier-based metrics, slightly lower.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class MetricSettings:
    #: Votes / images the classifiers are trained on (BetaVAE, FactorVAE, MIG, SAP, DCI).
    num_train: int = 10_000
    #: Votes / images they are scored on.
    num_test: int = 5_000
    #: Images per vote (BetaVAE: pairs per z_diff; FactorVAE: images with one factor fixed).
    batch_size: int = 64
    #: Images for FactorVAE's global variance of each latent.
    num_variance: int = 10_000
    #: FactorVAE ignores latents whose std over the data is below this (collapsed to the prior).
    prune_std: float = 0.05
    #: Histogram bins per latent for the discrete mutual information of MIG.
    bins: int = 20
    #: Seed of every draw: the same runs get the same factor samples.
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("num_train", "num_test", "batch_size", "num_variance", "bins"):
            if getattr(self, name) < 2:
                raise ValueError(f"{name} must be at least 2, got {getattr(self, name)}")

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


PUBLISHED = MetricSettings()
QUICK = MetricSettings(num_train=1_000, num_test=500, num_variance=1_000)
PRESETS = {"published": PUBLISHED, "quick": QUICK}


def resolve(preset: str, combinations: int) -> tuple[str, MetricSettings] | None:
    """The settings ``eval.disentanglement=preset`` means for a grid of ``combinations``.

    ``auto`` is ``published`` unless the grid has fewer combinations than the published sample
    (10,000 images): drawing 10,000 from 1,296 (data=shapes) repeats images and only slows the
    classifiers. ``off`` gives None.
    """
    if preset == "off":
        return None
    if preset == "auto":
        preset = "published" if combinations >= PUBLISHED.num_train else "quick"
    return preset, PRESETS[preset]
