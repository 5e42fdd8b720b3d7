"""Human in the loop: typed questions a run asks a person, with a timeout that falls back.

Where a run needs a person's decision (a dirty working tree; a failed phase) and where a phase
is owned by a human, an interactive run stops and waits for a typed Prefect run input: a form in
the UI (the run's Resume button), or from a shell (after ``eval "$(plan-executor env)"``)::

    curl -u "$PREFECT_API_AUTH_STRING" -X POST $PREFECT_API_URL/flow_runs/<flow-run-id>/resume \\
         -H 'content-type: application/json' -d '{"run_input": {"action": "stash"}}'

or from Python ``prefect.flow_runs.resume_flow_run(id, run_input={"action": "stash"})``.

How it waits depends on where the run runs:

* a top-level **deployment run** is *suspended*: the process exits and frees the worker; after the
  resume the worker starts the same flow run again, the flow runs from the top and this
  :func:`ask` (same ``key``) returns the answer. Everything before the question must therefore be
  safe to run twice (it is: pre-flight checks, or phases whose results are cached).
* a **local run** (``plan-executor run``) or a subflow is *paused*: the process keeps waiting and
  polls every second.

The timeout does not fail the run: when nobody answers within ``timeout_s`` the run is resumed
with the ``fallback`` answer (the non-interactive policy) and :func:`ask` returns it. A paused run
resumes itself; a suspended run has no process left, so :func:`ask` schedules a flow run of the
``resume-on-timeout/fallback`` deployment (``prefect.yaml``) at the deadline, which resumes it
with the fallback if it still waits on the same question. Without that deployment the server's
own pause timeout applies, which fails the run.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from pathlib import Path
from typing import Any, Literal, TypeVar
from uuid import UUID

from prefect import flow, get_run_logger
from prefect.input import RunInput

from plan_parser.paths import repo_relative
from plan_parser.vocabulary import DirtyPolicy
from tasks.env_settings import DEFAULT_QUESTION_TIMEOUT_S as DEFAULT_QUESTION_TIMEOUT_S
from tasks.env_settings import QUESTION_TIMEOUT_ENV as QUESTION_TIMEOUT_ENV  # re-exported
from tasks.env_settings import question_timeout_s

TIMEOUT_DEPLOYMENT = "resume-on-timeout/fallback"
"""`<flow name>/<deployment name>` of the deployment that resumes a timed-out suspended run."""
SERVER_TIMEOUT_GRACE_S = 300
"""Extra time the server's own pause timeout gives the fallback resume before failing the run."""
PAUSE_POLL_INTERVAL_S = 1


DirtyTreeAction = Literal["stash", "commit", "proceed", "stop"]
"""The dirty-tree policies (:data:`plan_parser.vocabulary.DirtyPolicy`) in the order the UI's
form offers them to a person: the usual answer first, `stop` (the fallback) last."""


class DirtyTreeDecision(RunInput):
    """What to do with uncommitted changes before the plan starts."""

    action: DirtyTreeAction


class FailedPhaseDecision(RunInput):
    """What to do after a phase failed its gates."""

    action: Literal["retry", "continue", "stop"]


class HumanPhaseDone(RunInput):
    """A person did (or did not do) the work of a phase owned by `human`."""

    done: bool
    note: str = ""


AnswerT = TypeVar("AnswerT", bound=RunInput)


def _answer_fields(answer: RunInput) -> dict[str, Any]:
    return answer.model_dump(mode="json")


def _timeout_marker_key(key: str) -> str:
    return f"plan-executor-{key}-timed-out"


async def ask(
    input_type: type[AnswerT],
    *,
    key: str,
    timeout_s: float,
    fallback: AnswerT,
    description: str,
) -> AnswerT:
    """Ask a person for an ``input_type`` answer; ``fallback`` when nobody answers in time.

    ``key`` names the question within the flow run (letters, digits and dashes: it names flow
    run inputs) and must be the same every time the flow reaches this question (suspended runs
    re-run the flow from the top), and different for each question. ``description`` is the
    Markdown the UI shows above the form, which is pre-filled with the fallback.
    """
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        raise RuntimeError("ask() must be called inside a flow run")
    log = get_run_logger()
    flow_run = context.flow_run
    form = input_type.with_initial_data(description=description, **_answer_fields(fallback))
    suspend = flow_run.deployment_id is not None and flow_run.parent_task_run_id is None
    how = "suspending (the worker is freed)" if suspend else "pausing"
    # A warning, so that it reaches the console of `plan-executor run` too (console level).
    log.warning(
        "Waiting for a person: %s; %s flow run %s for up to %.0f s, then %s. Answer with the "
        "Resume form in the Prefect UI or `plan-executor answer %s %s`",
        key,
        how,
        flow_run.id,
        timeout_s,
        _answer_fields(fallback),
        flow_run.id,
        " ".join(f"{name}=..." for name in input_type.model_fields if name != "description"),
    )
    if suspend:
        answer, timed_out = await _suspend_for(form, flow_run.id, key, timeout_s, fallback)
    else:
        answer, timed_out = await _pause_for(form, flow_run.id, key, timeout_s, fallback)
    chosen = input_type.model_validate(_answer_fields(answer))
    if timed_out:
        log.warning(
            "No answer to %s within %.0f s: using the fallback %s",
            key,
            timeout_s,
            _answer_fields(chosen),
        )
    else:
        log.info("Answer to %s: %s", key, _answer_fields(chosen))
    return chosen


async def _pause_for(
    form: type[AnswerT], flow_run_id: UUID, key: str, timeout_s: float, fallback: RunInput
) -> tuple[AnswerT, bool]:
    """Pause in this process; a background task resumes with the fallback at the deadline."""
    from prefect.flow_runs import apause_flow_run

    timed_out = asyncio.Event()

    async def resume_with_fallback_at_deadline() -> None:
        await asyncio.sleep(timeout_s)
        timed_out.set()
        try:
            resumed = await _resume_if_waiting(flow_run_id, key, _answer_fields(fallback))
        except Exception:
            get_run_logger().exception("Could not resume %s with the fallback", key)
            resumed = False
        if not resumed:
            timed_out.clear()

    watchdog = asyncio.create_task(resume_with_fallback_at_deadline())
    try:
        answer = await apause_flow_run(
            wait_for_input=form,
            timeout=int(timeout_s) + SERVER_TIMEOUT_GRACE_S,
            poll_interval=PAUSE_POLL_INTERVAL_S,
            key=key,
        )
    finally:
        watchdog.cancel()
    if answer is None:
        # Prefect returns None when this key was already answered earlier in the same flow run
        # (a flow-level retry re-runs the function): the stored answer still holds.
        from prefect.input import keyset_from_base_key

        answer = await form.aload(keyset_from_base_key(f"paused-{key}"))
    return answer, timed_out.is_set()


async def _suspend_for(
    form: type[AnswerT], flow_run_id: UUID, key: str, timeout_s: float, fallback: RunInput
) -> tuple[AnswerT, bool]:
    """Suspend (the process exits) unless this question was already answered in this run."""
    from prefect.client.orchestration import get_client
    from prefect.flow_runs import asuspend_flow_run
    from prefect.input import aread_flow_run_input

    async with get_client() as client:
        current = await client.read_flow_run(flow_run_id)
        first_time = key not in (current.empirical_policy.pause_keys or set())
        fallback_scheduled = False
        if first_time:
            fallback_scheduled = await _schedule_fallback_resume(
                flow_run_id, key, timeout_s, _answer_fields(fallback)
            )
        server_timeout = int(timeout_s) + (SERVER_TIMEOUT_GRACE_S if fallback_scheduled else 0)
        # Raises Pause on the first visit (the engine then exits); returns the answer once resumed.
        answer = await asuspend_flow_run(wait_for_input=form, timeout=server_timeout, key=key)
        marker = await aread_flow_run_input(key=_timeout_marker_key(key), flow_run_id=flow_run_id)
    return answer, bool(marker)


async def _schedule_fallback_resume(
    flow_run_id: UUID, key: str, timeout_s: float, fallback: dict[str, Any]
) -> bool:
    from prefect.deployments import arun_deployment
    from prefect.exceptions import ObjectNotFound

    log = get_run_logger()
    deadline = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=timeout_s)
    try:
        await arun_deployment(
            TIMEOUT_DEPLOYMENT,
            parameters={"flow_run_id": str(flow_run_id), "key": key, "run_input": fallback},
            scheduled_time=deadline,
            timeout=0,
            as_subflow=False,
            flow_run_name=f"fallback-{key}",
        )
    except ObjectNotFound:
        log.warning(
            "Deployment %s not found: if nobody answers, the server fails this run at the timeout",
            TIMEOUT_DEPLOYMENT,
        )
        return False
    return True


async def _resume_if_waiting(flow_run_id: UUID, key: str, run_input: dict[str, Any]) -> bool:
    """Resume ``flow_run_id`` with ``run_input`` if it still waits on question ``key``."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import PrefectException
    from prefect.flow_runs import aresume_flow_run
    from prefect.input import acreate_flow_run_input, adelete_flow_run_input

    async with get_client() as client:
        current = await client.read_flow_run(flow_run_id)
        state = current.state
        if state is None or not state.is_paused() or state.state_details.pause_key != key:
            return False
        # Written before the resume so that the resumed run can tell a timeout from an answer.
        await acreate_flow_run_input(
            key=_timeout_marker_key(key), value=True, flow_run_id=flow_run_id
        )
        try:
            await aresume_flow_run(flow_run_id, run_input=run_input)
        except (PrefectException, RuntimeError):  # answered or expired meanwhile
            await adelete_flow_run_input(key=_timeout_marker_key(key), flow_run_id=flow_run_id)
            return False
    return True


@flow(name="resume-on-timeout", log_prints=True)
async def resume_on_timeout(flow_run_id: str, key: str, run_input: dict[str, Any]) -> bool:
    """Resume a suspended run with the fallback answer if it still waits on question ``key``.

    Scheduled by :func:`ask` at the deadline of a question asked in a suspended deployment run.
    """
    resumed = await _resume_if_waiting(UUID(flow_run_id), key, run_input)
    if resumed:
        print(f"flow run {flow_run_id}: no answer to {key!r} in time, resumed with {run_input}")
    else:
        print(f"flow run {flow_run_id}: {key!r} was answered already, nothing to do")
    return resumed


# --- the questions of a plan run: one call each at the flow's integration points ---------------


async def dirty_tree_policy(
    repo: Path,
    plan_path: Path,
    policy: DirtyPolicy,
    *,
    interactive: bool,
    timeout_s: float | None = None,
) -> DirtyPolicy:
    """The dirty-tree policy pre-flight should apply: ``policy``, or a person's choice.

    Interactive runs with uncommitted changes ask (stash / commit / proceed / stop); the fallback
    on timeout is ``policy``. Clean trees and non-interactive runs never ask.
    """
    if not interactive:
        return policy
    from tasks.gates.preflight import dirty_files

    repo = Path(repo).resolve()
    plan_file = repo_relative(repo, plan_path)
    dirty = await asyncio.to_thread(dirty_files, repo, plan_file)
    if not dirty:
        return policy
    listing = "\n".join(f"- `{path}`" for path in dirty[:30])
    more = f"\n- … and {len(dirty) - 30} more" if len(dirty) > 30 else ""
    answer = await ask(
        DirtyTreeDecision,
        key="dirty-tree",
        timeout_s=timeout_s or question_timeout_s(),
        fallback=DirtyTreeDecision(action=policy),
        description=(
            f"## Uncommitted changes in `{repo}`\n\n{listing}{more}\n\n"
            "**stash** them (`git stash pop` restores them), **commit** them first, "
            "**proceed** anyway (risky: the gates see them as the phases' work), or **stop**."
        ),
    )
    return answer.action


async def failed_phase_action(
    phase_id: str,
    title: str,
    error: str,
    *,
    attempt: int,
    interactive: bool,
    fallback: str = "continue",
    timeout_s: float | None = None,
) -> str:
    """After phase ``phase_id`` failed: "retry", "continue" (its dependents are skipped) or "stop".

    Non-interactive runs get ``fallback`` without asking. ``attempt`` (1, 2, …) keeps each
    question of the same phase distinct.
    """
    if not interactive:
        return fallback
    answer = await ask(
        FailedPhaseDecision,
        key=f"failed-phase-{_key_part(phase_id)}-attempt-{attempt}",
        timeout_s=timeout_s or question_timeout_s(),
        fallback=FailedPhaseDecision(action=fallback),  # type: ignore[arg-type]
        description=(
            f"## Phase {phase_id} ({title}) failed\n\n```\n{error[-3000:]}\n```\n\n"
            "**retry** it, **continue** with the phases that do not depend on it, or **stop** the run."
        ),
    )
    return answer.action


async def human_phase_done(
    phase_id: str, title: str, *, timeout_s: float | None = None
) -> HumanPhaseDone:
    """A phase owned by `human`: wait until a person says the work is done (or not)."""
    return await ask(
        HumanPhaseDone,
        key=f"human-phase-{_key_part(phase_id)}",
        timeout_s=timeout_s or question_timeout_s(),
        fallback=HumanPhaseDone(done=False, note="nobody answered in time"),
        description=(
            f"## Phase {phase_id} ({title}) is yours\n\n"
            "Do the work in the repository, then answer **done = true**: the phase's gates "
            "then judge it. **done = false** marks the phase blocked."
        ),
    )


def _key_part(text: str) -> str:
    """Flow run input keys allow letters, digits and dashes only."""
    return re.sub(r"[^A-Za-z0-9-]+", "-", text).strip("-").lower() or "x"
