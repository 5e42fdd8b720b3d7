"""The `execute-plan` flow: a plan file run as a DAG of phase subflows.

load and validate → detect skills → pre-flight → waves of concurrent phase subflows (a phase that
ends failed, blocked, timeout or budget marks its transitive dependents skipped; independent
phases go on; once the run's budget is spent the phases not started end budget) → final validation → plan status and Implementation Summary → final report.

Resume is the checkpoint mirror: a phase whose checkpoint says complete, whose text is unchanged
(the stored hash) and whose declared files exist is not run again. Prefect's own retry of a
failed flow run (`prefect flow-run retry`, the UI's Retry) re-runs this function with the same
parameters, so it resumes the same way.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from uuid import uuid4

from prefect import State, flow, get_run_logger
from prefect.context import FlowRunContext
from prefect.runtime import flow_run as runtime_flow_run
from prefect.states import Completed, Failed

from flows import ui
from flows.approvals import dirty_tree_policy, failed_phase_action
from flows.context import (
    PhaseOutcome,
    RunContext,
    RunOptions,
    observers,
    plain_outcome,
    resumed_outcome,
    running,
)
from flows.phase import run_budget, run_phase
from flows.report import (
    RunReport,
    cost_line,
    final_report,
    implementation_summary,
    plan_status,
    run_log_header,
    table_rows,
    transition_note,
)
from plan_parser.checkpoints import PhaseCheckpoint
from plan_parser.model import Phase, Plan
from plan_parser.validate import UnknownOwners
from plan_parser.vocabulary import TREE_CHANGING_POLICIES
from tasks import artifacts, worktree
from tasks.dry_run import (
    LoadedRun,
    describe_loaded_run,
    forecast_of_loaded_run,
    render_text,
    with_preflight,
)
from tasks.env_settings import EnvSettingError, check_env_settings
from tasks.forecast import RunForecast
from tasks.mirror import (
    FAILED_LIKE,
    TERMINAL,
    PlanMirror,
    mirror_plan_status,
    stamp,
)
from tasks.phase_steps import final_validation_step, preflight_step
from tasks.plan_input import (
    PlanInputError,
    check_agent_runtime,
    check_plan,
    detect_skills,
    find_repo,
    plan_name,
    skills_banner,
)
from tasks.resume import (
    MARKED_COMPLETE,
    continued_attempt,
    landing_branch,
    marked_complete_ids,
    pending_checkpoint,
    resumable_phases,
)
from tasks.scheduling import WaveSchedule
from tasks.secrets import scrub_known


def _run_name() -> str:
    """`<repository dir>: <plan>` in the runs list, e.g. `tiny-crate: 2026-11-24.tiny-features`."""
    parameters = runtime_flow_run.parameters
    plan = Path(str(parameters.get("plan_path", "plan")))
    options = parameters.get("options")  # the model in this process, a dict from the API
    repo = options.get("repo") if isinstance(options, dict) else getattr(options, "repo", None)
    try:
        where = Path(str(repo)) if repo else find_repo(plan.resolve())
    except OSError:
        where = plan.parent
    return ui.plan_run_name(plan, where)


DEFAULT_OPTIONS = RunOptions()
"""The flow's default options (every field's default; the repository is the plan's)."""


@flow(name="execute-plan", flow_run_name=_run_name, validate_parameters=True)
async def execute_plan(plan_path: Path, options: RunOptions = DEFAULT_OPTIONS) -> State[RunReport]:
    """Run every phase of a plan on evidence; the state's data is the RunReport.

    Budgets (docs/budgets.md): ``max_cost_usd`` / ``max_tokens`` for the whole run (shared by
    concurrent phases), ``phase_max_cost_usd`` / ``phase_max_tokens`` per phase (the plan's
    frontmatter may set tighter ones), ``no_progress_turns`` (0: off) and ``max_turns`` per
    agent call. A limit reached ends the phase `budget`; once the run's budget is spent no new
    agent call starts.

    ``distribute`` runs each phase as a run of the `execute-phase` deployment on a worker of
    the pool, in the worker's own clone of the repository's `origin`; verified phase branches
    come back through the remote and land here (flows.distribute). Needs worktrees.

    One run per plan: the run lock (`tasks.run_lock`) is taken here, before anything is read
    or written, and held until the flow returns. A second run (dry runs included: their
    pre-flight would read a tree an agent is editing) is refused and changes nothing.

    Args:
        plan_path: The plan file (`.ai/plans/YYYY-MM-DD.name.md`).
        options: How to run it: repository, budgets, timeouts, sandbox, worktrees, dry run,
            distribution (each field says what it does). Fields left out take their defaults,
            including in a deployment run: a run's `options` replaces the deployment's whole.
    """
    from tasks import run_lock
    from tasks.secrets import install_log_scrubber

    install_log_scrubber()  # log records quote exceptions and output: no key reaches the UI
    plan_path = Path(plan_path).resolve()
    flow_run_id = _flow_run_id()
    try:
        lock = run_lock.acquire(plan_path, flow_run_id=flow_run_id)
    except (run_lock.RunLockHeld, run_lock.RunLockError) as exc:
        get_run_logger().error("%s", exc)
        report = RunReport(
            plan_path=str(plan_path),
            repo=str(options.repo or ""),
            status="locked",
            invalid=True,
            errors=[str(exc)],
            flow_run_id=flow_run_id,
        )
        return Failed(message=str(exc), data=report, name=ui.run_state_name(report))
    leftovers = run_lock.reap_leftovers(lock.previous)
    if leftovers and lock.previous is not None:
        get_run_logger().warning(
            "stopped %d command(s) left running by a killed run of this plan (%s): pids %s",
            len(leftovers),
            lock.previous.describe(),
            leftovers,
        )
    crashed = await run_lock.mark_killed_run_crashed(lock.previous, flow_run_id)
    if crashed:
        get_run_logger().warning(
            "marked the killed run's flow run(s) Crashed in Prefect: %s", ", ".join(crashed)
        )
    try:
        return await _execute_plan(plan_path, options)
    finally:
        lock.release()


async def _execute_plan(plan_path: Path, requested: RunOptions) -> State[RunReport]:
    started = time.monotonic()
    plan_path = Path(plan_path).resolve()
    repo = requested.repo.resolve() if requested.repo else find_repo(plan_path)
    options = requested.resolved(repo)
    log = get_run_logger()
    if options.distribute and not options.worktrees:
        error = "distribute needs worktrees: each phase's work travels as its phase branch"
        log.error("%s", error)
        report = RunReport(
            plan_path=str(plan_path), repo=str(repo), status="invalid", invalid=True,
            errors=[error],
        )  # fmt: skip
        return Failed(message=error, data=report)
    exposed = await _open_api_warning(options)
    if exposed:
        log.warning("SECURITY: %s", exposed)

    try:
        check_agent_runtime(options.agent_runtime)
        check_env_settings()
        plan, waves = await load_plan(
            plan_path,
            repo,
            include_optional=options.include_optional,
            unknown_owners=options.unknown_owners,
        )
    except (PlanInputError, EnvSettingError) as exc:
        report = RunReport(
            plan_path=str(plan_path),
            repo=str(repo),
            status="invalid",
            invalid=True,
            errors=[str(exc)],
        )
        await artifacts.publish_markdown(
            plan_path,
            "validation",
            f"# Plan validation failed\n\n```\n{exc}\n```\n",
            "Why the plan cannot run",
        )
        return Failed(message=f"invalid plan: {exc}", data=report, name=ui.run_state_name(report))

    for warning in plan.warnings:
        log.warning("%s", warning.render(str(plan_path)))
    user_skills, detected = detect_skills(plan, repo, options.skills)
    print(skills_banner(user_skills, detected))
    all_skills = user_skills + [s for s in detected if s not in user_skills]

    mirror = PlanMirror(plan_path, repo, plan_title=plan.title, enabled=not options.dry_run)
    for observer in observers():
        observer.set_waves(waves)
        mirror.listeners.append(observer.observe)
    context = RunContext(
        plan_path=plan_path,
        plan=plan,
        options=options,
        mirror=mirror,
        skills=all_skills,
        waves=waves,
    )
    flow_run_id = _flow_run_id()
    report = RunReport(
        plan_path=str(plan_path),
        plan_title=plan.title,
        repo=str(repo),
        status="",
        dry_run=options.dry_run,
        flow_run_id=flow_run_id,
        ui_url=ui.flow_run_url(flow_run_id),
        security_warnings=[exposed] if exposed else [],
    )

    scheduled = [pid for wave in waves for pid in wave]
    context.previous = await asyncio.to_thread(mirror.previous_state)
    landed_on = landing_branch(
        plan_path, worktrees=options.worktrees, on_current_branch=options.on_current_branch
    )
    resumed = resumable_phases(plan, context.previous, repo, scheduled, branch=landed_on)
    if resumed:
        marked = sorted(marked_complete_ids(resumed))
        log.info("resume: phases %s are complete and unchanged; not running them", sorted(resumed))
        if marked:
            log.info("phases %s are %s; not running them", marked, MARKED_COMPLETE)

    if options.dry_run:
        return await _dry_run(context, report, resumed, started)
    report.forecast = await _forecast(context, resumed)

    # The phase subflows find the parsed plan, the mirror and the baseline here.
    with running(context):
        try:
            return await _run(context, report, resumed, started, flow_run_id)
        finally:
            await mirror.close()


def _flow_run_id() -> str | None:
    flow_context = FlowRunContext.get()
    return str(flow_context.flow_run.id) if flow_context and flow_context.flow_run else None


async def _open_api_warning(options: RunOptions) -> str | None:
    """A warning when the agents have the network and the run's Prefect API needs no credential.

    Checked by the flow, not the CLI, so that deployment runs on a worker say it as well.
    """
    if not options.network or options.dry_run:
        return None
    from prefect.settings import PREFECT_API_URL

    from backend.exposure import api_is_open, open_api_warning

    api_url = PREFECT_API_URL.value()
    if not api_url or not await asyncio.to_thread(api_is_open, api_url):
        return None
    return open_api_warning(api_url)


async def _run(
    context: RunContext,
    report: RunReport,
    resumed: dict[str, PhaseCheckpoint],
    started: float,
    flow_run_id: str | None,
) -> State[RunReport]:
    plan, options, mirror = context.plan, context.options, context.mirror
    log = get_run_logger()
    scheduled = [pid for wave in context.waves for pid in wave]
    phases = {pid: plan.phase(pid) for pid in scheduled}

    for pid in resumed:
        context.outcomes[pid] = resumed_outcome(phases[pid], resumed[pid], context.wave_of(pid))

    # Pre-flight first: it must see the tree as the user left it, before the mirror writes.
    # Interactive runs with uncommitted changes ask a person (a Prefect pause, or a suspend in
    # deployment runs) and fall back to the dirty_policy parameter when nobody answers.
    policy = await dirty_tree_policy(
        options.repo,
        context.plan_path,
        options.dirty_policy,
        interactive=options.interactive,
    )
    preflight = await preflight_step(
        options.repo,
        plan,
        plan_path=context.plan_path,
        policy=policy,
        network=options.network,
        sandbox=options.sandbox_gates,
    )
    report.preflight_ok = bool(preflight.ok)
    report.preflight_message = str(getattr(preflight, "message", "") or "")
    context.baseline = getattr(preflight, "baseline", None)
    # Read once, from HEAD, before any agent ran: every gate of the run uses this one.
    context.gate_config = getattr(preflight, "config", None)
    if preflight.ok:  # the prices too: an agent cannot widen its budget in the working tree
        try:
            context.budget = await asyncio.to_thread(run_budget, plan, options)
            report.budget = context.budget.describe()
        except (ValueError, OSError) as exc:
            report.preflight_ok = False
            report.preflight_message = f"price table: {exc}"
            preflight = preflight.model_copy(update={"ok": False})

    if not preflight.ok:
        log.error("pre-flight failed: %s", report.preflight_message)
        await mirror.log(
            f"## {stamp()} - Run of {plan.title}: pre-flight failed\n{report.preflight_message}"
        )
        for pid in scheduled:
            context.outcomes.setdefault(
                pid,
                plain_outcome(
                    phases[pid], context.wave_of(pid), "pending", "not run: pre-flight failed"
                ),
            )
        return await _finish(context, report, scheduled, started, touch_plan=False)

    if options.worktrees:
        try:
            context.branch = await asyncio.to_thread(
                worktree.check_out_integration,
                options.repo,
                plan_name(context.plan_path),
                current=options.on_current_branch,
            )
        except worktree.WorktreeError as exc:
            report.preflight_ok = False
            report.preflight_message = f"integration branch: {exc}"
            log.error("%s", report.preflight_message)
            return await _finish(context, report, scheduled, started, touch_plan=False)
        report.branch = context.branch
        log.info("verified phases land on branch %s", context.branch)

    await mirror.initialise(
        [resumed[pid] if pid in resumed else pending_checkpoint(phases[pid]) for pid in scheduled],
        header=run_log_header(context, flow_run_id, resumed),
    )
    await mirror.set_status("In Progress")
    progress_id = await artifacts.create_progress(context.plan_path, len(scheduled), len(resumed))

    progress = artifacts.ProgressUpdates(progress_id, len(scheduled))

    def on_transition(checkpoint: PhaseCheckpoint) -> None:
        # Progress is shown live: it moves at every transition, not per wave. Sent
        # in the background (latest value wins) so the next phase does not wait on the API.
        done = sum(1 for cp in mirror.checkpoints.values() if cp.status in TERMINAL)
        running = [
            (pid, phases[pid].title if pid in phases else "")
            for pid, cp in mirror.checkpoints.items()
            if cp.status == "running"
        ]
        progress.post(
            done,
            ui.progress_text(done, len(scheduled), checkpoint.phase_id, checkpoint.status, running),
        )

    mirror.listeners.append(on_transition)

    try:
        await _run_waves(context, phases, resumed)
    finally:
        await progress.drain()
        if context.branch is not None:
            await _tidy_worktrees(context, report)
    ran_any = any(not o.resumed for o in context.outcomes.values())
    if ran_any and any(o.status == "complete" for o in context.outcomes.values()):
        report.final_ledger = await final_validation_step(
            options.repo, context.baseline, context.gate_config
        )

    return await _finish(context, report, scheduled, started)


async def _tidy_worktrees(context: RunContext, report: RunReport) -> None:
    """Name the branches of phases that did not land; remove the worktrees unless kept."""
    name = plan_name(context.plan_path)
    for pid, outcome in context.outcomes.items():
        if outcome.status in ("blocked", "failed", "timeout", "budget"):
            report.unlanded[pid] = worktree.phase_branch(name, pid)
    if not context.options.keep_worktrees:
        await asyncio.to_thread(worktree.remove_worktrees, context.options.repo, name)


async def _run_waves(
    context: RunContext, phases: dict[str, Phase], resumed: dict[str, PhaseCheckpoint]
) -> None:
    """Submit each wave's phases as subflows and record what they hand back; which phase
    starts is :class:`tasks.scheduling.WaveSchedule`'s decision."""
    mirror = context.mirror
    schedule = WaveSchedule(context.plan)

    async def run_one(pid: str) -> PhaseOutcome:
        if context.options.distribute:
            from flows.distribute import run_phase_remotely

            outcome = await run_phase_remotely(context, phases[pid])
        else:
            state = await run_phase(context.plan_path, pid, context.options, return_state=True)
            outcome = await _outcome_from_state(state, phases[pid])
        outcome.wave = context.wave_of(pid)
        context.outcomes[pid] = outcome
        schedule.ended(pid, outcome.status)
        await mirror.transition(
            pid,
            outcome.status,
            note=transition_note(outcome),
            error=outcome.error,
            ledger=outcome.failing,
            artifacts=outcome.artifacts,
            tokens=outcome.tokens,
            cost_usd=outcome.cost_usd if outcome.tokens else None,
            flow_run_id=outcome.flow_run_id,
            last_successful_step=outcome.last_successful_step,
            phase_hash=phases[pid].body_hash,
        )
        return outcome

    async def start_attempt(pid: str, fresh: bool) -> None:
        continued = None if fresh else continued_attempt(context.previous, phases[pid])
        attempt = continued or f"{uuid4().hex[:12]}-{pid}"
        context.attempts[pid] = attempt
        await mirror.transition(
            pid, "running", phase_hash=phases[pid].body_hash, extra={"attempt": attempt}
        )

    for wave in context.waves:
        to_run: list[str] = []
        for pid in wave:
            if pid in resumed:
                continue
            spent = context.budget.limit_reached() if context.budget is not None else None
            not_run = schedule.not_run(
                pid,
                statuses={done: outcome.status for done, outcome in context.outcomes.items()},
                budget_spent=spent.message if spent is not None else None,
            )
            if not_run is None:
                to_run.append(pid)
                continue
            context.outcomes[pid] = plain_outcome(
                phases[pid], context.wave_of(pid), not_run.status, not_run.error
            )
            if not_run.takes_dependents:
                schedule.ended(pid, not_run.status)
            if not_run.status == "skipped":
                await _show_skipped(context, pid)
            await mirror.transition(pid, not_run.status, error=not_run.error, note=not_run.error)
        # Every phase of the group is marked running before any of them starts.
        for pid in to_run:
            await start_attempt(pid, False)
        results = await asyncio.gather(*(run_one(pid) for pid in to_run), return_exceptions=True)
        for pid, result in zip(to_run, results, strict=True):
            if isinstance(result, BaseException):
                error = f"{type(result).__name__}: {result}"
                context.outcomes[pid] = plain_outcome(
                    phases[pid], context.wave_of(pid), "failed", error
                )
                schedule.ended(pid, "failed")
                await mirror.transition(pid, "failed", error=error, note=error)
        if context.options.interactive and schedule.stopped_after is None:
            schedule.stopped_after = await _ask_after_failures(
                context, to_run, schedule, start_attempt, run_one
            )


async def _show_skipped(context: RunContext, pid: str) -> None:
    """A skipped phase in the flow run graph: a subflow run of its own ending `Skipped`."""
    outcome = context.outcomes[pid]
    try:
        outcome.flow_run_id = await ui.mark_skipped(
            context.plan_path, pid, outcome.title, outcome.error or "not run"
        )
    except Exception:  # a view only: the run goes on without it
        get_run_logger().warning("could not show phase %s as skipped", pid, exc_info=True)


async def _ask_after_failures(
    context: RunContext,
    ran: list[str],
    schedule: WaveSchedule,
    start_attempt: Callable[[str, bool], Awaitable[None]],
    run_one: Callable[[str], Awaitable[PhaseOutcome]],
) -> str | None:
    """Ask the person after a failed phase: retry it, continue, or stop the run.

    Asked one phase at a time, after the wave: two pauses at once in one flow run conflict.
    Returns the phase after which the person chose to stop, else None.
    """
    for pid in ran:
        attempt = 1
        while (outcome := context.outcomes[pid]).status in FAILED_LIKE:
            action = await failed_phase_action(
                pid,
                outcome.title,
                outcome.error or outcome.status,
                attempt=attempt,
                interactive=True,
            )
            if action == "stop":
                return pid
            if action != "retry":
                break
            schedule.retrying(pid)
            attempt += 1
            await start_attempt(pid, True)  # a fresh attempt: the failed one's cache is not reused
            await run_one(pid)
    return None


async def _outcome_from_state(state: State[Any], phase: Phase) -> PhaseOutcome:
    """What the phase subflow handed back; a failed outcome when its state holds none.

    (Prefect types a subflow's returned state as nested in another: its data is checked here.)"""
    try:
        data = await state.aresult(raise_on_failure=False)
    except Exception as exc:  # the result could not be read back
        data = exc
    if isinstance(data, PhaseOutcome):
        return data
    return PhaseOutcome(
        phase_id=phase.id,
        title=phase.title,
        owner=phase.owner_label,
        status="failed",
        error=f"phase subflow ended {state.name}: {state.message or data}",
        flow_run_id=str(state.state_details.flow_run_id)
        if state.state_details.flow_run_id
        else None,
    )


async def _finish(
    context: RunContext,
    report: RunReport,
    scheduled: list[str],
    started: float,
    *,
    touch_plan: bool = True,
) -> State[RunReport]:
    mirror = context.mirror
    report.outcomes = [context.outcomes[pid] for pid in scheduled if pid in context.outcomes]
    report.status = plan_status(report.outcomes)
    if report.final_ledger is not None and report.final_ledger.failing() and report.all_complete:
        report.status = f"Partially Implemented ({report.complete}/{len(report.outcomes)} phases complete; final validation failed)"
    report.duration_s = round(time.monotonic() - started, 1)
    if context.budget is not None:
        report.budget_stop = getattr(context.budget.limit_reached(), "message", None)
    # Printed by the CLI and kept as the flow's result: ledger tails quote command output.
    report.markdown = scrub_known(final_report(report, log_path=mirror.log_path))

    if touch_plan:
        await mirror_plan_status(mirror, report.status, implementation_summary(report))
    await mirror.log(
        f"### {stamp()} - Run finished: {report.status}\n- Flow run: `{report.flow_run_id}`"
        f"\n- Cost: {cost_line(report.outcomes)}"
        + (f"\n- Budget: {report.budget_stop}" if report.budget_stop else "")
    )
    await artifacts.publish_table(context.plan_path, table_rows(report.outcomes))
    await artifacts.publish_markdown(
        context.plan_path, "report", report.markdown, "Final report (evidence only)"
    )
    # The runs list shows this message: the outcome and, for a phase that did not complete, why.
    # The badge in the runs list: Partial, not Failed, for a run that completed some phases.
    if report.exit_code == 0:
        return Completed(message=ui.run_message(report), data=report)
    return Failed(message=ui.run_message(report), data=report, name=ui.run_state_name(report))


async def _dry_run(
    context: RunContext,
    report: RunReport,
    resumed: dict[str, PhaseCheckpoint],
    started: float,
) -> State[RunReport]:
    """Walk the DAG and the pre-flight; no agent call, no change to the repository or plan."""
    options = context.options
    # A dry run changes nothing: a policy that would stash or commit is checked as `stop`.
    policy = "stop" if options.dirty_policy in TREE_CHANGING_POLICIES else options.dirty_policy
    preflight = await preflight_step(
        options.repo,
        context.plan,
        plan_path=context.plan_path,
        policy=policy,
        network=options.network,
        sandbox=options.sandbox_gates,
    )
    report.preflight_ok = bool(preflight.ok)
    report.preflight_message = str(getattr(preflight, "message", "") or "")
    # The configuration the pre-flight read (with `just --dump`): the report shows its commands.
    context.gate_config = getattr(preflight, "config", None)
    report.would_run = [[pid for pid in wave if pid not in resumed] for wave in context.waves]
    report.outcomes = [
        resumed_outcome(context.plan.phase(pid), resumed[pid], context.wave_of(pid))
        if pid in resumed
        else plain_outcome(context.plan.phase(pid), context.wave_of(pid), "pending")
        for wave in context.waves
        for pid in wave
    ]
    report.status = "dry run"
    report.duration_s = round(time.monotonic() - started, 1)
    detail = await asyncio.to_thread(describe_loaded_run, loaded_run(context, resumed))
    report.dry_run_detail = with_preflight(
        detail, ok=report.preflight_ok, message=report.preflight_message
    )
    report.forecast = detail.forecast
    report.markdown = render_text(detail, dirty_policy=options.dirty_policy)
    await artifacts.publish_markdown(
        context.plan_path, "dry-run", report.markdown, "What would run"
    )
    return (
        Completed(message="dry run", data=report)
        if report.preflight_ok
        else Failed(message=f"dry run: pre-flight failed: {report.preflight_message}", data=report)
    )


def loaded_run(context: RunContext, resumed: dict[str, PhaseCheckpoint]) -> LoadedRun:
    """What the dry run's description reads, from the run's context."""
    options = context.options
    return LoadedRun(
        plan=context.plan,
        plan_path=context.plan_path,
        waves=context.waves,
        repo=options.repo,
        skills=context.skills,
        resumed=resumed,
        options=options,
        gate_config=context.gate_config,
    )


async def _forecast(context: RunContext, resumed: dict[str, PhaseCheckpoint]) -> RunForecast | None:
    """The run's cost forecast, for the final report's forecast-against-actual section."""
    forecast, problem = await asyncio.to_thread(
        forecast_of_loaded_run, loaded_run(context, resumed)
    )
    if problem is not None:
        get_run_logger().warning("no cost forecast: %s", problem)
    return forecast


async def load_plan(
    plan_path: Path,
    repo: Path,
    *,
    include_optional: bool,
    unknown_owners: UnknownOwners = "error",
) -> tuple[Plan, list[list[str]]]:
    """Parse, validate and schedule (:func:`tasks.plan_input.check_plan`, in a thread);
    PlanInputError carries the validation report."""
    return await asyncio.to_thread(
        check_plan,
        plan_path,
        repo,
        include_optional=include_optional,
        unknown_owners=unknown_owners,
    )


@flow(name="execute-plan", flow_run_name=_run_name, validate_parameters=True)
def execute_plan_sync(plan_path: Path, options: RunOptions = DEFAULT_OPTIONS) -> State[RunReport]:
    """The same flow for `prefect flow-run retry <id> --entrypoint
    flows/execute_plan.py:execute_plan_sync`: Prefect 3.8.8's `flow-run retry` does not await an
    async flow (it leaves the run Scheduled), so the retry path enters through this sync flow,
    which runs the body of :func:`execute_plan` in the retried flow run. The checkpoints make it
    a resume: complete, unchanged phases are not run again.

    Args:
        plan_path: The plan file (`.ai/plans/YYYY-MM-DD.name.md`).
        options: How to run it, as for :func:`execute_plan`.
    """
    import contextvars
    from concurrent.futures import ThreadPoolExecutor

    # The retry command runs this inside its own event loop: run the body on a fresh loop in a
    # thread that carries this flow run's context (logger, run id, artifacts).
    context = contextvars.copy_context()
    body = functools.partial(execute_plan.fn, plan_path, options)
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(context.run, lambda: asyncio.run(body())).result()
