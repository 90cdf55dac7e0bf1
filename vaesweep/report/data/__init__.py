"""Stage 1 of the report: read the run records and aggregate them into tables.

:mod:`~vaesweep.report.data.load` finds and reads the runs robustly;
:mod:`~vaesweep.report.data.per_run` computes one run's row, :mod:`~vaesweep.report.data.grouping`
the swept values and which runs form a setting, :mod:`~vaesweep.report.data.seed_stats` the mean
and spread over seeds; :mod:`~vaesweep.report.data.aggregate` puts them together into one
:class:`~vaesweep.report.data.aggregate.SweepRecords`. :mod:`~vaesweep.report.data.linear_reference`
is the linear-Gaussian (PCA) reference every run is compared against. pandas and numpy only.
"""
