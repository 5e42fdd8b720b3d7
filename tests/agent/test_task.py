"""The Prefect task wrapper: agent failures are returned, infrastructure failures raise."""

from __future__ import annotations

import asyncio
import pickle
from pathlib import Path

import pytest
from prefect.states import Failed

from tasks.agent import loop
from tasks.agent.result import AgentResult, FailureKind
from tasks.agent.task import AgentInfrastructureError, agent_call, retry_if_retryable
from tests.agent.conftest import API_KEY, make_request
from tests.fakes import refusal_turn, spend_limit_reached, stream_error, text_turn


@pytest.fixture
def env_for(monkeypatch: pytest.MonkeyPatch):
    def point_at(fake) -> None:
        monkeypatch.setenv("ANTHROPIC_API_KEY", API_KEY)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.base_url)

    return point_at


def test_task_returns_results_and_agent_failures(standin, env_for, repo: Path) -> None:
    fake = standin([text_turn("done"), refusal_turn()])
    env_for(fake)
    ok = asyncio.run(agent_call.fn(make_request(repo)))
    assert isinstance(ok, AgentResult) and ok.ok
    refused = asyncio.run(agent_call.fn(make_request(repo, phase_id="2")))
    assert refused.failure is FailureKind.AGENT  # returned, not raised: the gates still run


def test_task_raises_infrastructure_failures(standin, env_for, repo: Path) -> None:
    fake = standin([spend_limit_reached()])
    env_for(fake)
    with pytest.raises(AgentInfrastructureError) as caught:
        asyncio.run(agent_call.fn(make_request(repo)))
    assert caught.value.result.error_code == "enforced_spend_limit_reached"
    copy = pickle.loads(pickle.dumps(caught.value))
    assert copy.result == caught.value.result


def test_retry_condition_only_for_retryable_infrastructure() -> None:
    def failed(**fields: object) -> Failed:
        result = AgentResult(
            agent="a", model="m", summary="", failure=FailureKind.INFRASTRUCTURE, **fields
        )  # type: ignore[arg-type]
        return Failed(data=AgentInfrastructureError(result))

    assert retry_if_retryable(None, None, failed(retryable=True))
    assert not retry_if_retryable(
        None, None, failed(retryable=False, error_code="enforced_spend_limit_reached")
    )
    assert not retry_if_retryable(None, None, Failed(data=ValueError("a bug")))


@pytest.mark.slow
def test_prefect_retries_only_retryable_failures(
    standin, env_for, repo: Path, prefect_api_url
) -> None:
    from prefect import flow

    @flow
    async def one_call(phase_id: str) -> AgentResult:
        quick = agent_call.with_options(retries=2, retry_delay_seconds=0)
        return await quick(make_request(repo, phase_id=phase_id))

    # attempt 1: every stream breaks → retryable infrastructure failure; attempt 2 succeeds
    fake = standin([stream_error() for _ in range(loop.STREAM_RETRIES + 1)] + [text_turn("done")])
    env_for(fake)
    result = asyncio.run(one_call("1"))
    assert result.ok and result.summary
    assert len(fake.requests) == loop.STREAM_RETRIES + 1 + 2

    # a spend limit is not retried by Prefect either: one request in total
    fake = standin([spend_limit_reached(), text_turn("never")])
    env_for(fake)
    with pytest.raises(AgentInfrastructureError):
        asyncio.run(one_call("2"))
    assert len(fake.requests) == 1
