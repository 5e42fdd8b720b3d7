"""The nightly flow `execute-ready-plans`: every ready plan of a repository, one after another.

Which plans are ready (decided here, from the corpus study in `../shared/notes/plan-format.md`
§3.1 and §3.3; the parser reads the status, :func:`readiness` judges it):

1. Only plan documents: execution logs, notes and templates in `.ai/plans/` are never run.
2. A plan with a body `**Status:**` line is ready exactly when that line contains
   "Ready for Implementation" (the template's `Reviewed - Ready for Implementation`, the seed's
   precondition). Anything else there is not ready: `Draft - Awaiting Review`, `Planning`,
   `In Progress` (a run is going or crashed), and everything a run writes back: `Implemented`,
   `Partially Implemented (…)`, `Not Implemented (…)`. A plan a run left unfinished is not
   retried every night; a person puts `Reviewed - Ready for Implementation` back to re-queue it
   (the checkpoint mirror then resumes it where it stopped).
3. A planner-generated plan has no body status, only a frontmatter `status`, which describes the
   *planning session*: `done` / `complete` / `completed` / `ready` mean the planner finished, so
   the plan is ready (``planner_statuses``, overridable; pass ``[]`` to require the explicit body
   status). `ready_for_approval` is *not* ready: it waits for a person's approval.
   `implemented`, `executed` and anything else are not ready.

Each ready plan runs as its own `execute-plan` subflow (a child flow run in the UI), in file-name
order (the date prefix: oldest first). One plan failing does not stop the others; the nightly run
ends Failed when any plan run did not complete, with a table artifact listing all of them.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import acreate_table_artifact
from prefect.states import Completed, Failed, State
from pydantic import BaseModel

from flows.context import DEFAULT_AGENT_TIMEOUT_S, DEFAULT_PHASE_TIMEOUT_S, DirtyPolicy
from plan_parser import DocKind, Plan, parse_plan

PLANS_DIR = ".ai/plans"
READY_BODY_MARKER = "ready for implementation"
PLANNER_READY_STATUSES = ("done", "complete", "completed", "ready")
"""Frontmatter statuses of a finished planning session (no body status): the plan is ready."""


class Readiness(BaseModel):
    path: str
    ready: bool
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


def readiness(
    plan: Plan, planner_statuses: tuple[str, ...] | list[str] = PLANNER_READY_STATUSES
) -> Readiness:
    """Whether the nightly run should execute ``plan``, and why (see the module docstring)."""
    if plan.kind is not DocKind.PLAN:
        return Readiness(path=plan.path, ready=False, reason=f"not a plan ({plan.kind.value})")
    body = _body_status(plan)
    if body is not None:
        text = body.strip().lower()
        if READY_BODY_MARKER in text:
            return Readiness(path=plan.path, ready=True, reason="status: ready", status=body)
        if "implemented" in text:
            return Readiness(path=plan.path, ready=False, reason="already run", status=body)
        return Readiness(path=plan.path, ready=False, reason="status is not ready", status=body)
    front = plan.frontmatter.get("status") if isinstance(plan.frontmatter, dict) else None
    if front is None:
        return Readiness(path=plan.path, ready=False, reason="no status")
    value = str(front).strip().strip("\"'").lower()
    wanted = {s.strip().lower() for s in planner_statuses}
    if value in wanted:
        return Readiness(
            path=plan.path, ready=True, reason="planner finished (frontmatter)", status=str(front)
        )
    return Readiness(
        path=plan.path, ready=False, reason="frontmatter status is not ready", status=str(front)
    )


def select_ready_plans(
    repo: Path,
    plans_dir: str = PLANS_DIR,
    planner_statuses: tuple[str, ...] | list[str] = PLANNER_READY_STATUSES,
) -> list[Readiness]:
    """Every `*.md` in ``repo/plans_dir`` judged, in file-name order (ready and not ready)."""
    folder = (repo / plans_dir).resolve()
    if not folder.is_dir():
        return []
    verdicts = []
    for path in sorted(folder.glob("*.md")):
        try:
            plan = parse_plan(path, repo=repo)
        except Exception as exc:  # an unreadable file must not stop the other plans
            verdicts.append(
                Readiness(path=str(path), ready=False, reason=f"unreadable: {exc}"[:300])
            )
            continue
        verdict = readiness(plan, planner_statuses)
        verdict.path = str(path)
        verdicts.append(verdict)
    return verdicts


class PlanRunSummary(BaseModel):
    plan: str
    state: str
    message: str = ""
    flow_run_id: str | None = None


@flow(name="execute-ready-plans", log_prints=True)
async def execute_ready_plans(
    repo: str,
    plans_dir: str = PLANS_DIR,
    dirty_policy: DirtyPolicy = "stop",
    include_optional: bool = False,
    phase_timeout_s: float = DEFAULT_PHASE_TIMEOUT_S,
    agent_timeout_s: float = DEFAULT_AGENT_TIMEOUT_S,
    model: str | None = None,
    dry_run: bool = False,
    interactive: bool = False,
    planner_statuses: list[str] | None = None,
) -> State[Any]:
    """Run every ready plan of ``repo`` (see the module docstring), each as an execute-plan subflow."""
    from flows.execute_plan import execute_plan

    log = get_run_logger()
    if not str(repo).strip():
        return Failed(
            message="no repository: set the `repo` parameter (PLAN_EXECUTOR_NIGHTLY_REPO when "
            "running `prefect deploy`, or edit the deployment's parameters in the UI)"
        )
    repo_path = Path(repo).expanduser().resolve()
    statuses = PLANNER_READY_STATUSES if planner_statuses is None else tuple(planner_statuses)
    verdicts = select_ready_plans(repo_path, plans_dir, statuses)
    ready = [v for v in verdicts if v.ready]
    for verdict in verdicts:
        log.info(
            "%s %s: %s%s",
            "RUN " if verdict.ready else "skip",
            Path(verdict.path).name,
            verdict.reason,
            f" ({verdict.status})" if verdict.status else "",
        )
    log.info("%d of %d files in %s are ready", len(ready), len(verdicts), plans_dir)

    options: dict[str, Any] = {
        "repo": repo_path,
        "dirty_policy": dirty_policy,
        "include_optional": include_optional,
        "phase_timeout_s": phase_timeout_s,
        "agent_timeout_s": agent_timeout_s,
        "model": model,
        "dry_run": dry_run,
        "interactive": interactive,
    }
    accepted = inspect.signature(execute_plan.fn).parameters
    options = {k: v for k, v in options.items() if k in accepted}
    plan_param = "plan_path" if "plan_path" in accepted else "plan"

    summaries: list[PlanRunSummary] = []
    for verdict in ready:
        outcome = execute_plan(**{plan_param: Path(verdict.path)}, **options, return_state=True)
        state = await outcome if inspect.isawaitable(outcome) else outcome
        summaries.append(
            PlanRunSummary(
                plan=Path(verdict.path).name,
                state=str(state.name),
                message=str(state.message or ""),
                flow_run_id=str(state.state_details.flow_run_id)
                if state.state_details.flow_run_id
                else None,
            )
        )
        log.info("%s: %s %s", Path(verdict.path).name, state.name, state.message or "")

    await acreate_table_artifact(
        key="nightly-plans",
        table=[s.model_dump() for s in summaries]
        or [{"plan": "(none ready)", "state": "", "message": "", "flow_run_id": None}],
        description=f"Ready plans of {repo_path / plans_dir} run by execute-ready-plans",
    )
    failed = [s for s in summaries if s.state != "Completed"]
    message = f"{len(summaries) - len(failed)}/{len(summaries)} ready plans completed"
    data = [s.model_dump() for s in summaries]
    return Failed(message=message, data=data) if failed else Completed(message=message, data=data)
