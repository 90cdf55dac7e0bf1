"""The record: the written contract between runs, sweeps and ``vaesweep report``.

Every on-disk name is defined here once: the run's files and columns (:mod:`.contract`), the
outputs root and its ``runs/`` and ``sweeps/`` folders (:mod:`.layout`), run directory names
(:mod:`.run_names`), a sweep's plan ``sweep.json`` (:mod:`.sweep_plan`), its index ``runs.csv``
(:mod:`.sweep_index`) and its lock (:mod:`.sweep_lock`).
"""

from vaesweep.record.run_record import RunRecord

__all__ = ["RunRecord"]
