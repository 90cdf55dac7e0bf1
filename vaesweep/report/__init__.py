"""``vaesweep report``: read run records from disk and write a self-contained report.

Reads only the files a run writes (``metrics.csv``, ``summary.json``, the PNG grids; see
:mod:`vaesweep.record.contract`), never torch or Hydra, so it works on a copied folder, after a
crashed sweep and on a sweep whose runs partly failed. The subpackages are the stages, in the
order :func:`~vaesweep.report.build.build_report` runs them; each imports only the ones before:

1. :mod:`~vaesweep.report.data`: load the runs and aggregate them into one
   :class:`~vaesweep.report.data.aggregate.SweepRecords` (``summary.csv``, ``seeds.csv``), with
   the linear-Gaussian (PCA) reference;
2. :mod:`~vaesweep.report.figures`: the figures and their shared style;
3. :mod:`~vaesweep.report.reading`: the written reading, built from the tables' numbers;
4. :mod:`~vaesweep.report.page` (what the page shows, in either format) and
   :mod:`~vaesweep.report.render`: the display tables, HTML and Markdown.

:mod:`~vaesweep.report.numbers` formats numbers for every stage. Synthetic run records for tests
and the benchmark live outside this package, in :mod:`vaesweep.testing.fabricate`. Importing
this package imports nothing heavy.
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
