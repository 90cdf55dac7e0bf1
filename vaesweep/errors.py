"""The one exception type for mistakes a user can fix (bad override, missing folder, ...), and
:func:`printable`, which makes a file name fit to write in a message, a log or a record.

The CLI turns a :class:`UserError` into a single line on stderr and exit code 2. Anything else
that escapes is a bug in vaesweep and keeps its traceback.
"""

from __future__ import annotations

import os


def printable(name: str | os.PathLike[str]) -> str:
    """A file name as text that any log or terminal can write: bytes that are not UTF-8 (kept
    by Python as lone surrogates, which a UTF-8 stream refuses) become ``\\xef`` escapes."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


class UserError(Exception):
    """A problem with the user's input: say what was wrong and what would be right."""


class ConfigError(UserError, ValueError):
    """A config value outside its allowed range, raised by the schemas' ``__post_init__``.

    Subclassing ValueError keeps OmegaConf's ``to_object`` wrapping it as a validation error
    whose cause we can still recognise.
    """
