"""The task function of a stack job: one Hydra job trains every member of one stack.

The launch (:mod:`vaesweep.commands.sweep_stacks`) sweeps only the keys that are not stacked,
so Hydra composes this job's config with the stack's shared settings; each member's config is
that composition with the member's own values of the stacked keys (beta, seed, kl.*,
loss.sigma, from ``sweep.json``) applied as Hydra applies value overrides, then typed and
range-checked. The members then train as one stack (:func:`vaesweep.run.stack_job.run_stack`)
into their own run directories, each locked by the job (:func:`~vaesweep.bridge.launch.
job_guard`), and the sweep's ``runs.csv`` is rebuilt. The job's own folder (its ``.hydra/``
and log) is ``.stacks/<stack number>`` (:data:`STACK_SUBDIR`), the same for a stack however
many other stacks a resumed sweep launches with it.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

from vaesweep.bridge.compose import PART_KEY, parser, to_config, translate_errors
from vaesweep.bridge.hydra_internals import apply_value_overrides
from vaesweep.bridge.launch import job_guard, scheduler_threads
from vaesweep.config import Config
from vaesweep.record import contract
from vaesweep.record.layout import STACKS_DIR
from vaesweep.record.sweep_index import run_status
from vaesweep.record.sweep_plan import PlannedRun, SweepPlan

#: ``hydra.sweep.subdir`` of a stack job: named by its stack, not by its place in the launch.
STACK_SUBDIR = "${vaesweep.stack_dir:}"


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def stack_runs(plan: SweepPlan, job: list[str]) -> list[PlannedRun]:
    """The members of the stack that the launched job with overrides ``job`` trains."""
    part = next((int(o.split("=", 1)[1]) for o in job if _key(o) == PART_KEY), 0)
    return plan.stack_of_job(job, part)


def _stack_dir_resolver(_root_: DictConfig) -> str:
    plan = SweepPlan.load(Path(str(_root_.hydra.sweep.dir)))
    return f"{STACKS_DIR}/{stack_runs(plan, list(_root_.hydra.overrides.task))[0].stack}"


OmegaConf.register_new_resolver("vaesweep.stack_dir", _stack_dir_resolver, replace=True)


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
    runs = stack_runs(plan, job)
    done = [run_status(sweep_dir / run.name) for run in runs]
    if all(status == contract.COMPLETED for status, _ in done):
        return [summary or {} for _, summary in done]  # before torch is imported

    from vaesweep.run.stack_job import run_stack  # late: torch only inside the job
    from vaesweep.run.stack_members import Member
    from vaesweep.tracking.info import sweep_context

    planned = [(r.name, r.values) for r in plan.runs]
    members = [
        Member(scheduler_threads(config), sweep_dir / run.name, overrides)
        for run, (config, overrides) in zip(runs, member_configs(cfg, plan, runs, job))
    ]
    for m in members:  # what each member's trackers show of the sweep, as for a single run
        if m.config.tracker.names:
            m.tracking = sweep_context(sweep_dir, plan.swept_keys, planned, m.run_dir.name)
    with job_guard(sweep_dir, [m.run_dir for m in members]):
        return run_stack(members)
