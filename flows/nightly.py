"""The nightly flow `execute-ready-plans`: the plans of a repository that are ready, one by one.

What runs (decided here, from a study of real plan files: the frontmatter `status` records the
planning session, the body's `**Status:**` line the implementation):

1. Only plan documents: execution logs, notes and templates in `.ai/plans/` are never run.
2. **Resume**: plan-executor's own checkpoints say a run of the plan is unfinished (a phase
   left `running` by a killed run, or `failed`, `blocked`, `timeout`, `budget`, `skipped`,
   `pending`):
   the run goes on where it stopped, whatever the status line says (`In Progress`,
   `Partially Implemented (…)`). Checkpoints that say every phase is complete: implemented.
3. **Ready**: a body `**Status:**` containing "Ready for Implementation" (the template's
   `Reviewed - Ready for Implementation`), or, without a body status, a frontmatter `status`
   that means "ready to implement" (``READY_STATUSES``: `ready`, `approved`, …).
4. Not run: everything else. A body status saying `Implemented` / `Done` / `Complete`, or a
   frontmatter `implemented` / `executed`, counts as already implemented. Frontmatter `done`,
   `complete`, `completed` describe the *planning session* (the plan was written): not a
   go, unless the flow parameter ``include_planner_done`` opts in. `ready_for_approval` waits
   for a person.
5. **Already implemented?** Every plan that would run is first checked against the commit the
   night starts from (:mod:`tasks.plan_evidence`): files it creates exist, files it names were
   added or changed by commits after the plan was added, ✅ / `[x]` markers, an execution log.
   A plan that looks done is skipped with that evidence unless ``force`` names it. Then it is
   validated like `plan-executor run` does (invalid: not run).

Order: resumed plans first (started work is finished before new work starts), then ready
plans; each group in file-name order (the date prefix: oldest first). Each plan is its own
`execute-plan` subflow. Every plan starts from the branch checked out when the night began:
its run checks out `plan-executor/<plan>` (a resumed plan continues on its existing one), and
between plans and at the end the checkout goes back to the starting branch, so plans never
build on each other's unreviewed work. What runs left in the checkout is theirs, not the user's:
the plans' checkpoint mirrors stay (their resume state; the next pre-flight does not count them
as uncommitted changes) and lock files cargo rewrote are put back.

The report: one row per file with its verdict and reason (a `nightly-plans` table artifact,
a `nightly-report` markdown artifact with the evidence, and the log). The flow ends Completed,
or Failed when a plan that ran did not complete, a candidate is invalid, or the checkout could
not be brought back; its message counts run / skipped / failed plans.
"""

from __future__ import annotations

import asyncio
import fnmatch
from pathlib import Path
from typing import Any, Literal

from prefect import State, flow, get_run_logger
from prefect.artifacts import acreate_markdown_artifact, acreate_table_artifact
from prefect.states import Completed, Failed
from pydantic import BaseModel, Field

from flows.context import RunOptions
from plan_parser import DocKind, Plan, parse_plan
from plan_parser.checkpoints import ExecutionState, read_plan_state
from plan_parser.completion import logs_plan
from plan_parser.paths import repo_relative
from tasks.agent.budget import format_cost
from tasks.worktree import BRANCH_PREFIX, StartPoint, WorktreeError, return_to_start, start_point

PLANS_DIR = ".ai/plans"
NIGHTLY_MAX_COST_USD = 25.0
"""What one plan may spend in a night nobody watches, by default (docs/budgets.md: about a
10-phase plan on the default model at ~$2 a phase, with room to spare). None lifts it."""
NIGHTLY_PHASE_MAX_COST_USD = 5.0
"""What one phase may spend in a night by default: a runaway phase stops at a few dollars and
leaves the rest of the plan's budget to the phases that do not depend on it."""
LOGS_DIR = ".ai/logs"
READY_BODY_MARKER = "ready for implementation"
READY_STATUSES = (
    "ready",
    "approved",
    "reviewed",
    "ready_for_implementation",
    "ready-for-implementation",
    "ready for implementation",
)
"""Frontmatter statuses that mean a person cleared the plan for implementation."""
PLANNER_DONE_STATUSES = ("done", "complete", "completed")
"""Frontmatter statuses of a finished planning session: taken only with include_planner_done."""
IMPLEMENTED_STATUSES = ("implemented", "executed")
IMPLEMENTED_BODY_WORDS = ("implemented", "done", "complete")
UNFINISHED_BODY_WORDS = ("not implemented", "partially", "partial", "in progress")

Verdict = Literal["run", "resume", "not ready", "already implemented", "not a plan", "invalid"]
RUNS: tuple[Verdict, ...] = ("resume", "run")


class PlanVerdict(BaseModel):
    """One file of the plans folder: what the night decided about it, why, and how it went."""

    plan: str
    """The file name."""
    path: str
    verdict: Verdict
    reason: str
    status: str | None = None
    """The status the plan carries (body or frontmatter), as written."""
    evidence: list[str] = Field(default_factory=list)
    """Why it looks implemented (also kept when it runs because it was forced)."""
    forced: bool = False
    state: str | None = None
    """The execute-plan run's final state (`Completed`, `Failed`, …); None when not run."""
    message: str = ""
    flow_run_id: str | None = None
    cost_usd: float | None = None
    """What the plan's run spent on agent calls (its RunReport); None when not run."""

    @property
    def runs(self) -> bool:
        return self.verdict in RUNS

    @property
    def completed(self) -> bool:
        return self.state == "Completed"


class Readiness(BaseModel):
    """What the plan's status and checkpoints say, before any evidence is looked at."""

    verdict: Verdict
    reason: str
    status: str | None = None


def _body_status(plan: Plan) -> str | None:
    """The body `**Status:**` value, or None when the parser fell back to the frontmatter."""
    if plan.status is None:
        return None
    front = plan.frontmatter.get("status") if isinstance(plan.frontmatter, dict) else None
    if front is not None and str(front).strip() == plan.status.strip():
        front_line = plan.status_line
        # Same text in both places: it is the body's only if the line lies past the frontmatter.
        fm_lines = (plan.frontmatter_raw or "").count("\n") + 2 if plan.frontmatter_raw else 0
        if front_line is None or front_line <= fm_lines:
            return None
    return plan.status


def _unfinished(previous: ExecutionState) -> str:
    """`phase 2 running (interrupted), phase 3 skipped` from plan-executor's checkpoints."""
    parts = []
    for pid, checkpoint in previous.phases.items():
        if checkpoint.status == "complete":
            continue
        note = " (interrupted)" if checkpoint.status == "running" else ""
        parts.append(f"phase {pid} {checkpoint.status}{note}")
    return ", ".join(parts)


def _words(value: str) -> str:
    return value.strip().strip("\"'").strip().lower()


def readiness(
    plan: Plan,
    previous: ExecutionState | None = None,
    *,
    include_planner_done: bool = False,
    ready_statuses: tuple[str, ...] | list[str] = READY_STATUSES,
) -> Readiness:
    """Whether ``plan`` is a candidate tonight, from its status and plan-executor's checkpoints
    (``previous``); see the module docstring."""
    if plan.kind is not DocKind.PLAN:
        return Readiness(verdict="not a plan", reason=f"not a plan ({plan.kind.value})")
    if previous is not None and previous.written_by_executor and previous.phases:
        unfinished = _unfinished(previous)
        if unfinished:
            return Readiness(
                verdict="resume", reason=f"unfinished run: {unfinished}", status=plan.status
            )
        return Readiness(
            verdict="already implemented",
            reason=f"plan-executor's checkpoints: all {len(previous.phases)} phases complete",
            status=plan.status,
        )
    body = _body_status(plan)
    if body is not None:
        text = body.strip().lower()
        if READY_BODY_MARKER in text:
            return Readiness(verdict="run", reason="status: ready", status=body)
        if any(word in text for word in UNFINISHED_BODY_WORDS):
            # A run's own status, but no checkpoints of it to resume from (removed by hand).
            return Readiness(verdict="not ready", reason="status of an unfinished run", status=body)
        if any(word in text for word in IMPLEMENTED_BODY_WORDS):
            return Readiness(
                verdict="already implemented", reason="status says it was done", status=body
            )
        return Readiness(verdict="not ready", reason="status is not ready", status=body)
    front = plan.frontmatter.get("status") if isinstance(plan.frontmatter, dict) else None
    if front is None:
        return Readiness(verdict="not ready", reason="no status")
    value = _words(str(front))
    if value in {_words(s) for s in ready_statuses}:
        return Readiness(verdict="run", reason="frontmatter status: ready", status=str(front))
    if value in PLANNER_DONE_STATUSES:
        if include_planner_done:
            return Readiness(
                verdict="run",
                reason="planner finished (frontmatter), taken: include_planner_done",
                status=str(front),
            )
        return Readiness(
            verdict="not ready",
            reason=f"frontmatter status {value!r} is the planning session's, not a go "
            "(include_planner_done=true takes it)",
            status=str(front),
        )
    if value in IMPLEMENTED_STATUSES:
        return Readiness(
            verdict="already implemented", reason="frontmatter says executed", status=str(front)
        )
    return Readiness(
        verdict="not ready", reason="frontmatter status is not ready", status=str(front)
    )


def _is_forced(name: str, force: list[str]) -> bool:
    stem = name.removesuffix(".md")
    return any(
        fnmatch.fnmatch(name, pattern) or fnmatch.fnmatch(stem, pattern) for pattern in force
    )


def _execution_logs(repo: Path, parsed: dict[Path, Plan]) -> dict[str, Plan]:
    """Execution logs in the plans folder (already parsed) and `.ai/logs/*execution-of-*`."""
    logs = {str(p): plan for p, plan in parsed.items() if plan.kind is DocKind.EXECUTION_LOG}
    folder = repo / LOGS_DIR
    if folder.is_dir():
        for path in sorted(folder.glob("*execution-of-*.md")):
            try:
                logs[str(path)] = parse_plan(path, repo=repo)
            except Exception:  # a log we cannot read is no evidence either way
                continue
    return logs


def consider_plans(
    repo: Path,
    plans_dir: str = PLANS_DIR,
    *,
    include_planner_done: bool = False,
    ready_statuses: tuple[str, ...] | list[str] = READY_STATUSES,
    force: list[str] | None = None,
    include_optional: bool = False,
) -> list[PlanVerdict]:
    """Every `*.md` in ``repo/plans_dir`` with its verdict, in file-name order.

    Reads git (through :mod:`tasks.plan_evidence`) but changes nothing: no agent call, no write.
    """
    from tasks.plan_evidence import implementation_evidence, snapshot
    from tasks.plan_input import PlanInputError, check_plan

    repo = Path(repo).resolve()
    folder = (repo / plans_dir).resolve()
    if not folder.is_dir():
        return []
    force = list(force or [])
    parsed: dict[Path, Plan] = {}
    verdicts: list[PlanVerdict] = []
    for path in sorted(folder.glob("*.md")):
        try:
            parsed[path] = parse_plan(path, repo=repo)
        except Exception as exc:  # an unreadable file must not stop the other plans
            verdicts.append(
                PlanVerdict(
                    plan=path.name,
                    path=str(path),
                    verdict="invalid",
                    reason=f"unreadable: {exc}"[:300],
                )
            )
    logs = _execution_logs(repo, parsed)
    committed = snapshot(repo)
    for path, plan in parsed.items():
        previous = read_plan_state(path) if plan.kind is DocKind.PLAN else None
        ready = readiness(
            plan, previous, include_planner_done=include_planner_done, ready_statuses=ready_statuses
        )
        verdict = PlanVerdict(
            plan=path.name,
            path=str(path),
            verdict=ready.verdict,
            reason=ready.reason,
            status=ready.status,
        )
        verdicts.append(verdict)
        if not verdict.runs:
            continue
        evidence = implementation_evidence(
            plan,
            repo_relative(repo, path) or str(path),
            committed,
            previous=previous,
            execution_logs=[
                repo_relative(repo, p) or p for p, log in logs.items() if logs_plan(log, path.name)
            ],
        )
        if evidence.looks_implemented:
            verdict.evidence = evidence.lines()
            if _is_forced(path.name, force):
                verdict.forced = True
                verdict.reason += " (forced: it looks implemented)"
            else:
                verdict.verdict = "already implemented"
                verdict.reason = f"looks implemented (else: {ready.reason})"
                continue
        try:
            check_plan(path, repo, include_optional=include_optional)
        except PlanInputError as exc:
            verdict.verdict = "invalid"
            verdict.reason = str(exc).splitlines()[0][:300] if str(exc) else "invalid"
    verdicts.sort(key=lambda v: v.plan)
    return verdicts


def run_order(verdicts: list[PlanVerdict]) -> list[PlanVerdict]:
    """Resumed plans first, then ready ones; each in file-name order (oldest first)."""
    return [v for kind in RUNS for v in verdicts if v.verdict == kind]


# -- the report --------------------------------------------------------------------------------

LABELS: dict[str, str] = {
    "run": "run",
    "resume": "resumed",
    "not ready": "skipped: not ready",
    "already implemented": "skipped: already implemented",
    "not a plan": "skipped: not a plan",
    "invalid": "invalid",
}


def summary_message(verdicts: list[PlanVerdict], problems: list[str]) -> str:
    ran = [v for v in verdicts if v.runs and v.state is not None]
    completed = sum(1 for v in ran if v.completed)
    resumed = sum(1 for v in ran if v.verdict == "resume")
    not_run = [v for v in verdicts if v.runs and v.state is None]

    def count(kind: Verdict) -> int:
        return sum(1 for v in verdicts if v.verdict == kind)

    parts = [
        f"{len(ran)} run ({resumed} resumed): {completed} completed, {len(ran) - completed} failed",
        f"{count('already implemented') + count('not ready') + count('not a plan')} skipped "
        f"({count('already implemented')} already implemented, {count('not ready')} not ready, "
        f"{count('not a plan')} not plans)",
        f"{count('invalid')} invalid",
    ]
    if not_run:
        parts.append(f"{len(not_run)} not run")
    message = "; ".join(parts)
    if problems:
        message += "; " + "; ".join(problems)
    return message


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def report_markdown(
    verdicts: list[PlanVerdict], repo: Path, start: str, message: str, problems: list[str]
) -> str:
    lines = [
        f"# Nightly run of `{repo}`",
        "",
        f"**{message}**",
        "",
        f"**Cost of the night:** {format_cost(sum(v.cost_usd or 0.0 for v in verdicts))} "
        "(each plan's run within its own budget: docs/budgets.md)",
        "",
        f"Every plan started from {start}; each plan's work is on its `plan-executor/<plan>` "
        "branch.",
        "",
        "| Plan | Status | Verdict | Reason | Result |",
        "|---|---|---|---|---|",
    ]
    for v in verdicts:
        result = f"{v.state}: {v.message}" if v.state else ""
        if v.cost_usd is not None:
            result += f" ({format_cost(v.cost_usd)})"
        lines.append(
            f"| `{_cell(v.plan)}` | {_cell(v.status or '')} | {LABELS[v.verdict]} "
            f"| {_cell(v.reason)} | {_cell(result)} |"
        )
    with_evidence = [v for v in verdicts if v.evidence]
    if with_evidence:
        lines += ["", "## Evidence of work already done", ""]
        for v in with_evidence:
            lines.append(f"- `{v.plan}`{' (forced to run)' if v.forced else ''}:")
            lines += [f"  - {line}" for line in v.evidence]
    if problems:
        lines += ["", "## Problems and warnings", ""] + [f"- {p}" for p in problems]
    return "\n".join(lines) + "\n"


def _log_verdict(log: Any, verdict: PlanVerdict) -> None:
    status = f" ({verdict.status})" if verdict.status else ""
    log.info("%-28s %s: %s%s", LABELS[verdict.verdict], verdict.plan, verdict.reason, status)
    for line in verdict.evidence:
        log.info("    evidence: %s", line)


# -- the flow ----------------------------------------------------------------------------------


class NightlyRunOptions(RunOptions):
    """:class:`RunOptions` for a night nobody watches: each plan's run has a budget by default.

    The nightly's own ``repo`` is the repository every plan runs in: ``repo`` here is not read.
    """

    max_cost_usd: float | None = Field(default=NIGHTLY_MAX_COST_USD, gt=0)
    """USD one plan's agent calls may spend together (default 25; None: no limit)."""
    phase_max_cost_usd: float | None = Field(default=NIGHTLY_PHASE_MAX_COST_USD, gt=0)
    """USD one phase's agent calls may spend (default 5; None: no limit; the plan's
    `phase_max_cost_usd` applies too)."""


NIGHTLY_OPTIONS = NightlyRunOptions()
"""The nightly's default options: RunOptions' defaults with the budgets on."""


def _plan_branch_note(start: StartPoint) -> str | None:
    if start.branch and start.branch.startswith(BRANCH_PREFIX):
        return (
            f"the night began on {start.branch}, a plan branch: tonight's plans build on its "
            "unreviewed work (check out your own branch before the next night)"
        )
    return None


async def _run_plans(
    queue: list[PlanVerdict], repo: Path, start: StartPoint, options: RunOptions
) -> list[str]:
    """Each plan in turn from ``start``, its outcome written into its verdict; the checkout is
    back at ``start`` afterwards. Returns the problems (git refusing to go back)."""
    from flows.execute_plan import execute_plan

    log = get_run_logger()
    problems: list[str] = []
    for index, verdict in enumerate(queue):
        try:
            put_back = await asyncio.to_thread(return_to_start, repo, start)
        except WorktreeError as exc:
            problems.append(f"could not go back to {start.describe()}: {exc}")
            log.error("%s; %d plan(s) not run", problems[-1], len(queue) - index)
            return problems
        if put_back:
            log.info("put back lock files the plan before rewrote: %s", ", ".join(put_back))
        state = await execute_plan(Path(verdict.path), options, return_state=True)
        verdict.state = str(state.name)
        verdict.message = str(state.message or "")
        verdict.cost_usd = await _run_cost(state)
        run_id = state.state_details.flow_run_id
        verdict.flow_run_id = str(run_id) if run_id else None
        log.info("%s: %s %s", verdict.plan, verdict.state, verdict.message)
    try:
        await asyncio.to_thread(return_to_start, repo, start)
    except WorktreeError as exc:
        problems.append(f"could not go back to {start.describe()} at the end: {exc}")
        log.error("%s", problems[-1])
    return problems


async def _run_cost(state: Any) -> float | None:
    """The cost of a plan's run, from the RunReport its state holds (None when unreadable)."""
    try:
        report = await state.result(raise_on_failure=False)
    except Exception:
        return None
    cost = getattr(report, "cost_usd", None)
    return float(cost) if isinstance(cost, int | float) else None


async def _publish(verdicts: list[PlanVerdict], folder: Path, report: str) -> None:
    """The morning's artifacts: every file's verdict as a table, and the report."""
    rows = [
        {
            "plan": v.plan,
            "status": v.status or "",
            "verdict": LABELS[v.verdict],
            "reason": v.reason,
            "state": v.state or "",
            "message": v.message,
            "flow_run_id": v.flow_run_id,
            "cost_usd": None if v.cost_usd is None else round(v.cost_usd, 4),
        }
        for v in verdicts
    ]
    await acreate_table_artifact(
        key="nightly-plans",
        table=rows or [{"plan": "(no plans)", "verdict": "", "reason": "", "state": ""}],
        description=f"Every file of {folder}: what execute-ready-plans decided",
    )
    await acreate_markdown_artifact(
        key="nightly-report",
        markdown=report,
        description="The night's plans: verdicts, reasons, evidence and results",
    )


def night_failed(verdicts: list[PlanVerdict], problems: list[str]) -> bool:
    """A plan that ran and did not complete, an invalid plan, or a checkout left elsewhere."""
    return (
        any(v.runs and not v.completed for v in verdicts)
        or any(v.verdict == "invalid" for v in verdicts)
        or bool(problems)
    )


@flow(name="execute-ready-plans", log_prints=True)
async def execute_ready_plans(
    repo: str,
    plans_dir: str = PLANS_DIR,
    include_planner_done: bool = False,
    ready_statuses: list[str] | None = None,
    force: list[str] | None = None,
    options: NightlyRunOptions = NIGHTLY_OPTIONS,
) -> State[Any]:
    """Run the plans of ``repo`` that are ready or unfinished, one by one (module docstring).

    Budgets apply to each plan's run (docs/budgets.md): ``max_cost_usd`` (default
    :data:`NIGHTLY_MAX_COST_USD`) and ``phase_max_cost_usd`` (default
    :data:`NIGHTLY_PHASE_MAX_COST_USD`) are on by default, because nobody watches a night.

    Args:
        repo: The repository whose plans run (PLAN_EXECUTOR_NIGHTLY_REPO at `prefect deploy`).
        plans_dir: Where the plans are, relative to the repository.
        include_planner_done: Also take plans whose only status is the planner's frontmatter
            `done` / `complete` / `completed`.
        ready_statuses: The frontmatter statuses that mean ready (None: the built-in list).
        force: File names or globs (`2026-01-29.*`, `*`) of plans to run even when they look
            implemented.
        options: What every plan is run with (execute-plan's options, the budgets on by
            default; `repo` is not read). Fields left out take their defaults: a run's
            `options` replaces the deployment's whole. `distribute`: every plan's phases run as
            `execute-phase` deployment runs on the pool's workers (docs/scaling.md).
    """
    log = get_run_logger()
    if not str(repo).strip():
        return Failed(
            message="no repository: set the `repo` parameter (PLAN_EXECUTOR_NIGHTLY_REPO when "
            "running `prefect deploy`, or edit the deployment's parameters in the UI)"
        )
    repo_path = Path(repo).expanduser().resolve()
    verdicts = await asyncio.to_thread(
        consider_plans,
        repo_path,
        plans_dir,
        include_planner_done=include_planner_done,
        ready_statuses=tuple(ready_statuses) if ready_statuses is not None else READY_STATUSES,
        force=force,
        include_optional=options.include_optional,
    )
    for verdict in verdicts:
        _log_verdict(log, verdict)
    queue = run_order(verdicts)
    log.info(
        "%d of %d files in %s run tonight, in this order: %s",
        len(queue),
        len(verdicts),
        plans_dir,
        ", ".join(v.plan for v in queue) or "none",
    )
    problems: list[str] = []
    notes: list[str] = []
    where = "(nothing ran)"
    if queue:
        start = await asyncio.to_thread(start_point, repo_path)
        where = start.describe()
        log.info("every plan starts from %s (%s)", where, start.commit[:12])
        note = _plan_branch_note(start)
        if note:
            notes.append(note)
            log.warning("%s", note)
        each = options.model_copy(update={"repo": repo_path})
        problems = await _run_plans(queue, repo_path, start, each)

    message = summary_message(verdicts, problems)
    report = report_markdown(verdicts, repo_path, where, message, problems + notes)
    await _publish(verdicts, repo_path / plans_dir, report)
    log.info("%s", message)
    # A message and no data: Prefect turns a Failed state's data into the exception it raises,
    # and a list is none (the table is the artifact).
    return (
        Failed(message=message) if night_failed(verdicts, problems) else Completed(message=message)
    )
