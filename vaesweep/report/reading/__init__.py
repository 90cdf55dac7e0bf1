"""Stage 3 of the report: the written reading, sentences built from the tables' numbers.

:mod:`~vaesweep.report.reading.build` assembles the
:class:`~vaesweep.report.reading.build.Reading` from the answer
(:mod:`~vaesweep.report.reading.answer`), the three questions
(:mod:`~vaesweep.report.reading.questions`) and the findings by topic
(:mod:`~vaesweep.report.reading.findings`, :mod:`~vaesweep.report.reading.comparisons`,
:mod:`~vaesweep.report.reading.settling`), with :mod:`~vaesweep.report.reading.phrases`' shared
pieces. Plain text, no markup: the renderers escape and format it.
"""
