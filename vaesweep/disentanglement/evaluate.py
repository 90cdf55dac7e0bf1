"""All disentanglement metrics of one representation, as the dict that becomes disentanglement.json.

``evaluate(source, represent, settings)`` draws the factor samples (fixed seeds), encodes each
distinct combination once, and runs MIG, SAP and DCI on one shared sample of uniform factor
combinations (``num_train`` to fit, ``num_test`` to score), and the BetaVAE and FactorVAE scores
on their own fixed-factor batches where the grid is complete. Every metric is computed on the
means of q(z|x), as in Locatello et al. (2019).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import numpy as np

from vaesweep.disentanglement.dci import dci
from vaesweep.disentanglement.information import mig
from vaesweep.disentanglement.sampling import (
    CachedRepresentation,
    FactorSource,
    Representation,
    sample_codes,
)
from vaesweep.disentanglement.sap import sap
from vaesweep.disentanglement.settings import PUBLISHED, MetricSettings
from vaesweep.disentanglement.votes import beta_vae_score, factor_vae_score

METRICS = ("beta_vae", "factor_vae", "mig", "sap", "dci")
#: The headline number of each metric, as it appears in summary.json and the report.
HEADLINE = {
    "beta_vae": ("beta_vae", "score"),
    "factor_vae": ("factor_vae", "score"),
    "mig": ("mig", "score"),
    "sap": ("sap", "score"),
    "dci_disentanglement": ("dci", "disentanglement"),
    "dci_completeness": ("dci", "completeness"),
    "dci_informativeness": ("dci", "informativeness_test"),
}
NEEDS_COMPLETE_GRID = ("beta_vae", "factor_vae")


def headline(result: dict) -> dict[str, float | None]:
    """The scalar scores of an :func:`evaluate` result, keyed as in summary.json."""
    out: dict[str, float | None] = {}
    for key, (metric, field) in HEADLINE.items():
        value = result["metrics"].get(metric, {}).get(field)
        out[key] = None if value is None or not np.isfinite(value) else float(value)
    return out


def evaluate(
    source: FactorSource,
    represent: Representation,
    settings: MetricSettings = PUBLISHED,
    metrics: Iterable[str] = METRICS,
    log: Callable[[str], None] | None = None,
    cache: bool = True,
) -> dict:
    """Every requested metric of ``represent`` on ``source``: scores, settings and details.

    ``cache=False`` calls ``represent`` for every draw (for representations that are not a
    function of the factors, such as noise in tests); a trained encoder's means are one.
    """
    wanted = [m for m in METRICS if m in set(metrics)]
    cached = CachedRepresentation(source, represent)
    encode = cached if cache else represent
    s = settings
    results: dict[str, dict] = {}
    seconds: dict[str, float] = {}
    skipped: dict[str, str] = {}

    def timed(name: str, fn: Callable[..., dict], *args: object, **kwargs: object) -> None:
        start = time.perf_counter()
        results[name] = fn(*args, **kwargs)
        seconds[name] = round(time.perf_counter() - start, 3)
        if log:
            log(f"{name}: {seconds[name]:.1f} s")

    shared = {"mig", "sap", "dci"} & set(wanted)
    if shared:
        rng = np.random.default_rng(s.seed)
        start = time.perf_counter()
        f_train, z_train = sample_codes(source, encode, s.num_train, rng)
        f_test, z_test = sample_codes(source, encode, s.num_test, rng)
        seconds["sample"] = round(time.perf_counter() - start, 3)
        if "mig" in wanted:
            timed("mig", mig, z_train, f_train, s.bins)
        if "sap" in wanted:
            timed("sap", sap, z_train, f_train, z_test, f_test)
        if "dci" in wanted:
            timed("dci", dci, z_train, f_train, z_test, f_test, seed=s.seed)
    for name in NEEDS_COMPLETE_GRID:
        if name not in wanted:
            continue
        if not source.complete:
            skipped[name] = "needs images for chosen factors: the factor grid is incomplete"
            continue
        # Each metric its own stream, so adding or skipping one never changes another's draws.
        rng = np.random.default_rng([s.seed, METRICS.index(name)])
        common = (source, encode, s.num_train, s.num_test, s.batch_size)
        if name == "beta_vae":
            timed(name, beta_vae_score, *common, rng, seed=s.seed)
        else:
            timed(name, factor_vae_score, *common, s.num_variance, s.prune_std, rng)
    result = {
        "factors": list(source.names),
        "factor_sizes": list(source.sizes),
        "settings": s.as_dict(),
        "metrics": results,
        "skipped": skipped,
        "seconds": seconds,
        "encoded_combinations": cached.encoded,
    }
    result["scores"] = headline(result)
    return result
