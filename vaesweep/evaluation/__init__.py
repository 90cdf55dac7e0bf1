"""Evaluation: every number computed about a trained (or training) model, in one place.

* :mod:`.metrics` — the per-split metrics row of an epoch (ELBO, KL, MSE, active units, ...)
  and the IWAE estimate with bits per dimension;
* :mod:`.estimators` — what the latent code carries: active units, I(x;z), the IWAE bound,
  gradient norms;
* :mod:`.final` — what a finished run adds: image grids (reconstructions, samples,
  traversals) and the IWAE bound on its evaluation split.

Plain tensors and models in, numbers and tensors out: no files (the run writes them) and no
Hydra. ``vaesweep eval`` itself is :mod:`vaesweep.commands.evaluate`.
"""
