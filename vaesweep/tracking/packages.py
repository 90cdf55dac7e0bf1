"""Which Python packages each tracker needs, and the one-line error when one is missing."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable

from vaesweep.errors import UserError

#: tracker -> (modules it imports, the pip extra that installs them).
REQUIREMENTS: dict[str, tuple[tuple[str, ...], str]] = {
    "tensorboard": (("tensorboardX",), "vaesweep[tensorboard]"),
    "mlflow": (("mlflow",), "vaesweep[mlflow]"),
}


def missing_modules(tracker: str) -> list[str]:
    """Modules ``tracker`` needs that are not installed (found without importing them)."""
    modules, _ = REQUIREMENTS[tracker]
    return [m for m in modules if importlib.util.find_spec(m) is None]


def require_packages(trackers: Iterable[str]) -> None:
    """Raise one :class:`UserError` line naming the install command if a package is missing.

    Called before anything trains, so a missing package costs nothing but the message.
    """
    for name in trackers:
        missing = missing_modules(name)
        if missing:
            _, extra = REQUIREMENTS[name]
            raise UserError(
                f"tracker={name} needs the Python package {', '.join(missing)}, which is not "
                f"installed; install it with: pip install '{extra}'"
            )
