"""ask(): a local flow run pauses with a typed form, a person answers through the API, or the
timeout answers with the fallback. Real server, real flow runs, no mocks."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from uuid import UUID

import httpx
import pytest
from prefect import flow

from flows.approvals import DirtyTreeDecision, FailedPhaseDecision, HumanPhaseDone, ask

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


@flow(name="approvals-dirty-tree-probe")
async def dirty_tree_probe(timeout_s: float) -> str:
    answer = await ask(
        DirtyTreeDecision,
        key="dirty-tree",
        timeout_s=timeout_s,
        fallback=DirtyTreeDecision(action="stop"),
        description="The working tree has **uncommitted changes**.",
    )
    return answer.action


@flow(name="approvals-two-questions-probe")
async def two_questions_probe(timeout_s: float) -> tuple[str, bool, str]:
    failed = await ask(
        FailedPhaseDecision,
        key="failed-phase-2-attempt-1",
        timeout_s=timeout_s,
        fallback=FailedPhaseDecision(action="continue"),
        description="Phase 2 failed its gates.",
    )
    human = await ask(
        HumanPhaseDone,
        key="human-phase-3",
        timeout_s=timeout_s,
        fallback=HumanPhaseDone(done=False, note="nobody answered"),
        description="Phase 3 is yours.",
    )
    return failed.action, human.done, human.note


def _paused_runs(api_url: str, flow_name: str) -> list[dict]:
    body = {
        "flows": {"name": {"any_": [flow_name]}},
        "flow_runs": {"state": {"type": {"any_": ["PAUSED"]}}},
    }
    response = httpx.post(f"{api_url}/flow_runs/filter", json=body, timeout=10)
    response.raise_for_status()
    return response.json()


def _wait_for_paused(api_url: str, flow_name: str, pause_key: str, timeout_s: float = 60) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for run in _paused_runs(api_url, flow_name):
            if run["state"]["state_details"].get("pause_key") == pause_key:
                return run
        time.sleep(0.3)
    raise AssertionError(f"no {flow_name} run paused on {pause_key} within {timeout_s}s")


def _in_thread(target) -> tuple[threading.Thread, dict]:
    """Run ``target`` in a thread that sees this test's Prefect settings; keep its outcome."""
    outcome: dict = {}
    context = contextvars.copy_context()

    def runner() -> None:
        try:
            outcome["value"] = context.run(target)
        except BaseException as exc:  # surfaced by the test
            outcome["error"] = exc

    thread = threading.Thread(target=runner, daemon=True)
    thread.start()
    return thread, outcome


def _flow_run_logs(api_url: str, flow_run_id: str) -> list[str]:
    body = {"logs": {"flow_run_id": {"any_": [flow_run_id]}}, "limit": 200}
    response = httpx.post(f"{api_url}/logs/filter", json=body, timeout=10)
    response.raise_for_status()
    return [entry["message"] for entry in response.json()]


def _wait_for_log(
    api_url: str, flow_run_id: str, fragment: str, timeout_s: float = 20
) -> list[str]:
    deadline = time.monotonic() + timeout_s
    while True:
        messages = _flow_run_logs(api_url, flow_run_id)
        if any(fragment in m for m in messages) or time.monotonic() > deadline:
            return messages
        time.sleep(0.5)


def test_local_run_pauses_and_a_person_answers_through_the_api(prefect_client_env):
    from prefect.flow_runs import resume_flow_run

    api_url = prefect_client_env.api_url

    def answer_when_paused() -> str:
        run = _wait_for_paused(api_url, "approvals-dirty-tree-probe", "dirty-tree")
        # The form the UI shows: the typed schema, pre-filled with the fallback, and the text.
        keyset = run["state"]["state_details"]["run_input_keyset"]
        schema = httpx.get(
            f"{api_url}/flow_runs/{run['id']}/input/{keyset['schema']}", timeout=10
        ).json()
        description = httpx.get(
            f"{api_url}/flow_runs/{run['id']}/input/{keyset['description']}", timeout=10
        ).json()
        assert schema["properties"]["action"]["enum"] == ["stash", "commit", "proceed", "stop"]
        assert schema["properties"]["action"]["default"] == "stop"
        assert "uncommitted changes" in description
        # An answer outside the type is refused and the run stays paused ...
        refused = httpx.post(
            f"{api_url}/flow_runs/{run['id']}/resume",
            json={"run_input": {"action": "maybe"}},
            timeout=10,
        ).json()
        assert refused["status"] == "REJECT", refused
        assert _paused_runs(api_url, "approvals-dirty-tree-probe")
        # ... a typed one resumes it.
        resume_flow_run(UUID(run["id"]), run_input={"action": "stash"})
        return run["id"]

    thread, outcome = _in_thread(answer_when_paused)
    state = asyncio.run(dirty_tree_probe(timeout_s=120, return_state=True))
    thread.join(timeout=60)
    assert "error" not in outcome, outcome.get("error")
    assert state.is_completed(), state
    assert state.result() == "stash"
    messages = _wait_for_log(api_url, outcome["value"], "Answer to dirty-tree")
    assert any("Answer to dirty-tree: {'action': 'stash'}" in m for m in messages), messages


def test_unanswered_questions_fall_back_and_the_run_goes_on(prefect_client_env):
    api_url = prefect_client_env.api_url
    started = time.monotonic()
    state = asyncio.run(two_questions_probe(timeout_s=2, return_state=True))
    assert state.is_completed(), state
    assert tuple(state.result()) == ("continue", False, "nobody answered")
    assert time.monotonic() - started < 100  # the server-side pause timeout (300 s more) never hit
    run_id = str(state.state_details.flow_run_id)
    messages = _wait_for_log(api_url, run_id, "No answer to human-phase-3")
    assert any("No answer to failed-phase-2-attempt-1" in m for m in messages), messages
    assert any("No answer to human-phase-3" in m for m in messages), messages


def test_ask_outside_a_flow_run_is_an_error():
    with pytest.raises(RuntimeError, match="inside a flow run"):
        asyncio.run(
            ask(
                DirtyTreeDecision,
                key="k",
                timeout_s=1,
                fallback=DirtyTreeDecision(action="stop"),
                description="",
            )
        )
