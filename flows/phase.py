"""The phase subflow: one plan phase, from agent work to a verdict on evidence.

Implementation phases: the owner agent (and the feature tester when the plan assigns one), then
the gates, then a read-only verifier agent for the criteria no mechanical check can decide.
Design phases: the owner agent writes the design artifacts; the gates check they exist and that
code stubs compile, without tests. Human phases wait for a person in interactive runs and are
blocked otherwise. Orchestrator phases (`self`) run the gates only.

The phase runs under its own deadline (asyncio, not Prefect's `timeout_seconds`, which neither
interrupts a thread nor kills child processes); agent calls get theirs through `deadline_s`, and
every command has its own timeout in `tasks.shell`. A phase that runs out of time ends `timeout`.
A phase whose agent call a limit stopped (its budget or the run's, the no-progress rule, the
turn cap: `tasks.agent.budget`) ends `budget`, without gates: its work is kept like a blocked one.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prefect import State, flow, get_run_logger
from prefect.context import FlowRunContext
from prefect.states import Completed, Failed

from flows.approvals import human_phase_done
from flows.context import PhaseOutcome, ResolvedRunOptions, RunContext, current_run
from flows.integration import Resolver, keep_unfinished_work, land_phase, plan_relative
from flows.report import failing_line
from flows.ui import current_phase_run_name, phase_message, publish_phase_page
from plan_parser.errors import PlanExecutorError
from plan_parser.model import OwnerKind, Phase, Plan
from plan_parser.paths import repo_relative
from tasks import worktree
from tasks.agent.budget import Limits, RunBudget, close_account
from tasks.agent.result import (
    AgentRequest,
    AgentResult,
    ErrorCode,
    FailureKind,
    Usage,
)
from tasks.agent.roles import VERIFIER_AGENT, VERIFIER_MAX_TURNS, agent_owner, verifier_task
from tasks.agent.roles import agent_roles as _agent_roles
from tasks.agent.task import AgentInfrastructureError, take_failed_tries, with_failed_tries
from tasks.env_settings import AGENT_RETRY_DELAYS_ENV as AGENT_RETRY_DELAYS_ENV  # re-exported
from tasks.env_settings import agent_retry_delays_s
from tasks.gates.judgements import judgements, verifier_criteria, with_judgements
from tasks.gates.ledger import Ledger, LedgerEntry, Verdict, VerdictStatus
from tasks.gates.phase_gates import ScopePolicy
from tasks.phase_steps import agent_step, decide_verdict, gates_step, snapshot_step
from tasks.plan_input import plan_name  # noqa: F401 - re-exported
from tasks.run_lock import run_lock_path
from tasks.shell import process_scope
from tasks.worktree import PhaseWorkspace

if TYPE_CHECKING:
    from tasks.gates.cargo_output import TestRun
    from tasks.gates.config import GateConfig
    from tasks.gates.phase_gates import PhaseStart


class PhaseTimeout(PlanExecutorError):
    """An agent call or the whole phase ran out of time."""


class PhaseOverBudget(PlanExecutorError):
    """A limit stopped an agent call of the phase (a budget, no progress, the turn cap)."""


def _phase_run_name() -> str:
    return current_phase_run_name()  # `phase-3: Shouting Module`


@flow(name="phase", flow_run_name=_phase_run_name, validate_parameters=True)
async def run_phase(
    plan_path: Path, phase_id: str, options: ResolvedRunOptions
) -> State[PhaseOutcome]:
    """Run one phase and return its outcome; blocked, failed and timeout end as Failed states."""
    context = current_run(plan_path) or await _standalone_context(plan_path, options)
    phase = context.plan.phase(phase_id)
    flow_context = FlowRunContext.get()
    flow_run_id = str(flow_context.flow_run.id) if flow_context and flow_context.flow_run else None
    if flow_run_id:
        await context.mirror.update(phase_id, flow_run_id=flow_run_id)

    outcome = PhaseOutcome(
        phase_id=phase.id,
        title=phase.title,
        owner=phase.owner_label,
        wave=context.wave_of(phase_id),
        status="running",
        flow_run_id=flow_run_id,
    )
    started = time.monotonic()
    budget_key = context.budget.open_phase(phase_id) if context.budget is not None else None
    if budget_key is not None:
        context.phase_accounts[phase_id] = budget_key
    # Every command the phase starts (gates, the agents' bash) joins this scope, so a phase
    # that runs out of time takes its still-running commands down with it.
    with process_scope() as commands:
        try:
            async with asyncio.timeout(options.phase_timeout_s):
                await _phase_body(context, phase, outcome)
        except TimeoutError:
            outcome.status = "timeout"
            outcome.error = f"phase exceeded its timeout of {options.phase_timeout_s:g}s"
        except PhaseTimeout as exc:
            outcome.status = "timeout"
            outcome.error = str(exc)
        except PhaseOverBudget as exc:
            outcome.status = "budget"
            outcome.error = str(exc)
        except AgentInfrastructureError as exc:  # the API stayed unusable for the verifier
            outcome.status = "failed"
            outcome.infra_failure = True
            outcome.error = f"verifier agent: infrastructure failure: {exc.result.error}"
        except Exception as exc:  # a bug or an infrastructure failure after retries
            outcome.status = "failed"
            outcome.error = f"{type(exc).__name__}: {exc}"
            get_run_logger().exception("phase %s failed", phase.id)
        finally:
            killed = commands.kill()
            if budget_key is not None:
                close_account(budget_key)
                context.phase_accounts.pop(phase_id, None)
    if killed:
        get_run_logger().warning("phase %s: killed %d command(s) still running", phase.id, killed)
    outcome.duration_s = round(time.monotonic() - started, 2)
    try:
        await publish_phase_page(plan_path, outcome, options.repo)
    except Exception:  # the page is a view: an API hiccup must not change the verdict
        get_run_logger().warning("phase %s: could not publish its page", phase.id, exc_info=True)
    return _as_state(outcome)


def _as_state(outcome: PhaseOutcome) -> State[PhaseOutcome]:
    """Completed for complete; a Failed state named Blocked / TimedOut / Failed otherwise."""
    if outcome.status == "complete":
        return Completed(data=outcome, message=phase_message(outcome))
    name = {"blocked": "Blocked", "timeout": "TimedOut", "budget": "OverBudget"}.get(
        outcome.status, "Failed"
    )
    return Failed(data=outcome, name=name, message=phase_message(outcome))


async def _standalone_context(plan_path: Path, options: ResolvedRunOptions) -> RunContext:
    from plan_parser import parse_plan
    from tasks.mirror import PlanMirror

    plan = await asyncio.to_thread(parse_plan, plan_path, repo=options.repo)
    mirror = PlanMirror(plan_path, options.repo, plan_title=plan.title, enabled=not options.dry_run)
    return RunContext(
        plan_path=plan_path,
        plan=plan,
        options=options,
        mirror=mirror,
        skills=options.skills,
        budget=await asyncio.to_thread(run_budget, plan, options),
    )


def run_budget(plan: Plan, options: ResolvedRunOptions) -> RunBudget:
    """The run's limits and the plan's, priced as the committed HEAD says (read once)."""
    from plan_parser.budget import plan_budget
    from tasks.agent.pricing import load_committed_price_table

    own, _ = plan_budget(plan.frontmatter)
    phase = Limits(
        max_cost_usd=options.phase_max_cost_usd, max_tokens=options.phase_max_tokens
    ).tighter(Limits(max_cost_usd=own.phase_max_cost_usd, max_tokens=own.phase_max_tokens))
    run = Limits(max_cost_usd=options.max_cost_usd, max_tokens=options.max_tokens)
    return RunBudget(run, phase, load_committed_price_table(options.repo))


async def _committed_config(options: ResolvedRunOptions) -> GateConfig:
    """A phase run on its own (no pre-flight of this process): the configuration at HEAD."""
    from tasks.gates.config import GateRunSettings, load_committed_gate_config

    config = await asyncio.to_thread(load_committed_gate_config, options.repo)
    return config.for_run(GateRunSettings(network=options.network, sandbox=options.sandbox_gates))


async def _phase_body(context: RunContext, phase: Phase, outcome: PhaseOutcome) -> None:
    options = context.options
    owner_kind = phase.owner_kind

    if owner_kind is OwnerKind.HUMAN and not options.interactive:
        outcome.status = "blocked"
        outcome.error = (
            f"phase {phase.id} is owned by a human ({phase.owner_label}): "
            "rerun with --interactive to do it by hand, then the gates judge it"
        )
        return

    workspace = await _workspace(context, phase, outcome)
    work = workspace.path if workspace else options.repo
    if workspace is not None:
        start = await asyncio.to_thread(_phase_start, workspace, context.baseline)
    else:
        start = await snapshot_step(
            options.repo,
            baseline=context.baseline,
            plan_name=plan_name(context.plan_path),
            phase_id=phase.id,
            attempt=context.attempts.get(phase.id),
        )
    outcome.steps.append("snapshot taken")
    try:
        await _work_and_judge(context, phase, outcome, start, workspace)
    finally:
        if workspace is not None and outcome.status != "complete":
            status = outcome.status if outcome.status != "running" else "interrupted"
            await keep_unfinished_work(context, phase, workspace, status)
        outcome.artifacts = _existing_artifacts(work, phase, outcome.artifacts)


async def _workspace(
    context: RunContext, phase: Phase, outcome: PhaseOutcome
) -> PhaseWorkspace | None:
    """The phase's own worktree (one git operation at a time on the run's branches)."""
    if not context.options.worktrees or context.branch is None:
        return None
    async with context.integration_lock:
        workspace = await asyncio.to_thread(
            worktree.open_phase, context.options.repo, plan_name(context.plan_path), phase.id
        )
    context.workspaces[phase.id] = workspace
    how = "taken up again" if workspace.reused else "created"
    outcome.steps.append(f"worktree {how}: {workspace.path} from {workspace.base[:10]}")
    warm = Path(os.environ.get("CARGO_TARGET_DIR") or context.options.repo / "target")
    if await asyncio.to_thread(worktree.seed_target, workspace, warm):
        outcome.steps.append(f"cargo target seeded from {warm}")
    return workspace


def _phase_start(workspace: PhaseWorkspace, baseline: TestRun | None) -> PhaseStart:
    """The phase's tree at its base: kept beside the worktree, so a rerun of a blocked or
    interrupted phase judges everything it did since the base, earlier attempts included."""
    from tasks.gates.phase_gates import PhaseStart, snapshot

    stored = worktree.load_start(workspace)
    if stored is not None:
        return PhaseStart.model_validate(stored)
    if workspace.reused:  # the worktree holds earlier work: read the tree at the base itself
        with worktree.checkout_at(workspace.path, workspace.base) as base_tree:
            start = snapshot(base_tree, baseline=baseline)
    else:
        start = snapshot(workspace.path, baseline=baseline)
    start = start.model_copy(update={"head": workspace.base, "dirty_files": {}})
    worktree.save_start(workspace, start.model_dump(mode="json"))
    return start


async def _work_and_judge(
    context: RunContext,
    phase: Phase,
    outcome: PhaseOutcome,
    start: PhaseStart,
    workspace: PhaseWorkspace | None,
) -> None:
    options = context.options
    log = get_run_logger()
    owner_kind = phase.owner_kind
    work = workspace.path if workspace else options.repo

    if owner_kind is OwnerKind.HUMAN:  # after the snapshot: the gates judge the person's changes
        where = f" (work in {work})" if workspace is not None else ""
        answer = await human_phase_done(phase.id, f"{phase.title}{where}")
        if not answer.done:
            outcome.status = "blocked"
            note = f": {answer.note}" if answer.note else ""
            outcome.error = f"the human-owned phase was not done{note}"
            return
        outcome.steps.append("human work confirmed" + (f": {answer.note}" if answer.note else ""))

    if owner_kind not in (OwnerKind.HUMAN, OwnerKind.ORCHESTRATOR):
        agents = _agent_roles(phase, options.repo)
        for role, owner_raw in agents:
            log.info("phase %s: %s agent %s", phase.id, role, owner_raw)
            result = await _agent_work(context, phase, owner_raw, role=role, work=work)
            _record_agent(outcome, role, result, context)
            if result.failure is FailureKind.INFRASTRUCTURE:
                outcome.status = "failed"
                outcome.infra_failure = True
                outcome.error = f"{role} agent: infrastructure failure: {result.error}"
                return
            if result.failure is FailureKind.BUDGET:  # no gates: the work was cut short
                outcome.status = "budget"
                outcome.error = f"{role} agent stopped: {result.error}"
                return
            outcome.steps.append(f"{role} agent finished ({result.stop_reason or 'done'})")

    config = context.gate_config or await _committed_config(options)
    if workspace is not None:  # the worktree's own cargo target (see worktree.seed_target)
        config = config.model_copy(update={"target_dir": str(workspace.path / "target")})
    # Prefect types this call as State[State[Ledger]] and not awaitable; it is a coroutine of the
    # task's final state (the State the task returns), whose data is the ledger.
    gates: State[Ledger] = await gates_step(  # type: ignore[misc]
        work,
        phase,
        start=start,
        baseline=context.baseline,
        config=config,
        scope_policy=scope_policy(context.plan, options.scope_policy),
        others=[
            ref for other in context.plan.phases if other.id != phase.id for ref in other.files
        ],
        return_state=True,
    )
    # Failed when a check failed (the task's colour in the UI); the ledger is its data either way.
    ledger = await gates.aresult(raise_on_failure=False)
    if not isinstance(ledger, Ledger):  # the task itself broke: its exception, not a verdict
        raise ledger if isinstance(ledger, BaseException) else RuntimeError(str(ledger))
    for role, claim in outcome.claims.items():
        ledger.add(
            LedgerEntry(
                check=f"agent claim ({role})",
                verdict=Verdict.NOT_RUN,
                required=False,
                phase_id=phase.id,
                evidence=_first_line(claim, 200),
            )
        )
    outcome.steps.append("gates run")
    verdict = decide_verdict(ledger)

    # A phase the mechanical checks already block is not sent to the verifier (no tokens spent
    # on a verdict that cannot change the outcome); its criteria stay unjudged in the ledger.
    if verdict.needs_judgement and verdict.status is VerdictStatus.COMPLETE:
        judged = await _judge(context, phase, ledger, verdict.needs_judgement, outcome, work)
        ledger = with_judgements(ledger, judged)
        verdict = decide_verdict(ledger)
        outcome.steps.append(f"verifier judged {len(judged)} criteria")

    if verdict.status is VerdictStatus.COMPLETE and workspace is not None:
        outcome.steps.append("verified complete in its worktree")
        # On a worker (a distributed run) the phase stops here: its branch is pushed and the
        # parent lands it on the integration branch (flows.distribute).
        if not context.remote:
            landed = await land_verified(context, phase, outcome, workspace, ledger, config)
            if landed is None:
                return
            ledger = landed

    outcome.ledger = ledger
    outcome.failing = [failing_line(entry) for entry in verdict.failing]
    if verdict.status is VerdictStatus.COMPLETE:
        outcome.status = "complete"
        outcome.steps.append("verified complete")
    else:
        outcome.status = "blocked"
        outcome.error = outcome.failing[0] if outcome.failing else "gates did not pass"


async def land_verified(
    context: RunContext,
    phase: Phase,
    outcome: PhaseOutcome,
    workspace: PhaseWorkspace,
    ledger: Ledger,
    config: GateConfig,
) -> Ledger | None:
    """Land a verified phase on the integration branch: the ledger with the integration lines,
    or None when it did not land (the outcome then says failed, the work kept on its branch)."""
    owner_kind = phase.owner_kind
    landing = await land_phase(
        context, phase, workspace, ledger, outcome, config=config,
        resolve=_resolver(context, phase, outcome, workspace.path, owner_kind),
    )  # fmt: skip
    ledger = Ledger(entries=[*ledger.entries, *landing])
    if decide_verdict(ledger).status is not VerdictStatus.COMPLETE:
        outcome.ledger = ledger
        outcome.failing = [failing_line(e) for e in decide_verdict(ledger).failing]
        outcome.status = "failed"
        outcome.error = f"{landing[-1].evidence} (work kept on {workspace.branch})"
        return None
    outcome.steps.append(f"landed on {context.branch}")
    return ledger


def _resolver(
    context: RunContext, phase: Phase, outcome: PhaseOutcome, work: Path, owner_kind: OwnerKind
) -> Resolver | None:
    """The owner agent's one bounded attempt at an integration problem (None: no agent)."""
    if owner_kind in (OwnerKind.HUMAN, OwnerKind.ORCHESTRATOR):
        return None
    owner_raw = agent_owner(phase)

    async def resolve(task: str) -> None:
        request = agent_request(
            context, phase, owner_raw, task, role_suffix="integration", work=work,
            max_turns=min(context.options.max_turns, 20),
        )  # fmt: skip
        result = await call_agent(request, context.options.agent_timeout_s)
        _record_agent(outcome, "integration", result, context)

    return resolve


def scope_policy(plan: Plan, default: ScopePolicy) -> ScopePolicy:
    """The plan's own `scope_policy` (frontmatter: siblings | warn | fail), else the run's."""
    from tasks.gates.phase_gates import SCOPE_POLICIES

    value = str(plan.frontmatter.get("scope_policy") or "").strip().lower()
    return next((policy for policy in SCOPE_POLICIES if policy == value), default)


# -- agents ---------------------------------------------------------------------------------


async def _agent_work(
    context: RunContext, phase: Phase, owner_raw: str, *, role: str, work: Path
) -> AgentResult:
    from tasks.agent.definitions import resolve_agent
    from tasks.agent.prompts import phase_task

    options = context.options
    definition = await asyncio.to_thread(resolve_agent, owner_raw, options.repo)
    if definition is None:
        return AgentResult(agent="none", model="", summary="no agent definition: gates only")
    task_text = phase_task(context.plan, phase, context.skills, role=role, repo=work)
    request = agent_request(
        context,
        phase,
        owner_raw,
        task_text,
        role_suffix="details" if role == "owner" else role,
        work=work,
    )
    return await call_agent(request, options.agent_timeout_s, context.attempts.get(phase.id))


def agent_request(
    context: RunContext,
    phase: Phase,
    owner_raw: str,
    task: str,
    *,
    role_suffix: str,
    read_only: bool = False,
    max_turns: int | None = None,
    work: Path | None = None,
    verdict_criteria: list[str] | None = None,
) -> AgentRequest:
    """One agent call of this run, in ``work`` (the phase's worktree; default the checkout):
    the run's options, and the plan file (and its copy in the worktree) protected from it."""
    options = context.options
    work = work or options.repo
    protected = [context.plan_path, run_lock_path(context.plan_path)]
    if work != options.repo and (copy := plan_relative(context)):
        protected.append(work / copy)
    return AgentRequest(
        repo=work,
        log_repo=options.repo,
        plan_name=plan_name(context.plan_path),
        phase_id=phase.id,
        owner=owner_raw,
        task=task,
        skills=context.skills,
        model=options.model,
        # The run lock too: deleting it would let a second run of the plan start beside this one.
        protected_paths=protected,
        network=options.network,
        allow_unsandboxed=options.allow_unsandboxed,
        max_turns=max_turns or options.max_turns,
        no_progress_turns=options.no_progress_turns,
        budget_account=context.phase_accounts.get(phase.id),
        runtime=options.agent_runtime,
        read_only=read_only,
        role_suffix=role_suffix,
        verdict_criteria=verdict_criteria or [],
    )


async def call_agent(
    request: AgentRequest, timeout_s: float, attempt: str | None = None
) -> AgentResult:
    """One agent call under its own deadline; PhaseTimeout when it runs out of time.

    The runtime stops itself at ``deadline_s``; `agent_step`'s asyncio timeout is the backstop
    for a call that does not, so the phase never waits on it for long.
    """
    try:
        result = await _agent_step()(request, deadline_s=timeout_s, attempt=attempt)
    except TimeoutError as exc:
        take_failed_tries(request)  # the phase ends timeout; forget the call's tries
        raise PhaseTimeout(
            f"{request.role_suffix} agent call exceeded its timeout of {timeout_s:g}s"
        ) from exc
    except AgentInfrastructureError as exc:
        # Prefect's restarts did not help: the call ends on infrastructure, with the faults of
        # every try (an infrastructure failure, never counted as an agent attempt).
        return with_failed_tries(request, exc.result, last_try_failed=True)
    result = with_failed_tries(request, result, last_try_failed=False)
    if _hit_deadline(result):
        raise PhaseTimeout(
            f"{request.role_suffix} agent call exceeded its timeout of {timeout_s:g}s: "
            f"{result.error or result.stop_reason}"
        )
    return result


def _agent_step() -> Any:
    """`agent_step`, with the restart delays of ``PLAN_EXECUTOR_AGENT_RETRY_DELAYS_S`` if set
    (EnvSettingError when it is not a list of seconds)."""
    delays = agent_retry_delays_s()
    if delays is None:
        return agent_step
    return agent_step.with_options(retries=len(delays), retry_delay_seconds=delays)


def _hit_deadline(result: AgentResult) -> bool:
    # The runtime says so with its code; a limit (BUDGET) or an API request that timed out
    # (INFRASTRUCTURE) is not the call's own deadline, whatever its message says.
    return result.failure is FailureKind.AGENT and result.error_code == ErrorCode.DEADLINE


def _record_agent(
    outcome: PhaseOutcome, role: str, result: AgentResult, context: RunContext
) -> None:
    outcome.claims[role] = result.summary
    _note_transcript(outcome, role, result)
    outcome.unsandboxed = outcome.unsandboxed or not result.sandboxed
    _add_usage(outcome, result, context)
    outcome.artifacts.extend(result.files_touched)
    _count_call(outcome, result)


def _add_usage(outcome: PhaseOutcome, result: AgentResult, context: RunContext) -> None:
    """The call's tokens by kind, and their cost at the run's prices."""
    outcome.tokens = _add_tokens(outcome.tokens, result.usage)
    if context.budget is not None and result.usage.total:
        outcome.cost_usd = round(
            outcome.cost_usd + context.budget.cost(result.model, result.usage), 6
        )


def _note_transcript(outcome: PhaseOutcome, role: str, result: AgentResult) -> None:
    if result.details_log:
        outcome.transcripts[role] = result.details_log


def _count_call(outcome: PhaseOutcome, result: AgentResult) -> None:
    """One agent attempt, however many times the infrastructure made it retry or restart."""
    if result.agent == "none":  # no agent definition: nothing was called
        return
    outcome.agent_calls += 1
    outcome.agent_failures += int(result.failure is FailureKind.AGENT)
    outcome.infra = outcome.infra + result.infra


def _add_tokens(tokens: dict[str, int], usage: Usage) -> dict[str, int]:
    merged = dict(tokens)
    for name, value in usage.model_dump().items():
        short = name.removesuffix("_tokens")
        merged[short] = merged.get(short, 0) + int(value)
    return merged


def _first_line(text: str, limit: int) -> str:
    line = next((part.strip() for part in text.splitlines() if part.strip()), "")
    return line[:limit]


# -- the verifier ---------------------------------------------------------------------------


async def _judge(
    context: RunContext,
    phase: Phase,
    ledger: Ledger,
    pending: list[LedgerEntry],
    outcome: PhaseOutcome,
    work: Path,
) -> list[LedgerEntry]:
    """Ask a read-only verifier agent; its recorded verdicts enter the ledger as judged entries."""
    options = context.options
    criteria = verifier_criteria(phase, pending)
    request = agent_request(
        context,
        phase,
        VERIFIER_AGENT,
        verifier_task(context.plan, phase, criteria),
        role_suffix="verifier",
        read_only=True,
        max_turns=min(options.max_turns, VERIFIER_MAX_TURNS),
        work=work,
        verdict_criteria=[c.id for c in criteria],
    )
    result = await call_agent(request, options.agent_timeout_s, context.attempts.get(phase.id))
    _add_usage(outcome, result, context)
    _count_call(outcome, result)
    _note_transcript(outcome, "verifier", result)
    if result.failure is FailureKind.INFRASTRUCTURE:
        raise AgentInfrastructureError(result)  # no verdicts: the API, not the code, failed
    if result.failure is FailureKind.BUDGET:  # unjudged criteria are not failed criteria
        outcome.ledger = ledger
        raise PhaseOverBudget(f"verifier agent stopped: {result.error}")
    return judgements(pending, result, work, phase.id)


def _existing_artifacts(repo: Path, phase: Phase, touched: list[str]) -> list[str]:
    """Declared and touched files that exist now, relative to the repository, in order."""
    seen: list[str] = []
    for path in [ref.path for ref in phase.files if not ref.is_glob] + touched:
        # A relative path is the plan's or the agent's name for a file of the repository, as
        # written; only an absolute one needs placing (and one outside is no artifact).
        candidate = Path(path)
        relative = repo_relative(repo, candidate) if candidate.is_absolute() else str(candidate)
        if relative and relative not in seen and (repo / relative).exists():
            seen.append(relative)
    return seen
