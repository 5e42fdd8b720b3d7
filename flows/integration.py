"""A verified phase lands on the run's integration branch (composition: tasks.worktree + gates).

The phase's work becomes one commit, replayed onto the branch's tip in the phase's worktree.
When siblings landed meanwhile, the result is checked again (blast radius and build). A real
conflict, or a combination that no longer builds or passes, gets one bounded attempt by the
phase's owner agent in the worktree; what still fails ends the phase `failed` (conflict), its
work kept on its phase branch. Landings are serialised by the run's integration lock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from flows.context import PhaseOutcome, RunContext
from plan_parser.model import Phase
from plan_parser.paths import repo_relative
from tasks import worktree
from tasks.gates.config import GateConfig
from tasks.gates.ledger import Ledger, LedgerEntry, Verdict
from tasks.gates.repo_state import head, plan_lock_file, plan_run_lock_file
from tasks.worktree import Integration, PhaseWorkspace

Resolver = Callable[[str], Awaitable[None]]
"""Runs the owner agent once in the phase's worktree with the given task."""

MESSAGE_LINES = 12


def plan_relative(context: RunContext) -> str:
    """The plan file relative to the repository; empty when it lies outside."""
    return repo_relative(context.options.repo, context.plan_path) or ""


def never_committed(context: RunContext) -> list[str]:
    """The plan file and its locks: plan-executor's, never a phase's work."""
    plan_file = plan_relative(context)
    if not plan_file:
        return []
    return [plan_file, plan_lock_file(plan_file), plan_run_lock_file(plan_file)]


def commit_message(context: RunContext, phase: Phase, ledger: Ledger) -> str:
    deciding = [entry.line().splitlines()[0] for entry in ledger.entries if entry.required]
    body = "\n".join(f"- {line[:160]}" for line in deciding[:MESSAGE_LINES])
    more = len(deciding) - MESSAGE_LINES
    if more > 0:
        body += f"\n- ... and {more} more checks"
    return f"{context.plan.title}: phase {phase.id} - {phase.title}\n\nVerified by plan-executor:\n{body}\n"


def work_in_progress_message(context: RunContext, phase: Phase, status: str) -> str:
    return f"{context.plan.title}: phase {phase.id} - {phase.title} ({status}, not landed)\n"


async def keep_unfinished_work(
    context: RunContext, phase: Phase, workspace: PhaseWorkspace, status: str
) -> str:
    """Commit a phase's unfinished work on its own branch: the report names it, a rerun goes on
    from it. Never raises: the phase's verdict stands whatever git says."""
    try:
        return await asyncio.to_thread(
            worktree.commit_work,
            workspace,
            work_in_progress_message(context, phase, status),
            exclude=never_committed(context),
        )
    except worktree.WorktreeError:
        return ""


def _failing(entries: list[LedgerEntry]) -> list[LedgerEntry]:
    return [entry for entry in entries if entry.required and entry.verdict is Verdict.FAIL]


def resolution_task(phase: Phase, integration: Integration, failing: list[LedgerEntry]) -> str:
    if integration.status == "conflict":
        problem = (
            "Your phase's verified work was replayed onto the integration branch, where phases "
            "that ran beside yours have landed meanwhile, and these files conflict (git conflict "
            "markers `<<<<<<<` / `>>>>>>>` are in them): "
            + ", ".join(f"`{f}`" for f in integration.conflicts)
            + ". Resolve every conflict so that both your phase's work and theirs are kept, and "
            "remove all markers."
        )
    else:
        lines = "\n".join(f"- {entry.line().splitlines()[0]}" for entry in failing)
        problem = (
            "Your phase's verified work was combined with the work of phases that landed beside "
            "it, and the combination fails these checks:\n" + lines + "\nFix the combination "
            "(for example a call to a function another phase renamed) without undoing their work."
        )
    return (
        f"# Phase {phase.id}: {phase.title}: integration\n\n{problem}\n\n"
        "Change only what the integration needs. Stop calling tools when you are done."
    )


async def land_phase(
    context: RunContext,
    phase: Phase,
    workspace: PhaseWorkspace,
    ledger: Ledger,
    outcome: PhaseOutcome,
    *,
    config: GateConfig,
    resolve: Resolver | None,
) -> list[LedgerEntry]:
    """Put the verified phase on the integration branch; returns the integration ledger lines
    (a required FAIL among them means it did not land)."""
    from tasks.gates.evidence import run_gate
    from tasks.gates.phase_gates import integration_entries

    repo = context.options.repo

    def after_merge(path: Path, locks: list[str]) -> None:
        # Joined additions (two `mod` lines) may need the formatter the fmt gate checks with.
        argv = [arg for arg in config.fmt if arg != "--check"]
        if argv:
            run_gate(argv, path, config)
        if any(Path(lock).name == "Cargo.lock" for lock in locks):
            # cargo brings the lock file up to date with the joined manifests (nothing else).
            run_gate(["cargo", "metadata", "--format-version", "1"], path, config)

    async def verify() -> list[LedgerEntry]:
        return await asyncio.to_thread(
            integration_entries, workspace.path, phase, config, context.baseline
        )

    async with context.integration_lock:
        commit = await asyncio.to_thread(
            worktree.commit_work,
            workspace,
            commit_message(context, phase, ledger),
            exclude=never_committed(context),
        )
        tip = await asyncio.to_thread(head, repo)
        result = await asyncio.to_thread(worktree.replay, workspace, commit, tip, after_merge)
        checks: list[LedgerEntry] = []
        if result.status in ("replayed", "combined"):
            checks = await verify()
        if (result.status == "conflict" or _failing(checks)) and resolve is not None:
            await resolve(resolution_task(phase, result, _failing(checks)))
            outcome.steps.append("owner agent resolved the integration")
            result = await asyncio.to_thread(worktree.conclude, workspace, commit, result)
            if result.status != "conflict":
                checks = await verify()
        landed = result.status != "conflict" and not _failing(checks)
        if landed and result.status != "nothing":
            await asyncio.to_thread(worktree.land, repo, result.commit)
        if landed and result.status != "nothing":
            await asyncio.to_thread(worktree.mark_landed, repo, workspace, result.commit)
        else:
            await asyncio.to_thread(worktree.abandon, workspace, commit)
    return [*checks, _integration_entry(phase, result, landed, checks)]


def _integration_entry(
    phase: Phase, result: Integration, landed: bool, checks: list[LedgerEntry]
) -> LedgerEntry:
    if landed:
        how = {
            "fast-forward": "fast-forward: nothing landed since the phase started",
            "replayed": "replayed onto the phases that landed meanwhile",
            "combined": "replayed; additions on both sides joined in " + ", ".join(result.combined),
            "nothing": "no change to land",
        }.get(result.status, result.status)
        commit = f" as {result.commit[:10]}" if result.commit else ""
        return LedgerEntry(
            check="integration", verdict=Verdict.PASS, evidence=f"landed{commit} ({how})",
            phase_id=phase.id, required=True,
        )  # fmt: skip
    if result.status == "conflict":
        why = "conflict: " + ", ".join(result.conflicts)
    else:
        why = "the combination with the phases that landed meanwhile fails: " + "; ".join(
            entry.check for entry in _failing(checks)
        )
    return LedgerEntry(
        check="integration", verdict=Verdict.FAIL, evidence=f"not landed: {why}",
        phase_id=phase.id, required=True,
    )  # fmt: skip
