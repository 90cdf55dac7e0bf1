"""The one exception type for mistakes a user can fix (bad override, missing folder, ...),
:func:`printable`, which makes a file name fit to write in a message, a log or a record, and
the words for a place the file system refuses (:func:`file_system_refusal`, :func:`folder_problem`).

The CLI turns a :class:`UserError` into a single line on stderr and exit code 2. Anything else
that escapes is a bug in vaesweep and keeps its traceback.
"""

from __future__ import annotations

import errno
import os
import stat


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


#: What the file system says when a path the user chose (the outputs root, ``--name``, a
#: report's ``--out``) cannot be used, and what to do about it. Errnos left out (ENOENT, EEXIST,
#: EBADF, EINVAL, ...) mean vaesweep lost track of its own files: a bug, kept with its traceback.
_PLACE_HINTS = {
    errno.ENOSPC: "free space there or choose --outputs",
    errno.EDQUOT: "free space there or choose --outputs",
    errno.EFBIG: "choose --outputs on another file system",
    errno.EROFS: "choose a folder you can write with --outputs",
    errno.EACCES: "choose a folder you can write with --outputs",
    errno.EPERM: "choose a folder you can write with --outputs (this one refuses changes)",
    errno.ENAMETOOLONG: "choose a shorter --outputs or --name",
    errno.ELOOP: "a symbolic link on that path leads back to itself; fix it or choose --outputs",
    errno.ENOTDIR: "a file stands where that path needs a folder; choose another --outputs",
    errno.EISDIR: "a folder stands where that path needs a file; move it or choose --outputs",
    errno.EMLINK: "that folder holds too many entries; choose another --outputs",
}
#: Of those, the errnos that can only come from writing (the message says "write").
_WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS)
#: The errnos said even without a path (a full disk has no file name to give).
_PATHLESS_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES)


def file_system_refusal(err: OSError) -> UserError | None:
    """``err`` as one line naming the path and what to change, when the file system refused a
    place the user chose (full, read-only, not permitted, a name too long, a symlink loop...);
    None when it looks like vaesweep's own mistake (no path named, or an errno such as ENOENT)."""
    hint = _PLACE_HINTS.get(err.errno or 0)
    if hint is None or (err.filename is None and err.errno not in _PATHLESS_ERRNOS):
        return None
    where = printable(err.filename) if err.filename is not None else "the outputs folder"
    verb = "write" if err.errno in _WRITE_ERRNOS or err.filename is None else "use"
    return UserError(
        f"cannot {verb} {where}: {err.strerror or os.strerror(err.errno or 0)}; {hint}"
    )


def folder_problem(path: str | os.PathLike[str]) -> str:
    """Why ``path`` is not a folder this process can look into, as the end of a sentence
    ("does not exist", "is a file, not a folder", "cannot be read (Permission denied)"), or ""
    when it is one. ``Path.is_dir()`` says False for all of these alike, so a folder that is
    there but unreadable was reported as missing."""
    try:
        if not stat.S_ISDIR(os.stat(path).st_mode):
            return "is a file, not a folder"
        os.scandir(path).close()
    except FileNotFoundError:
        return "does not exist"
    except OSError as err:
        return f"cannot be read ({err.strerror or type(err).__name__})"
    return ""
