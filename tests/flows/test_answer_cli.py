"""`plan-executor answer`: a person answers a paused run from the terminal, checked by the server."""

from __future__ import annotations

import contextvars
import os
import shutil
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from prefect import flow

from cli.answer import parse_fields
from flows.approvals import DirtyTreeDecision, ask
from tasks.shell import run
from tests.prefect_fixture import api_auth

CLI = shutil.which("plan-executor") or str(Path(sys.executable).with_name("plan-executor"))
REPO = Path(__file__).resolve().parents[2]


@flow(name="answer-cli-probe")
async def question_probe() -> str:
    answer = await ask(
        DirtyTreeDecision,
        key="dirty-tree",
        timeout_s=120,
        fallback=DirtyTreeDecision(action="stop"),
        description="Uncommitted changes.",
    )
    return answer.action


def _paused_run_id(api_url: str, timeout_s: float = 60) -> str:
    body = {
        "flows": {"name": {"any_": ["answer-cli-probe"]}},
        "flow_runs": {"state": {"type": {"any_": ["PAUSED"]}}},
    }
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        runs = httpx.post(
            f"{api_url}/flow_runs/filter", json=body, timeout=10, auth=api_auth()
        ).json()
        if runs:
            return runs[0]["id"]
        time.sleep(0.3)
    raise AssertionError("the probe never paused")


def test_parse_fields_reads_json_values_and_plain_text() -> None:
    assert parse_fields(["action=stash", "done=true", "note=by hand", "n=3"]) == {
        "action": "stash",
        "done": True,
        "note": "by hand",
        "n": 3,
    }


def test_answer_resumes_a_paused_run_and_a_wrong_value_is_refused(prefect_api_url: str) -> None:
    outcome: dict[str, object] = {}
    context = contextvars.copy_context()

    def probe() -> None:
        import asyncio

        outcome["action"] = context.run(lambda: asyncio.run(question_probe()))

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    run_id = _paused_run_id(prefect_api_url)
    env = {**os.environ, "PREFECT_API_URL": prefect_api_url}

    refused = run([CLI, "answer", run_id, "action=maybe"], cwd=REPO, env=env, timeout_s=120)
    assert refused.exit_code == 2, refused.output
    assert "action" in refused.output

    answered = run([CLI, "answer", run_id, "action=stash"], cwd=REPO, env=env, timeout_s=120)
    assert answered.exit_code == 0, answered.output
    thread.join(60)
    assert outcome.get("action") == "stash"


def test_answer_without_any_prefect_api_says_what_to_do(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env["PLAN_EXECUTOR_HOME"] = str(tmp_path / "home")
    result = run(
        [CLI, "answer", "00000000-0000-0000-0000-000000000000", "action=stash"],
        cwd=REPO,
        env=env,
        timeout_s=120,
    )
    assert result.exit_code == 2
    assert "plan-executor server start" in result.output


@pytest.mark.parametrize("bad", ["not-a-uuid"])
def test_answer_refuses_a_malformed_run_id(bad: str) -> None:
    result = run([CLI, "answer", bad, "action=stash"], cwd=REPO, timeout_s=120)
    assert result.exit_code == 2
    assert "not a flow run id" in result.output
