"""``vaesweep eval RUN_DIR``: re-evaluating a finished run from its checkpoint.

The run's config is rebuilt from ``summary.json`` (:func:`config_from_dict`), the checkpoint
restores the weights and the KL controller, and the split is evaluated exactly as training
validates: on the full validation split the metrics must equal the run's last ``val`` row,
and with the run's own IWAE settings the IWAE estimate must equal the one in the summary.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from vaesweep.cli import app
from vaesweep.commands.evaluate import EVAL_FILE, evaluate_run
from vaesweep.config import (
    PIKL,
    CapacityKL,
    Config,
    ConstantKL,
    ConvConfig,
    CyclicalKL,
    DataConfig,
    EvalConfig,
    FreeBitsKL,
    GecoKL,
    LossConfig,
    MLPConfig,
    TrainConfig,
    WarmupKL,
)
from vaesweep.config.from_dict import config_from_dict
from vaesweep.data import Splits
from vaesweep.errors import ConfigError, UserError
from vaesweep.record import contract
from vaesweep.record.files import read_json, write_json
from vaesweep.run import run_job

runner = CliRunner()

#: Row metrics that must be reproduced exactly (timings and lr aside).
SAME_AS_VAL_ROW = ("elbo", "nll", "kl", "recon", "mse", "sse", "loss", "beta_t", "mi")


def _config(likelihood: str = "mse", kl: Any = None) -> Config:
    return Config(
        data=DataConfig(limit=300),
        model=ConvConfig(width=8, hidden_dim=32, latent_dim=4),
        loss=LossConfig(likelihood=likelihood, sigma=0.1),
        kl=kl if kl is not None else ConstantKL(),
        train=TrainConfig(epochs=2, batch_size=64, progress="off", device="cpu"),
        eval=EvalConfig(
            iwae_samples=7, iwae_images=20, mi_images=100, grad_batches=1, n_recon=4, n_samples=8
        ),
        beta=0.5,
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Finished tiny runs: mse with a PI controller, the sigma-VAE and the discrete logistic."""
    root = tmp_path_factory.mktemp("runs")
    out = {}
    for name, cfg in {
        "mse": _config("mse", PIKL(target=1.0, ki=0.005)),
        "gaussian_optimal": _config("gaussian_optimal"),
        "dlogistic": _config("dlogistic"),
    }.items():
        summary = run_job(cfg, root / name)
        assert summary["status"] == "completed", summary.get("error")
        out[name] = root / name
    return out


def with_test_split(monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs on digits get a stand-in test split: the first 25 training images."""
    import vaesweep.run.assembly as module

    real = module.load_splits

    def with_test(cfg: DataConfig) -> Splits:
        splits = real(cfg)
        return dataclasses.replace(splits, test=splits.train.subset(slice(0, 25)))

    monkeypatch.setattr(module, "load_splits", with_test)


def _copy_run(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True)
    for f in src.iterdir():
        if f.is_file() and f.name != EVAL_FILE:
            (dst / f.name).write_bytes(f.read_bytes())
    return dst


@pytest.mark.parametrize("name", ["mse", "gaussian_optimal", "dlogistic"])
@pytest.mark.slow
def test_val_metrics_equal_the_runs_final_val_row(runs: dict[str, Path], name: str) -> None:
    run_dir = runs[name]
    summary = read_json(run_dir / contract.SUMMARY_FILE)
    val = summary["final"]["val"]
    result = evaluate_run(run_dir, split="val", iwae_samples=50)
    assert result["split"] == "val" and result["images"] == summary["data"]["n_val"]
    for key in SAME_AS_VAL_ROW:
        assert result["metrics"][key] == val[key], key  # same weights, noise and batching
    assert result["elbo"] == val["elbo"] and result["kl"] == val["kl"]
    assert result["active_units"] == val["active_units"]
    assert result["kl_per_dim"] == summary["kl_per_dim"]
    assert (result["epoch"], result["step"]) == (2, summary["step"])
    assert result["run_status"] == "completed" and result["warnings"] == []
    # The IWAE bound (k = 50) is tighter than the one-sample ELBO on the same images.
    assert -result["iwae_nll"] >= result["elbo"]
    d = 64
    offset = 0.0 if name == "dlogistic" else 8.0  # discrete likelihood: no dequantisation
    assert result["dequantized"] is (name != "dlogistic")
    expected_bpd = result["iwae_nll"] / (d * math.log(2)) + offset
    assert result["bpd"] == pytest.approx(expected_bpd, rel=1e-12)


@pytest.mark.slow
def test_iwae_with_the_runs_settings_equals_the_summary(runs: dict[str, Path]) -> None:
    """Same images, samples and seed as the end of the run: the same estimate, bit for bit."""
    for run_dir in runs.values():
        iwae = read_json(run_dir / contract.SUMMARY_FILE)["iwae"]
        result = evaluate_run(run_dir, split="val", iwae_samples=7, images=20)
        assert result["images"] == iwae["images"] == 20
        assert result["iwae_nll"] == iwae["nll"] and result["bpd"] == iwae["bpd"]
        assert result["dequantized"] == iwae["dequantized"]


@pytest.mark.slow
def test_eval_json_is_written_beside_the_record(runs: dict[str, Path], tmp_path: Path) -> None:
    run_dir = _copy_run(runs["mse"], tmp_path / "r")
    result = evaluate_run(run_dir, iwae_samples=3, images=10)
    (key, on_disk), *_ = json.loads((run_dir / EVAL_FILE).read_text())["evaluations"].items()
    assert key == "split=val,images=10,iwae_samples=3"
    assert on_disk["elbo"] == result["elbo"] and on_disk["iwae_nll"] == result["iwae_nll"]
    assert on_disk["images"] == 10 and on_disk["iwae_samples"] == 3 and on_disk["epoch"] == 2
    assert on_disk["split"] == "val" and on_disk["timestamp"].endswith("+00:00")
    # The code that evaluated, named like the run's own (here: the same code, one process).
    trained = json.loads((run_dir / "summary.json").read_text())["versions"]
    assert on_disk["versions"] == trained and {"vaesweep", "torch"} <= set(trained)
    assert not [p.name for p in run_dir.iterdir() if p.name.endswith(".tmp")]
    # iwae_samples=0 skips the bound.
    assert evaluate_run(run_dir, iwae_samples=0, images=10)["iwae_nll"] is None


@pytest.mark.slow
def test_evaluating_again_with_other_settings_keeps_the_earlier_result(
    runs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """eval.json held only the last evaluation: `eval --split test` after `eval` (or with other
    sample counts) lost the first. Now one entry per setting; the same setting replaces its own."""
    run_dir = _copy_run(runs["mse"], tmp_path / "r")
    # An eval.json as written before (one evaluation at the top level) is kept as an entry.
    old = evaluate_run(run_dir, iwae_samples=2, images=5)
    write_json(run_dir / EVAL_FILE, old)
    first = evaluate_run(run_dir, iwae_samples=3, images=10)
    more = evaluate_run(run_dir, iwae_samples=5, images=20)
    again = evaluate_run(run_dir, iwae_samples=3, images=10)
    with_test_split(monkeypatch)
    test = evaluate_run(run_dir, split="test", iwae_samples=3, images=10)
    evaluations = read_json(run_dir / EVAL_FILE)["evaluations"]
    assert list(evaluations) == [
        "split=val,images=5,iwae_samples=2",
        "split=val,images=10,iwae_samples=3",
        "split=val,images=20,iwae_samples=5",
        "split=test,images=10,iwae_samples=3",
    ]
    assert evaluations["split=val,images=5,iwae_samples=2"] == old
    assert evaluations["split=val,images=20,iwae_samples=5"]["iwae_nll"] == more["iwae_nll"]
    assert evaluations["split=val,images=10,iwae_samples=3"]["timestamp"] == again["timestamp"]
    assert again["elbo"] == first["elbo"]  # the same evaluation, recorded once
    assert evaluations["split=test,images=10,iwae_samples=3"]["elbo"] == test["elbo"]
    assert not [p.name for p in run_dir.iterdir() if p.name.endswith(".tmp")]
    # A damaged eval.json is not overwritten: one line, before any work.
    (run_dir / EVAL_FILE).write_text("{not json")
    with pytest.raises(UserError, match=r"eval.json: unreadable .*move it away"):
        evaluate_run(run_dir, iwae_samples=3, images=10)
    assert (run_dir / EVAL_FILE).read_text() == "{not json"


@pytest.mark.slow
def test_test_split_needs_a_dataset_that_has_one(
    runs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(
        UserError,
        match=r"data=digits has no test split \(digits comes with none; mnist, fashion_mnist, "
        r"cifar10 and celeba do\); use --split val$",
    ):
        evaluate_run(runs["mse"], split="test", iwae_samples=2)
    # A dataset with a test split (here: digits with a stand-in test set) is evaluated on it.
    with_test_split(monkeypatch)
    run_dir = _copy_run(runs["mse"], tmp_path / "r")
    result = evaluate_run(run_dir, split="test", iwae_samples=4)
    assert result["split"] == "test" and result["images"] == 25
    assert -result["iwae_nll"] >= result["elbo"] - 5.0 and math.isfinite(result["elbo"])


@pytest.mark.slow
def test_unfinished_run_is_evaluated_with_a_warning(runs: dict[str, Path], tmp_path: Path) -> None:
    run_dir = _copy_run(runs["mse"], tmp_path / "r")
    summary = read_json(run_dir / contract.SUMMARY_FILE)
    write_json(run_dir / contract.SUMMARY_FILE, {**summary, "status": "running"})
    result = evaluate_run(run_dir, iwae_samples=2, images=5)
    assert result["run_status"] == "running"
    assert len(result["warnings"]) == 1 and "not 'completed'" in result["warnings"][0]


@pytest.mark.slow
@pytest.mark.parametrize("data", [[1], "x", {"root": 5, "path": ["p"]}])
def test_a_summary_whose_data_field_is_damaged_still_evaluates(
    runs: dict[str, Path], tmp_path: Path, data: Any
) -> None:
    """summary.json's ``data`` says where the data was; damaged, the config's own paths are
    used (it was an AttributeError traceback)."""
    run_dir = _copy_run(runs["mse"], tmp_path / "r")
    summary = read_json(run_dir / contract.SUMMARY_FILE)
    write_json(run_dir / contract.SUMMARY_FILE, {**summary, "data": data})
    result = evaluate_run(run_dir, iwae_samples=2, images=5)
    assert result["images"] == 5


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("no_dir", "no such run directory"),
        ("no_summary", "no summary.json"),
        ("no_checkpoint", "has not finished an epoch"),
        ("garbage_checkpoint", "damaged checkpoint"),
        ("truncated_checkpoint", "damaged checkpoint"),
        ("bad_config", "bad config"),
        ("wrong_weights", "does not match the run's config"),
    ],
)
@pytest.mark.slow
def test_user_errors(runs: dict[str, Path], tmp_path: Path, damage: str, message: str) -> None:
    run_dir = _copy_run(runs["mse"], tmp_path / "r")
    ckpt = run_dir / contract.CHECKPOINT_FILE
    summary_path = run_dir / contract.SUMMARY_FILE
    if damage == "no_dir":
        run_dir = tmp_path / "nope"
    elif damage == "no_summary":
        summary_path.unlink()
    elif damage == "no_checkpoint":
        ckpt.unlink()
    elif damage == "garbage_checkpoint":
        ckpt.write_bytes(b"not a checkpoint at all")
    elif damage == "truncated_checkpoint":
        ckpt.write_bytes(ckpt.read_bytes()[:1000])
    elif damage == "bad_config":
        summary = read_json(summary_path)
        summary["config"]["kl"]["method"] = "nope"
        write_json(summary_path, summary)
    elif damage == "wrong_weights":
        summary = read_json(summary_path)
        summary["config"]["model"]["latent_dim"] = 5
        write_json(summary_path, summary)
    with pytest.raises(UserError, match=message) as info:
        evaluate_run(run_dir, iwae_samples=2)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"split": "train"}, "expected one of val, test"),
        ({"iwae_samples": -1}, "must be >= 0"),
        ({"images": 0}, "must be > 0"),
    ],
)
@pytest.mark.slow
def test_bad_arguments(runs: dict[str, Path], kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(UserError, match=message):
        evaluate_run(runs["mse"], **kwargs)


# ------------------------------------------------------------------------------ CLI


@pytest.mark.slow
def test_cli_prints_the_metrics(runs: dict[str, Path], tmp_path: Path) -> None:
    run_dir = _copy_run(runs["mse"], tmp_path / "r")
    result = runner.invoke(app, ["eval", str(run_dir), "--iwae-samples", "5", "--images", "12"])
    assert result.exit_code == 0, result.output
    for key in ("split", "images", "elbo", "iwae_nll", "bpd", "kl", "mse", "active_units"):
        assert key in result.output
    assert "wrote" in result.output and (run_dir / EVAL_FILE).is_file()
    assert "[split=val,images=12,iwae_samples=5]" in result.output
    assert read_json(run_dir / EVAL_FILE)["evaluations"]["split=val,images=12,iwae_samples=5"]


def test_cli_missing_dir_exits_2_with_one_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["eval", str(tmp_path / "missing")])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error")
    assert "no such run directory" in lines[0] and "Traceback" not in result.output


@pytest.mark.slow
def test_cli_test_split_on_digits_exits_2(runs: dict[str, Path], tmp_path: Path) -> None:
    run_dir = _copy_run(runs["mse"], tmp_path / "r")
    result = runner.invoke(app, ["eval", str(run_dir), "--split", "test"])
    assert result.exit_code == 2 and "--split val" in result.output
    assert not (run_dir / EVAL_FILE).exists()


# ------------------------------------------------------------------------------ config_from_dict


@pytest.mark.parametrize(
    "kl",
    [
        ConstantKL(),
        WarmupKL(epochs=3.5),
        CyclicalKL(cycles=2, ratio=0.7, tail=1.0),
        CapacityKL(gamma=10.0),
        FreeBitsKL(lam=0.2, mode="group", groups=3, average="example"),
        GecoKL(kappa=0.2, lambda_init=5.0),
        PIKL(target=4.0, beta_max=2.0),
    ],
)
@pytest.mark.parametrize("model", [ConvConfig(width=16, depth=2), MLPConfig(hidden=[64, 8])])
def test_config_round_trip(kl: Any, model: Any) -> None:
    cfg = Config(
        data=DataConfig(limit=10, binarize="dynamic"),
        model=model,
        # GECO constrains squared error, so it takes the fixed Gaussian; the rest a Laplace.
        loss=LossConfig(
            likelihood="gaussian" if isinstance(kl, GecoKL) else "laplace",
            sigma=0.3,
            recon_reduction="mean",
        ),
        kl=kl,
        train=TrainConfig(epochs=3, grad_clip=1.0),
        eval=EvalConfig(iwae_images=None, split="test"),
        beta=0.25,
        seed=9,
    )
    # Through JSON, as summary.json stores it.
    back = config_from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert back == cfg and type(back.model) is type(model) and type(back.kl) is type(kl)
    assert back.hash() == cfg.hash()


def test_config_from_dict_errors_and_defaults() -> None:
    base = Config(model=MLPConfig(), kl=ConstantKL()).to_dict()
    with pytest.raises(ConfigError, match=r"model\.arch='resnet'"):
        config_from_dict({**base, "model": {**base["model"], "arch": "resnet"}})
    with pytest.raises(ConfigError, match=r"train\.speed"):
        config_from_dict({**base, "train": {**base["train"], "speed": 3}})
    with pytest.raises(ConfigError, match="beta=-1"):
        config_from_dict({**base, "beta": -1.0})
    with pytest.raises(ConfigError, match="no 'kl' group"):
        config_from_dict({k: v for k, v in base.items() if k != "kl"})
    # Missing groups and keys (an older run) take the schema defaults.
    minimal = config_from_dict({"model": {"arch": "conv"}, "kl": {"method": "pi"}})
    assert minimal == Config(model=ConvConfig(), kl=PIKL())
