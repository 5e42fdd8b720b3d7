"""Phases as deployment runs on a work pool: the `execute-phase` flow and the parent's side.

With ``distribute=True`` the `execute-plan` flow does not run a phase as a subflow in its own
process: it pushes the phase's base (the integration tip) to the repository's remote and starts
a run of the `execute-phase` deployment as a linked child run (``run_deployment(...,
as_subflow=True)``: the UI keeps the plan → phase tree). Whichever worker claims it:

1. updates its cached clone of the repository (``tasks.distribute``), opens the phase's
   worktree there from the base;
2. runs the phase with :func:`flows.phase.run_phase`'s own body (agents, gates, verifier,
   ledger), in a run context that never writes the plan file and never lands;
3. commits the verified work on the phase branch (unfinished work is committed there too, as in
   a local run) and pushes the branch; returns the PhaseOutcome as the run's persisted result.

The parent fetches the branch, lands it on the integration branch exactly as a local run lands
a phase (`flows.phase.land_verified`: replay onto the tip, integration checks, the owner's one
resolution attempt), and mirrors the outcome into the plan file. Phases land in the order they
finish within a wave, one at a time, after the waves before (the DAG order of local runs).

A phase run that ends Crashed (its worker or its process died; see docs/scaling.md for how a
worker that vanishes without a word is noticed) is marked interrupted in the plan file and
submitted once more; the rerun goes on from the phase branch when the dead attempt pushed one.

Fairness: each phase run holds one slot of the repository's Prefect global concurrency limit
(``plan-executor-repo-<name>-<hash>``) while it is submitted and running, so one repository's
plans cannot take every worker; the agents' own limit (`tasks.concurrency`) is held by every
agent call on any worker, so it caps the account across machines.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import uuid4

from prefect import State, flow, get_run_logger
from prefect.runtime import flow_run as runtime_flow_run
from pydantic import BaseModel

from flows.context import PhaseOutcome, RunContext, RunOptions, running
from flows.integration import commit_message, never_committed
from flows.phase import _as_state, land_verified, run_phase
from plan_parser.model import Phase
from plan_parser.paths import repo_relative
from tasks import distribute, worktree
from tasks.plan_input import plan_name
from tasks.worktree import WorktreeError

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient
    from prefect.client.schemas.objects import FlowRun

PHASE_DEPLOYMENT_ENV = "PLAN_EXECUTOR_PHASE_DEPLOYMENT"
DEFAULT_PHASE_DEPLOYMENT = "execute-phase/phase"
WORKER_NAME_ENV = "PLAN_EXECUTOR_WORKER_NAME"
POLL_S = 2.0
RESUBMISSIONS = 1
"""How often a phase run that ended Crashed is submitted again."""
CRASHED_LIKE = ("CRASHED",)
ZOMBIE_AFTER_ENV = "PLAN_EXECUTOR_ZOMBIE_AFTER_S"
HEARTBEAT_EVENT = "prefect.flow-run.heartbeat"


def _phase_run_name() -> str:
    params = runtime_flow_run.parameters
    return f"phase-{params.get('phase_id', '?')}"


# -- the worker's side -------------------------------------------------------------------------


class ClonePin:
    """The run context's integration lock on a worker: while a phase opens its worktree, the
    clone is locked against this worker's other flow-run processes and its checkout is at the
    phase's base (a new worktree starts from HEAD)."""

    def __init__(self, clone: Path, base: str) -> None:
        self.clone, self.base = clone, base
        self._held: AbstractContextManager[None] | None = None

    async def __aenter__(self) -> None:
        self._held = distribute.clone_lock(self.clone)
        await asyncio.to_thread(self._held.__enter__)
        await asyncio.to_thread(distribute.pin_head, self.clone, self.base)

    async def __aexit__(self, *exc: object) -> None:
        held, self._held = self._held, None
        if held is not None:
            await asyncio.to_thread(held.__exit__, None, None, None)


def ran_on(clone: Path) -> str:
    """Where a phase ran: the worker's name (or host and pid) and its clone."""
    who = os.environ.get(WORKER_NAME_ENV) or f"{socket.gethostname()}:{os.getpid()}"
    return f"{who} in {clone}"


@flow(
    name="execute-phase",
    flow_run_name=_phase_run_name,
    validate_parameters=True,
    persist_result=True,
    result_serializer="json",
)
async def execute_phase(
    plan: str,
    phase_id: str,
    clone_url: str,
    base: str,
    options: RunOptions,
    attempt: str | None = None,
    baseline: dict[str, Any] | None = None,
    gate_config: dict[str, Any] | None = None,
) -> State[PhaseOutcome]:
    """Run one phase of ``plan`` (a path inside the repository) in this worker's clone of
    ``clone_url`` from ``base``; push its branch; return its outcome (Failed when not complete).

    ``baseline`` and ``gate_config`` are the parent's pre-flight results (JSON), so the phase is
    judged as it would be in the parent's process.
    """
    from tasks.secrets import install_log_scrubber

    install_log_scrubber()
    log = get_run_logger()
    name = plan_name(Path(plan))
    clone = distribute.clone_dir(clone_url)
    started = time.monotonic()
    try:
        how = await asyncio.to_thread(_prepare, clone_url, clone, name, phase_id, base)
    except WorktreeError as exc:
        log.error("%s", exc)
        return _as_state(
            PhaseOutcome(
                phase_id=phase_id, status="failed", error=f"worker clone: {exc}",
                ran_on=ran_on(clone),
            )
        )  # fmt: skip
    prepared_in = time.monotonic() - started
    log.info("phase %s: clone %s (%s), base %s", phase_id, clone, how, base[:12])
    context = await _worker_context(clone, plan, options, base, attempt, baseline, gate_config)
    context.attempts[phase_id] = worker_attempt(attempt, how)
    with running(context):
        state = await run_phase.fn(context.plan_path, phase_id, context.options)
    outcome = state.data  # the state run_phase built around the phase's outcome
    if not isinstance(outcome, PhaseOutcome):
        raise TypeError(f"phase {phase_id}: run_phase handed back {type(outcome).__name__}")
    outcome.ran_on = ran_on(clone)
    outcome.steps.insert(0, f"clone {how} in {prepared_in:.1f}s")
    await _commit_and_push(context, outcome, clone_url)
    outcome.duration_s = round(time.monotonic() - started, 2)
    log.info("phase %s: %s (%s)", phase_id, outcome.verdict, state.name)
    return _as_state(outcome)


def worker_attempt(attempt: str | None, how: str) -> str:
    """The attempt the phase's agent calls are cached under on this worker.

    An agent call's cached result stands for edits in one worktree: on another worker (or in a
    worktree started afresh) the files are not there, so a cached "done" would skip the work. Only
    a phase that goes on from its pushed branch keeps the parent's attempt; a fresh start gets
    an attempt of its own run.
    """
    from prefect.runtime import flow_run

    if attempt and how.endswith("continued"):
        return attempt
    return f"{attempt or 'attempt'}@{flow_run.id or uuid4().hex[:12]}"


def _prepare(url: str, clone: Path, name: str, phase_id: str, base: str) -> str:
    with distribute.clone_lock(clone):
        cloned = distribute.update_clone(url, clone)
        how = distribute.prepare_phase(clone, name, phase_id, base)
    return f"{'cloned' if cloned else 'fetched'}, {how}"


async def _worker_context(
    clone: Path,
    plan: str,
    options: RunOptions,
    base: str,
    attempt: str | None,
    baseline: dict[str, Any] | None,
    gate_config: dict[str, Any] | None,
) -> RunContext:
    from flows.phase import _standalone_context
    from plan_parser.schedule import waves
    from tasks.gates.cargo_output import TestRun
    from tasks.gates.config import GateConfig

    plan_path = (clone / plan).resolve()
    if not plan_path.is_relative_to(clone.resolve()):
        raise ValueError(f"plan {plan!r} is not inside the repository")
    worker_options = options.model_copy(update={"worktrees": True}).resolved(clone)
    # The plan file is read from the base commit (the worktree holds it; the clone's own
    # checkout may move for another phase meanwhile).
    with distribute.clone_lock(clone):
        await asyncio.to_thread(distribute.pin_head, clone, base)
        context = await _standalone_context(plan_path, worker_options)
    context.mirror.enabled = False  # the parent mirrors the plan file; never written here
    context.remote = True
    context.skills = list(options.skills)
    context.branch = worktree.integration_branch(plan_name(plan_path))
    context.integration_lock = ClonePin(clone, base)  # type: ignore[assignment]
    try:
        context.waves = waves(context.plan, include_optional=True)
    except Exception:
        context.waves = []
    if baseline is not None:  # `PreflightResult.baseline`, sent as JSON
        context.baseline = TestRun.model_validate(baseline)
    if gate_config is not None:
        context.gate_config = GateConfig.model_validate(gate_config)
    return context


async def _commit_and_push(context: RunContext, outcome: PhaseOutcome, url: str) -> None:
    """The verified work as one commit on the phase branch (unfinished work was committed there
    by the phase already), pushed for the parent; a failed push fails the phase."""
    workspace = context.workspaces.get(outcome.phase_id)
    if workspace is None:
        return
    phase = context.plan.phase(outcome.phase_id)
    try:
        if outcome.status == "complete":
            await asyncio.to_thread(
                worktree.commit_work,
                workspace,
                commit_message(context, phase, outcome.ledger),
                exclude=never_committed(context),
            )
        pushing = time.monotonic()
        tip = await asyncio.to_thread(
            distribute.push_phase, context.options.repo, workspace.plan, phase.id, url
        )
        pushed_in = time.monotonic() - pushing
    except WorktreeError as exc:
        outcome.status = "failed"
        outcome.error = f"the phase's work could not reach the remote: {exc}"
        return
    if tip:
        outcome.steps.append(f"pushed {workspace.branch} at {tip[:10]} in {pushed_in:.1f}s")


# -- the parent's side -------------------------------------------------------------------------


def phase_deployment() -> str:
    return os.environ.get(PHASE_DEPLOYMENT_ENV, "").strip() or DEFAULT_PHASE_DEPLOYMENT


async def run_phase_remotely(context: RunContext, phase: Phase) -> PhaseOutcome:
    """Run ``phase`` on a worker of the pool and land its branch here; the phase's outcome."""
    from tasks.concurrency import repo_slot

    options = context.options
    name = plan_name(context.plan_path)
    try:
        url = await asyncio.to_thread(distribute.remote_url, options.repo)
    except WorktreeError as exc:
        return _failed(context, phase, str(exc))
    relative = repo_relative(context.options.repo, context.plan_path)
    if relative is None:
        return _failed(context, phase, f"{context.plan_path} is not inside {options.repo}")
    async with repo_slot(url):
        outcome = None
        for submission in range(RESUBMISSIONS + 1):
            async with context.integration_lock:
                try:
                    base = await asyncio.to_thread(distribute.publish_base, options.repo, name, url)
                except WorktreeError as exc:
                    return _failed(context, phase, str(exc))
            if not await asyncio.to_thread(distribute.committed_at, options.repo, base, relative):
                return _failed(
                    context, phase,
                    f"the plan {relative} is not committed at {base[:12]}: workers read the plan "
                    "from the repository (commit it, then run again)",
                )  # fmt: skip
            outcome, final = await _submit(context, phase, relative, url, base)
            if final not in CRASHED_LIKE:
                break
            get_run_logger().warning(
                "phase %s: its run %s ended %s (worker or process died)%s",
                phase.id, outcome.flow_run_id, final,
                "; submitting it again" if submission < RESUBMISSIONS else "",
            )  # fmt: skip
            if submission < RESUBMISSIONS:
                await context.mirror.transition(
                    phase.id, "running", note=f"interrupted (run {final}); rerun",
                    phase_hash=phase.body_hash,
                )  # fmt: skip
        assert outcome is not None
        if outcome.status == "complete":
            await _land(context, phase, outcome, url, base)
        else:
            await _bring_back(context, phase, url, base)
    return outcome


async def _submit(
    context: RunContext, phase: Phase, relative: str, url: str, base: str
) -> tuple[PhaseOutcome, str]:
    """One run of the phase deployment, awaited; its outcome and final state type."""
    from prefect.client.orchestration import get_client
    from prefect.deployments import arun_deployment

    options = context.options
    parameters = {
        "plan": relative,
        "phase_id": phase.id,
        "clone_url": distribute.redact_url(url),
        "base": base,
        "options": options.model_copy(update={"skills": list(context.skills)}).model_dump(
            mode="json"
        ),
        "attempt": context.attempts.get(phase.id),
        "baseline": _dump(context.baseline),
        "gate_config": _dump(context.gate_config),
    }
    run = await arun_deployment(
        phase_deployment(), parameters=parameters, timeout=0, as_subflow=True
    )
    flow_run_id = str(run.id)
    await context.mirror.update(phase.id, flow_run_id=flow_run_id)
    get_run_logger().info("phase %s: deployment run %s", phase.id, flow_run_id)
    zombie_after = zombie_after_s()
    async with get_client() as client:
        while True:
            current = await client.read_flow_run(run.id)
            if current.state is not None and current.state.is_final():
                break
            if zombie_after and current.state is not None and current.state.is_running():
                silent = await _silent_for(client, current)
                if silent is not None and silent > zombie_after:
                    await _mark_crashed(client, current, silent)
                    continue
            await asyncio.sleep(POLL_S)
    state = current.state
    final = state.type.value
    outcome: PhaseOutcome | None = None
    try:
        data = await state.aresult(raise_on_failure=False)
        if isinstance(data, PhaseOutcome):
            outcome = data
        elif isinstance(data, dict) and "phase_id" in data:
            outcome = PhaseOutcome.model_validate(data)
    except Exception as exc:  # no readable result (Crashed, or no shared result storage)
        get_run_logger().warning("phase %s: run %s: no result: %s", phase.id, flow_run_id, exc)
    if outcome is None:
        outcome = _failed(
            context, phase,
            f"phase run {flow_run_id} ended {state.name}: {state.message or 'no outcome'}",
        )  # fmt: skip
        if final in CRASHED_LIKE:
            outcome.status = "failed"
            outcome.error = f"interrupted: phase run {flow_run_id} ended {state.name}"
    outcome.flow_run_id = flow_run_id
    return outcome, final


def zombie_after_s() -> float | None:
    """Seconds without a heartbeat after which a running phase run counts as dead: its worker
    (or the machine) is gone without a word, and nothing else would ever end the run.

    ``PLAN_EXECUTOR_ZOMBIE_AFTER_S``, else 3 heartbeats (``PREFECT_FLOWS_HEARTBEAT_FREQUENCY``,
    Prefect's default 180 s, of the workers: set the same value on the parent's side).
    """
    raw = os.environ.get(ZOMBIE_AFTER_ENV, "").strip()
    if raw:
        value = float(raw)
        return value if value > 0 else None
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY

    frequency = PREFECT_FLOWS_HEARTBEAT_FREQUENCY.value()
    return 3.0 * float(frequency) if frequency else None


async def _silent_for(client: PrefectClient, flow_run: FlowRun) -> float | None:
    """Seconds since the run's last heartbeat event (since it started, before the first)."""
    from datetime import UTC, datetime

    started = flow_run.start_time or (flow_run.state.timestamp if flow_run.state else None)
    if started is None:
        return None
    body = {
        "filter": {
            "occurred": {"since": started.isoformat()},
            "event": {"name": [HEARTBEAT_EVENT]},
            "resource": {"id": [f"prefect.flow-run.{flow_run.id}"]},
            "order": "DESC",
        },
        "limit": 1,
    }
    try:
        response = await client._client.post("/events/filter", json=body)
        response.raise_for_status()
        events = response.json().get("events") or []
    except Exception as exc:  # the events API unreachable: no verdict this time
        get_run_logger().debug("heartbeats of %s not read: %s", flow_run.id, exc)
        return None
    last = datetime.fromisoformat(events[0]["occurred"]) if events else started
    return (datetime.now(UTC) - last).total_seconds()


async def _mark_crashed(client: PrefectClient, flow_run: FlowRun, silent: float) -> None:
    from prefect.states import Crashed

    message = (
        f"no heartbeat for {silent:.0f}s: its worker or machine is gone (plan-executor marked "
        "the run Crashed)"
    )
    get_run_logger().warning("phase run %s (%s): %s", flow_run.name, flow_run.id, message)
    await client.set_flow_run_state(flow_run.id, Crashed(message=message), force=True)


def _dump(value: object) -> dict[str, Any] | None:
    return value.model_dump(mode="json") if isinstance(value, BaseModel) else None


async def _land(
    context: RunContext, phase: Phase, outcome: PhaseOutcome, url: str, base: str
) -> None:
    """Fetch the verified phase branch and land it as a local run lands a phase."""
    name = plan_name(context.plan_path)
    fetching = time.monotonic()
    async with context.integration_lock:
        try:
            workspace = await asyncio.to_thread(
                distribute.fetch_phase, context.options.repo, name, phase.id, base, url
            )
        except WorktreeError as exc:
            workspace, error = None, str(exc)
        else:
            error = f"the worker pushed no branch {worktree.phase_branch(name, phase.id)}"
    if workspace is None:
        outcome.status = "failed"
        outcome.error = f"verified on its worker, but not landed: {error}"
        return
    context.workspaces[phase.id] = workspace
    outcome.steps.append(
        f"fetched {workspace.branch} from {distribute.redact_url(url)} "
        f"in {time.monotonic() - fetching:.1f}s"
    )
    config = context.gate_config
    if config is None:
        from flows.phase import _committed_config

        config = await _committed_config(context.options)
    config = config.model_copy(update={"target_dir": str(workspace.path / "target")})
    landing = time.monotonic()
    ledger = await land_verified(context, phase, outcome, workspace, outcome.ledger, config)
    if ledger is not None:
        outcome.ledger = ledger
    outcome.steps.append(f"landing took {time.monotonic() - landing:.1f}s")


async def _bring_back(context: RunContext, phase: Phase, url: str, base: str) -> None:
    """An unfinished phase's branch, fetched so that the report's branch exists here too."""
    name = plan_name(context.plan_path)
    async with context.integration_lock:
        try:
            await asyncio.to_thread(
                distribute.fetch_phase, context.options.repo, name, phase.id, base, url
            )
        except WorktreeError as exc:
            get_run_logger().warning("phase %s: its branch was not fetched: %s", phase.id, exc)


def _failed(context: RunContext, phase: Phase, error: str) -> PhaseOutcome:
    return PhaseOutcome(
        phase_id=phase.id,
        title=phase.title,
        owner=phase.owner_label,
        wave=context.wave_of(phase.id),
        status="failed",
        error=f"distributed run: {error}",
    )
