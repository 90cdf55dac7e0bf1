"""One run: the run assembly (:mod:`.assembly`) and training it into a run record (:mod:`.job`).

Below the Hydra bridge and above the core: it receives a typed config and never imports
Hydra, the commands or sweep code.
"""

from vaesweep.run.job import run_job

__all__ = ["run_job"]
