"""The Prefect task the flows call for one agent call.

``agent_call`` runs :func:`tasks.agent.loop.run_agent` in a worker thread (the SDK is blocking;
phases run as concurrent async subflows). Agent failures (refusal, max turns ...) come back as an
:class:`AgentResult` with ``failure=AGENT``: the gates still decide the phase. Infrastructure
failures raise :class:`AgentInfrastructureError`, so the task's ``retries=`` apply to them, and
``retry_condition_fn`` lets Prefect retry only the ones where trying again can help (an overloaded
API, yes; an exhausted spend limit or a missing sandbox, no).

    result = await agent_call.with_options(retries=3, retry_delay_seconds=[60, 300, 900])(request)
"""

from __future__ import annotations

import asyncio
import threading

from prefect import State, task
from prefect.cache_policies import NO_CACHE

from plan_parser.errors import PlanExecutorError
from tasks.agent.loop import run_agent
from tasks.agent.result import AgentRequest, AgentResult, FailureKind, InfraFaults


class AgentInfrastructureError(PlanExecutorError, RuntimeError):
    """The API or the sandbox failed; ``result`` holds what the call recorded."""

    def __init__(self, result: AgentResult) -> None:
        super().__init__(f"agent call failed (infrastructure): {result.error}")
        self.result = result

    def __reduce__(  # picklable for Prefect's result persistence
        self,
    ) -> tuple[type[AgentInfrastructureError], tuple[AgentResult]]:
        return (type(self), (self.result,))


# Prefect retries a call that failed on infrastructure by running it again; the failed tries'
# fault counts would vanish with their exceptions, so they are noted here (process-local: task
# retries run in the flow's process) and collected by the caller once the call is over.
_FAILED_TRIES: dict[str, list[InfraFaults]] = {}
_FAILED_TRIES_LOCK = threading.Lock()


def _call_key(request: AgentRequest) -> str:
    return f"{request.repo}|{request.plan_name}|{request.phase_id}|{request.role_suffix}"


def note_failed_try(request: AgentRequest, result: AgentResult) -> None:
    """Remember the faults of a try that is about to raise AgentInfrastructureError."""
    with _FAILED_TRIES_LOCK:
        _FAILED_TRIES.setdefault(_call_key(request), []).append(result.infra)


def take_failed_tries(request: AgentRequest) -> list[InfraFaults]:
    """The faults of this call's tries that failed on infrastructure, oldest first (and forget)."""
    with _FAILED_TRIES_LOCK:
        return _FAILED_TRIES.pop(_call_key(request), [])


def with_failed_tries(
    request: AgentRequest, result: AgentResult, *, last_try_failed: bool
) -> AgentResult:
    """``result`` with the faults of the earlier tries of the call and how often it restarted.

    ``last_try_failed``: ``result`` is the failed try itself (already among the noted tries).
    """
    tries = take_failed_tries(request)
    earlier = tries[:-1] if last_try_failed and tries else tries
    infra = result.infra
    for faults in earlier:
        infra = infra + faults
    infra = infra.model_copy(update={"restarts": infra.restarts + len(earlier)})
    return result.model_copy(update={"infra": infra})


def retry_if_retryable(task: object, task_run: object, state: State[AgentResult]) -> bool:
    """Prefect ``retry_condition_fn``: retry infrastructure failures that may go away."""
    exc = getattr(state, "data", None)
    if not isinstance(exc, BaseException):
        try:
            exc = state.result(raise_on_failure=False)
        except Exception:
            return False
    return isinstance(exc, AgentInfrastructureError) and exc.result.retryable


def _task_run_name() -> str:
    from prefect.runtime import task_run

    request = task_run.parameters.get("request")
    if isinstance(request, AgentRequest):
        return f"agent {request.owner} phase {request.phase_id} ({request.role_suffix})"
    return "agent call"


@task(
    name="agent-call",
    task_run_name=_task_run_name,
    retries=2,
    retry_delay_seconds=[30, 120],
    retry_condition_fn=retry_if_retryable,
    persist_result=False,
    cache_policy=NO_CACHE,
)
async def agent_call(request: AgentRequest) -> AgentResult:
    result = await asyncio.to_thread(run_agent, request)
    if result.failure is FailureKind.INFRASTRUCTURE:
        note_failed_try(request, result)
        raise AgentInfrastructureError(result)
    return result
