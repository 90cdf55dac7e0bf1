"""The one exception type for mistakes a user can fix (bad override, missing folder, ...).

The CLI turns a :class:`UserError` into a single line on stderr and exit code 2. Anything else
that escapes is a bug in vaesweep and keeps its traceback.
"""


class UserError(Exception):
    """A problem with the user's input: say what was wrong and what would be right."""


class ConfigError(UserError, ValueError):
    """A config value outside its allowed range, raised by the schemas' ``__post_init__``.

    Subclassing ValueError keeps OmegaConf's ``to_object`` wrapping it as a validation error
    whose cause we can still recognise.
    """
