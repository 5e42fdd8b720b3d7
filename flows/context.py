"""What a plan run carries between its flow and its phase subflows.

Subflow parameters go to the API, so they stay small (plan path, phase id, options). The heavy,
process-local things (the parsed plan, the mirror, the pre-flight baseline) live in a
:class:`RunContext` that the plan's flow makes the current run (a context variable) for the
duration of the run. A phase subflow started on its own (no current run) builds a fresh context.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from pydantic import BaseModel, Field

from plan_parser.checkpoints import ExecutionState, PhaseCheckpoint
from plan_parser.model import Phase, Plan
from plan_parser.vocabulary import DirtyPolicy as DirtyPolicy  # re-exported
from plan_parser.vocabulary import PhaseStatus as PhaseStatus  # re-exported
from tasks.agent.budget import RunBudget
from tasks.agent.result import InfraFaults
from tasks.gates.ledger import Ledger
from tasks.mirror import PlanMirror
from tasks.options import ResolvedRunOptions as ResolvedRunOptions  # re-exported
from tasks.options import RunOptions as RunOptions  # re-exported
from tasks.resume import resume_reason

if TYPE_CHECKING:  # annotations only: the context is built before the gates are imported
    from tasks.gates.cargo_output import TestRun
    from tasks.gates.config import GateConfig
    from tasks.worktree import PhaseWorkspace


class PhaseOutcome(BaseModel):
    """What a phase subflow hands back: the mirror and the reports are built from this."""

    phase_id: str
    title: str = ""
    owner: str = ""
    wave: int = 0
    status: PhaseStatus
    error: str | None = None
    ledger: Ledger = Field(default_factory=Ledger)
    failing: list[str] = Field(default_factory=list)
    """The failing ledger lines (LedgerEntry.line()), the evidence for blocked."""
    artifacts: list[str] = Field(default_factory=list)
    """Files the phase created or changed that exist now."""
    tokens: dict[str, int] = Field(default_factory=dict)
    cost_usd: float = 0.0
    """What the phase's agent calls cost (the run's price table, from the API's usage)."""
    claims: dict[str, str] = Field(default_factory=dict)
    """Each agent's own summary by role: recorded, never trusted."""
    transcripts: dict[str, str] = Field(default_factory=dict)
    """Each agent call's transcript file (`.ai/logs/...`) by role: the phase page links them."""
    steps: list[str] = Field(default_factory=list)
    flow_run_id: str | None = None
    duration_s: float = 0.0
    resumed: bool = False
    """True when the phase was not run because its checkpoint says complete and still holds."""
    resume_reason: str = "checkpoint"
    """Why a resumed phase was not run: `checkpoint`, or `marked complete in the plan` (its
    heading says `✅ COMPLETE`)."""
    unsandboxed: bool = False
    """An agent of this phase ran shell commands without bubblewrap (allow_unsandboxed)."""
    agent_calls: int = 0
    """Agent calls the phase made (owner, tester, verifier). Infrastructure retries and restarts
    of a call are not agent attempts: they are counted in `infra`."""
    agent_failures: int = 0
    """Agent calls that ended in an agent failure (refusal, max turns, context ...)."""
    infra: InfraFaults = Field(default_factory=InfraFaults)
    """API faults met by the phase's agent calls, and the retries that absorbed them."""
    infra_failure: bool = False
    """The phase failed because the API (or the sandbox) stayed unusable, not because of an agent."""
    ran_on: str = ""
    """A distributed run's phase: the worker (name, else host:pid) and the clone it ran in."""

    @property
    def last_successful_step(self) -> str | None:
        return self.steps[-1] if self.steps else None

    @property
    def verdict(self) -> str:
        if self.resumed:
            return f"complete ({self.resume_reason})"
        if self.status == "complete":
            judged = sum(1 for e in self.ledger.entries if e.judged)
            return f"complete ({len(self.ledger.entries)} checks{f', {judged} judged' if judged else ''})"
        if self.failing:
            return f"{self.status}: {len(self.failing)} failing"
        return self.status


@dataclass
class RunContext:
    plan_path: Path
    plan: Plan
    options: ResolvedRunOptions
    mirror: PlanMirror
    skills: list[str]
    baseline: TestRun | None = None
    """The whole suite's counts at pre-flight: the regressions are counted against them."""
    gate_config: GateConfig | None = None
    """The GateConfig pre-flight read from HEAD; every gate of the run uses it."""
    waves: list[list[str]] = field(default_factory=list)
    outcomes: dict[str, PhaseOutcome] = field(default_factory=dict)
    attempts: dict[str, str] = field(default_factory=dict)
    """Phase id → the attempt this run makes at it (the agent calls' cache key)."""
    previous: ExecutionState | None = None
    """The ExecutionState the plan file held when the run started (None: first run)."""
    integration_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    """One phase at a time lands on the integration branch."""
    branch: str | None = None
    """The integration branch checked out for the run (None: phases share the checkout)."""
    budget: RunBudget | None = None
    """The run's spending account, shared by its concurrent phases (set at pre-flight, with
    the price table read from HEAD); None: nothing is priced or limited."""
    phase_accounts: dict[str, str] = field(default_factory=dict)
    """Phase id → the key of its open budget account (what its agent requests carry)."""
    remote: bool = False
    """A worker's context in a distributed run: verified phases are committed on their branch
    and pushed, never landed here, and the plan file is the parent's to write."""
    workspaces: dict[str, PhaseWorkspace] = field(default_factory=dict)
    """Phase id → the PhaseWorkspace its worktree is (set when the worktree is opened)."""

    def wave_of(self, phase_id: str) -> int:
        for number, wave in enumerate(self.waves, start=1):
            if phase_id in wave:
                return number
        return 0


_CURRENT_RUN: ContextVar[RunContext | None] = ContextVar("plan_executor_run", default=None)
"""The run this code runs inside: set by the plan's flow for the duration of the run, seen by
its phase subflows (the same task, the asyncio tasks of one wave, and the thread the retry
entrypoint runs the flow in all carry a copy of the context)."""


@contextmanager
def running(context: RunContext) -> Iterator[RunContext]:
    """Make ``context`` the current run until the block ends."""
    token = _CURRENT_RUN.set(context)
    try:
        yield context
    finally:
        _CURRENT_RUN.reset(token)


def current_run(plan_path: Path) -> RunContext | None:
    """The current run when it runs ``plan_path``; None for a phase subflow started on its own
    (a worker's `execute-phase` run builds a fresh context)."""
    context = _CURRENT_RUN.get()
    if context is None or Path(context.plan_path).resolve() != Path(plan_path).resolve():
        return None
    return context


class RunObserver(Protocol):
    """What watches a run from outside (the CLI's live view): the waves once, then every phase
    transition the checkpoint mirror writes."""

    def set_waves(self, waves: list[list[str]]) -> None: ...

    def observe(self, checkpoint: PhaseCheckpoint) -> None: ...


_OBSERVERS: ContextVar[tuple[RunObserver, ...]] = ContextVar("plan_executor_observers", default=())


@contextmanager
def observing(observer: RunObserver) -> Iterator[RunObserver]:
    """Runs started in this block (in this thread or task) report to ``observer``."""
    token = _OBSERVERS.set((*_OBSERVERS.get(), observer))
    try:
        yield observer
    finally:
        _OBSERVERS.reset(token)


def observers() -> tuple[RunObserver, ...]:
    """The observers of the runs started here (the innermost :func:`observing` blocks)."""
    return _OBSERVERS.get()


def resumed_outcome(phase: Phase, checkpoint: PhaseCheckpoint, wave: int) -> PhaseOutcome:
    """The outcome of a phase not run because its checkpoint says complete and still holds."""
    return PhaseOutcome(
        phase_id=phase.id,
        title=phase.title,
        owner=phase.owner_label,
        wave=wave,
        status="complete",
        artifacts=list(checkpoint.artifacts or []),
        tokens=dict(checkpoint.tokens or {}),
        cost_usd=checkpoint.cost_usd or 0.0,
        flow_run_id=checkpoint.flow_run_id,
        resumed=True,
        resume_reason=resume_reason(checkpoint),
    )


def plain_outcome(
    phase: Phase, wave: int, status: PhaseStatus, error: str | None = None
) -> PhaseOutcome:
    """An outcome without evidence: a phase the run did not start (pending, skipped, budget)
    or whose subflow raised, and why."""
    return PhaseOutcome(
        phase_id=phase.id,
        title=phase.title,
        owner=phase.owner_label,
        wave=wave,
        status=status,
        error=error,
    )
