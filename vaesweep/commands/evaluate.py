"""``vaesweep eval RUN_DIR``: recompute a run's final metrics from its checkpoint.

The run's own config (``summary.json["config"]``) rebuilds the data split, the model and the
KL controller through the one run assembly (:func:`vaesweep.run.assembly.assemble`); the
weights come from ``checkpoint.pt`` (the last finished epoch). The chosen split is evaluated
exactly as training validates (:func:`vaesweep.evaluation.metrics.evaluate`, same noise seed), so
on the validation split with all images the ELBO, KL, MSE... equal the run's last ``val``
row. The IWAE bound (Burda et al. 2016) is recomputed with any number of importance samples,
as the end of a run does (:func:`vaesweep.evaluation.metrics.iwae_estimate`). The result goes to
``eval.json`` beside the run record (written atomically), one entry per evaluation setting
(:mod:`vaesweep.record.evaluations`): evaluating again with other settings keeps the earlier
results.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from vaesweep.config import Config
from vaesweep.config.eval import DISENTANGLEMENT_PRESETS
from vaesweep.config.from_dict import config_from_dict
from vaesweep.data.registry import no_test_split
from vaesweep.errors import ConfigError, UserError
from vaesweep.evaluation.disentanglement import final_disentanglement, summary_entry
from vaesweep.evaluation.metrics import EVAL_SEED, evaluate, iwae_estimate
from vaesweep.record import contract
from vaesweep.record.contract import EVAL_FILE
from vaesweep.record.evaluations import add_evaluation, read_evaluations
from vaesweep.record.files import read_json, write_json
from vaesweep.record.run_record import RunRecord
from vaesweep.run.assembly import assemble
from vaesweep.run.job import versions
from vaesweep.training.device import resolve_device

log = logging.getLogger("vaesweep.eval")

#: ``--split``: the splits a run can be evaluated on.
SPLITS = ("val", "test")
#: ``--preset`` of ``--disentanglement``: eval.disentanglement's presets except ``off``.
PRESETS = tuple(p for p in DISENTANGLEMENT_PRESETS if p != "off")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _read_summary(run_dir: Path) -> dict[str, Any]:
    path = run_dir / contract.SUMMARY_FILE
    if not path.is_file():
        raise UserError(f"{run_dir}: no {contract.SUMMARY_FILE}; not a vaesweep run directory")
    try:
        summary = read_json(path)
    except (OSError, ValueError) as err:
        raise UserError(f"{path}: unreadable ({type(err).__name__}: {err})") from err
    if not isinstance(summary.get("config"), dict):
        raise UserError(f"{path} holds no config; cannot rebuild the run's model")
    return summary


def _load_checkpoint(path: Path, device: torch.device) -> dict[str, Any]:
    """The checkpoint's ``state`` dict, or a UserError if it is missing or damaged."""
    if not path.is_file():
        raise UserError(
            f"{path.parent}: no {path.name}; the run has not finished an epoch (nothing to evaluate)"
        )
    checkpoint = RunRecord(path.parent).load_checkpoint(map_location=device)
    assert checkpoint is not None, "checked above"
    return dict(checkpoint["state"])


def _device(config: Config, summary: dict[str, Any], device: str | None) -> torch.device:
    """``device`` if given; else the device the run trained on, when this machine has it (so
    the numbers reproduce the run's), else the run's ``train.device`` if available, else CPU."""
    if device is not None:
        return resolve_device(device)
    for name in (summary.get("device"), config.train.device):
        if not isinstance(name, str):
            continue
        try:
            return resolve_device(name)
        except (UserError, RuntimeError):
            continue
    return torch.device("cpu")


def evaluate_run(
    run_dir: Path,
    split: str = "val",
    iwae_samples: int = 1000,
    images: int | None = None,
    device: str | None = None,
    disentanglement: str | None = None,
) -> dict[str, Any]:
    """Evaluate the checkpoint in ``run_dir`` on ``split`` and record it in ``eval.json``.

    ``images``: the first N images of the split (None = all); ``iwae_samples``: importance
    samples per image for the IWAE NLL (0 skips it). Returns the dict written: ``split``,
    ``images``, ``iwae_samples``, ``elbo``, ``nll``, ``kl``, ``mse``, ``psnr``,
    ``active_units``, ``mi``, ``marginal_kl`` (nats per image; mse per pixel in [0, 1]),
    ``iwae_nll`` (nats per image), ``bpd``, ``epoch``/``step`` of the checkpoint,
    ``run_status``, ``warnings``, ``timestamp``, the full metrics row (``metrics``) and the KL
    per latent dimension; it is this evaluation's entry in ``eval.json``, beside those of other
    settings (:mod:`vaesweep.record.evaluations`). Raises :class:`UserError` for a missing
    directory, summary or checkpoint, a damaged checkpoint or ``eval.json``, or a split the
    dataset does not have. A run that has not completed is evaluated from its last checkpoint,
    with a warning in ``warnings``.

    ``disentanglement`` (a preset of ``eval.disentanglement``: auto, published or quick)
    recomputes the disentanglement metrics of a run on a factor dataset: they replace its
    ``disentanglement.json`` and ``summary.json["disentanglement"]`` and are returned under
    ``disentanglement`` (the preset under ``disentanglement_preset``).
    """
    run_dir = Path(run_dir).expanduser()
    if split not in SPLITS:
        raise UserError(f"--split {split}: expected one of {', '.join(SPLITS)}")
    if iwae_samples < 0:
        raise UserError(f"--iwae-samples {iwae_samples}: must be >= 0 (0 skips the IWAE bound)")
    if images is not None and images <= 0:
        raise UserError(f"--images {images}: must be > 0")
    if disentanglement is not None and disentanglement not in PRESETS:
        raise UserError(f"--preset {disentanglement}: expected one of {', '.join(PRESETS)}")
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: no such run directory")
    summary = _read_summary(run_dir)
    read_evaluations(run_dir)  # a damaged eval.json stops us before the work, not after
    try:
        config = config_from_dict(summary["config"])
    except ConfigError as err:
        raise UserError(f"{run_dir / contract.SUMMARY_FILE}: bad config: {err}") from err
    dev = _device(config, summary, device)
    state = _load_checkpoint(run_dir / contract.CHECKPOINT_FILE, dev)
    epoch, step = int(state["epoch"]), int(state["step"])

    warnings: list[str] = []
    status = summary.get("status")
    if status != contract.COMPLETED:
        warnings.append(
            f"run status is {status!r}, not 'completed': evaluated the checkpoint of epoch "
            f"{epoch} of {summary.get('epochs') or config.train.epochs}"
        )
    for note in warnings:
        log.warning(note)

    # The run recorded where its data was, as absolute paths: relative ones in its config
    # would otherwise be read against the directory `vaesweep eval` runs from.
    recorded = summary.get("data")
    for key in ("root", "path"):
        value = recorded.get(key) if isinstance(recorded, dict) else None
        if isinstance(value, str) and value:  # a damaged summary: the config's own paths
            setattr(config.data, key, value)
    run = assemble(config, device=dev, seed=False)
    splits, model, control = run.splits, run.model, run.control
    if split == "test":
        if splits.test is None:
            raise UserError(
                f"data={config.data.name} has no test split "
                f"({no_test_split(config.data.name)}); use --split val"
            )
        data = splits.test
    else:
        data = splits.val
    u8 = data.images[:images].to(dev)

    try:
        model.load_state_dict(state["model"])
    except RuntimeError as err:
        first = str(err).splitlines()[0]
        raise UserError(
            f"{run_dir / contract.CHECKPOINT_FILE} does not match the run's config: {first}"
        ) from err
    model.eval()

    # The KL controller as it was at the checkpoint, so loss and beta_t match the run's rows.
    try:
        control.load_state_dict(state["control"])
    except (KeyError, TypeError, ValueError) as err:
        raise UserError(
            f"{run_dir / contract.CHECKPOINT_FILE}: damaged checkpoint (KL-control state: "
            f"{type(err).__name__}); resume or retrain the run"
        ) from err

    row, kl_dim = evaluate(
        model, u8, control, step, config.eval, binarize=config.data.binarize, seed=EVAL_SEED
    )
    row.update(control.stats())
    iwae: dict[str, Any] | None = None
    if iwae_samples > 0:
        iwae = iwae_estimate(model, u8, iwae_samples, binarize=config.data.binarize, seed=EVAL_SEED)

    result: dict[str, Any] = {
        "split": split,
        "images": len(u8),
        "iwae_samples": iwae_samples,
        "elbo": row["elbo"],
        "iwae_nll": iwae["nll"] if iwae else None,
        # -ELBO on the IWAE's own inputs and draws: never below iwae_nll.
        "iwae_elbo_nll": iwae["elbo_nll"] if iwae else None,
        "bpd": iwae["bpd"] if iwae else None,
        "dequantized": iwae["dequantized"] if iwae else None,
        "nll": row["nll"],
        "kl": row["kl"],
        "mse": row["mse"],
        "psnr": row["psnr"],
        "active_units": int(row["active_units"]),
        "mi": row.get("mi"),
        "marginal_kl": row.get("marginal_kl"),
        "epoch": epoch,
        "step": step,
        "run_status": status,
        "warnings": warnings,
        "device": str(dev),
        # The code that evaluated, which may not be the code that trained (summary.json's).
        "versions": versions(),
        "timestamp": _now(),
        "metrics": row,
        "kl_per_dim": kl_dim,
    }
    if disentanglement is not None:
        if splits.grid is None:
            raise UserError(
                f"data={config.data.name} has no known factors; --disentanglement needs a run on "
                "a factor dataset (data=dsprites or data=shapes)"
            )
        scores = final_disentanglement(model, splits, dev, disentanglement)
        assert scores is not None
        write_json(run_dir / contract.DISENTANGLEMENT_FILE, scores)
        result["disentanglement"] = summary_entry(scores)
        result["disentanglement_preset"] = disentanglement
        write_json(
            run_dir / contract.SUMMARY_FILE, {**summary, "disentanglement": summary_entry(scores)}
        )
    add_evaluation(run_dir, result)
    return result


__all__ = ["EVAL_FILE", "evaluate_run"]
