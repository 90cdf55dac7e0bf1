"""``--launcher slurm`` against a real SLURM cluster: sbatch, slurmctld, slurmd, sacct.

Start one on this machine with ``sudo bash tests/cluster/start_slurm.sh`` (``.ci/run`` does
where it can); elsewhere the test is skipped with that hint, and it never submits to any
other cluster (a site's, from its login node). The sweep runs as a real
subprocess, as a user would type it, with the launcher knobs a one-node, GPU-less cluster
needs. One array task is held after its first epoch (the test hook of ``VAESWEEP_TEST_HOLD``)
so that it is certainly mid-training when the test cancels it with ``scancel``; the sweep
waits for the other tasks, marks the run ``interrupted`` and says how to resume, and
``--resume`` submits that run alone, continues it, and leaves the completed runs as they were.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Collection
from pathlib import Path

import pytest
from conftest import Hold

from vaesweep.record.sweep_lock import is_locked

pytest.importorskip("hydra_plugins.hydra_submitit_launcher")

START = "sudo bash tests/cluster/start_slurm.sh"
#: The test submits only to the cluster that script starts (never to a site's real cluster
#: from its login node): it is recognised by the ClusterName the script writes.
TEST_CLUSTER = re.search(
    r"^CLUSTER=(\S+)$",
    (Path(__file__).parent / "cluster" / "start_slurm.sh").read_text(),
    flags=re.M,
)[1]
#: Upper bounds only: every wait ends as soon as the state it waits for is there.
WAIT_S = 900


def _cluster_problem() -> str | None:
    """Why no SLURM cluster can take jobs here, or None when one can."""
    for cmd in ("sinfo", "sbatch", "srun", "sacct", "scancel", "squeue", "scontrol"):
        if shutil.which(cmd) is None:
            return f"{cmd} is not on PATH; start a one-node cluster with `{START}`"
    try:
        states = subprocess.run(
            ["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=30
        )
        acct = subprocess.run(
            ["sacct", "-n", "-X", "-S", "now"], capture_output=True, text=True, timeout=30
        )
    except subprocess.TimeoutExpired:
        return f"sinfo/sacct did not answer within 30 s; start the cluster with `{START}`"
    if states.returncode != 0:
        return f"sinfo does not answer ({states.stderr.strip()[:120]}); run `{START}`"
    if not {"idle", "mixed", "allocated"} & {s.strip("*~#") for s in states.stdout.split()}:
        return f"no SLURM node is up (sinfo: {states.stdout.split()}); run `{START}`"
    if acct.returncode != 0:
        return f"sacct does not answer (no accounting storage?): {acct.stderr.strip()[:120]}"
    config = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True)
    name = re.search(r"^ClusterName\s*=\s*(\S+)", config.stdout, flags=re.M)
    if name is None or name[1] != TEST_CLUSTER:
        found = name[1] if name else "unknown"
        return f"the cluster here is '{found}', not the test cluster '{TEST_CLUSTER}' of `{START}`"
    return None


pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster() -> None:
    """Skip, saying why, unless a SLURM cluster takes jobs here. A fixture, not a module-level
    check: sinfo retries for seconds when no controller answers, and `-m "not slow"` should
    not pay for that."""
    problem = _cluster_problem()
    if problem:
        pytest.skip(f"no SLURM cluster: {problem}")
    # The test cluster (recognised by its name above) is the suite's alone: jobs that a killed
    # earlier session left would keep its CPUs, and this module's jobs would pend behind them.
    left = _queued()
    if left:
        subprocess.run(["scancel", *left], check=False)
        _wait("jobs left by an earlier session to leave", lambda: not _queued(), None, None)


#: What a one-node cluster without GPUs can run: conf/hydra/launcher/slurm.yaml asks for
#: a GPU, 4 CPUs and 16 GB per run (a real cluster's sizes). The partition is the default one.
CLUSTER_KNOBS = [
    "hydra.launcher.gpus_per_node=null",
    "hydra.launcher.cpus_per_task=1",
    "hydra.launcher.mem_gb=1",
    "hydra.launcher.timeout_min=30",
]


def _queued() -> list[str]:
    return subprocess.run(
        ["squeue", "-h", "-o", "%i"], capture_output=True, text=True
    ).stdout.split()


def _queue() -> str:
    """Every job slurmctld has, with why it waits: what a failed wait needs to be understood."""
    fmt = "%.12i %.10T %.12M %.30R %j"
    out = subprocess.run(["squeue", "-a", "-o", fmt], capture_output=True, text=True)
    return f"squeue:\n{out.stdout}{out.stderr}"


def _wait(
    what: str, ready: Callable[[], bool], proc: subprocess.Popen | None, log: Path | None
) -> None:
    deadline = time.monotonic() + WAIT_S
    while not ready():
        printed = log.read_text() if log else ""
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the sweep exited {proc.returncode} before {what}:\n{printed}\n{_queue()}")
        if time.monotonic() > deadline:
            pytest.fail(f"gave up after {WAIT_S} s waiting for {what}:\n{printed}\n{_queue()}")
        time.sleep(0.2)


def _status(run: Path) -> str | None:
    try:
        return json.loads((run / "summary.json").read_text()).get("status")
    except (OSError, ValueError):
        return None


def _sacct(job: str) -> dict[str, str]:
    """Task id -> state of a job array's tasks, as SLURM's accounting records them."""
    out = subprocess.run(
        ["sacct", "-n", "-X", "-P", "-j", job, "-o", "JobID,State"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {
        jid.split("_", 1)[1]: state.split()[0]
        for jid, state in (line.split("|") for line in out.splitlines() if "_" in line)
    }


def _job_state(job: str) -> str:
    """A plain (not array) job's state as SLURM's accounting records it."""
    out = subprocess.run(
        ["sacct", "-n", "-X", "-P", "-j", job, "-o", "State"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return out[0] if out else ""


def _queue_state(job: str) -> str:
    """A job's state as slurmctld has it now (accounting may lag behind it)."""
    return subprocess.run(
        ["squeue", "-h", "-j", job, "-o", "%T"], capture_output=True, text=True, check=True
    ).stdout.strip()


def _settled(job: str, tasks: int) -> bool:
    """Every task of the array has left the queue and its accounting record is final."""
    if subprocess.run(["squeue", "-h", "-j", job], capture_output=True, text=True).stdout.strip():
        return False
    states = _sacct(job)
    unsettled = {"PENDING", "RUNNING", "COMPLETING", "REQUEUED", "SUSPENDED"}
    return len(states) == tasks and not unsettled & set(states.values())


def _vaesweep(args: list[str], cwd: Path, log: Path, extra_env: dict[str, str]) -> subprocess.Popen:
    env = {
        **os.environ,
        **extra_env,
        "VAESWEEP_OUTPUTS": str(cwd / "outputs"),
        "PYTHONUNBUFFERED": "1",
    }
    with log.open("w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "vaesweep", *args],
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _finish(proc: subprocess.Popen, log: Path) -> tuple[int, str]:
    try:
        code = proc.wait(timeout=WAIT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"the sweep did not end within {WAIT_S} s:\n{log.read_text()}")
    return code, log.read_text()


def _epochs(run: Path) -> list[tuple[str, str]]:
    """(epoch, split) of every row of the run's metrics.csv: each once, none lost."""
    with (run / "metrics.csv").open() as f:
        return sorted((row["epoch"], row["split"]) for row in csv.DictReader(f))


EPOCHS = [("1", "train"), ("1", "val"), ("2", "train"), ("2", "val")]


#: Hydra's job log in each run directory (``hydra.job.name`` is ``train``).
LOG = "train.log"


def _snapshot(run: Path) -> dict[str, tuple[int, bytes]]:
    """Every file of the run with its time, Hydra's own .hydra/ and log included: a run that
    is not launched again is not touched at all."""
    return {
        str(p.relative_to(run)): (p.stat().st_mtime_ns, p.read_bytes())
        for p in sorted(run.rglob("*"))
        if p.is_file()
    }


def _array_job(sweep_dir: Path, known: Collection[str] = ()) -> str:
    """The SLURM id of the newest job (array) submitit filed for the sweep, other than
    ``known`` ('' before any): submitit keeps one folder per submission, with its sbatch
    script, named by the job id."""
    folder = sweep_dir / ".submitit"
    ids = [p.name for p in folder.iterdir() if p.name.isdigit()] if folder.is_dir() else []
    new = [i for i in ids if i not in known and (folder / i / f"{i}_submission.sh").exists()]
    return max(new, key=int) if new else ""


@pytest.mark.usefixtures("cluster")
def test_sweep_on_a_real_cluster_then_scancel_and_resume(
    tmp_path: Path, tiny: list[str], hold: Hold
) -> None:
    """Three runs, one array task each. Every run is held after each epoch (the test hook
    of ``VAESWEEP_TEST_HOLD``, exported to the jobs by sbatch): the other two are released
    as they reach a hold, and task 1 (beta=1) is cancelled with ``scancel`` while held after
    its first epoch, so it is certainly mid-training when SLURM sends it SIGTERM."""
    sweep_dir = tmp_path / "outputs" / "sweeps" / "cluster"
    runs = {task: sweep_dir / f"beta={b}" for task, b in enumerate(("0.1", "1", "10"))}
    cancelled = "beta=1.epoch1"

    log = tmp_path / "sweep.log"
    job = ""
    proc = _vaesweep(
        [
            "sweep",
            "beta=0.1,1,10",
            *tiny,
            "--no-stack",  # one array task per run: each is held or released on its own
            "--name",
            "cluster",
            "--launcher",
            "slurm",
            *CLUSTER_KNOBS,
        ],
        tmp_path,
        log,
        hold.env,
    )

    def release_others() -> None:
        """Release every hold but the one task 1 is cancelled at."""
        for marker in hold.folder.glob("*.epoch*"):
            if marker.name != cancelled:
                hold.release(marker.name)

    def held_beta_1() -> bool:
        release_others()
        return (hold.folder / cancelled).exists()

    def sweep_ended() -> bool:
        release_others()  # task 2 may start only once task 1 has left its CPU
        return proc.poll() is not None

    try:
        _wait("run beta=1 to be held after its first epoch", held_beta_1, proc, log)
        job = _array_job(sweep_dir)
        # One array job of three tasks; task 1 is running, held after epoch 1, when cancelled.
        assert (
            "#SBATCH --array=0-2"
            in (sweep_dir / ".submitit" / job / f"{job}_submission.sh").read_text()
        )
        assert _queue_state(f"{job}_1") == "RUNNING"
        # The job holds its run's lock: `vaesweep train --resume` of it is refused even
        # when the sweep command is gone.
        assert is_locked(runs[1])
        subprocess.run(["scancel", f"{job}_1"], check=True)
        _wait("the sweep to end", sweep_ended, None, log)
        code, out = _finish(proc, log)
    finally:
        if proc.poll() is None:
            proc.kill()
        if job:
            subprocess.run(["scancel", job], check=False)
    # The sweep command waited for every task of the array before it ended: task 2 could
    # start only after task 1 was cancelled, and its run was complete when the command ended.
    assert _status(runs[2]) == "completed", out
    _wait("SLURM's accounting of the array", lambda: _settled(job, 3), None, log)
    assert _sacct(job) == {"0": "COMPLETED", "1": "CANCELLED", "2": "COMPLETED"}
    # It names the cancelled task, prints the run table and how to resume, and fails as a
    # sweep with unfinished runs does: no traceback.
    assert code == 1, out
    assert f"job {job}_1 ended CANCELLED" in out, out
    assert "Traceback" not in out, out
    assert "2 completed, 1 interrupted" in out, out
    assert f"vaesweep sweep --resume {sweep_dir}" in out, out

    for task in (0, 2):
        assert _epochs(runs[task]) == EPOCHS
        assert _status(runs[task]) == "completed"
    # The cancelled job marked its run itself (SIGTERM as Ctrl-C) before slurmd killed it.
    assert _status(runs[1]) == "interrupted"
    assert "stopped by SIGTERM: beta=1 marked interrupted" in (runs[1] / LOG).read_text()
    assert _epochs(runs[1]) == EPOCHS[:2]
    # Each job used the one CPU it got (SLURM_CPUS_PER_TASK), not every core of the node.
    for task in (0, 1, 2):
        assert json.loads((runs[task] / "summary.json").read_text())["threads"] == 1
    before = {task: _snapshot(runs[task]) for task in (0, 2)}

    # --resume: a new array of ONE task continues the cancelled run from its checkpoint; the
    # completed runs are not submitted again and stay as they were, to the byte.
    (hold.folder / "release").touch()
    log = tmp_path / "resume.log"
    code, out = _finish(
        _vaesweep(["sweep", "--resume", str(sweep_dir)], tmp_path, log, hold.env), log
    )
    assert code == 0, out
    assert "--launcher slurm (stored in the sweep)" in out, out
    assert "3 completed" in out, out
    for task in (0, 1, 2):
        assert _status(runs[task]) == "completed"
        assert _epochs(runs[task]) == EPOCHS  # epoch 1 once: continued, not retrained
    for task in (0, 2):
        assert _snapshot(runs[task]) == before[task]
    plan = json.loads((sweep_dir / "sweep.json").read_text())
    assert plan["launcher"] == "slurm"
    assert len(plan["resumed"]) == 1
    # submitit submits a launch of one job as a plain job, not an array.
    resumed_job = _array_job(sweep_dir, {job})
    assert resumed_job, out
    script = sweep_dir / ".submitit" / resumed_job / f"{resumed_job}_submission.sh"
    assert "#SBATCH --array" not in script.read_text()
    _wait("the resumed job to finish", lambda: _job_state(resumed_job) == "COMPLETED", None, log)


@pytest.mark.usefixtures("cluster")
def test_bad_data_stops_before_anything_is_submitted(tmp_path: Path) -> None:
    """Issue 12 item 8 on SLURM: the data is checked on the submitting machine, so bad input
    is one line (exit 2) with no sweep directory and no job (the device is the compute
    nodes' to check)."""
    queued = set(
        subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True).stdout.split()
    )
    log = tmp_path / "bad.log"
    args = ["sweep", "beta=0.1,1", "data.limit=1", "--name", "bad", "--launcher", "slurm"]
    code, out = _finish(_vaesweep([*args, *CLUSTER_KNOBS], tmp_path, log, {}), log)
    assert code == 2 and "usable image" in out and "Traceback" not in out, out
    assert not (tmp_path / "outputs" / "sweeps" / "bad").exists()
    now = set(
        subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True).stdout.split()
    )
    assert now <= queued


@pytest.mark.usefixtures("cluster")
@pytest.mark.parametrize("command", ["sweep", "train"])
def test_a_request_the_cluster_refuses_is_one_line_and_leaves_nothing(
    tmp_path: Path, command: str
) -> None:
    """The profile's default asks for a GPU; this cluster has none, so sbatch refuses the job.
    The user gets sbatch's reason and the setting to change in one line (exit 2), and no
    folder of pending runs is left to become the newest sweep."""
    log = tmp_path / "refused.log"
    knobs = [k for k in CLUSTER_KNOBS if "gpus_per_node" not in k]
    args = [command, "beta=0.1,1" if command == "sweep" else "beta=1", "--launcher", "slurm"]
    code, out = _finish(_vaesweep([*args, *knobs], tmp_path, log, {}), log)
    errors = [line for line in out.splitlines() if "error" in line.lower()]
    assert code == 2 and "Traceback" not in out, out
    assert len(errors) == 1 and "hydra.launcher.gpus_per_node=null" in errors[0], out
    assert "gres" in errors[0], out  # sbatch's own reason
    kind = "sweeps" if command == "sweep" else "runs"
    assert list((tmp_path / "outputs" / kind).glob("*")) == []
