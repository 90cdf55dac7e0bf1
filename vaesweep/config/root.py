"""The whole experiment: one typed object built from the composed Hydra config.

The YAML files under conf/ extend these schemas; :func:`vaesweep.bridge.compose.compose` returns
a validated :class:`Config`, and nothing below the bridge ever sees OmegaConf.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from vaesweep.config.checks import finite_numbers, require, weight
from vaesweep.config.data import GREY_LEVEL_DATA, DataConfig
from vaesweep.config.eval import EvalConfig
from vaesweep.config.loss import LossConfig
from vaesweep.config.tracker import TrackerConfig
from vaesweep.config.train import PUBLISHED_STEPS, TrainConfig, default_steps

#: OmegaConf's marker for "must be given" (the groups fill it); a plain string keeps this
#: module free of Hydra and OmegaConf imports.
MISSING: Any = "???"
#: Likelihoods whose reconstruction term is the squared error that GECO constrains (for a fixed
#: Gaussian up to the factor 1 / (2 sigma^2) and a constant).
GECO_LIKELIHOODS = ("mse", "gaussian")


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    #: One of the model schemas (ConvConfig, MLPConfig), chosen by the ``model`` group.
    model: Any = MISSING
    loss: LossConfig = field(default_factory=LossConfig)
    #: One of the KL-control schemas, chosen by the ``kl`` group.
    kl: Any = MISSING
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    #: Experiment trackers fed by the record; they never change what is trained.
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    #: Weight of the KL term per image: loss = recon + beta * KL (README, "What beta means").
    beta: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.train.steps is None:  # the length that fits the data (train.steps=null)
            self.train.steps = default_steps(self.data.name)
        finite_numbers(self, "")
        weight("beta", self.beta)
        require(self.seed >= 0, "seed", self.seed, "must be >= 0")
        # torch's and numpy's generators take a 64-bit seed.
        require(self.seed < 2**63, "seed", self.seed, "must be below 2**63")
        if getattr(self.kl, "method", None) == "geco":
            # GECO's constraint is the per-pixel squared error and its objective has no other
            # reconstruction term: any other likelihood would never enter training.
            require(
                self.loss.likelihood in GECO_LIKELIHOODS,
                "loss.likelihood",
                self.loss.likelihood,
                "kl=geco constrains the squared error, so it needs "
                + " or ".join(GECO_LIKELIHOODS)
                + " (or pick another kl method)",
            )

    def warnings(self) -> list[str]:
        """Settings that are valid but easy to misread; commands print these before training."""
        out = []
        if self.data.binarize != "none" and self.loss.likelihood not in ("bernoulli", "dlogistic"):
            out.append(
                f"loss.likelihood={self.loss.likelihood} is a density on [0, 1], but "
                f"data.binarize={self.data.binarize} makes the pixels binary: its ELBO is no "
                "probability of the data (bits/dim are dequantised over two levels, +1 bit); "
                "loss.likelihood=bernoulli models binary pixels"
            )
        if (
            self.loss.likelihood == "bernoulli"
            and self.data.binarize == "none"
            and self.data.name in GREY_LEVEL_DATA
        ):
            out.append(
                f"loss.likelihood=bernoulli on data={self.data.name}'s grey levels: binary "
                "cross-entropy against grey targets is no probability of the data, so its ELBO "
                "and bits/dim compare with no other likelihood's; data.binarize=dynamic (or "
                "static) makes the pixels binary, and loss.likelihood=cbernoulli is the "
                "normalised density for grey levels"
            )
        published = PUBLISHED_STEPS.get(self.data.name)
        if self.train.epochs is None and self.train.steps == published:
            out.append(
                f"data={self.data.name} trains for the published {published:,} steps by default "
                "(Locatello et al. 2019), about a day of CPU at 64 px; on a CPU set a shorter "
                "length, e.g. train.epochs=3 data.image_size=32 data.limit=50000"
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_yaml(self) -> str:
        """The resolved config as YAML, in schema order (written into every run directory)."""
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def hash(self) -> str:
        """A short digest of every setting, for telling runs apart in summaries.

        The trackers are left out: watching a run does not make it a different experiment.
        """
        settings = {k: v for k, v in self.to_dict().items() if k != "tracker"}
        blob = json.dumps(settings, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]
