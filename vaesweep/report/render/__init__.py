"""Stage 4 of the report: write the :class:`~vaesweep.report.page.Page` as a file.

:mod:`~vaesweep.report.render.tables` shapes the display tables,
:mod:`~vaesweep.report.render.html` writes the self-contained ``index.html`` and
:mod:`~vaesweep.report.render.markdown` the ``index.md``.
"""
