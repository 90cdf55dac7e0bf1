"""``eval.json``: every ``vaesweep eval`` of a run, one entry per evaluation setting.

Evaluating a run again with other settings (``--split test`` after ``val``, more importance
samples, fewer images) adds an entry beside the earlier ones; evaluating it again with the same
settings replaces that entry (e.g. after the run trained further: the entry names its
checkpoint's ``epoch``). The file is ``{"evaluations": {key: entry}}``, with the key made of
the settings by :func:`eval_key`, e.g. ``split=val,images=360,iwae_samples=1000``. A file from
before (one evaluation at the top level) is read as a single entry, so nothing is lost.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vaesweep.errors import UserError
from vaesweep.record.contract import EVAL_FILE
from vaesweep.record.files import exclusive_lock, read_json, write_json

#: The entry's fields that name an evaluation, in the key's order. ``images`` is the number
#: evaluated (so ``--images`` beyond the split's size and no ``--images`` are the same
#: evaluation); ``disentanglement_preset`` is there only for ``--disentanglement`` runs.
KEY_FIELDS = ("split", "images", "iwae_samples", "disentanglement_preset")


def eval_key(entry: dict[str, Any]) -> str:
    """The key of an evaluation in ``eval.json``: its settings as ``name=value`` pairs."""
    return ",".join(f"{k}={entry[k]}" for k in KEY_FIELDS if entry.get(k) is not None)


def read_evaluations(run_dir: Path) -> dict[str, dict[str, Any]]:
    """The evaluations recorded in ``run_dir/eval.json`` by key ({} when there is none).

    Raises :class:`UserError` for a file that is not an eval.json (damaged from outside:
    every write is atomic), rather than replacing the results it may hold."""
    path = Path(run_dir) / EVAL_FILE
    if not path.exists():
        return {}
    try:
        data = read_json(path)
    except (OSError, ValueError) as err:
        data, why = None, f"{type(err).__name__}: {err}"
    else:
        why = "not a vaesweep eval.json"
    if isinstance(data, dict) and isinstance(data.get("evaluations"), dict):
        return dict(data["evaluations"])
    if isinstance(data, dict) and "split" in data:  # one evaluation, as written before
        return {eval_key(data): data}
    raise UserError(f"{path}: unreadable ({why}); move it away to evaluate this run again")


def add_evaluation(run_dir: Path, entry: dict[str, Any]) -> str:
    """Record ``entry`` in ``run_dir/eval.json`` (atomically), replacing an earlier
    evaluation with the same settings; returns its key. The read, update and write hold the
    run directory's lock, so concurrent evaluations of one run all keep their entries."""
    key = eval_key(entry)
    # The lock is the run directory itself: no lock file among the record's files.
    with exclusive_lock(Path(run_dir)):
        evaluations = read_evaluations(run_dir)
        evaluations[key] = entry
        write_json(Path(run_dir) / EVAL_FILE, {"evaluations": evaluations})
    return key
