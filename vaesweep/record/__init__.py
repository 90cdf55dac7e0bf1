"""The run record: the written contract between a run and ``vaesweep report``."""

from vaesweep.record.run_record import RunRecord

__all__ = ["RunRecord"]
