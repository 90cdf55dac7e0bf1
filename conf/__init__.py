"""vaesweep's default configs, shipped in the wheel as the data package ``vaesweep.conf``."""
