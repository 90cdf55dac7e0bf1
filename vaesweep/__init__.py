"""vaesweep: train VAEs across a grid of KL weights (beta) and report what beta does.

The package is split so that importing it is cheap: torch, Hydra, pandas and matplotlib are
imported only by the modules that use them, never at package import.
"""

__version__ = "0.2.0"
