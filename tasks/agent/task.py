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
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.agent.loop import run_agent
from tasks.agent.result import AgentRequest, AgentResult, FailureKind


class AgentInfrastructureError(RuntimeError):
    """The API or the sandbox failed; ``result`` holds what the call recorded."""

    def __init__(self, result: AgentResult) -> None:
        super().__init__(f"agent call failed (infrastructure): {result.error}")
        self.result = result

    def __reduce__(self) -> tuple[Any, ...]:  # picklable for Prefect's result persistence
        return (type(self), (self.result,))


def retry_if_retryable(task: object, task_run: object, state: Any) -> bool:
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
        raise AgentInfrastructureError(result)
    return result
