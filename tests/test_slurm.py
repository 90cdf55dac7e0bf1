"""``--launcher slurm`` end to end against stand-ins for SLURM's sbatch, srun and sacct.

The stand-ins run each task of the submitted job array on this machine with the environment
SLURM would give it, so the real path is exercised: Hydra's submitit launcher writes the
sbatch script from conf/hydra/launcher/slurm.yaml, submitit submits and polls, each task
unpickles vaesweep's task function and writes its run record, and the driver collects them.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vaesweep.cli import app

pytest.importorskip("hydra_plugins.hydra_submitit_launcher")

SBATCH = """#!{python}
# Like sbatch: print the job id and return; the array's tasks then run in the background
# (submitit moves each task's pickle into place only after it has read the id).
import os, pathlib, re, subprocess, sys
state = pathlib.Path(os.environ["FAKE_SLURM_DIR"])
script = pathlib.Path(sys.argv[-1])
text = script.read_text()
job = 1000 + len(list(state.glob("job_*.sh")))
(state / f"job_{{job}}.sh").write_text(text)
array = re.search(r"#SBATCH --array=(\\d+)-(\\d+)", text)
tasks = [str(t) for t in range(int(array[1]), int(array[2]) + 1)] if array else []
for task in tasks or [""]:
    name = f"{{job}}_{{task}}" if task else str(job)
    (state / f"{{name}}.state").write_text("PENDING")
subprocess.Popen([sys.executable, str(state / "run_tasks.py"), str(script), str(job), *tasks],
                 start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(f"Submitted batch job {{job}}")
"""

RUN_TASKS = """
import os, pathlib, subprocess, sys
state = pathlib.Path(os.environ["FAKE_SLURM_DIR"])
script, job, tasks = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
for task in tasks or [""]:
    env = dict(os.environ, SLURM_JOB_ID=str(job * 100 + int(task or 0)), SLURM_NTASKS="1",
               SLURM_JOB_NUM_NODES="1", SLURM_NODEID="0", SLURM_PROCID="0", SLURM_LOCALID="0",
               SLURM_JOB_NODELIST="localhost")
    name = str(job)
    if task:
        env.update(SLURM_ARRAY_JOB_ID=str(job), SLURM_ARRAY_TASK_ID=task)
        name = f"{job}_{task}"
    (state / f"{name}.state").write_text("RUNNING")
    with open(state / f"{name}.log", "w") as log:
        code = subprocess.run(["bash", script], env=env, stdout=log, stderr=log).returncode
    (state / f"{name}.state").write_text("COMPLETED" if code == 0 else "FAILED")
"""

SACCT = """#!{python}
import pathlib, os
state = pathlib.Path(os.environ["FAKE_SLURM_DIR"])
print("JobID|State|NodeList")
for f in sorted(state.glob("*.state")):
    print(f"{{f.stem}}|{{f.read_text()}}|localhost")
"""

SRUN = """#!{python}
import os, sys
args = sys.argv[1:]
start = next(i for i, a in enumerate(args) if not a.startswith("-") and "python" in a)
os.execv(args[start], args[start:])
"""


@pytest.fixture
def fake_slurm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir, state = tmp_path / "fake-bin", tmp_path / "fake-slurm"
    bin_dir.mkdir()
    state.mkdir()
    for name, text in (("sbatch", SBATCH), ("sacct", SACCT), ("srun", SRUN)):
        path = bin_dir / name
        path.write_text(text.format(python=sys.executable))
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    (state / "run_tasks.py").write_text(RUN_TASKS)
    (bin_dir / "scancel").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "scancel").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SLURM_DIR", str(state))
    return state


@pytest.mark.slow
def test_slurm_launcher_submits_one_job_array(
    outputs: Path, tiny: list[str], fake_slurm: Path
) -> None:
    """Two stacks (batch size differs) of two betas: one array task per stack."""
    result = CliRunner().invoke(
        app,
        [
            "sweep",
            "beta=0.1,1",
            "train.batch_size=32,64",
            *tiny,
            "--name",
            "cluster",
            "--launcher",
            "slurm",
            "hydra.launcher.partition=gpu",
            "hydra.launcher.array_parallelism=2",
        ],
    )
    assert result.exit_code == 0, result.output
    (script,) = list(fake_slurm.glob("job_*.sh"))
    text = script.read_text()
    assert "#SBATCH --array=0-1%2" in text
    assert "#SBATCH --partition=gpu" in text
    assert "#SBATCH --gpus-per-node=1" in text
    assert "#SBATCH --time=120" in text
    assert "submitit.core._submit" in text
    sweep_dir = outputs / "sweeps" / "cluster"
    for beta in ("0.1", "1"):
        for batch in ("32", "64"):
            run = f"beta={beta},train.batch_size={batch}"
            summary = json.loads((sweep_dir / run / "summary.json").read_text())
            assert summary["status"] == "completed"
            assert summary["stack"] == [
                f"beta=0.1,train.batch_size={batch}",
                f"beta=1,train.batch_size={batch}",
            ]
    assert "4 completed" in result.output


@pytest.mark.parametrize("command", ["sweep", "train"])
def test_slurm_launcher_without_slurm_is_one_line_and_writes_nothing(
    outputs: Path, tiny: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    empty = tmp_path / "no-slurm-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    result = CliRunner().invoke(app, [command, "beta=0.1", *tiny, "--launcher", "slurm"])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert "sbatch, srun, sacct are not on PATH" in result.output
    assert "--launcher submitit_local" in result.output
    assert not outputs.exists()
