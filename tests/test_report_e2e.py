"""End to end: a real `vaesweep sweep` and `vaesweep report` as a user runs them (subprocesses)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from vaesweep.testing.fabricate import fabricate_sweep

VAESWEEP = [sys.executable, "-m", "vaesweep"]


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*VAESWEEP, *args], cwd=cwd, capture_output=True, text=True, env=os.environ.copy()
    )


def test_sweep_then_report_on_the_default_data(outputs: Path, tiny: list[str]) -> None:
    # Default data (digits), the betas of the question; tiny nets and 2 epochs for speed.
    sweep = run(["sweep", "beta=0.01,1", *tiny, "--name", "e2e"], outputs.parent)
    assert sweep.returncode == 0, sweep.stderr[-2000:]
    report = run(["report"], outputs.parent)  # the newest sweep under $VAESWEEP_OUTPUTS
    assert report.returncode == 0, report.stderr[-2000:]
    folder = outputs / "sweeps" / "e2e" / "report"
    assert "wrote" in report.stdout and str(folder / "index.html") in report.stdout.replace(
        "\n", ""
    )
    summary = pd.read_csv(folder / "summary.csv").set_index("label")
    assert list(summary.index) == ["β=0.01", "β=1"]
    assert (summary["status"] == "completed").all()
    assert summary.loc["β=1", "sigma_eff"] == pytest.approx(0.5**0.5)
    # The run records carry the data's PCA spectrum, so the linear reference is there.
    assert summary["lin_sse"].notna().all()
    page = (folder / "index.html").read_text(encoding="utf-8")
    assert page.count("data:image/png;base64,") >= 9
    assert "β=1 assumes pixel noise σ = 0.707" in page
    for png in ("reconstructions", "rate_distortion", "loss_curves", "beta_summary"):
        assert (folder / f"{png}.png").stat().st_size > 1000
    md = run(["report", str(outputs / "sweeps" / "e2e"), "--format", "md"], outputs.parent)
    assert md.returncode == 0, md.stderr[-2000:]
    assert (folder / "index.md").is_file()


def test_report_cli_bad_directory_exits_2(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run(["report", str(empty)], tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("Error:")
    assert "holds no runs" in result.stderr


def test_report_imports_neither_torch_nor_hydra(tmp_path: Path) -> None:
    fabricate_sweep(tmp_path / "s", [0.1, 1.0])
    code = (
        "import sys; from pathlib import Path; from vaesweep.report.build import build_report; "
        f"build_report([Path({str(tmp_path / 's')!r})]); "
        "bad = [m for m in ('torch', 'hydra', 'omegaconf') if m in sys.modules]; "
        "print('imported:', bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
