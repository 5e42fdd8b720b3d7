"""Async Prefect tasks around the synchronous gate functions: one side effect each.

The gates run shell commands (git, cargo) through `tasks.shell`, with their own timeouts. They
are called here through `asyncio.to_thread` so that the phases of a wave, which are concurrent
async subflows, do not block each other's event loop (a sync call inside an async flow would:
three 2 s calls in three gathered subflows took 6.5 s instead of 2.3 s).
No retries: a failing gate is evidence, not an infrastructure hiccup.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from prefect import State, task
from prefect.cache_policies import NO_CACHE
from prefect.states import Completed, Failed

from plan_parser.model import Phase, Plan
from plan_parser.vocabulary import DirtyPolicy
from tasks.agent.result import AgentRequest, AgentResult, FailureKind
from tasks.agent.task import AgentInfrastructureError, note_failed_try, retry_if_retryable
from tasks.gates.ledger import Ledger, PhaseVerdict
from tasks.gates.phase_gates import ScopePolicy

if TYPE_CHECKING:  # the gate modules are imported where they run (see each step)
    from plan_parser.model import FileRef
    from tasks.gates.cargo_output import TestRun
    from tasks.gates.config import GateConfig
    from tasks.gates.phase_gates import PhaseStart
    from tasks.gates.preflight import PreflightResult


@task(name="preflight", cache_policy=NO_CACHE)
async def preflight_step(
    repo: Path,
    plan: Plan,
    *,
    plan_path: Path,
    policy: DirtyPolicy,
    skip_tests: bool | None = None,
    network: bool = True,
    sandbox: bool = True,
) -> PreflightResult:
    """Clean tree, tests, build, lint before any agent call; returns a PreflightResult whose
    ``config`` (read from `HEAD`, under the run's ``network`` and ``sandbox``) every later gate
    of the run uses."""
    from tasks.gates.config import GateRunSettings
    from tasks.gates.preflight import run_preflight

    return await asyncio.to_thread(
        run_preflight,
        repo,
        plan,
        plan_path=plan_path,
        policy=policy,
        skip_tests=skip_tests,
        run=GateRunSettings(network=network, sandbox=sandbox),
    )


def snapshot_cache_key(context: object, parameters: Mapping[str, object]) -> str | None:
    """A continued attempt (see :func:`agent_cache_key`) keeps the snapshot taken when it began:
    the gates judge the attempt's changes against the tree before its agents ran."""
    attempt = parameters.get("attempt")
    if not attempt:
        return None
    raw = f"snapshot-{parameters.get('plan_name')}-{parameters.get('phase_id')}-{attempt}"
    return re.sub(r"[^A-Za-z0-9._-]+", "-", raw)[:200]


@task(name="snapshot", cache_key_fn=snapshot_cache_key, persist_result=True)
async def snapshot_step(
    repo: Path,
    baseline: TestRun | None = None,
    *,
    plan_name: str = "",
    phase_id: str = "",
    attempt: str | None = None,
) -> PhaseStart:
    """What the tree looks like before the phase works on it (a PhaseStart)."""
    from tasks.gates.phase_gates import snapshot

    return await asyncio.to_thread(snapshot, repo, baseline=baseline)


@task(name="phase-gates", cache_policy=NO_CACHE, retries=0)
async def gates_step(
    repo: Path,
    phase: Phase,
    *,
    start: PhaseStart,
    baseline: TestRun | None,
    config: GateConfig | None,
    scope_policy: ScopePolicy = "warn",
    others: list[FileRef] | None = None,
) -> State[Ledger]:
    """Files exist, blast-radius tests, clippy/fmt/build: the evidence ledger of one phase.
    ``config``: the run's GateConfig from pre-flight (never re-read: the agents wrote the tree
    since). ``others``: the FileRefs the plan's other phases declare."""
    from tasks.gates.phase_gates import run_phase_gates

    ledger = await asyncio.to_thread(
        run_phase_gates,
        repo,
        phase,
        start=start,
        baseline=baseline,
        config=config,
        scope_policy=scope_policy,
        others=others,
    )
    return gates_state(ledger)


def gates_state(ledger: Ledger) -> State[Ledger]:
    """The gates task's final state: Failed when a required check failed (the UI shows the task
    red, with the first failing check as its message), Completed otherwise. Either way the
    ledger is the state's data: the phase reads it with ``raise_on_failure=False``. The task
    has no retries, so a Failed state is final (a failing gate is evidence, not a hiccup)."""
    failing = decide_verdict(ledger).failing
    if not failing:
        return Completed(data=ledger, message=f"{len(ledger.entries)} checks, none failing")
    first = failing[0].line().splitlines()[0] if failing[0].line() else failing[0].check
    more = f" (+{len(failing) - 1} more)" if len(failing) > 1 else ""
    return Failed(data=ledger, message=f"{len(failing)} failing: {first[:200]}{more}")


def decide_verdict(ledger: Ledger) -> PhaseVerdict:
    """Pure function of the ledger; no task run needed."""
    from tasks.gates.verdict import decide

    return decide(ledger)


@task(name="final-validation", cache_policy=NO_CACHE)
async def final_validation_step(
    repo: Path, baseline: TestRun | None, config: GateConfig | None
) -> Ledger:
    """The whole suite and quality checks after the last wave, with the run's
    gate configuration from pre-flight."""
    from tasks.gates.final import run_final_validation

    return await asyncio.to_thread(run_final_validation, repo, baseline=baseline, config=config)


def _agent_run_name() -> str:
    from prefect.runtime import task_run

    request = task_run.parameters.get("request")
    if isinstance(request, AgentRequest):
        return f"agent {request.owner} phase {request.phase_id} ({request.role_suffix})"
    return "agent call"


def agent_cache_key(context: object, parameters: Mapping[str, object]) -> str | None:
    """Resume inside a phase: the key of one agent call of one attempt at a phase.

    An attempt is one run's try at a phase (`extra.attempt` in its checkpoint). A run killed
    after an agent call finished but before the phase ended leaves the attempt `running`; the
    next run continues that attempt, so the finished call comes back from the cache instead of
    being paid for again. A phase that ended (blocked, failed, timeout) gets a new attempt, so
    its agents run again. No attempt, no caching.
    """
    attempt = parameters.get("attempt")
    request = parameters.get("request")
    if not attempt or not isinstance(request, AgentRequest):
        return None
    raw = f"agent-{request.plan_name}-{request.phase_id}-{request.role_suffix}-{attempt}"
    return re.sub(r"[^A-Za-z0-9._-]+", "-", raw)[:200]


@task(
    name="agent-call",
    task_run_name=_agent_run_name,
    retries=2,
    retry_delay_seconds=[30, 120],
    retry_condition_fn=retry_if_retryable,
    cache_key_fn=agent_cache_key,
    persist_result=True,
)
async def agent_step(
    request: AgentRequest, deadline_s: float | None = None, attempt: str | None = None
) -> AgentResult:
    """`tasks.agent.task.agent_call` with the call's own wall-clock budget (``deadline_s``).

    Infrastructure failures raise, so the task retries them (only the retryable ones); a call
    that failed because its time ran out is returned, never retried: the phase ends `timeout`.
    """
    from tasks.agent.loop import run_agent
    from tasks.concurrency import agent_slot

    # One slot of the account-wide agent limit per call; waiting for it does not use the call's
    # time, so the backstop timeout starts once the slot is held.
    async with agent_slot():
        started = time.monotonic()
        if deadline_s is None:
            result = await asyncio.to_thread(run_agent, request)
        else:
            async with asyncio.timeout(deadline_s + backstop_grace_s(deadline_s)):
                result = await asyncio.to_thread(run_agent, request, deadline_s=deadline_s)
    out_of_time = deadline_s is not None and time.monotonic() - started >= deadline_s
    if result.failure is FailureKind.INFRASTRUCTURE and not out_of_time:
        note_failed_try(request, result)  # its faults still count once Prefect retries it
        raise AgentInfrastructureError(result)
    return result


def backstop_grace_s(deadline_s: float) -> float:
    """How long past its own deadline an agent call may run before we stop waiting for it."""
    return min(30.0, max(5.0, deadline_s / 2))
