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

from vaesweep.cli import app
from vaesweep.testing.fabricate import fabricate_run, fabricate_sweep


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


def test_report_survives_a_real_huge_kl_run(tmp_path: Path) -> None:
    """The same record shape as the reported run: one completed run, KL about 5e9 nats."""
    run = tmp_path / "run"
    fabricate_run(run, beta=0.1, images=False)
    _edit_record(run, HOSTILE["huge-kl"])
    result = _invoke(["report", str(run)])
    assert result.exit_code == 0, result.output
    assert (run / "report" / "index.html").is_file()


def test_report_marks_what_it_could_not_compute(tmp_path: Path) -> None:
    run = tmp_path / "run"
    fabricate_run(run, beta=0.1, images=False)
    s = json.loads((run / "summary.json").read_text())
    s["data"]["pca"] = {"eigenvalues": [1e308, math.inf, "x"], "total_variance": 1e308}
    (run / "summary.json").write_text(json.dumps(s))
    result = _invoke(["report", str(run)])
    assert result.exit_code == 0, result.output
