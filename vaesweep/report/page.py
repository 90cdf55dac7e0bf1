"""What the report page shows, independent of its format.

:func:`~vaesweep.report.build.build_report` fills one :class:`Page`; the renderers
(:mod:`~vaesweep.report.render.html`, :mod:`~vaesweep.report.render.markdown`) turn it into a
file. The page sits between the stages that produce it (figures, reading, tables) and the ones
that write it, so neither side imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from vaesweep.report.figures.style import Rendered
from vaesweep.report.reading.build import Reading

__all__ = ["Page"]


@dataclass
class Page:
    """What the report page shows, in either format (:mod:`~vaesweep.report.render.html`,
    :mod:`~vaesweep.report.render.markdown`), top to bottom."""

    title: str
    sources: list[str]  # the folders read
    reading: Reading
    figures: list[Rendered]
    tables: list[tuple[str, pd.DataFrame]]  # (heading, display table)
    files: list[str]  # the files next to the page
