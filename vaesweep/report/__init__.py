"""``vaesweep report``: read run records from disk and write a self-contained report.

Reads only the files a run writes (``metrics.csv``, ``summary.json``, the PNG grids; see
:mod:`vaesweep.record.contract`), never torch or Hydra, so it works on a copied folder, after a
crashed sweep and on a sweep whose runs partly failed. Modules, in the order
:func:`~vaesweep.report.build.build_report` uses them:

* :mod:`~vaesweep.report.load`: find the runs of each DIR and read them robustly;
* :mod:`~vaesweep.report.aggregate`: the table of every run (``summary.csv``), from
  :mod:`~vaesweep.report.per_run` (one run's row), :mod:`~vaesweep.report.grouping` (swept
  values, and which runs form a setting) and :mod:`~vaesweep.report.seed_stats` (the mean and
  spread over seeds, ``seeds.csv``);
* :mod:`~vaesweep.report.linear_reference`: the linear-Gaussian (PCA) reference;
* :mod:`~vaesweep.report.style` and the ``plot_*`` modules: the figures;
* :mod:`~vaesweep.report.reading`: the written reading, built from the tables' numbers: the
  answer (:mod:`~vaesweep.report.answer`), the three questions
  (:mod:`~vaesweep.report.questions`) and the findings by topic
  (:mod:`~vaesweep.report.findings`), with :mod:`~vaesweep.report.phrases`' shared pieces;
* :mod:`~vaesweep.report.tables`, :mod:`~vaesweep.report.html` and
  :mod:`~vaesweep.report.markdown`: the two output formats.

:mod:`~vaesweep.report.fabricate` writes synthetic runs with the real writer code for tests and
the benchmark; the report never imports it. Importing this package imports nothing heavy.
"""

from __future__ import annotations

from typing import Any

__all__ = ["build_report"]


def __getattr__(name: str) -> Any:
    """``build_report`` is :func:`vaesweep.report.build.build_report`, imported on first use
    (it needs pandas and matplotlib)."""
    if name == "build_report":
        from vaesweep.report.build import build_report

        return build_report
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
