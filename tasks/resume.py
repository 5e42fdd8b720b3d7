"""Resume: which phases a run does not run again, and which attempt it goes on with.

A phase is resumed when the checkpoint a previous run left says complete, its text is unchanged
(the stored hash) and its declared files exist, or when its heading says a person finished it
(`✅ COMPLETE`). A phase an interrupted run left `running` keeps that run's attempt, so its
cached agent calls are reused. Prefect-free: the flow, the free dry run and the tests call these.
"""

from __future__ import annotations

from pathlib import Path

from plan_parser.checkpoints import ExecutionState, PhaseCheckpoint
from plan_parser.model import Phase, Plan, id_key
from tasks import worktree
from tasks.plan_input import plan_name

MARKED_COMPLETE = "marked complete in the plan"
"""Why a phase whose heading says `✅ COMPLETE` was not run (report, dry run, checkpoint)."""


def landing_branch(plan_path: Path, *, worktrees: bool, on_current_branch: bool) -> str | None:
    """Where a previous run's verified phases landed: the plan's integration branch with
    worktrees (wherever HEAD is now), None when phases work in (or land on) the checkout."""
    if not worktrees or on_current_branch:
        return None
    return worktree.integration_branch(plan_name(plan_path))


def resumable_phases(
    plan: Plan,
    previous: ExecutionState | None,
    repo: Path,
    scheduled: list[str],
    *,
    branch: str | None = None,
) -> dict[str, PhaseCheckpoint]:
    """Phases the last run finished that still hold: complete, same text, declared files exist
    (on ``branch`` when it exists, where verified phases landed; else in the checkout). A phase
    whose heading says a person finished it (`✅ COMPLETE`) counts as a complete checkpoint:
    not run when its declared files exist."""
    by_key = {id_key(pid): cp for pid, cp in previous.phases.items()} if previous else {}
    on_branch = branch is not None and worktree.branch_tip(repo, branch) is not None

    def exists(path: str) -> bool:
        if on_branch and branch is not None:
            return worktree.exists_on(repo, branch, path)
        return (repo / path).exists()

    resumed: dict[str, PhaseCheckpoint] = {}
    for pid in scheduled:
        phase = plan.phase(pid)
        declared = [ref for ref in phase.files if not ref.is_glob and ref.action.value != "delete"]
        if not all(exists(ref.path) for ref in declared):
            continue
        checkpoint = by_key.get(id_key(pid))
        if (
            checkpoint is not None
            and checkpoint.status == "complete"
            and checkpoint.phase_hash == phase.body_hash
        ):
            resumed[pid] = checkpoint.model_copy(update={"phase_id": pid})
        elif phase.completed_in_plan:
            resumed[pid] = marked_complete(phase)
    return resumed


def marked_complete(phase: Phase) -> PhaseCheckpoint:
    """The checkpoint a phase whose heading says `✅ COMPLETE` stands for."""
    return PhaseCheckpoint(
        phase_id=phase.id,
        status="complete",
        phase_hash=phase.body_hash,
        extra={"source": MARKED_COMPLETE},
    )


def resume_reason(checkpoint: PhaseCheckpoint) -> str:
    """Why a resumed phase is not run: `checkpoint`, or :data:`MARKED_COMPLETE`."""
    extra = checkpoint.extra or {}
    return MARKED_COMPLETE if extra.get("source") == MARKED_COMPLETE else "checkpoint"


def marked_complete_ids(resumed: dict[str, PhaseCheckpoint]) -> list[str]:
    """The resumed phases a person marked complete in the plan (not a run's checkpoint)."""
    return [
        pid for pid, checkpoint in resumed.items() if resume_reason(checkpoint) == MARKED_COMPLETE
    ]


def continued_attempt(previous: ExecutionState | None, phase: Phase) -> str | None:
    """The attempt an interrupted run left `running` on this (unchanged) phase, to continue it."""
    checkpoint = previous.get(phase.id) if previous is not None else None
    if checkpoint is None or checkpoint.status != "running":
        return None
    if checkpoint.phase_hash != phase.body_hash:
        return None
    return checkpoint.extra.get("attempt") or None


def pending_checkpoint(phase: Phase) -> PhaseCheckpoint:
    """The checkpoint a phase this run will run starts from."""
    return PhaseCheckpoint(phase_id=phase.id, status="pending", phase_hash=phase.body_hash)
