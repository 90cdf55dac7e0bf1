"""The application layer: what each ``vaesweep`` command does, below the Typer CLI.

``train``, ``sweep`` (with :mod:`.sweep_monitor`), ``launching`` (launcher choice), ``listing``
(``vaesweep ls``), ``evaluate`` (``vaesweep eval``) and ``terminal_tables`` (what the commands
print). Commands call the Hydra bridge (:mod:`vaesweep.bridge`), the run assembly
(:mod:`vaesweep.run`) and the record (:mod:`vaesweep.record`); nothing below imports them.
"""
