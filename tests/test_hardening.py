"""Issue 12, "Hardening": each defect found by using the tool hard has a test here.

Tests go through the CLI surface (Typer's runner on :data:`vaesweep.cli.app`, or a real
subprocess) so they hold whatever module the code lives in. Tests that train are ``slow`` and
tiny; interrupt tests wait for a file or a line, never for a time.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from vaesweep import tensorfile
from vaesweep.cli import app
from vaesweep.record.sweep_lock import is_locked
from vaesweep.testing.fabricate import fabricate_run, fabricate_sweep

#: Longest wait for a subprocess to reach a state: generous, it only ends a test that hangs.
PATIENCE_S = 600


def _invoke(args: list[str]) -> Any:
    return CliRunner().invoke(app, args)


# ----------------------------------------------------------------------------- 1. report


def _edit_record(run: Path, final: dict[str, Any], csv: dict[str, Any] | None = None) -> None:
    """Overwrite final validation values in summary.json and the last rows of metrics.csv.

    ``None`` deletes the key (a missing value); floats are stored as Python's json writes them
    (``NaN``/``Infinity`` tokens included), the way a foreign or damaged record could hold them.
    """
    path = run / "summary.json"
    s = json.loads(path.read_text())
    for split in ("train", "val"):
        row = s["final"][split]
        for k, v in final.items():
            if v is None:
                row.pop(k, None)
            else:
                row[k] = v
    if "kl" in final and final["kl"] is not None and s.get("kl_per_dim"):
        s["kl_per_dim"] = [final["kl"] / len(s["kl_per_dim"])] * len(s["kl_per_dim"])
    path.write_text(json.dumps(s))
    m = pd.read_csv(run / "metrics.csv")
    for k, v in (csv if csv is not None else final).items():
        if k in m.columns:
            m.loc[m.index[-2:], k] = math.nan if v is None else v
    m.to_csv(run / "metrics.csv", index=False)


HOSTILE = {
    # vaesweep train train.lr=10 beta=0.1: completed with a KL of 5e9 nats.
    "huge-kl": {"kl": 5.248e9, "elbo": -5.248e9, "loss": 5.3e8, "mi": 5.2},
    "extreme": {"kl": 1e308, "sse": 1e300, "mse": 1e297, "elbo": -1e308, "sigma2_eff": 5e-324},
    "tiny": {"kl": 1e-300, "sse": 1e-300, "mse": 0.0, "psnr": math.inf, "beta_calib": math.inf},
    "negative": {"kl": -1e10, "sse": -5.0, "mse": -1e-3, "active_units": -3, "sigma2_eff": -1},
    "non-finite": {"kl": math.inf, "sse": math.nan, "elbo": -math.inf, "recon": math.inf},
    "missing": dict.fromkeys(("kl", "sse", "mse", "elbo", "recon", "nll", "sigma2_eff")),
}


@pytest.fixture(scope="module")
def hostile_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hostile") / "sweep"
    betas = [0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0]
    dirs = fabricate_sweep(root, betas, images=False)
    for run, values in zip(dirs[1:], HOSTILE.values(), strict=False):
        _edit_record(run, values)
    return root


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["html", "md"])
def test_report_survives_extreme_and_missing_values(hostile_sweep: Path, fmt: str) -> None:
    """Defect 1: one run with a huge but finite KL crashed the report for the whole sweep."""
    out = hostile_sweep / f"report-{fmt}"
    result = _invoke(["report", str(hostile_sweep), "--format", fmt, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    summary = pd.read_csv(out / "summary.csv")
    assert len(summary) == 7
    page = (out / f"index.{fmt}").read_text()
    assert "beta=0.03" in page  # the huge-KL run is listed, not dropped
    usable = summary.set_index("run")["usable"]
    assert usable["beta=0.01"] and usable["beta=0.03"]
    for name in ("beta=0.1", "beta=1", "beta=3", "beta=10"):  # extreme, negative, inf, missing
        assert not usable[name], name
    assert "its final KL (-1e+10 nats) is negative" in page
    assert "outside the float32 range" in page


@pytest.mark.slow
def test_report_survives_a_real_huge_kl_run(tmp_path: Path) -> None:
    """The same record shape as the reported run: one completed run, KL about 5e9 nats."""
    run = tmp_path / "run"
    fabricate_run(run, beta=0.1, images=False)
    _edit_record(run, HOSTILE["huge-kl"])
    result = _invoke(["report", str(run)])
    assert result.exit_code == 0, result.output
    assert (run / "report" / "index.html").is_file()


@pytest.mark.slow
def test_report_marks_what_it_could_not_compute(tmp_path: Path) -> None:
    run = tmp_path / "run"
    fabricate_run(run, beta=0.1, images=False)
    s = json.loads((run / "summary.json").read_text())
    s["data"]["pca"] = {"eigenvalues": [1e308, math.inf, "x"], "total_variance": 1e308}
    (run / "summary.json").write_text(json.dumps(s))
    result = _invoke(["report", str(run)])
    assert result.exit_code == 0, result.output


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
    "train.progress=off",
]


@pytest.mark.slow
def test_exploding_kl_is_recorded_as_diverged(outputs: Path) -> None:
    """Defect 1: train.lr=10 ended 'completed' with a KL of about 5e9 nats."""
    result = _invoke(["train", "train.lr=10", "beta=0.1", *TINY, "--name", "explode"])
    assert result.exit_code == 1, result.output
    (run,) = (outputs / "runs").iterdir()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "diverged"
    assert summary["error_kind"] == "numeric"
    assert "running minimum" in summary["error"]
    assert summary["convergence"]["converged"] is None  # it blew up: not "converged"
    # The report reads it as a run that diverged, with the reason.
    result = _invoke(["report", str(run)])
    assert result.exit_code == 0, result.output
    assert "running minimum" in (run / "report" / "index.html").read_text()


def test_divergence_rule_counts_growth_over_the_running_minimum() -> None:
    from vaesweep.training.divergence import DivergenceGuard

    guard = DivergenceGuard.for_model(latent_dim=4, n_pixels=64)
    # A KL that starts near zero and grows to a normal size is training, not divergence.
    for kl in (0.01, 0.5, 3.0, 20.0, 60.0, 3000.0):
        assert guard.check(recon=40.0 - kl / 100, kl=kl) is None
    why = guard.check(recon=30.0, kl=5e9)
    assert why is not None and "KL grew to 5e+09" in why and "running minimum (0.01" in why
    guard = DivergenceGuard.for_model(latent_dim=4, n_pixels=64)
    assert guard.check(recon=-500.0, kl=5.0) is None  # a density's NLL can be negative
    assert guard.check(recon=-450.0, kl=5.0) is None
    assert "reconstruction term" in (guard.check(recon=6e5, kl=5.0) or "")


def test_divergence_rule_ignores_a_kl_that_is_not_in_the_objective() -> None:
    """beta_t = 0 (beta=0, a schedule at its zero): the KL may grow by any factor; it counts
    again once weighted, measured from the weighted batches only; the reconstruction term
    always counts. A capacity run weighs its KL although its logged beta_t is NaN."""
    from vaesweep.config import CapacityKL, ConstantKL
    from vaesweep.control import RunShape, build_control
    from vaesweep.training.divergence import DivergenceGuard

    guard = DivergenceGuard.for_model(latent_dim=4, n_pixels=64)
    for kl in (0.01, 50.0, 5e4, 5e9):  # a free KL growing 1e11-fold
        assert guard.check(recon=40.0, kl=kl, kl_weighted=False) is None
    assert guard.check(recon=40.0, kl=5e9) is None  # its first weighted batch: no history
    assert guard.check(recon=40.0, kl=6e3) is None  # pulled down again, as a cycle does
    why = guard.check(recon=40.0, kl=1e8)
    assert why is not None and "running minimum (6000" in why
    assert "reconstruction term" in (guard.check(recon=6e5, kl=1.0, kl_weighted=False) or "")

    shape = RunShape(10, 100, 64, 4)
    assert not build_control(ConstantKL(), 0.0, shape).kl_weighted(0)
    assert build_control(ConstantKL(), 0.1, shape).kl_weighted(0)
    capacity = build_control(CapacityKL(), 1.0, shape)
    capacity.load_state_dict({"kl_ema": 0.0, "next_step": 0})  # held at its capacity
    assert math.isnan(capacity.beta_t(0)) and capacity.kl_weighted(0)


# ----------------------------------------------------------------------------- 5. CIFAR-10


class _Payload:
    """Unpickling this runs ``os.system`` (any pickle can name any callable)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        import os

        return (os.system, (f"touch {self.marker}",))


def _write_cifar(folder: Path, poison: Any = None) -> None:
    import pickle

    import numpy as np

    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i, name in enumerate([*(f"data_batch_{k}" for k in range(1, 6)), "test_batch"]):
        batch = {
            b"batch_label": f"batch {i}".encode(),
            b"labels": [int(x) for x in rng.integers(0, 10, 3)],
            b"data": rng.integers(0, 256, (3, 3072), dtype=np.uint8),
            b"filenames": [f"img_{i}_{j}.png".encode() for j in range(3)],
        }
        if poison is not None and name == "data_batch_3":
            batch[b"batch_label"] = poison
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))


@pytest.mark.parametrize("protocol", [2, 5])
def test_cifar_batches_with_numpy_arrays_still_load(tmp_path: Path, protocol: int) -> None:
    import pickle

    import numpy as np

    from vaesweep.config import DataConfig
    from vaesweep.data.cifar import load_cifar10

    _write_cifar(tmp_path / "cifar-10-batches-py")
    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    batch = pickle.loads(path.read_bytes())
    batch[b"labels"] = [np.int64(1), 2, 3]  # numpy integers, as some re-packed batches hold
    path.write_bytes(pickle.dumps(batch, protocol=protocol))
    raw = load_cifar10(DataConfig(name="cifar10", root=str(tmp_path)))
    assert raw.train.images.shape == (15, 3, 32, 32)
    assert raw.test is not None and raw.test.labels.tolist() == [1, 2, 3]


def test_malicious_cifar_batch_does_not_run(tmp_path: Path, outputs: Path) -> None:
    """Defect 5: opening a CIFAR-10 folder ran any code hidden in its batch files."""
    from vaesweep.config import DataConfig
    from vaesweep.data.cifar import load_cifar10
    from vaesweep.errors import UserError

    marker = tmp_path / "pwned"
    root = tmp_path / "data"
    _write_cifar(root / "cifar-10-batches-py", poison=_Payload(marker))
    with pytest.raises(UserError) as err:
        load_cifar10(DataConfig(name="cifar10", root=str(root)))
    assert not marker.exists()
    message = str(err.value)
    assert "data_batch_3" in message and "posix.system" in message and "\n" not in message
    result = _invoke(["train", "data=cifar10", f"data.root={root}", "train.epochs=1"])
    assert result.exit_code == 2, result.output
    assert not marker.exists()


# ----------------------------------------------------------------------------- 11. smaller


@pytest.mark.slow
@pytest.mark.parametrize("name", ["a`<img src=x onerror=alert(1)>`b", "``x", "tick`"])
def test_backtick_in_a_folder_name_stays_inside_its_code_span(tmp_path: Path, name: str) -> None:
    from markdown_it import MarkdownIt

    run = tmp_path / name
    fabricate_run(run, beta=0.1, images=False)
    out = tmp_path / "md"
    result = _invoke(["report", str(run), "--format", "md", "--out", str(out)])
    assert result.exit_code == 0, result.output
    html = MarkdownIt("commonmark").render((out / "index.md").read_text())
    assert "<img src=x" not in html  # the name is text in a code span, never a tag
    code = next(line for line in html.splitlines() if "Read from" in line)
    assert "<code>" in code and name.replace("<", "&lt;").replace(">", "&gt;") in code


# ----------------------------------------------------------------------------- 2, 3. --jobs


def test_jobs_capped_at_the_number_of_runs_and_absurd_values_refused() -> None:
    """Defect 2: --jobs 12 on a 2-run sweep started 12 workers; --jobs 1000 ran 280 processes."""
    from vaesweep.commands.launching import LaunchOptions, launcher_overrides

    extra, name, _ = launcher_overrides(LaunchOptions("basic", 12), 2, [])
    assert name == "joblib" and "hydra.launcher.n_jobs=2" in extra
    result = _invoke(["sweep", "beta=0.1,1", "--jobs", "1000"])
    assert result.exit_code == 2
    assert "--jobs 1000" in result.output and len(result.output.strip().splitlines()) <= 2
    assert "beta" not in result.output.split("Error")[0]  # refused before the run table


def test_more_jobs_than_cores_is_a_warning(outputs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vaesweep.commands import launching, sweep_planning

    for module in (launching, sweep_planning):
        monkeypatch.setattr(module, "usable_cpus", lambda: 1)
    result = _invoke(["sweep", "beta=0.1,1", "--jobs", "2", "--no-stack", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "note: --jobs 2 trains 2 runs at once on 1 cores" in result.output
    result = _invoke(["sweep", "beta=0.1,1", "--jobs", "1", "--dry-run"])
    assert "note: --jobs" not in result.output


@pytest.mark.slow
def test_resume_keeps_the_sweeps_launcher_and_jobs(outputs: Path) -> None:
    """Defect 3: --resume trained with the basic launcher and rewrote sweep.json to it."""
    # --no-stack: the two runs are two jobs (stacked, they would be one job in this process).
    result = _invoke(["sweep", "beta=0.1,1", *TINY, "--jobs", "2", "--no-stack", "--name", "s"])
    assert result.exit_code == 0, result.output
    sweep = outputs / "sweeps" / "s"
    assert json.loads((sweep / "sweep.json").read_text())["launcher"] == "joblib"
    result = _invoke(["sweep", "--resume", str(sweep)])
    assert result.exit_code == 0, result.output
    assert "--launcher joblib (stored in the sweep) and --jobs 2 (stored" in result.output
    stored = json.loads((sweep / "sweep.json").read_text())
    assert (stored["launcher"], stored["jobs"]) == ("joblib", 2)
    result = _invoke(["sweep", "--resume", str(sweep), "--launcher", "basic", "--jobs", "1"])
    assert result.exit_code == 0, result.output
    assert "--launcher basic (given) and --jobs 1 (given)" in result.output


# ----------------------------------------------------------------------------- 4. --name


@pytest.mark.parametrize(
    ("command", "name"),
    [
        ("sweep", "../../x"),
        ("sweep", "/abs/elsewhere"),
        ("train", "/../../../x"),
        ("train", ".."),
        ("sweep", "a\nb"),
        ("train", "tab\there"),
    ],
)
def test_name_is_one_path_component(outputs: Path, command: str, name: str) -> None:
    """Defect 4: --name wrote the sweep (lock, runs, report) outside outputs/."""
    extra = ["beta=0.1,1"] if command == "sweep" else ["train.epochs=1"]
    result = _invoke([command, *extra, "--name", name])
    assert result.exit_code == 2, result.output
    assert "--name" in result.output and "one folder name" in result.output
    assert not (outputs.parent / "x").exists() and not outputs.exists()


# ----------------------------------------------------------------------------- 6. outputs


def test_outputs_naming_a_file_is_one_line(tmp_path: Path, outputs: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    result = _invoke(["train", "train.epochs=1", "--outputs", str(afile)])
    assert result.exit_code == 2, result.output
    assert "--outputs" in result.output and "is a file" in result.output
    assert "Traceback" not in result.output


def test_outputs_variable_naming_a_file_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    afile = tmp_path / "afile"
    afile.write_text("x")
    monkeypatch.setenv("VAESWEEP_OUTPUTS", str(afile / "sub"))
    for args in (["train", "train.epochs=1"], ["sweep", "beta=0.1,1"]):
        result = _invoke(args)
        assert result.exit_code == 2, result.output
        assert "VAESWEEP_OUTPUTS=" in result.output and "is a file" in result.output


@pytest.mark.skipif(
    hasattr(__import__("os"), "geteuid") and __import__("os").geteuid() == 0,
    reason="root may write anywhere: permissions cannot be tested as root",
)
def test_unwritable_outputs_and_read_only_sweep(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    result = _invoke(["train", "train.epochs=1", "--outputs", str(locked / "out")])
    assert result.exit_code == 2 and "not writable" in result.output, result.output
    sweep = tmp_path / "ro"
    fabricate_sweep(sweep, [0.1], images=False)
    sweep.chmod(0o555)
    result = _invoke(["sweep", "--resume", str(sweep)])
    assert result.exit_code == 2 and "not writable" in result.output, result.output


# ----------------------------------------------------------------------------- 8. preflight


def _no_run_left(outputs: Path) -> None:
    runs = outputs / "runs"
    assert not runs.exists() or not any(runs.iterdir()), list(runs.iterdir())


@pytest.mark.parametrize(
    "case",
    [
        "empty-folder",
        "undecodable-folder",
        # These two also go through every launcher (submitit's processes): seconds each.
        pytest.param("limit-1", marks=pytest.mark.slow),
        "missing-mnist",
        pytest.param("cuda", marks=pytest.mark.slow),
    ],
)
def test_bad_data_or_device_stops_before_the_run_directory(
    tmp_path: Path, outputs: Path, case: str
) -> None:
    """Defect 8: errors found after the run folder existed left a `failed` record behind."""
    import torch

    if case == "cuda" and torch.cuda.is_available():
        pytest.skip("a GPU is visible here")
    folder = tmp_path / "images"
    folder.mkdir()
    if case == "undecodable-folder":
        (folder / "a.png").write_bytes(b"not a png at all")
        (folder / "b.jpg").write_bytes(b"\xff\xd8 broken")
    overrides = {
        "empty-folder": ["data=folder", f"data.path={folder}"],
        "undecodable-folder": ["data=folder", f"data.path={folder}"],
        "limit-1": ["data.limit=1"],
        "missing-mnist": ["data=mnist", f"data.root={tmp_path / 'nowhere'}"],
        "cuda": ["train.device=cuda"],
    }[case]
    commands = [["train"], ["sweep", "seed=0,1"]]
    if case in ("limit-1", "cuda"):
        # Every launcher, not only runs in this process: parallel workers and submitit's
        # processes too (the check is the same for every kind of bad input).
        commands += [
            ["train", "--launcher", "submitit_local"],
            ["sweep", "seed=0,1", "--jobs", "2"],
            ["sweep", "seed=0,1", "--launcher", "submitit_local"],
        ]
    for command in commands:
        result = _invoke([*command, *overrides, "train.epochs=1"])
        assert result.exit_code == 2, (command, result.output)
        assert "Traceback" not in result.output
    _no_run_left(outputs)
    sweeps = outputs / "sweeps"
    assert not sweeps.exists() or not any(sweeps.iterdir())


# ----------------------------------------------------------------------------- 7, 9. signals


def _processes_with(env_entry: str) -> list[int]:
    """Pids of live processes whose environment holds ``env_entry`` (a test's own hold)."""
    import os

    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if env_entry.encode() in f.read().split(b"\0"):
                    with open(f"/proc/{entry}/stat") as s:
                        if s.read().split()[2] != "Z":
                            pids.append(int(entry))
        except OSError:
            continue
    return pids


def _start(args: list[str], tmp_path: Path, hold: Any) -> Any:
    import os
    import subprocess
    import sys

    env = {
        **os.environ,
        **hold.env,
        "VAESWEEP_OUTPUTS": str(tmp_path / "out"),
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("VAESWEEP_TEST_FORBID_TRAINING", None)
    log = open(tmp_path / "run.log", "w")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(
        [sys.executable, "-m", "vaesweep", *args],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _reap(proc: Any) -> None:
    """Kill what is left of a test's command (its process group): a failed assertion must
    not leave workers training."""
    import os
    import signal

    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _wait_for(predicate: Any, proc: Any, what: str) -> None:
    import time

    deadline = time.monotonic() + PATIENCE_S
    while not predicate():
        assert proc is None or proc.poll() is None, f"the command ended before {what}"
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc")
def test_sigterm_stops_workers_marks_runs_interrupted_and_locks_runs(
    tmp_path: Path, hold: Any
) -> None:
    """Defects 7 and 9: SIGTERM left joblib workers training, runs `running` for ever, and
    `train --resume` of a run inside a running sweep was accepted."""
    import os
    import signal

    tiny = [o for o in TINY if not o.startswith("train.epochs")] + ["train.epochs=3"]
    args = ["sweep", "beta=0.1,1", *tiny, "--jobs", "2", "--no-stack", "--name", "t"]
    proc = _start(args, tmp_path, hold)
    sweep = tmp_path / "out" / "sweeps" / "t"
    try:
        _wait_for(lambda: len(list(hold.folder.glob("*.epoch1"))) == 2, proc, "both runs held")
        # Defect 9: the run is training inside a locked sweep, and each worker holds its own
        # run's lock (which outlives a sweep driver that is gone, as a cluster's jobs do).
        assert is_locked(sweep / "beta=0.1") and is_locked(sweep / "beta=1")
        result = _invoke(["train", "--resume", str(sweep / "beta=0.1")])
        assert result.exit_code == 2 and "in use by another vaesweep" in result.output
        assert "pid " in result.output  # names the holder
        os.kill(proc.pid, signal.SIGTERM)  # the main process only, as a scheduler sends it
        proc.wait(timeout=600)
    finally:
        _reap(proc)
    out = (tmp_path / "run.log").read_text()
    assert proc.returncode == 130, out
    assert "vaesweep sweep --resume" in out and "Traceback" not in out
    entry = f"VAESWEEP_TEST_HOLD={hold.folder}"
    _wait_for(lambda: not _processes_with(entry), None, "the workers stopped")
    for run in ("beta=0.1", "beta=1"):
        assert json.loads((sweep / run / "summary.json").read_text())["status"] == "interrupted"


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc")
def test_sighup_to_the_group_is_as_clean_as_sigterm(tmp_path: Path, hold: Any) -> None:
    """A closed terminal (SIGHUP to the process group) killed loky's resource tracker, which
    ignores only SIGINT and SIGTERM: stderr filled with its relaunched copy's KeyErrors."""
    import os
    import signal

    args = ["sweep", "beta=0.1,1", *TINY, "--jobs", "2", "--no-stack", "--name", "h"]
    proc = _start(args, tmp_path, hold)
    sweep = tmp_path / "out" / "sweeps" / "h"
    try:
        _wait_for(lambda: len(list(hold.folder.glob("*.epoch1"))) == 2, proc, "both runs held")
        os.killpg(proc.pid, signal.SIGHUP)
        proc.wait(timeout=PATIENCE_S)
        entry = f"VAESWEEP_TEST_HOLD={hold.folder}"
        _wait_for(lambda: not _processes_with(entry), None, "the workers stopped")
    finally:
        _reap(proc)
    out = (tmp_path / "run.log").read_text()
    assert proc.returncode == 130, out
    for noise in ("Traceback", "KeyError", "resource_tracker", "Warning"):
        assert noise not in out, out
    for run in ("beta=0.1", "beta=1"):
        assert json.loads((sweep / run / "summary.json").read_text())["status"] == "interrupted"


@pytest.mark.slow
def test_single_run_is_locked_while_it_trains(tmp_path: Path, hold: Any) -> None:
    """Defect 9: `train --resume RUN` was accepted while RUN was still training."""
    proc = _start(["train", *TINY, "--name", "r"], tmp_path, hold)
    try:
        _wait_for(lambda: any(hold.folder.glob("*.epoch1")), proc, "the run is held")
        (run,) = (tmp_path / "out" / "runs").iterdir()
        result = _invoke(["train", "--resume", str(run)])
        assert result.exit_code == 2, result.output
        assert "run" in result.output and "in use by another vaesweep" in result.output
        (hold.folder / "release").touch()
        assert proc.wait(timeout=600) == 0, (tmp_path / "run.log").read_text()
    finally:
        _reap(proc)


# ----------------------------------------------------------------------------- 11. smaller


@pytest.mark.parametrize(
    "override", ["hydra.run.dir=/tmp/elsewhere", "hydra.sweep.dir=/tmp/x", "hydra.sweep.subdir=y"]
)
def test_hydra_output_dirs_are_refused_with_a_pointer(outputs: Path, override: str) -> None:
    for command in (["train"], ["sweep", "beta=0.1,1"], ["show"]):
        result = _invoke([*command, override])
        assert result.exit_code == 2, result.output
        assert "--outputs" in result.output and "--name" in result.output


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b'name: digits\nx: !!python/object/apply:os.system ["touch PWNED"]\n', "not allowed"),
        (b"name: [digits\n  bad: :\n", "is not valid YAML"),
        (b"name: d\xe9\xff\n", "is not UTF-8"),
    ],
)
def test_bad_config_dir_yaml_is_one_line_naming_the_file(
    tmp_path: Path, outputs: Path, content: bytes, expected: str
) -> None:
    conf = tmp_path / "conf" / "data"
    conf.mkdir(parents=True)
    (conf / "mine.yaml").write_bytes(content)
    for command in (["show"], ["sweep", "beta=0.1,1", "--dry-run"]):
        result = _invoke([*command, "data=mine", "--config-dir", str(tmp_path / "conf")])
        assert result.exit_code == 2, result.output
        assert "mine.yaml" in result.output and expected in result.output
        assert "Traceback" not in result.output
    assert not (tmp_path / "PWNED").exists()


def test_unparsable_override_is_named(outputs: Path) -> None:
    result = _invoke(["sweep", "beta=range(", "--dry-run"])
    assert result.exit_code == 2 and "'beta=range('" in result.output, result.output


def test_wrong_launcher_or_taken_name_fails_before_the_run_table(outputs: Path) -> None:
    result = _invoke(["sweep", "beta=0.1,1", "--launcher", "nonexistent"])
    assert result.exit_code == 2 and "nonexistent" in result.output
    assert "beta=0.1" not in result.output  # no run table first
    fabricate_sweep(outputs / "sweeps" / "taken", [0.1, 1.0], images=False)
    result = _invoke(["sweep", "beta=0.1,1", "--name", "taken"])
    assert result.exit_code == 2 and "already holds a sweep" in result.output
    assert "beta=0.1 " not in result.output


def test_lock_names_a_holder_that_has_just_taken_it(tmp_path: Path) -> None:
    """Two sweeps started together: the loser waits for the holder's details."""
    import os

    from vaesweep.errors import UserError
    from vaesweep.record.sweep_lock import SweepLock

    with SweepLock(tmp_path), pytest.raises(UserError, match=rf"pid {os.getpid()} on "):
        SweepLock(tmp_path).acquire()


def test_long_run_names_keep_whole_pairs() -> None:
    from vaesweep.record.run_names import run_name

    overrides = [f"model.k{i}={'v' * 20}" for i in range(10)]
    name = run_name(overrides, [])
    assert len(name) <= 150
    pairs = name.split(",")
    assert all(p in set(overrides) for p in pairs[:-1])  # no pair cut mid-key
    assert run_name([*overrides[:-1], "model.k9=other"], []) != name  # still unique


def test_printed_commands_are_shell_quoted(tmp_path: Path) -> None:
    from rich.console import Console

    from vaesweep.commands.terminal_tables import print_sweep

    console = Console(record=True, width=200)
    odd = tmp_path / "my sweep $(touch PWNED)"
    print_sweep(console, [], [], odd)
    text = console.export_text()
    assert f"vaesweep report '{odd}'" in text


@pytest.mark.skipif(
    not Path("/usr/share/datasets/fashion-mnist").is_dir(),
    reason="Debian's dataset-fashion-mnist is not installed",
)
def test_fallback_to_the_system_fashion_mnist_is_said(tmp_path: Path, outputs: Path) -> None:
    missing = tmp_path / "nowhere"
    result = _invoke(
        ["sweep", "data=fashion_mnist", f"data.root={missing}", "beta=0.1,1", "--dry-run"]
    )
    assert result.exit_code == 0, result.output
    assert f"note: data.root={missing}: none of " in result.output
    assert "holds any of its IDX files; using" in result.output


def test_full_disk_names_the_folder(outputs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    from vaesweep.commands import sweep as sweep_command

    def full(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(outputs / "sweeps" / "s"))

    monkeypatch.setattr(sweep_command, "sweep", full)
    result = _invoke(["sweep", "beta=0.1,1", "--name", "s"])
    assert result.exit_code == 2, result.output
    assert "No space left on device" in result.output and str(outputs / "sweeps") in result.output


# ------------------------------------- found on the real SLURM cluster, and on every launcher


def test_driver_added_settings_never_name_a_run() -> None:
    """SLURM defect 4: with nothing swept, the job named its run by the driver's
    train.progress/train.threads too, so the planned run stayed `pending`."""
    from vaesweep.record.run_names import run_name

    user = ["beta=0.1", "train.epochs=1", "data.limit=200"]
    planned = run_name(user, [])
    assert planned == "beta=0.1,data.limit=200,train.epochs=1"
    assert run_name([*user, "train.progress=off", "train.threads=1"], []) == planned
    # Swept, they name runs like any key.
    assert run_name(["train.threads=2", "beta=1"], ["train.threads"]) == "train.threads=2"


@pytest.mark.slow
def test_nothing_swept_on_parallel_workers_is_indexed_completed(outputs: Path) -> None:
    """SLURM defect 4, reproduced with --jobs: the run trained but runs.csv said `pending`."""
    result = _invoke(["sweep", "beta=0.1", *TINY, "--jobs", "2", "--name", "one"])
    assert result.exit_code == 0, result.output
    rows = pd.read_csv(outputs / "sweeps" / "one" / "runs.csv")
    assert list(rows["status"]) == ["completed"], result.output


def _completed_sweep(sweep: Path, stack_size: int, tiny: list[str]) -> list[Path]:
    """A sweep of two completed runs whose sweep.json re-plans to exactly those runs."""
    runs = fabricate_sweep(sweep, [0.1, 1], images=False)
    plan = json.loads((sweep / "sweep.json").read_text())
    plan.update(overrides=["beta=0.1,1", *tiny], stack_size=stack_size)
    (sweep / "sweep.json").write_text(json.dumps(plan))
    return runs


@pytest.mark.parametrize(
    ("stack_size", "launcher"),
    [(0, ["--jobs", "2"]), (8, []), (0, ["--launcher", "submitit_local"])],
    ids=["joblib", "stacked", "submitit_local"],
)
def test_resume_launches_only_unfinished_runs(
    outputs: Path, stack_size: int, launcher: list[str], tiny: list[str]
) -> None:
    """SLURM defect 3: --resume submitted the whole grid again (each completed run took a
    SLURM job slot to find it had nothing to do). A job Hydra launches writes its .hydra/."""
    sweep = outputs / "sweeps" / "done"
    runs = _completed_sweep(sweep, stack_size, tiny)
    result = _invoke(["sweep", "--resume", str(sweep), *launcher])
    assert result.exit_code == 0, result.output
    assert "2 completed" in result.output
    plan = json.loads((sweep / "sweep.json").read_text())
    assert plan["stack_size"] == stack_size  # stacked when asked: one stack of both runs
    for run in runs:
        assert not (run / ".hydra").exists(), f"{run.name} was launched again"
    assert not (sweep / ".stacks").exists() and not (sweep / ".submitit").exists()


def test_unfinished_jobs_are_the_runs_or_stacks_left(tmp_path: Path, tiny: list[str]) -> None:
    """What a resumed sweep launches: jobs whose run, or one of whose stack's members, is
    not completed (the override lists are those Hydra's sweeper hands the launcher)."""
    from vaesweep.commands.launching import LaunchOptions
    from vaesweep.commands.sweep import _unfinished
    from vaesweep.commands.sweep_planning import plan_sweep

    for size in (0, 2):
        sweep = tmp_path / f"s{size}"
        overrides = ["beta=0.1,1", "seed=0,1", *tiny]
        plan, grid = plan_sweep(overrides, LaunchOptions(stack_size=size), "s")
        fabricate_sweep(sweep, [0.1, 1], [0, 1], statuses={"beta=1,seed=1": "interrupted"})
        keep, units = _unfinished(plan, sweep)
        assert units == 1
        if size == 0:
            launched = [j for j in grid.jobs if keep([*j, "train.threads=1"])]
            assert [j[:2] for j in launched] == [["beta=1", "seed=1"]]
        else:
            from vaesweep.commands.sweep_stacks import stack_launch

            (stack,) = [s for s in plan.stacks() if any(r.name == "beta=1,seed=1" for r in s)]
            part = plan.stacks().index(stack)
            stacked, _ = stack_launch(plan, overrides)
            assert keep(
                [o for o in stacked if "vaesweep_stack_part" not in o]
                + [f"+vaesweep_stack_part={part}"]
            )
            assert not keep(
                [o for o in stacked if "vaesweep_stack_part" not in o]
                + [f"+vaesweep_stack_part={1 - part}"]
            )


def test_slurm_jobs_take_their_threads_from_the_cpus_they_got(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SLURM defect 6: a run under SLURM started one torch thread per core of the node."""
    from vaesweep.bridge.compose import compose
    from vaesweep.bridge.launch import scheduler_threads

    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
    assert scheduler_threads(compose([])).train.threads is None
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "3")
    assert scheduler_threads(compose([])).train.threads == 3
    assert scheduler_threads(compose(["train.threads=1"])).train.threads == 1


@pytest.mark.slow  # submitit's local executor takes about 30 s to give up on a dead job
def test_a_job_without_a_result_is_waited_out_with_the_others(tmp_path: Path) -> None:
    """SLURM defect 1: the submitit launcher collects ``job.results()`` job by job, and the
    first job cancelled (here: killed by a signal, on submitit's local executor) raised
    UncompletedJobError while later jobs still ran. Now it is named once all have ended."""
    import operator
    import os

    submitit = pytest.importorskip("submitit")
    from vaesweep.bridge.hydra_internals import submitit_waits_for_every_job

    executor = submitit.AutoExecutor(folder=tmp_path / "%j", cluster="local")
    executor.update_parameters(timeout_min=5)
    killed = executor.submit(os.abort)  # dies by SIGABRT: no result, like scancel's SIGKILL
    later = executor.submit(operator.add, 40, 2)
    with submitit_waits_for_every_job() as ended:
        results = [job.results()[0] for job in (killed, later)]
    assert results[1] == 42
    assert results[0].return_value is None  # an empty result Hydra's sweeper accepts
    assert len(ended) == 1 and ended[0].startswith(f"job {killed.job_id} ended "), ended
    with pytest.raises(submitit.core.utils.UncompletedJobError):
        killed.results()  # what the launcher raised before, at the first such job


# ------------------------------------------------- exploratory testing, round 2: commands, record


@pytest.mark.parametrize("command", ["train", "sweep"])
def test_a_name_too_long_for_a_folder_is_refused_before_writing(
    outputs: Path, command: str
) -> None:
    """A 300-character --name crashed with OSError 'File name too long' (rc 1)."""
    extra = ["beta=0.1,1"] if command == "sweep" else ["train.epochs=1"]
    result = _invoke([command, *extra, "--name", "x" * 300])
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert "--name is 300 bytes long; at most" in result.output
    assert not outputs.exists()


def test_the_name_limit_counts_what_train_adds(tmp_path: Path) -> None:
    from vaesweep.errors import UserError
    from vaesweep.record.layout import name_max, one_component

    limit = name_max(tmp_path / "not" / "yet")  # the nearest folder that exists decides
    assert limit == name_max(tmp_path) > 0
    assert one_component("x" * (limit - 10), parent=tmp_path, added="y" * 10)
    with pytest.raises(UserError, match=f"at most {limit - 10} fit .*time stamp"):
        one_component("x" * (limit - 9), parent=tmp_path, added="y" * 10)


def test_ls_lists_every_sweep_and_shows_a_damaged_one(outputs: Path) -> None:
    """One sweep.json that does not parse made `ls` list nothing, with a message about
    resuming."""
    fabricate_sweep(outputs / "sweeps" / "s1", [0.1], images=False)
    fabricate_sweep(outputs / "sweeps" / "s2", [0.1, 1.0], images=False)
    (outputs / "sweeps" / "s1" / "sweep.json").write_text("{bad")
    result = _invoke(["ls"])
    assert result.exit_code == 0, result.output
    assert "resume" not in result.output
    lines = result.output.splitlines()
    assert any("s2" in line and "2 completed" in line for line in lines), result.output
    assert any("s1" in line and "damaged sweep.json" in line for line in lines), result.output


@pytest.mark.parametrize(
    "damage", [{"final": [1]}, {"final": {"val": "x"}}, {"iwae": "x"}, {"final": None}]
)
def test_ls_survives_a_summary_with_fields_of_the_wrong_type(
    outputs: Path, damage: dict[str, Any]
) -> None:
    """A summary.json whose "final" was a list ended `ls` in an AttributeError traceback,
    hiding every other sweep."""
    fabricate_sweep(outputs / "sweeps" / "s1", [0.1, 1.0], images=False)
    fabricate_sweep(outputs / "sweeps" / "s2", [0.1], images=False)
    path = outputs / "sweeps" / "s1" / "beta=1" / "summary.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **damage}))
    result = _invoke(["ls"])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert any("s2" in line for line in result.output.splitlines()), result.output
    assert any("s1" in line and "2 completed" in line for line in result.output.splitlines())


def _dead_pid() -> int:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", ""])
    proc.wait()
    return proc.pid


@pytest.mark.parametrize("holder", ["dead", "alive", "elsewhere", "locked"])
def test_a_run_whose_process_died_reads_interrupted_everywhere(outputs: Path, holder: str) -> None:
    """After a SIGKILL, `ls` said `running` for ever and runs.csv `pending` for runs with
    epochs of metrics. The run's lock names the process that held it: on this host and dead,
    the run is interrupted (resumable); anything else may still be training."""
    import os
    import socket

    from vaesweep.record.sweep_lock import SweepLock
    from vaesweep.report.data.load import load_run

    sweep = outputs / "sweeps" / "k"
    fabricate_sweep(sweep, [0.1, 1.0], statuses={"beta=0.1": "running"}, images=False)
    (sweep / "runs.csv").write_text("run,beta,status\nbeta=0.1,0.1,pending\nbeta=1,1,pending\n")
    pid = os.getpid() if holder == "alive" else _dead_pid()
    host = "another-host" if holder == "elsewhere" else socket.gethostname()
    (sweep / "beta=0.1" / ".lock").write_text(json.dumps({"pid": pid, "host": host, "since": 0}))
    with SweepLock(sweep / "beta=0.1", what="run") if holder == "locked" else _nothing():
        if holder == "locked":  # a new holder that has not written who it is yet
            (sweep / "beta=0.1" / ".lock").write_text(
                json.dumps({"pid": _dead_pid(), "host": host})
            )
        result = _invoke(["ls"])
        reported = load_run("beta=0.1", sweep / "beta=0.1", "k", {}, "k").status
    assert result.exit_code == 0, result.output
    expected = "interrupted" if holder == "dead" else "running"
    assert reported == expected  # the report agrees with ls
    assert f"1 completed, 1 {expected}" in result.output, result.output
    index = pd.read_csv(sweep / "runs.csv").set_index("run")
    assert index.loc["beta=0.1", "status"] == expected
    assert index.loc["beta=0.1", "epochs_done"] > 0


def _nothing() -> Any:
    import contextlib

    return contextlib.nullcontext()


def test_resume_says_which_launcher_it_uses(outputs: Path) -> None:
    """`sweep --resume DIR --jobs 2` of a basic sweep said it resumed with the basic launcher
    and ran joblib (what --jobs > 1 takes)."""
    from vaesweep.commands.launching import LaunchOptions
    from vaesweep.commands.sweep_planning import plan_new_or_resumed

    sweep = outputs / "sweeps" / "s"
    fabricate_sweep(sweep, [0.1, 1.0], statuses={"beta=1": "pending"}, images=False)
    assert json.loads((sweep / "sweep.json").read_text())["launcher"] == "basic"
    opts = LaunchOptions("basic", 2, launcher_given=False, jobs_given=True)
    plan_new_or_resumed([], opts, None, sweep)
    assert opts.resume_note == (
        "resuming with --launcher joblib (for --jobs 2; basic was stored in the sweep) "
        "and --jobs 2 (given)"
    )
    opts = LaunchOptions("basic", 1, launcher_given=False, jobs_given=False)
    plan_new_or_resumed([], opts, None, sweep)
    assert opts.resume_note == (
        "resuming with --launcher basic (stored in the sweep) and --jobs 1 (stored in the sweep)"
    )


def test_an_error_quoting_a_library_message_stays_one_line(
    tmp_path: Path, outputs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """data.download=true offline printed 6 lines: torchvision's message has line breaks."""
    from torchvision import datasets

    def offline(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("Error downloading x.gz:\nTried https://a/, got:\n<urlopen error>\n")

    monkeypatch.setattr(datasets, "MNIST", offline)
    result = _invoke(
        ["train", "data=mnist", f"data.root={tmp_path / 'none'}", "data.download=true"]
    )
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert "Error downloading x.gz: Tried https://a/, got: <urlopen error> );" in result.output


def _damage(run: Path, what: str) -> None:
    """A run left `interrupted` with a truncated checkpoint, or with a whole checkpoint of
    epoch 3 and an emptied metrics.csv."""
    import torch

    summary = json.loads((run / "summary.json").read_text())
    (run / "summary.json").write_text(json.dumps({**summary, "status": "interrupted"}))
    state = {
        "model": {"w": torch.zeros(1)},
        "optimizer": {"state": {}, "param_groups": [{}]},
        "control": {},
        "generator": torch.Generator().get_state(),
        "epoch": 3,
        "step": 6,
    }
    (run / "checkpoint.pt").write_bytes(tensorfile.dumps({"state": state, "config": {}}))
    if what == "checkpoint":
        data = (run / "checkpoint.pt").read_bytes()
        (run / "checkpoint.pt").write_bytes(data[: len(data) // 2])
    else:
        (run / "metrics.csv").write_text("")


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("what", ["checkpoint", "metrics"])
def test_resuming_a_damaged_run_is_one_line_before_anything_is_written(
    outputs: Path, what: str
) -> None:
    """`train --resume` of a run with a truncated checkpoint marked it `failed` with torch's
    3-line zip error (rc 1); with an emptied metrics.csv, `failed` with an IndexError."""
    run = outputs / "runs" / "r"
    fabricate_run(run, beta=0.1, images=False)
    _damage(run, what)
    before = _files(outputs)
    result = _invoke(["train", "--resume", str(run)])
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    expected = "checkpoint.pt: damaged checkpoint" if what == "checkpoint" else "no rows of epoch 3"
    assert expected in result.output and "delete checkpoint.pt" in result.output
    assert _files(outputs) == before


def test_resuming_a_sweep_with_a_damaged_run_stops_before_anything_is_written(
    outputs: Path,
) -> None:
    sweep = outputs / "sweeps" / "s"
    fabricate_sweep(sweep, [0.1, 1.0], images=False)
    plan = json.loads((sweep / "sweep.json").read_text())
    (sweep / "sweep.json").write_text(json.dumps({**plan, "overrides": ["beta=0.1,1"]}))
    _damage(sweep / "beta=1", "checkpoint")
    before = _files(outputs)
    result = _invoke(["sweep", "--resume", str(sweep)])
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert "beta=1/checkpoint.pt: damaged checkpoint" in result.output
    assert _files(outputs) == before


@pytest.mark.parametrize("command", ["sweep", "train"])
def test_a_launcher_profile_naming_no_class_is_one_line_before_writing(
    outputs: Path, tmp_path: Path, command: str
) -> None:
    """A typo in a custom launcher profile's _target_ was a 70-line traceback at launch, after
    sweep.json (or the run's folder) was written."""
    profiles = tmp_path / "conf" / "hydra" / "launcher"
    profiles.mkdir(parents=True)
    (profiles / "site.yaml").write_text(
        "defaults:\n  - submitit_local\n\n"
        "_target_: hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLaunchr\n"
    )
    values = ["beta=0.1,1"] if command == "sweep" else ["beta=0.1"]
    args = [command, *values, "--config-dir", str(tmp_path / "conf"), "--launcher", "site"]
    result = _invoke([*args, "--name", "t"])
    assert result.exit_code == 2, result.output
    assert "hydra.launcher._target_=" in result.output and "LocalLaunchr" in result.output
    assert "Traceback" not in result.output
    assert not (outputs / "sweeps" / "t").exists() and not list(outputs.glob("runs/*"))


def test_a_typo_in_a_launcher_setting_is_refused_before_the_sweep_is_written(
    outputs: Path,
) -> None:
    """hydra.launcher.timeout_mn=5 (for timeout_min) failed only at launch, leaving a sweep
    folder whose runs stayed pending."""
    args = ["sweep", "beta=0.1,1", "--launcher", "submitit_local", "hydra.launcher.timeout_mn=5"]
    result = _invoke([*args, "--name", "hk"])
    assert result.exit_code == 2, result.output
    assert "Key 'hydra.launcher.timeout_mn' not in config" in result.output
    assert not (outputs / "sweeps" / "hk").exists()


def test_a_dry_run_refuses_what_the_sweep_would_refuse(outputs: Path) -> None:
    """--dry-run printed the grid for a launcher setting the sweep then refused
    (hydra.launcher.timeout_mn), and for a tracker whose store cannot be opened."""
    args = ["sweep", "beta=0.1,1", "--launcher", "submitit_local", "hydra.launcher.timeout_mn=5"]
    result = _invoke([*args, "--dry-run"])
    assert result.exit_code == 2, result.output
    assert "Key 'hydra.launcher.timeout_mn' not in config" in result.output
    assert "would run" not in result.output
    (outputs / "store").mkdir(parents=True)
    store = f"tracker.mlflow.tracking_uri=sqlite:///{outputs / 'store'}"
    result = _invoke(["sweep", "beta=0.1,1", "tracker=mlflow", store, "--dry-run"])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert not (outputs / "sweeps").exists()
    result = _invoke(["sweep", "beta=0.1,1", "--launcher", "submitit_local", "--dry-run"])
    assert result.exit_code == 0 and "would run" in result.output, result.output
