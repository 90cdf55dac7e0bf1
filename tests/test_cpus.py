"""How torch's threads wait for work: they spin briefly, then sleep (vaesweep.cpus)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from vaesweep.cpus import OMP_SPIN_COUNT, spin_briefly


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({}, OMP_SPIN_COUNT),
        ({"GOMP_SPINCOUNT": "300000"}, "300000"),  # the user's choice stays
        ({"OMP_WAIT_POLICY": "ACTIVE"}, None),  # so does a policy that implies its own count
    ],
)
def test_spin_count_is_set_unless_the_user_chose(
    monkeypatch: pytest.MonkeyPatch, given: dict[str, str], expected: str | None
) -> None:
    monkeypatch.delenv("GOMP_SPINCOUNT", raising=False)
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    for key, value in given.items():
        monkeypatch.setenv(key, value)
    spin_briefly()
    assert os.environ.get("GOMP_SPINCOUNT") == expected


def test_the_command_line_sets_it_before_torch_loads() -> None:
    """libgomp reads the count once, when torch loads it: set later, it changes nothing (a
    default run beside two busy processes trained in 12-18 s instead of 1.3 s)."""
    code = (
        "import os, sys\n"
        "from vaesweep import cli\n"
        "cli.app = lambda: print(os.environ.get('GOMP_SPINCOUNT'), 'torch' in sys.modules)\n"
        "cli.main()\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == [OMP_SPIN_COUNT, "False"]
