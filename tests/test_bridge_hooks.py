"""Pins for the private Hydra/joblib internals in vaesweep.bridge.hydra_internals.

An upgrade of hydra-core or joblib that moves or changes one of them fails here, by name,
instead of silently slowing sweeps down or breaking them.
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from vaesweep.bridge import hydra_internals


def test_config_loader_applies_value_overrides_in_place() -> None:
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra.core.override_parser.overrides_parser import OverridesParser

    assert isinstance(
        inspect.getattr_static(ConfigLoaderImpl, "_apply_overrides_to_config"), staticmethod
    )
    cfg = OmegaConf.create({"beta": 1.0, "train": {"epochs": 3}})
    parsed = OverridesParser.create().parse_overrides(["beta=0.1", "train.epochs=5"])
    hydra_internals.apply_value_overrides(parsed, cfg)
    assert cfg.beta == 0.1 and cfg.train.epochs == 5


def test_basic_sweeper_check_is_swapped_and_restored() -> None:
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    assert callable(getattr(BasicSweeper, "validate_batch_is_legal", None))
    before = BasicSweeper.__dict__.get("validate_batch_is_legal")
    with hydra_internals.sweeper_trusts_validation():
        assert BasicSweeper.validate_batch_is_legal(None, [["beta=1"]]) is None  # type: ignore[arg-type]
    assert BasicSweeper.__dict__.get("validate_batch_is_legal") is before


def test_multirun_entry_point_keeps_its_signature() -> None:
    from hydra._internal.hydra import Hydra

    params = inspect.signature(Hydra.multirun).parameters
    assert {"config_name", "task_function", "overrides", "with_log_configuration"} <= set(params)


def test_loky_reusable_executor_is_where_the_release_looks() -> None:
    module = importlib.import_module(hydra_internals.LOKY_MODULE)
    assert hasattr(module, "_executor")
    executor = module.get_reusable_executor(max_workers=1)
    assert executor.submit(int, "7").result() == 7
    assert module._executor is executor
    assert "kill_workers" in inspect.signature(executor.shutdown).parameters
    hydra_internals.release_joblib_workers()
    assert executor._flags.shutdown


def test_basic_sweeper_batches_are_filtered_and_restored() -> None:
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    own = BasicSweeper.__dict__["get_job_batch"]
    sweeper = BasicSweeper(max_batch_size=None)
    sweeper.overrides = [[["beta=0.1"], ["beta=1"]]]
    with hydra_internals.sweeper_launches_only(lambda job: job != ["beta=0.1"]):
        assert sweeper.get_job_batch() == [["beta=1"]]
    assert BasicSweeper.__dict__["get_job_batch"] is own


def test_submitit_job_results_raise_what_the_wrapper_catches() -> None:
    import pytest

    submitit = pytest.importorskip("submitit")
    from submitit.core import core, utils

    assert "results" in core.Job.__dict__
    assert issubclass(utils.UncompletedJobError, Exception)
    assert issubclass(utils.FailedJobError, Exception)
    own = core.Job.__dict__["results"]
    with hydra_internals.submitit_waits_for_every_job() as ended:
        assert core.Job.__dict__["results"] is not own and ended == []
    assert core.Job.__dict__["results"] is own and submitit.Job is core.Job


def test_multirun_starts_from_a_given_composition(tmp_path) -> None:
    """Hydra.multirun composes its config through the loader's load_configuration in MULTIRUN
    mode, and its launcher composes the job from that config's recorded overrides: handed a
    composition (beta=0.25, into ``given/``), the job runs with it, not with the overrides the
    multirun was called with."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    from vaesweep.bridge.compose import CONFIG_NAME, compose_launch, hydra_session

    def own(where: str) -> list[str]:
        return [
            f"hydra.sweep.dir={tmp_path / where}",
            "hydra.sweep.subdir=.",
            "hydra.mode=MULTIRUN",
        ]

    composed, config = compose_launch(["beta=0.25"], own("given"))
    assert config.beta == 0.25
    seen: list[tuple[float, str]] = []

    def task(cfg) -> None:
        seen.append((cfg.beta, HydraConfig.get().runtime.output_dir))

    with hydra_session(), hydra_internals.sweeper_trusts_validation():
        hydra = GlobalHydra.instance().hydra
        assert hydra is not None
        with hydra_internals.multirun_uses_composition(hydra, composed):
            hydra.multirun(CONFIG_NAME, task, ["beta=0.5", *own("called")], False)
        assert "load_configuration" not in vars(hydra.config_loader)  # restored
    assert seen == [(0.25, str(tmp_path / "given"))]


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
def test_resource_trackers_start_ignoring_sighup() -> None:
    """In a fresh process (this one may have its trackers already): both trackers the joblib
    workers share are started, and ignore SIGHUP (bit 1 of /proc/PID/status SigIgn)."""
    import subprocess
    import sys

    code = (
        "import importlib\n"
        "from multiprocessing import resource_tracker as mp\n"
        "from vaesweep.bridge import hydra_internals as h\n"
        "h.trackers_ignore_hangup()\n"
        "loky = importlib.import_module(h.LOKY_TRACKER_MODULE)._resource_tracker\n"
        "for pid in (loky._pid, mp._resource_tracker._pid):\n"
        "    lines = open(f'/proc/{pid}/status').read().splitlines()\n"
        "    print(next(ln.split()[1] for ln in lines if ln.startswith('SigIgn:')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    masks = [int(m, 16) for m in out.stdout.split()]
    assert len(masks) == 2 and all(m & 1 for m in masks), out.stdout  # SIGHUP is signal 1


def test_a_failed_scheduler_command_is_raised_not_printed(
    capfd: pytest.CaptureFixture[str],
) -> None:
    """submitit's CommandFunction prints a failed command's stderr, then raises it; inside the
    hook only the error carries it, and the launch turns it into one line naming the fix."""
    utils = pytest.importorskip("submitit.core.utils")
    from vaesweep.bridge.launch import _refusal

    script = "echo 'sbatch: error: Invalid generic resource (gres) specification' >&2; exit 1"
    failing = utils.CommandFunction(["sh", "-c", script], verbose=False)  # as sbatch is run
    with (
        hydra_internals.scheduler_errors_unprinted(),
        pytest.raises(utils.FailedJobError) as raised,
    ):
        failing()
    assert capfd.readouterr().err == ""
    assert "print" not in vars(utils)  # the builtin is back
    refused = _refusal(raised.value)
    assert refused is not None
    assert str(refused) == (
        "the scheduler refused the jobs (Invalid generic resource (gres) specification); "
        "on a partition without GPUs set hydra.launcher.gpus_per_node=null"
    )
    assert _refusal(RuntimeError("sbatch: error: gres")) is None  # only submitit's own error
    with pytest.raises(utils.FailedJobError):
        failing()  # outside the hook submitit prints as it always did
    assert "gres" in capfd.readouterr().err
