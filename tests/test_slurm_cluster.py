"""``--launcher slurm`` against a real SLURM cluster: sbatch, slurmctld, slurmd, sacct.

Start one on this machine with ``sudo bash tests/cluster/start_slurm.sh`` (``.ci/run`` does
where it can); elsewhere the test is skipped with that hint, and it never submits to any
other cluster (a site's, from its login node). The sweep runs as a real
subprocess, as a user would type it, with the launcher knobs a one-node, GPU-less cluster
needs. One array task is held at a gate (a setup line of its sbatch script that waits for a
file) so that it is certainly still running when the test cancels it with ``scancel``;
``--resume`` then finishes it and leaves the completed runs as they were.
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
from collections.abc import Callable
from pathlib import Path

import pytest

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


#: What a one-node cluster without GPUs can run: conf/hydra/launcher/slurm.yaml asks for
#: a GPU, 4 CPUs and 16 GB per run (a real cluster's sizes). The partition is the default one.
CLUSTER_KNOBS = [
    "hydra.launcher.gpus_per_node=null",
    "hydra.launcher.cpus_per_task=1",
    "hydra.launcher.mem_gb=1",
    "hydra.launcher.timeout_min=30",
]

GATE_SH = """\
# Holds this array task until the test creates open_<task> (bounded, then gives up).
gate={gate}
echo "$SLURM_ARRAY_JOB_ID" > "$gate/waiting_$SLURM_ARRAY_TASK_ID.tmp"
mv "$gate/waiting_$SLURM_ARRAY_TASK_ID.tmp" "$gate/waiting_$SLURM_ARRAY_TASK_ID"
for _ in $(seq {polls}); do
  [ -e "$gate/open_$SLURM_ARRAY_TASK_ID" ] && exit 0
  sleep 0.5
done
exit 1
"""


def _wait(what: str, ready: Callable[[], bool], proc: subprocess.Popen | None, log: Path) -> None:
    deadline = time.monotonic() + WAIT_S
    while not ready():
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the sweep exited {proc.returncode} before {what}:\n{log.read_text()}")
        if time.monotonic() > deadline:
            pytest.fail(f"gave up after {WAIT_S} s waiting for {what}:\n{log.read_text()}")
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


def _vaesweep(args: list[str], cwd: Path, log: Path) -> subprocess.Popen:
    env = {**os.environ, "VAESWEEP_OUTPUTS": str(cwd / "outputs"), "PYTHONUNBUFFERED": "1"}
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


def _snapshot(run: Path) -> dict[str, tuple[int, bytes]]:
    """The run's record files with their times. Left out: Hydra's own .hydra/ (Hydra rewrites
    it whenever it launches the job, as a resumed sweep does) and the log, checked apart."""
    return {
        str(p.relative_to(run)): (p.stat().st_mtime_ns, p.read_bytes())
        for p in sorted(run.rglob("*"))
        if p.is_file() and ".hydra" not in p.parts and p.name != LOG
    }


#: Hydra's job log in each run directory (``hydra.job.name`` is ``train``).
LOG = "train.log"


@pytest.mark.usefixtures("cluster")
def test_sweep_on_a_real_cluster_then_scancel_and_resume(tmp_path: Path, tiny: list[str]) -> None:
    gate = tmp_path / "gate"
    gate.mkdir()
    gate_sh = tmp_path / "gate.sh"
    gate_sh.write_text(GATE_SH.format(gate=gate, polls=2 * WAIT_S))
    for task in (0, 2):  # task 1 (beta=1) waits at its gate until it is cancelled
        (gate / f"open_{task}").touch()
    sweep_dir = tmp_path / "outputs" / "sweeps" / "cluster"
    runs = {task: sweep_dir / f"beta={b}" for task, b in enumerate(("0.1", "1", "10"))}

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
            f"hydra.launcher.setup=['bash {gate_sh}']",
        ],
        tmp_path,
        log,
    )
    try:
        _wait("task 1 to reach its gate", (gate / "waiting_1").exists, proc, log)
        job = (gate / "waiting_1").read_text().strip()
        # One array job of three tasks; task 1 is running, held at its gate, when cancelled.
        # (Cancelled at once, so the other two need no second CPU to finish meanwhile.)
        script = sweep_dir / ".submitit" / job / f"{job}_submission.sh"
        _wait("submitit to file the sbatch script", script.exists, proc, log)
        assert "#SBATCH --array=0-2" in script.read_text()
        assert _queue_state(f"{job}_1") == "RUNNING"
        subprocess.run(["scancel", f"{job}_1"], check=True)
        code, out = _finish(proc, log)
    finally:
        if proc.poll() is None:
            proc.kill()
            if job:
                subprocess.run(["scancel", job], check=False)
    # The sweep command may end before the other tasks do; they run on and finish their runs.
    _wait("the array to finish", lambda: _settled(job, 3), None, log)
    assert _sacct(job) == {"0": "COMPLETED", "1": "CANCELLED", "2": "COMPLETED"}
    # The sweep command names the cancelled task and fails. (Through submitit's
    # UncompletedJobError and its traceback today: a defect to fix in the sweep driver.)
    assert code == 1, out
    assert f"{job}_1" in out and "CANCELLED" in out, out

    for task in (0, 2):
        assert _epochs(runs[task]) == EPOCHS
        assert _status(runs[task]) == "completed"
    assert _status(runs[1]) != "completed"
    before = {task: _snapshot(runs[task]) for task in (0, 2)}
    logs = {task: (runs[task] / LOG).read_text() for task in (0, 2)}

    # --resume: a new array job finishes the cancelled run; the completed ones stay as they were.
    (gate / "open_1").touch()
    log = tmp_path / "resume.log"
    code, out = _finish(
        _vaesweep(["sweep", "--resume", str(sweep_dir), "--launcher", "slurm"], tmp_path, log),
        log,
    )
    assert code == 0, out
    assert "3 completed" in out, out
    for task in (0, 1, 2):
        assert _status(runs[task]) == "completed"
        assert _epochs(runs[task]) == EPOCHS
    for task in (0, 2):
        assert _snapshot(runs[task]) == before[task]
        # The resumed array task found the run completed: no training, no epoch logged.
        log_now = (runs[task] / LOG).read_text()
        assert log_now.startswith(logs[task])
        assert "epoch" not in log_now[len(logs[task]) :]
    plan = json.loads((sweep_dir / "sweep.json").read_text())
    assert plan["launcher"] == "slurm"
    assert len(plan["resumed"]) == 1
    # submitit keeps one folder per array (its sbatch script) named by the SLURM job id.
    arrays = {p.name for p in (sweep_dir / ".submitit").iterdir() if p.name.isdigit()}
    (resumed_job,) = arrays - {job}
    _wait("the resumed array to finish", lambda: _settled(resumed_job, 3), None, log)
    assert set(_sacct(resumed_job).values()) == {"COMPLETED"}
