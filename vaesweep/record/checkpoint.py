"""What a run's ``checkpoint.pt`` must hold to be continued or evaluated, checked before use.

A checkpoint is ``{"state": ..., "config": ...}``: ``state`` is the trainer's state (model
weights, optimiser, KL controller, random generator, epoch and step), ``config`` the run's
resolved config as a dict. The file is a safetensors file (:mod:`vaesweep.tensorfile`: no code
runs when it is read), but what it holds is still only as good as the disk and the hands it passed through: a
state of the wrong shape must stop a resume or an evaluation in one line, before any record is
rewritten, not as a ``TypeError`` deep in torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vaesweep.errors import UserError
from vaesweep.record import contract

#: What every checkpoint's state holds (a single run's and a stack member's alike).
CHECKPOINT_KEYS = ("model", "control", "epoch", "step")
#: What a checkpoint must also hold for training to continue from it (evaluation needs less).
RESUME_KEYS = ("optimizer", "generator")
#: What to do about a run whose checkpoint or metrics are damaged: without the checkpoint, the
#: run trains again from its first epoch (``train --resume``, ``sweep --resume``).
RETRAIN_ADVICE = (
    f"delete {contract.CHECKPOINT_FILE} to train the run again from the start, then --resume"
)
#: Sections of the config a checkpoint must agree with to be continued: the rest (length,
#: learning-rate schedule, evaluation, trackers) may change between a run and its resume.
RESUMABLE_KEYS = ("data", "model", "loss", "kl", "beta", "seed")


class DamagedCheckpoint(UserError):
    """A checkpoint that cannot be used: unreadable, incomplete, or not this run's."""


def _is_count(value: Any) -> bool:
    """A whole number >= 0: a Python int (as the trainer saves it) or a one-element integer
    tensor (as older checkpoints may hold it)."""
    if hasattr(value, "numel") and hasattr(value, "is_floating_point"):
        return bool(value.numel() == 1 and not value.is_floating_point() and int(value) >= 0)
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_tensor(value: Any) -> bool:
    return hasattr(value, "shape") and hasattr(value, "dtype") and hasattr(value, "numel")


def state_problem(checkpoint: Any) -> str | None:
    """Why ``checkpoint`` (what :func:`vaesweep.tensorfile.loads` returned) cannot be continued, or None.

    Checks the structure only: weights whose shapes do not fit the run's model are found when
    they are loaded into it (:func:`vaesweep.run.job`), where the model is known.
    """
    if not isinstance(checkpoint, Mapping) or not isinstance(checkpoint.get("state"), Mapping):
        return "no state"
    state = checkpoint["state"]
    missing = [k for k in CHECKPOINT_KEYS if k not in state]
    if missing:
        return f"no {', '.join(missing)}"
    for key in ("epoch", "step"):
        if not _is_count(state[key]):
            return f"its {key} is {type(state[key]).__name__}, not a whole number"
    model = state["model"]
    if not isinstance(model, Mapping) or not model:
        return f"its model weights are {type(model).__name__}, not a dict of tensors"
    odd = next((k for k, v in model.items() if not _is_tensor(v)), None)
    if odd is not None:
        return f"its model weight {odd!r} is {type(model[odd]).__name__}, not a tensor"
    for key in ("control", "optimizer"):
        if key in state and not isinstance(state[key], Mapping):
            return f"its {key} state is {type(state[key]).__name__}, not a dict"
    optimizer = state.get("optimizer", {"state": {}, "param_groups": [{}]})
    groups = optimizer.get("param_groups")
    if not isinstance(optimizer.get("state"), Mapping) or not (
        isinstance(groups, list) and groups and all(isinstance(g, Mapping) for g in groups)
    ):
        return "its optimizer state lacks the state and parameter groups Adam keeps"
    generator = state.get("generator")
    if "generator" in state and not (
        _is_tensor(generator) and str(generator.dtype) == "torch.uint8"
    ):
        what = generator.dtype if _is_tensor(generator) else type(generator).__name__
        return f"its generator state is {what}, not a tensor of bytes"
    if "config" in checkpoint and not isinstance(checkpoint["config"], Mapping):
        return f"its config is {type(checkpoint['config']).__name__}, not a dict"
    return None


def check_same_experiment(saved: Any, current: Mapping[str, Any], run_dir: Path) -> None:
    """Refuse a checkpoint whose config (``saved``) differs from the run's (``current``) in a
    section that decides what is trained (:data:`RESUMABLE_KEYS`): one copied in from another
    run would otherwise be continued under this run's name."""
    if not isinstance(saved, Mapping):
        return
    changed = [k for k in RESUMABLE_KEYS if k in saved and k in current and saved[k] != current[k]]
    if changed:
        raise DamagedCheckpoint(
            f"{run_dir} holds a checkpoint of a different experiment ({', '.join(changed)} "
            "changed); continue it with its own settings or train into a new directory"
        )
