"""Training: the optimisation loop, the optimiser, device and thread set-up (no file I/O)."""
