"""The task function of a stack job: one Hydra job trains every member of one stack.

The launch (:mod:`vaesweep.commands.sweep_stacks`) sweeps only the keys that are not stacked,
so Hydra composes this job's config with the stack's shared settings; each member's config is
that composition with the member's own values of the stacked keys (beta, seed, kl.*,
loss.sigma, from ``sweep.json``) applied as Hydra applies value overrides, then typed and
range-checked. The members then train as one stack (:func:`vaesweep.run.stack_job.run_stack`)
into their own run directories, and the sweep's ``runs.csv`` is rebuilt.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from vaesweep.bridge.compose import parser, to_config, translate_errors
from vaesweep.bridge.hydra_internals import apply_value_overrides
from vaesweep.config import Config
from vaesweep.record import contract
from vaesweep.record.sweep_index import refresh_index, run_status
from vaesweep.record.sweep_plan import PlannedRun, SweepPlan

#: The launch's part override (see :mod:`vaesweep.commands.sweep_stacks`), without its "+".
PART_KEY = "vaesweep_stack_part"


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def member_configs(
    cfg: DictConfig, plan: SweepPlan, runs: list[PlannedRun], job: list[str]
) -> list[tuple[Config, list[str]]]:
    """Each member's typed config and its override list (the job's, with its own values)."""
    stacked = set(plan.stacked_keys)
    base = [o for o in job if _key(o) not in stacked and _key(o) != PART_KEY]
    with open_dict(cfg):
        cfg.pop(PART_KEY, None)
    out = []
    for run in runs:
        own = [f"{k}={run.values[k]}" for k in plan.stacked_keys]
        member = copy.deepcopy(cfg)
        with translate_errors():
            apply_value_overrides(parser().parse_overrides(own), member)
            out.append((to_config(member), [*base, *own]))
    return out


def stack_task(cfg: DictConfig) -> list[dict[str, Any]]:
    """Hydra's task function for a stack: the summaries of its members."""
    hydra_cfg = HydraConfig.get()
    sweep_dir = Path(hydra_cfg.sweep.dir).resolve()
    plan = SweepPlan.load(sweep_dir)
    job = list(hydra_cfg.overrides.task)
    part = next((int(o.split("=", 1)[1]) for o in job if _key(o) == PART_KEY), 0)
    runs = plan.stack_of_job(job, part)
    done = [run_status(sweep_dir / run.name) for run in runs]
    if all(status == contract.COMPLETED for status, _ in done):
        return [summary or {} for _, summary in done]  # before torch is imported

    from vaesweep.run.stack_job import Member, run_stack  # late: torch only inside the job
    from vaesweep.tracking.info import sweep_context

    planned = [(r.name, r.values) for r in plan.runs]
    members = [
        Member(config, sweep_dir / run.name, overrides)
        for run, (config, overrides) in zip(runs, member_configs(cfg, plan, runs, job))
    ]
    for m in members:  # what each member's trackers show of the sweep, as for a single run
        if m.config.tracker.names:
            m.tracking = sweep_context(sweep_dir, plan.swept_keys, planned, m.run_dir.name)
    try:
        return run_stack(members)
    finally:
        refresh_index(sweep_dir)
