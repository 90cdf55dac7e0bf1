"""Every `vaesweep train` and `vaesweep sweep` example in the README composes and validates.

Train lines are checked through `vaesweep show` (same overrides, no training); sweep lines
with `--dry-run` (the whole grid is expanded and every run validated). Lines that need a
cluster or an existing sweep directory are skipped by what they contain.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vaesweep.cli import app

README = Path(__file__).resolve().parents[1] / "README.md"
SKIP = ("--resume", "--config-dir")


def _examples() -> list[str]:
    text = README.read_text()
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        joined = block.replace("\\\n", " ")
        for line in joined.splitlines():
            command = line.split("  #")[0].split(" # ")[0].strip()
            if command.startswith(("vaesweep train", "vaesweep sweep")) and not any(
                s in command for s in SKIP
            ):
                lines.append(command)
    return lines


EXAMPLES = _examples()


def test_the_readme_has_examples() -> None:
    assert len(EXAMPLES) >= 10


def _home_with_images(command: str, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A sweep's dry run checks its data: a `data.path=~/NAME` example gets a HOME whose NAME
    folder holds a few small colour images."""
    from PIL import Image

    for path in re.findall(r"data\.path=~/(\S+)", command):
        folder = home / path
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(4):
            Image.new("RGB", (80, 72), (40 * i, 90, 200 - 30 * i)).save(folder / f"{i}.png")
    monkeypatch.setenv("HOME", str(home))


@pytest.mark.parametrize("command", EXAMPLES)
def test_readme_example_is_valid(
    command: str, outputs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if "data.path=~/" in command:
        _home_with_images(command, outputs.parent / "home", monkeypatch)
    args = shlex.split(command)[1:]
    if args[0] == "train":
        overrides = [a for a in args[1:] if not a.startswith("-") and "=" in a]
        args = ["show", *overrides]
    else:
        args = [a for a in args if a not in ("--jobs", "2")] + ["--dry-run"]
        # A dry run composes the launcher (its hydra.launcher.* settings are checked too):
        # SLURM's commands are taken as present, as on a login node.
        from vaesweep.commands import launching

        monkeypatch.setattr(launching.shutil, "which", lambda name: f"/usr/bin/{name}")
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, f"{command}\n{result.output}"
