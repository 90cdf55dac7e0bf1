"""Every config value is refused before anything is written, or it trains.

Each case here once passed ``vaesweep show`` and then failed in training: a ``failed`` run
with a traceback (``model.depth=5`` on 8 px digits, ``kl.kappa=1e-300``: math domain error,
``kl.lam=1e300``, ``model.latent_dim=10**12``: the allocator asked for 2 PB), a ``diverged``
run whose first loss was already ``inf`` (``beta=1e300``, ``loss.sigma=1e-30``), a run that
ran the machine out of memory (``eval.n_samples=1000000``) or one that hung at its end
(``tracker.tensorboard.flush_secs=10**9``). The limits must not refuse what trains: the
values at each limit train to the end (slow tests).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import tiny_with
from typer.testing import CliRunner

from vaesweep.bridge import compose as bridge
from vaesweep.cli import app
from vaesweep.config import ConvConfig, LossConfig, MLPConfig, ResConvConfig
from vaesweep.errors import ConfigError, UserError
from vaesweep.model import build_model
from vaesweep.model.conv import stage_sizes
from vaesweep.model.fit import check_fits, max_stages, parameter_count, parameter_floor
from vaesweep.run import assembly


def _invoke(args: list[str]) -> Any:
    return CliRunner().invoke(app, args)


def _no_run_left(outputs: Path) -> None:
    for folder in (outputs / "runs", outputs / "sweeps"):
        assert not folder.exists() or not any(folder.iterdir()), list(folder.iterdir())


# ------------------------------------------------------------------ model.depth vs image size


@pytest.mark.parametrize(
    ("side", "stages"), [(8, 3), (9, 3), (15, 3), (16, 4), (28, 4), (31, 4), (32, 5), (1024, 10)]
)
def test_max_stages_is_what_the_conv_model_builds(side: int, stages: int) -> None:
    """check_fits accepts every depth the model can build and no other: the deepest one
    builds and reconstructs the image's size, one more stage cannot be built."""
    assert max_stages(side) == stages
    if side > 64:
        return
    shape = (1, side, side)
    model = build_model(ConvConfig(depth=stages, width=4, hidden_dim=8), LossConfig(), shape)
    out, _, _ = model(torch.rand(2, *shape))
    assert out.shape == (2, *shape)
    check_fits(ConvConfig(depth=stages), shape, "digits")
    with pytest.raises(ConfigError, match=f"model.depth={stages + 1} needs images of at least"):
        check_fits(ConvConfig(depth=stages + 1), shape, "digits")


def test_depth_message_names_the_depth_asked_for() -> None:
    """The model's own error said "8 px is too small for 4 stride-2 stages" for depth 5."""
    with pytest.raises(ValueError, match="too small for 5 stride-2 stages \\(at most 3\\)"):
        stage_sizes(8, 5)
    with pytest.raises(ConfigError) as err:
        check_fits(ConvConfig(depth=5), (1, 8, 8), "digits")
    assert str(err.value) == (
        "model.depth=5 needs images of at least 32 px, but data=digits images are 8 px: "
        "use model.depth<=3 (or model.depth=null), or data.image_size=32"
    )
    # build_model says the same in one line on any path that skipped the preflight.
    with pytest.raises(ConfigError, match=r"model\.depth=5 needs images of at least 32 px"):
        build_model(ConvConfig(depth=5), LossConfig(), (1, 8, 8))


def test_only_conv_depth_depends_on_the_image_size() -> None:
    for cfg in (ConvConfig(), ResConvConfig(), MLPConfig(), ConvConfig(depth=1)):
        check_fits(cfg, (1, 8, 8), "digits")
    with pytest.raises(ConfigError, match="are 8x16 px"):
        check_fits(ConvConfig(depth=4), (3, 8, 16), "folder")


def test_depth_beyond_the_largest_image_is_refused_by_show() -> None:
    bridge.compose(["model.depth=10"])
    for depth in ("11", "1000000000000"):
        with pytest.raises(UserError, match=f"model.depth={depth} is invalid: .*model.depth<=10"):
            bridge.compose([f"model.depth={depth}"])


def test_preflight_refuses_a_model_deeper_than_the_data() -> None:
    config = bridge.compose(["model.depth=5"])
    with pytest.raises(ConfigError, match=r"model\.depth=5 needs images of at least 32 px"):
        assembly.preflight(config)
    # A sweep's runs share their data; each run's model is checked against its shape.
    shallow = bridge.compose(["model.depth=2"])
    shape = assembly.preflight(shallow).shape
    assert shape == (1, 8, 8)
    with pytest.raises(ConfigError, match=r"use model\.depth<=3"):
        assembly.check_model(config, shape)
    shapes = bridge.compose(["data=shapes", "model.depth=5"])
    with pytest.raises(ConfigError, match=r"data=shapes images are 16 px: use model\.depth<=4"):
        assembly.check_model(shapes, (3, 16, 16))


@pytest.mark.parametrize(
    "command",
    [
        ["train", "model.depth=5"],
        ["sweep", "model.depth=5,2"],
        ["sweep", "model.depth=2,5"],
        ["sweep", "model.depth=5,2", "--dry-run"],
    ],
)
def test_too_deep_a_model_stops_before_the_run(outputs: Path, command: list[str]) -> None:
    """Before: a run folder, "ValueError: 8 px is too small for 4 stride-2 stages", a
    ``failed`` record and exit code 1; a sweep's grid (``model.depth=2,5``) is checked run by
    run."""
    result = _invoke([*command, *tiny_with()])
    assert result.exit_code == 2, (command, result.output)
    assert "model.depth=5 needs images of at least 32 px" in result.output
    assert "Traceback" not in result.output
    _no_run_left(outputs)


# ------------------------------------------------------------------------- model memory


def test_parameter_floor_never_exceeds_the_count() -> None:
    configs: list[Any] = [
        ConvConfig(),
        ConvConfig(depth=1, width=3, hidden_dim=5, latent_dim=2),
        MLPConfig(),
        MLPConfig(hidden=[7], latent_dim=3),
        ResConvConfig(),
        ResConvConfig(blocks=3, width=5, max_width=4, latent_dim=2),
    ]
    for cfg in configs:
        for shape in ((1, 8, 8), (3, 32, 32)):
            count = parameter_count(cfg, LossConfig("gaussian_learned"), shape)
            real = build_model(cfg, LossConfig("gaussian_learned"), shape)
            assert count == sum(p.numel() for p in real.parameters()), cfg
            assert 0 < parameter_floor(cfg, shape) <= count, (cfg, shape)


@pytest.mark.parametrize(
    ("overrides", "shown"),
    [
        (["model.latent_dim=1000000000000"], "model.latent_dim=1000000000000"),
        # Beyond what torch can describe (int64): refused from the floor, nothing built.
        (["model.latent_dim=100000000000000000000"], "model.latent_dim=1000000000000000"),
        (["model.hidden_dim=1000000000000"], "model.hidden_dim=1000000000000"),
        (["model=mlp", "model.hidden=[1000000000000]"], "model.hidden=[1000000000000]"),
        (["model=resconv", "model.blocks=1000000"], "model.blocks=1000000"),
        (["model.width=1000000000", "model.max_width=1000000000"], "model.width=1000000000"),
    ],
)
def test_a_model_larger_than_memory_is_refused_before_the_run(
    overrides: list[str], shown: str
) -> None:
    """Before: the run existed, then "DefaultCPUAllocator: can't allocate memory" (2 PB)."""
    config = bridge.compose(overrides)
    with pytest.raises(ConfigError) as err:
        assembly.check_memory(config, (1, 8, 8), torch.device("cpu"))
    message = str(err.value)
    assert shown in message and "more than the" in message and "\n" not in message


def test_memory_check_passes_what_trains(monkeypatch: pytest.MonkeyPatch) -> None:
    for overrides in ([], ["model=resconv"], ["model=mlp"], ["model.latent_dim=10000"]):
        assembly.check_memory(bridge.compose(overrides), (3, 64, 64), torch.device("cpu"))
    # Parameters that need more than the device has in all are refused; just less passes.
    config = bridge.compose([])
    need = parameter_count(config.model, config.loss, (1, 8, 8)) * 16
    monkeypatch.setattr(assembly, "device_memory", lambda device: need)
    assembly.check_memory(config, (1, 8, 8), torch.device("cpu"))
    monkeypatch.setattr(assembly, "device_memory", lambda device: need - 1)
    with pytest.raises(ConfigError, match="model=conv with its defaults has"):
        assembly.check_memory(config, (1, 8, 8), torch.device("cpu"))


def test_runs_on_a_cluster_are_not_held_to_this_machines_memory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On a SLURM launcher the preflight runs on the login node, whose RAM says nothing of the
    compute nodes': a model that fits a node was refused there. The runs' models are held to
    REMOTE_MEMORY (more than any node has) instead, so only one that fits nowhere is refused."""
    from vaesweep.commands.sweep_planning import check_data_and_devices

    config = bridge.compose([])
    need = parameter_count(config.model, config.loss, (1, 8, 8)) * 16
    monkeypatch.setattr(assembly, "device_memory", lambda device: need - 1)  # a small login node
    with pytest.raises(ConfigError, match="more than the"):
        assembly.preflight(config)
    assembly.preflight(config, remote=True)
    assembly.check_model(config, (1, 8, 8), remote=True)
    assert check_data_and_devices([config], remote=True) == ([], None)
    with pytest.raises(ConfigError, match="more than the"):
        check_data_and_devices([config])
    huge = bridge.compose(["model.latent_dim=1000000000000"])  # 2 PB: fits no node
    with pytest.raises(ConfigError, match=r"more than any cluster node has \(2 TB at most\)"):
        assembly.check_model(huge, (1, 8, 8), remote=True)
    # The device is not resolved either: a cluster's GPUs are not visible from the login node.
    assembly.preflight(bridge.compose(["train.device=cuda:3"]), remote=True)


def test_train_with_a_model_larger_than_memory_stops_before_the_run(outputs: Path) -> None:
    result = _invoke(["train", "model.latent_dim=1000000000000", "train.epochs=1"])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "more than the" in result.output
    _no_run_left(outputs)


def test_a_gpu_this_machine_lacks_is_refused_before_the_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``train.device=cuda:1`` on a one-GPU machine resolved, and the run failed at its first
    tensor ("invalid device ordinal")."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(UserError) as err:
        assembly.preflight(bridge.compose(["train.device=cuda:1"]))
    assert str(err.value) == (
        "train.device=cuda:1 names GPU 1, but this machine has 1 GPU, cuda:0; "
        "use train.device=cuda (the first) or auto"
    )
    for name in ("cuda", "cuda:0", "cpu"):
        assembly.check_gpu_index(name, torch.device(name))
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    assembly.check_gpu_index("cuda:3", torch.device("cuda:3"))
    with pytest.raises(UserError, match="has 4 GPUs, cuda:0 to cuda:3"):
        assembly.check_gpu_index("cuda:4", torch.device("cuda:4"))


# ------------------------------------------------------------------ numbers float32 cannot hold


REFUSED = [
    # Past float32: these reached training and failed there.
    (["beta=1e300"], "beta=1e+300 is invalid: training computes in float32"),
    (["train.weight_decay=1e300"], "train.weight_decay=1e+300 is invalid: training computes"),
    (["loss.likelihood=laplace", "loss.sigma=1e-300"], "loss.sigma=1e-300 is invalid"),
    (["loss.sigma_lr_scale=1e300"], "loss.sigma_lr_scale=1e+300 is invalid"),
    (["kl=free_bits", "kl.lam=1e300"], "kl.lam=1e+300 is invalid"),
    (["kl=geco", "kl.kappa=1e-300"], "kl.kappa=1e-300 is invalid"),
    (["kl=capacity", "kl.c_max=1e300"], "kl.c_max=1e+300 is invalid"),
    # Within float32, and still an inf loss at the first step or validation.
    (["beta=3e38"], "beta=3e+38 is invalid: must be at most 1e12"),
    (["kl=capacity", "kl.gamma=3e38"], "kl.gamma=3e+38 is invalid: must be at most 1e12"),
    (["kl=capacity", "kl.c_max=3e38"], "kl.c_max=3e+38 is invalid: must be at most 1.7e7 nats"),
    (["kl=free_bits", "kl.lam=3e38"], "kl.lam=3e+38 is invalid: must be at most 1.7e7 nats"),
    (["kl=pi", "kl.target=3e38"], "kl.target=3e+38 is invalid: must be at most 1.7e7 nats"),
    (["kl=pi", "kl.beta_min=1e38", "kl.beta_max=3e38"], "kl.beta_max=3e+38 is invalid"),
    (["kl=geco", "kl.kappa=1.2e-38"], "kl.kappa=1.2e-38 is invalid: the tolerated RMSE of"),
    (["kl=geco", "kl.kappa=1e-7"], "pixels in [0, 1] must lie in [1e-6, 1]"),
    (["kl=geco", "kl.kappa=1e300"], "kl.kappa=1e+300 is invalid"),
    (["kl=geco", "kl.kappa=15"], "15 of 255 grey levels is kl.kappa=0.059"),
    (["kl=geco", "kl.lambda_max=3e38"], "kl.lambda_max=3e+38 is invalid: must be at most 1e12"),
    (
        ["loss.likelihood=gaussian", "loss.sigma=1e-30"],
        "loss.sigma=1e-30 is invalid: must be at least 1e-15",
    ),
    # A segmentation fault starting torch's threads (libgomp) once the run existed.
    (["train.threads=100000"], "train.threads=100000 is invalid: must be at most 4096"),
    # Out of memory drawing samples.png; a tensorboard writer thread that died at its wait.
    (["eval.n_samples=1000000"], "eval.n_samples=1000000 is invalid: samples.png shows at most"),
    (
        ["tracker=tensorboard", "tracker.tensorboard.flush_secs=1000000000"],
        "flush_secs=1000000000 is invalid: must be at most 1,000,000 seconds",
    ),
]


@pytest.mark.parametrize(("overrides", "message"), REFUSED)
def test_values_that_cannot_train_are_refused_by_show(overrides: list[str], message: str) -> None:
    with pytest.raises(UserError) as err:
        bridge.compose(overrides)
    assert message in str(err.value) and "\n" not in str(err.value), str(err.value)


def test_show_refuses_them_with_exit_code_2(outputs: Path) -> None:
    for overrides, _ in REFUSED[:3]:
        result = _invoke(["show", *overrides])
        assert result.exit_code == 2, (overrides, result.output)
        assert "is invalid" in result.output and "Traceback" not in result.output


#: The values at each limit; each composes, and trains to the end (slow test below).
AT_THE_LIMITS = [
    ["beta=1e12"],
    ["beta=1.2e-38"],
    ["loss.likelihood=gaussian", "loss.sigma=1e-15"],
    ["loss.likelihood=laplace", "loss.sigma=1e-15"],
    ["kl=capacity", "kl.gamma=1e12", "kl.c_max=1.7e7"],
    ["kl=free_bits", "kl.lam=1.7e7", "beta=1e12"],
    ["kl=free_bits", "kl.lam=1.7e7", "kl.mode=total"],
    ["kl=geco", "kl.kappa=1e-6", "kl.lambda_max=1e12", "kl.lambda_init=1e12"],
    ["kl=geco", "kl.kappa=1", "kl.lambda_min=1.2e-38"],
    ["kl=pi", "kl.target=1.7e7", "kl.beta_min=1e11", "kl.beta_max=1e12"],
    ["eval.n_samples=10000"],
    ["train.threads=8"],
    ["tracker=tensorboard", "tracker.tensorboard.flush_secs=1000000"],
]


@pytest.mark.parametrize("overrides", AT_THE_LIMITS)
def test_values_at_the_limits_compose(overrides: list[str]) -> None:
    bridge.compose(overrides)


@pytest.mark.slow
@pytest.mark.parametrize("overrides", AT_THE_LIMITS)
def test_values_at_the_limits_train(outputs: Path, overrides: list[str]) -> None:
    if "tracker=tensorboard" in overrides:
        pytest.importorskip("tensorboardX")
    result = _invoke(["train", *tiny_with("train.epochs=1", *overrides)])
    assert result.exit_code == 0, result.output
    (run,) = (outputs / "runs").iterdir()
    assert '"status": "completed"' in (run / "summary.json").read_text()


def test_float32_rule_covers_every_float_field() -> None:
    """Every schema's float fields go through the rule (finite_numbers in __post_init__)."""
    from vaesweep import config

    schemas: list[type] = [
        config.Config,
        config.DataConfig,
        config.LossConfig,
        config.TrainConfig,
        config.EvalConfig,
        *config.MODEL_SCHEMAS.values(),
        *config.KL_SCHEMAS.values(),
    ]
    checked = 0
    for schema in schemas:
        for f in dataclasses.fields(schema):
            if f.type not in ("float", "float | None"):
                continue
            with pytest.raises(ConfigError, match="float32"):
                schema(**{f.name: 1e39})
            checked += 1
    assert checked >= 20
