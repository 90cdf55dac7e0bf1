"""Sweeps: planning (sweep.json), the run index (runs.csv), the lock, progress and resume.

``driver`` is the only module here that talks to Hydra (through :mod:`vaesweep.hydra_bridge`);
the others read and write the sweep directory and stay light for ``vaesweep ls``.
"""
