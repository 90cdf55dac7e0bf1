"""Shared fixtures: tiny, fast run settings and an isolated outputs/ folder per test."""

from __future__ import annotations

import fnmatch
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from vaesweep.cpus import spin_briefly

spin_briefly()  # as the command line does, before torch loads: test workers share the cores

from vaesweep import testhooks  # noqa: E402
from vaesweep.training.trainer import Trainer  # noqa: E402

# A suite started in the background by a non-interactive shell (`make test &`) inherits
# SIGINT ignored, and so would every `vaesweep` it starts: the Ctrl-C tests would wait for a
# process that cannot be interrupted. Catching SIGINT here gives the children (after exec)
# the default disposition, so Python in them raises KeyboardInterrupt as at a terminal.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

#: Overrides that make a run take about a second on 2 cores (digits, 2 epochs, small nets).
TINY = [
    "train.epochs=2",
    "data.limit=400",
    "model.width=8",
    "model.hidden_dim=32",
    "model.latent_dim=4",
    "eval.iwae_samples=5",
    "eval.iwae_images=50",
    "eval.mi_images=100",
    "eval.grad_batches=1",
    "eval.noise_draws=1",
    "eval.grad_draws=1",
    "train.progress=off",
]


def tiny_with(*extra: str) -> list[str]:
    """:data:`TINY` with ``extra`` overrides in place of its own for the same keys: the
    command line refuses a key given twice."""
    keys = {o.split("=", 1)[0] for o in extra}
    return [o for o in TINY if o.split("=", 1)[0] not in keys] + list(extra)


@pytest.fixture
def outputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh outputs root; the working directory is the test's tmp dir."""
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "outputs"
    monkeypatch.setenv("VAESWEEP_OUTPUTS", str(root))
    monkeypatch.setenv("VAESWEEP_CACHE_DIR", str(tmp_path / "cache"))
    return root


@pytest.fixture
def tiny() -> list[str]:
    return list(TINY)


#: The test being run (set before its fixtures, module-scoped ones included, are set up).
_current: pytest.Item | None = None


def _forbidden_reason() -> str | None:
    if _current is None or _current.get_closest_marker("slow"):
        return None
    return f"{_current.nodeid} trains a model: mark it @pytest.mark.slow"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """Keep the fast tier fast: a test not marked ``slow`` fails as soon as it trains.

    This covers its setup too, so a module-scoped fixture that trains fails the first test
    not marked ``slow`` that needs it. In this process every run trains through
    ``Trainer.fit`` (patched on the class below, so any import style is caught); subprocesses
    inherit ``VAESWEEP_TEST_FORBID_TRAINING``, which makes their runs fail after one epoch
    (``vaesweep/testhooks.py``). Not covered: joblib workers started by an earlier test and
    reused (they keep the environment they were started with) and hand-written training
    loops in tests (mark those by hand).
    """
    global _current
    _current = item
    saved = os.environ.pop(testhooks.FORBID_ENV, None)
    reason = _forbidden_reason()
    if reason:
        os.environ[testhooks.FORBID_ENV] = reason
    try:
        yield
    finally:
        _current = None
        os.environ.pop(testhooks.FORBID_ENV, None)
        if saved is not None:
            os.environ[testhooks.FORBID_ENV] = saved


@pytest.fixture(autouse=True, scope="session")
def _training_only_in_slow_tests() -> Iterator[None]:
    fit = Trainer.fit

    def guarded_fit(self: Trainer, *args: Any, **kwargs: Any) -> Any:
        reason = _forbidden_reason()
        if reason:
            pytest.fail(reason, pytrace=False)
        return fit(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Trainer, "fit", guarded_fit)
        patch.delenv(testhooks.HOLD_ENV, raising=False)  # holds are only for subprocesses
        yield


#: Longest wait for a subprocess to reach a state or to exit: generous, so a machine many
#: times slower than an idle laptop still passes; the limits only end a test that would hang.
PATIENCE_S = 600


class Hold:
    """A ``VAESWEEP_TEST_HOLD`` folder: runs started with :attr:`env` pause after each
    epoch until released (see ``vaesweep/testhooks.py``)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    @property
    def env(self) -> dict[str, str]:
        return {testhooks.HOLD_ENV: str(self.folder)}

    def next_marker(self, proc: subprocess.Popen[Any]) -> str:
        """Wait until a run is held and return its marker's name (``<run>.epoch<N>``)."""
        deadline = time.monotonic() + PATIENCE_S
        while True:
            held = sorted(p.name for p in self.folder.glob("*.epoch*"))
            if held:
                return held[0]
            assert proc.poll() is None, "the command ended before it was held"
            assert time.monotonic() < deadline, "the command was never held"
            time.sleep(0.05)

    def release(self, marker: str) -> None:
        (self.folder / marker).unlink()


@pytest.fixture
def hold(tmp_path: Path) -> Hold:
    return Hold(tmp_path / "hold")


@pytest.fixture
def interrupt_cli(
    tmp_path: Path, hold: Hold
) -> Iterator[Callable[[list[str], str], tuple[int, str]]]:
    """Run ``python -m vaesweep ARGS`` in ``tmp_path`` with runs held after every epoch; send
    Ctrl-C (SIGINT to its process group) while the run is held at marker ``at``
    (``<run name>.epoch<N>``, a glob pattern) after releasing every earlier hold, and return
    (exit code, output). No race: the run cannot finish before the signal arrives."""
    procs: list[subprocess.Popen[Any]] = []

    def run(args: list[str], at: str) -> tuple[int, str]:
        env = {
            **os.environ,
            **hold.env,
            "VAESWEEP_OUTPUTS": str(tmp_path / "out"),
            "PYTHONUNBUFFERED": "1",
        }
        log = tmp_path / "interrupted.log"
        with open(log, "w") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "vaesweep", *args],
                cwd=tmp_path,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
            )
        procs.append(proc)
        while not fnmatch.fnmatch(marker := hold.next_marker(proc), at):
            hold.release(marker)
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=PATIENCE_S)
        return proc.returncode, log.read_text()

    yield run
    for proc in procs:  # a failed test must not leave a held process behind
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(autouse=True)
def _no_handlers_on_closed_streams() -> Iterator[None]:
    """CliRunner closes the streams it lends a command; a logging handler a command attached
    to one must not outlive the test, or a later test's log line prints a logging error."""
    yield
    import logging

    loggers = [logging.getLogger(), *map(logging.getLogger, list(logging.root.manager.loggerDict))]
    for log in loggers:
        for handler in list(getattr(log, "handlers", [])):
            stream = getattr(handler, "stream", None)
            if stream is not None and getattr(stream, "closed", False):
                log.removeHandler(handler)
