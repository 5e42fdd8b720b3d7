"""ask(): a local flow run pauses with a typed form, a person answers through the API, or the
timeout answers with the fallback. Real server, real flow runs, no mocks."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from pathlib import Path
from uuid import UUID

import httpx
import pytest
from prefect import flow

from flows.approvals import DirtyTreeDecision, FailedPhaseDecision, HumanPhaseDone, ask
from tests.prefect_fixture import api_auth

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
    response = httpx.post(f"{api_url}/flow_runs/filter", json=body, timeout=10, auth=api_auth())
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
    response = httpx.post(f"{api_url}/logs/filter", json=body, timeout=10, auth=api_auth())
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
            f"{api_url}/flow_runs/{run['id']}/input/{keyset['schema']}", timeout=10, auth=api_auth()
        ).json()
        description = httpx.get(
            f"{api_url}/flow_runs/{run['id']}/input/{keyset['description']}",
            timeout=10,
            auth=api_auth(),
        ).json()
        assert schema["properties"]["action"]["enum"] == ["stash", "commit", "proceed", "stop"]
        assert schema["properties"]["action"]["default"] == "stop"
        assert "uncommitted changes" in description
        # An answer outside the type is refused and the run stays paused ...
        refused = httpx.post(
            f"{api_url}/flow_runs/{run['id']}/resume",
            json={"run_input": {"action": "maybe"}},
            timeout=10,
            auth=api_auth(),
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
    state = asyncio.run(two_questions_probe(timeout_s=2, return_state=True))
    assert state.is_completed(), state
    assert tuple(state.result()) == ("continue", False, "nobody answered")
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


@flow(name="approvals-helpers-probe")
async def helpers_probe(repo: str, plan_path: str, interactive: bool) -> dict:
    from flows.approvals import dirty_tree_policy, failed_phase_action, human_phase_done

    human = await human_phase_done("4b", "Manual check", timeout_s=1) if interactive else None
    return {
        "dirty": await dirty_tree_policy(
            Path(repo), Path(plan_path), "stash", interactive=interactive, timeout_s=1
        ),
        "failed": await failed_phase_action(
            "2", "Beta", "cargo test failed", attempt=1, interactive=interactive, timeout_s=1
        ),
        "human_done": None if human is None else human.done,
    }


def _git_repo(root: Path, *, dirty: bool) -> tuple[Path, Path]:
    from tasks.shell import run

    plan = root / ".ai" / "plans" / "2026-01-01.p.md"
    plan.parent.mkdir(parents=True)
    plan.write_text("# P\n")
    (root / "a.txt").write_text("a\n")
    for argv in (
        ["git", "init", "-q"],
        ["git", "add", "-A"],
        ["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "init"],
    ):
        assert run(argv, cwd=root, timeout_s=30).ok
    plan.write_text("# P\n\n## Execution Checkpoints\n")  # the run's own file never counts
    if dirty:
        (root / "a.txt").write_text("changed\n")
    return root, plan


def test_question_helpers_ask_only_interactive_runs_with_something_to_ask(
    prefect_client_env, tmp_path: Path
):
    repo, plan = _git_repo(tmp_path / "clean", dirty=False)
    quiet = helpers_probe(str(repo), str(plan), interactive=False, return_state=True)
    quiet = asyncio.run(quiet) if asyncio.iscoroutine(quiet) else quiet
    assert quiet.result() == {"dirty": "stash", "failed": "continue", "human_done": None}

    clean = helpers_probe(str(repo), str(plan), interactive=True, return_state=True)
    clean = asyncio.run(clean) if asyncio.iscoroutine(clean) else clean
    assert clean.result()["dirty"] == "stash"  # clean tree: no question, the policy stands
    clean_logs = _wait_for_log(
        prefect_client_env.api_url,
        str(clean.state_details.flow_run_id),
        "No answer to failed-phase",
    )
    assert not any("dirty-tree" in m for m in clean_logs), clean_logs

    repo, plan = _git_repo(tmp_path / "dirty", dirty=True)
    asked = helpers_probe(str(repo), str(plan), interactive=True, return_state=True)
    asked = asyncio.run(asked) if asyncio.iscoroutine(asked) else asked
    # Nobody answers: each question falls back to the non-interactive answer.
    assert asked.result() == {"dirty": "stash", "failed": "continue", "human_done": False}
    messages = _wait_for_log(
        prefect_client_env.api_url,
        str(asked.state_details.flow_run_id),
        "No answer to failed-phase",
    )
    for key in ("human-phase-4b", "dirty-tree", "failed-phase-2-attempt-1"):
        assert any(f"No answer to {key}" in m for m in messages), (key, messages)
