"""``sweep.json``: what a sweep is (overrides, grid, launcher), so it can be resumed and reported.

Keys: schema, name, created, command, overrides (as typed), swept_keys, runs (one
``{"name", "values", "overrides"}`` per run), launcher, jobs, threads_per_run, config_dirs,
versions, resumed (times of each resume).
"""

from __future__ import annotations

import platform
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from vaesweep import __version__
from vaesweep.errors import UserError
from vaesweep.record.files import read_json, write_json

PLAN_FILE = "sweep.json"
INDEX_FILE = "runs.csv"


@dataclass
class PlannedRun:
    name: str
    values: dict[str, str]
    overrides: list[str]


@dataclass
class SweepPlan:
    name: str
    overrides: list[str]
    swept_keys: list[str]
    runs: list[PlannedRun]
    launcher: str = "basic"
    jobs: int = 1
    threads_per_run: int | None = None
    config_dirs: list[str] = field(default_factory=list)
    command: str = ""
    created: str = field(
        default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds")
    )
    versions: dict[str, str] = field(
        default_factory=lambda: {"vaesweep": __version__, "python": platform.python_version()}
    )
    resumed: list[str] = field(default_factory=list)
    schema: int = 1

    def save(self, sweep_dir: Path) -> None:
        write_json(Path(sweep_dir) / PLAN_FILE, asdict(self))

    @classmethod
    def load(cls, sweep_dir: Path) -> SweepPlan:
        path = Path(sweep_dir) / PLAN_FILE
        if not path.exists():
            raise UserError(f"{sweep_dir} is not a sweep directory (no {PLAN_FILE})")
        try:
            data: dict[str, Any] = read_json(path)
            runs = [PlannedRun(**r) for r in data.pop("runs")]
            known = set(cls.__dataclass_fields__)
            return cls(runs=runs, **{k: v for k, v in data.items() if k in known})
        except (ValueError, TypeError, KeyError) as err:
            raise UserError(f"{path} is damaged ({err}); cannot resume from it") from None
