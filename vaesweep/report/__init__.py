"""``vaesweep report``: read run records from disk and write a self-contained report.

Reads only the files a run writes (``metrics.csv``, ``summary.json``, the PNG grids; see
:mod:`vaesweep.record.contract`), never torch or Hydra, so it works on a copied folder, after a
crashed sweep and on a sweep whose runs partly failed. Modules, in the order
:func:`~vaesweep.report.build.build_report` uses them:

* :mod:`~vaesweep.report.load`: find the runs of each DIR and read them robustly;
* :mod:`~vaesweep.report.per_run` and :mod:`~vaesweep.report.aggregate`: one row per run
  (``summary.csv``) and the mean and spread over seeds (``seeds.csv``);
* :mod:`~vaesweep.report.linear_reference`: the linear-Gaussian (PCA) reference;
* :mod:`~vaesweep.report.style` and the ``plot_*`` modules: the figures;
* :mod:`~vaesweep.report.reading`, :mod:`~vaesweep.report.findings` and
  :mod:`~vaesweep.report.phrases`: the written reading, built from the tables' numbers;
* :mod:`~vaesweep.report.tables`, :mod:`~vaesweep.report.html` and
  :mod:`~vaesweep.report.markdown`: the two output formats.

:mod:`~vaesweep.report.fabricate` writes synthetic runs with the real writer code for tests and
the benchmark; the report never imports it. Importing this package imports nothing heavy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def build_report(
    dirs: list[Path],
    fmt: str = "html",
    out: Path | None = None,
    outputs: Path | None = None,
    console: Any = None,
) -> Path:
    """See :func:`vaesweep.report.build.build_report` (imported here lazily: pandas, matplotlib)."""
    from vaesweep.report.build import build_report as build

    return build(dirs, fmt=fmt, out=out, outputs=outputs, console=console)


__all__ = ["build_report"]
