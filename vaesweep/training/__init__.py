"""Training: the optimisation loop, per-split metrics and latent-code estimators (no file I/O)."""
