"""The API key (environment vs a real Secret block) and the agents' global concurrency limit,
against the real test server."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from tasks import concurrency, secrets
from tests.prefect_fixture import api_auth

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

BLOCK_KEY = "sk-ant-test-0123456789-block-value"
ENV_KEY = "sk-ant-test-abcdef-env-value"


@pytest.fixture
def secret_block(prefect_client_env):
    from prefect.blocks.system import Secret

    Secret(value=BLOCK_KEY).save(secrets.SECRET_BLOCK_NAME, overwrite=True)
    yield BLOCK_KEY
    httpx.delete(
        f"{prefect_client_env.api_url}/block_documents/"
        + str(Secret.load(secrets.SECRET_BLOCK_NAME, _sync=True)._block_document_id),
        timeout=10,
        auth=api_auth(),
    )


def test_env_wins_over_the_block(secret_block, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", ENV_KEY)
    assert secrets.anthropic_api_key() == ENV_KEY
    assert asyncio.run(secrets.aanthropic_api_key()) == ENV_KEY


def test_block_is_used_without_env(secret_block, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    assert secrets.anthropic_api_key() == BLOCK_KEY
    assert asyncio.run(secrets.aanthropic_api_key()) == BLOCK_KEY


def test_no_env_and_no_block_is_none(prefect_client_env, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    assert secrets.anthropic_api_key() is None


def test_block_value_is_masked_when_read_back_without_secrets(secret_block, prefect_client_env):
    api = prefect_client_env.api_url
    docs = httpx.post(f"{api}/block_documents/filter", json={}, timeout=10, auth=api_auth()).json()
    ours = [d for d in docs if d["name"] == secrets.SECRET_BLOCK_NAME]
    assert ours and BLOCK_KEY not in str(ours)


@flow(name="secret-using-probe", log_prints=True)
async def secret_using_probe() -> int:
    """Resolves the key the way the agent loop does and logs/records around it."""
    key = await secrets.aanthropic_api_key()
    sync_key = await asyncio.to_thread(secrets.anthropic_api_key)
    assert key == sync_key
    log = get_run_logger()
    log.info("agent client ready (key present: %s)", key is not None)
    print(secrets.scrub(f"tool output that echoed {key} back", key))
    await create_markdown_artifact(
        key="secret-probe", markdown=secrets.scrub(f"# run\nkey was {key}", key)
    )
    return len(key or "")


def test_key_never_reaches_logs_or_artifacts(secret_block, prefect_client_env, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    api = prefect_client_env.api_url
    state = secret_using_probe(return_state=True)
    state = asyncio.run(state) if asyncio.iscoroutine(state) else state
    assert state.is_completed(), state
    assert state.result() == len(BLOCK_KEY)
    run_id = str(state.state_details.flow_run_id)
    deadline = time.monotonic() + 20
    while True:
        logs = httpx.post(
            f"{api}/logs/filter",
            json={"logs": {"flow_run_id": {"any_": [run_id]}}},
            timeout=10,
            auth=api_auth(),
        ).json()
        texts = [entry["message"] for entry in logs]
        if any("[redacted]" in t for t in texts) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert any("key present: True" in t for t in texts), texts
    assert any("[redacted]" in t for t in texts), texts
    artifacts = httpx.post(
        f"{api}/artifacts/filter",
        json={"artifacts": {"flow_run_id": {"any_": [run_id]}}},
        timeout=10,
        auth=api_auth(),
    ).json()
    assert artifacts
    blob = str(logs) + str(artifacts)
    assert BLOCK_KEY not in blob


def _read_limit(api_url: str) -> dict | None:
    response = httpx.get(
        f"{api_url}/v2/concurrency_limits/{concurrency.AGENT_LIMIT_NAME}",
        timeout=10,
        auth=api_auth(),
    )
    return None if response.status_code == 404 else response.json()


def test_ensure_agent_limit_creates_once_and_keeps_the_operators_size(prefect_client_env):
    api = prefect_client_env.api_url
    httpx.delete(
        f"{api}/v2/concurrency_limits/{concurrency.AGENT_LIMIT_NAME}", timeout=10, auth=api_auth()
    )

    async def twice_concurrently() -> list[bool]:
        return list(
            await asyncio.gather(concurrency.ensure_agent_limit(), concurrency.ensure_agent_limit())
        )

    created = asyncio.run(twice_concurrently())
    assert sorted(created) == [False, True]
    limit = _read_limit(api)
    assert limit is not None and limit["limit"] == 4 and limit["active"] is True
    # An operator resizes it; ensuring again neither fails nor resets it.
    httpx.patch(
        f"{api}/v2/concurrency_limits/{concurrency.AGENT_LIMIT_NAME}",
        json={"limit": 2},
        timeout=10,
        auth=api_auth(),
    ).raise_for_status()
    assert asyncio.run(concurrency.ensure_agent_limit(limit=9)) is False
    assert _read_limit(api)["limit"] == 2


def test_agent_slots_cap_concurrent_calls(prefect_client_env):
    api = prefect_client_env.api_url
    httpx.delete(
        f"{api}/v2/concurrency_limits/{concurrency.AGENT_LIMIT_NAME}", timeout=10, auth=api_auth()
    )
    concurrency._ensured_for_api.clear()
    asyncio.run(concurrency.ensure_agent_limit(limit=2))
    concurrency._ensured_for_api.clear()

    in_flight = 0
    peak = 0
    seen_active_slots: list[int] = []

    async def fake_agent_call() -> None:
        nonlocal in_flight, peak
        async with concurrency.agent_slot():
            in_flight += 1
            peak = max(peak, in_flight)
            seen_active_slots.append(_read_limit(api)["active_slots"])
            await asyncio.sleep(0.5)
            in_flight -= 1

    async def six_calls() -> None:
        await asyncio.gather(*(fake_agent_call() for _ in range(6)))

    asyncio.run(six_calls())
    assert peak == 2
    assert max(seen_active_slots) == 2 and min(seen_active_slots) >= 1
    assert _read_limit(api)["active_slots"] == 0


def test_without_a_prefect_api_only_the_environment_counts(monkeypatch):
    from prefect.blocks.system import Secret
    from prefect.settings import PREFECT_API_URL, temporary_settings

    def no_lookup(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("looked for a Secret block without a Prefect API")

    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.setattr(Secret, "load", no_lookup)
    monkeypatch.setattr(Secret, "aload", no_lookup)
    with temporary_settings(updates={PREFECT_API_URL: None}):
        # Outside a run and without PREFECT_API_URL, a lookup would start a temporary server.
        assert secrets.anthropic_api_key() is None
        assert asyncio.run(secrets.aanthropic_api_key()) is None
    monkeypatch.setenv("ANTHROPIC_API_KEY", ENV_KEY)
    assert secrets.anthropic_api_key() == ENV_KEY
