"""Helpers for tests and benchmarks that are not part of any command.

:mod:`~vaesweep.testing.fabricate` writes synthetic run records through the real writer code.
Nothing under ``vaesweep`` outside this package imports it.
"""
