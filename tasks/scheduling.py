"""The run's scheduling decisions, without Prefect: which phase of a wave starts, and why one
does not.

The waves come from :func:`plan_parser.schedule.waves`. While the run goes through them, a
phase that ends anything but complete takes its transitive dependents with it (they end
`skipped`, naming it); once the run's budget is spent no phase starts (it ends `budget`, and its
dependents are skipped); after a person stops the run at a failed phase nothing else starts.
The flow submits the phases this lets through and records what they hand back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from plan_parser.model import Phase, Plan, id_key
from plan_parser.schedule import transitive_dependents


@dataclass(frozen=True)
class NotRun:
    """Why a scheduled phase does not start, and the status it ends with."""

    status: Literal["skipped", "budget"]
    error: str

    @property
    def takes_dependents(self) -> bool:
        """A phase the budget stopped is not complete: its dependents cannot run either.
        (A skipped phase's dependents were already taken with the phase that caused it.)"""
        return self.status == "budget"


@dataclass
class WaveSchedule:
    """What the run has decided so far about the phases still to come."""

    plan: Plan
    skipped_by: dict[str, str] = field(default_factory=dict)
    """Phase id → the phase whose ending means it will not run."""
    stopped_after: str | None = None
    """The failed phase after which a person stopped the run (None: not stopped)."""

    def ended(self, phase_id: str, status: str) -> None:
        """A phase ended: one that is not complete takes its transitive dependents with it."""
        if status == "complete":
            return
        for dependent in transitive_dependents(self.plan, phase_id):
            self.skipped_by.setdefault(dependent, phase_id)

    def retrying(self, phase_id: str) -> None:
        """A person retries a failed phase: its dependents may run after all."""
        for dependent in [d for d, cause in self.skipped_by.items() if cause == phase_id]:
            del self.skipped_by[dependent]

    def not_run(
        self, phase_id: str, *, statuses: Mapping[str, str], budget_spent: str | None
    ) -> NotRun | None:
        """Why ``phase_id`` does not start now, or None when it does.

        ``statuses``: how the phases that ended so far ended (phase id → status);
        ``budget_spent``: the message of the run's spent budget (None: money left)."""
        if self.stopped_after is not None:
            return NotRun(
                "skipped", f"not run: the run was stopped after phase {self.stopped_after} failed"
            )
        cause = self.skipped_by.get(phase_id) or skipped_dependency(
            self.plan.phase(phase_id), self.skipped_by
        )
        if cause:
            ended = statuses.get(cause, "skipped")
            return NotRun("skipped", f"not run: depends on phase {cause}, which ended {ended}")
        if budget_spent is not None:
            return NotRun("budget", f"not run: {budget_spent}")
        return None


def skipped_dependency(phase: Phase, skipped_by: Mapping[str, str]) -> str | None:
    """The cause of a dependency of ``phase`` that will not run, matched however its id is
    spelled (`1a` = `1A`): defensive, the transitive dependents normally name it already."""
    for dep in phase.depends_on:
        for other, cause in skipped_by.items():
            if id_key(other) == id_key(dep):
                return cause
    return None
