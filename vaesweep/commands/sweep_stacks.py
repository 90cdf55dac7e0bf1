"""Which runs of a sweep train together, and how a stacked sweep is handed to Hydra.

Runs whose swept values differ only in stackable keys (:func:`~vaesweep.config.stacking.
stackable_key`: beta, seed, kl.*, loss.sigma) form one group; a group is cut into stacks of
at most ``--stack-size`` runs. Each stack is ONE Hydra job, so every launcher (``--jobs``,
``submitit_local``, ``slurm``) runs stacks unchanged: the launch sweeps only the keys that
are not stacked (one job per group) and, when groups are cut, a part index; the stacked keys
are pinned to one value for the job's own composition, and the job's task function
(:func:`vaesweep.bridge.stack_task.stack_task`) gives every member its own values from
``sweep.json``.
"""

from __future__ import annotations

from vaesweep.bridge.overrides import quote
from vaesweep.bridge.stack_task import PART_KEY, STACK_SUBDIR
from vaesweep.config.stacking import DEFAULT_STACK_SIZE, GPU_STACK_SIZE, stackable_key
from vaesweep.record.sweep_plan import SweepPlan


def default_stack_size(gpu_capacity: int | None, parallel: int = 1) -> int:
    """``--stack-size``'s default: :data:`DEFAULT_STACK_SIZE` off a GPU (and for a cluster,
    whose GPUs this process cannot see); on a GPU :data:`GPU_STACK_SIZE`, or fewer when
    ``gpu_capacity`` members (:mod:`vaesweep.run.stack_capacity`) shared by ``parallel``
    stacks side by side are fewer."""
    if gpu_capacity is None:
        return DEFAULT_STACK_SIZE
    return max(1, min(GPU_STACK_SIZE, gpu_capacity // max(1, parallel)))


def assign_stacks(plan: SweepPlan, stack_size: int) -> None:
    """Set ``run.stack`` for every planned run (None where a run would train alone)."""
    plan.stack_size = stack_size
    plan.stacked_keys = [k for k in plan.swept_keys if stackable_key(k)]
    shared = [k for k in plan.swept_keys if k not in plan.stacked_keys]
    groups: dict[tuple[str, ...], list[int]] = {}
    for i, run in enumerate(plan.runs):
        run.stack = None
        groups.setdefault(tuple(run.values[k] for k in shared), []).append(i)
    if stack_size < 2 or all(len(g) < 2 for g in groups.values()):
        plan.stack_size, plan.stacked_keys = 0, []
        return
    stack = 0
    for members in groups.values():
        for start in range(0, len(members), stack_size):
            for i in members[start : start + stack_size]:
                plan.runs[i].stack = stack
            stack += 1


def launch_units(plan: SweepPlan) -> int:
    """How many jobs the launch starts: one per stack, one per run that trains alone."""
    return len(plan.stacks()) + sum(run.stack is None for run in plan.runs)


def stack_launch(plan: SweepPlan, user: list[str]) -> tuple[list[str], str]:
    """Hydra overrides and ``hydra.sweep.subdir`` of the launch of a stacked plan.

    The user's overrides of stacked keys are replaced by the first run's values (the job's
    own composition; members get theirs in the task), which also fixes those keys where a
    named sweep (``hydra.sweeper.params``) would sweep them.
    """
    stacked = set(plan.stacked_keys)
    kept = [o for o in user if o.split("=", 1)[0].lstrip("+~") not in stacked]
    first = plan.runs[0].values
    out = [*kept, *(f"{k}={quote(first[k])}" for k in plan.stacked_keys)]
    per_group = max(len(plan.stacks()) // max(1, _groups(plan)), 1)
    if per_group > 1:
        out.append(f"+{PART_KEY}=" + ",".join(str(i) for i in range(per_group)))
    return out, STACK_SUBDIR


def _groups(plan: SweepPlan) -> int:
    shared = [k for k in plan.swept_keys if k not in plan.stacked_keys]
    return len({tuple(run.values[k] for k in shared) for run in plan.runs})
