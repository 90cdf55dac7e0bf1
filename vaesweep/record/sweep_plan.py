"""``sweep.json``: what a sweep is (overrides, grid, launcher), so it can be resumed and reported.

Keys: schema, name, created, command, overrides (as typed), swept_keys, runs (one
``{"name", "values", "overrides", "stack"}`` per run; ``stack`` is the index of the stack the
run trains in, or null when it trains alone), stack_size (the most runs per stack; 0 when
stacking is off), launcher, jobs, threads_per_run, config_dirs, versions, resumed (times of
each resume).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from vaesweep.errors import UserError
from vaesweep.record.files import read_json, write_json
from vaesweep.record.provenance import base_versions

PLAN_FILE = "sweep.json"
INDEX_FILE = "runs.csv"


class DamagedPlan(UserError):
    """A ``sweep.json`` that is there but cannot be read as a plan (``reason`` says why)."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path} is damaged ({reason}); cannot resume from it")
        self.reason = reason


@dataclass
class PlannedRun:
    name: str
    values: dict[str, str]
    overrides: list[str]
    #: Index of the stack this run trains in (README, "Stacked sweeps"); None: alone.
    stack: int | None = None


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
    versions: dict[str, str | bool] = field(default_factory=base_versions)
    resumed: list[str] = field(default_factory=list)
    #: The most runs per stack; 0 = every run in its own process (``--no-stack``).
    stack_size: int = 0
    #: Swept keys whose values differ inside a stack (beta, seed, kl.*, loss.sigma).
    stacked_keys: list[str] = field(default_factory=list)
    schema: int = 1

    def stacks(self) -> list[list[PlannedRun]]:
        """The runs of each stack, in stack order (runs that train alone are left out)."""
        out: dict[int, list[PlannedRun]] = {}
        for run in self.runs:
            if run.stack is not None:
                out.setdefault(run.stack, []).append(run)
        return [out[i] for i in sorted(out)]

    def stack_of_job(self, overrides: list[str], part: int) -> list[PlannedRun]:
        """The runs a launched stack job trains: of the runs whose values of the swept keys
        that are not stacked are among the job's ``overrides``, the ``part``-th stack."""
        given = set(overrides)
        shared = [k for k in self.swept_keys if k not in self.stacked_keys]
        ids: list[int] = []
        for run in self.runs:
            matches = all(f"{k}={run.values[k]}" in given for k in shared)
            if matches and run.stack is not None and run.stack not in ids:
                ids.append(run.stack)
        if part >= len(ids):
            raise UserError(f"no stack {part} for the job {' '.join(overrides)} in this plan")
        return [run for run in self.runs if run.stack == ids[part]]

    def save(self, sweep_dir: Path) -> None:
        write_json(Path(sweep_dir) / PLAN_FILE, asdict(self))

    @classmethod
    def load(cls, sweep_dir: Path) -> SweepPlan:
        """The plan in ``sweep_dir``; :class:`DamagedPlan` names the first field that is
        missing or of the wrong type (the file is user-editable: nothing downstream should
        meet a list where it expects a name)."""
        path = Path(sweep_dir) / PLAN_FILE
        if not path.exists():
            raise UserError(f"{sweep_dir} is not a sweep directory (no {PLAN_FILE})")
        try:
            data: dict[str, Any] = read_json(path)
            _check_fields(data, _PLAN_FIELDS, required=("name", "overrides", "runs"))
            if not isinstance(data["runs"], list):
                raise ValueError("runs is not a list")
            for i, r in enumerate(data["runs"]):
                if not isinstance(r, dict):
                    raise ValueError(f"runs[{i}] is not an object")
                _check_fields(r, _RUN_FIELDS, required=("name",), where=f"runs[{i}].")
            runs = [
                PlannedRun(
                    name=r["name"],
                    values=dict(r.get("values") or {}),
                    overrides=list(r.get("overrides") or []),
                    stack=r.get("stack"),
                )
                for r in data["runs"]
            ]
            known = set(cls.__dataclass_fields__) - {"runs"}
            return cls(runs=runs, **{k: v for k, v in data.items() if k in known})
        except (OSError, ValueError, TypeError, KeyError) as err:
            raise DamagedPlan(path, str(err)) from None


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


#: sweep.json's fields: what each must be (a check, and the words for the message).
_PLAN_FIELDS: dict[str, tuple[Any, str]] = {
    "name": (lambda v: isinstance(v, str) and v != "", "a non-empty string"),
    "overrides": (_is_str_list, "a list of strings"),
    "swept_keys": (_is_str_list, "a list of strings"),
    "launcher": (lambda v: isinstance(v, str), "a string"),
    "jobs": (lambda v: _is_count(v) and v >= 1, "a whole number of at least 1"),
    "threads_per_run": (lambda v: v is None or (_is_count(v) and v >= 1), "null or at least 1"),
    "config_dirs": (_is_str_list, "a list of strings"),
    "command": (lambda v: isinstance(v, str), "a string"),
    "created": (lambda v: isinstance(v, str), "a string"),
    "versions": (lambda v: isinstance(v, dict), "an object"),
    "resumed": (_is_str_list, "a list of strings"),
    "stack_size": (_is_count, "a whole number"),
    "stacked_keys": (_is_str_list, "a list of strings"),
    "schema": (_is_count, "a whole number"),
}
_RUN_FIELDS: dict[str, tuple[Any, str]] = {
    "name": (lambda v: isinstance(v, str) and v != "", "a non-empty string"),
    "values": (
        lambda v: isinstance(v, dict) and all(isinstance(x, str) for x in v.values()),
        "an object of strings",
    ),
    "overrides": (_is_str_list, "a list of strings"),
    "stack": (lambda v: v is None or _is_count(v), "null or a whole number"),
}


def _check_fields(
    data: dict[str, Any],
    fields: dict[str, tuple[Any, str]],
    required: tuple[str, ...],
    where: str = "",
) -> None:
    for key in required:
        if key not in data:
            raise ValueError(f"no {where}{key}")
    for key, (ok, what) in fields.items():
        if key in data and not ok(data[key]):
            raise ValueError(f"{where}{key} should be {what}, not {type(data[key]).__name__}")
