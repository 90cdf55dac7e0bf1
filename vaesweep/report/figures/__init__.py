"""Stage 2 of the report: the figures, each drawn from a
:class:`~vaesweep.report.data.aggregate.SweepRecords`.

:mod:`~vaesweep.report.figures.style` holds the shared look (one colour per beta, one marker per
KL method) and renders a matplotlib figure to PNG bytes; the ``plot_*`` modules draw the
rate-distortion plane and spectrum, the beta summaries, the training curves and the image grids.
"""
