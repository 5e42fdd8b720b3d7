"""Faults from the API (issue 8, item 2): the stand-in answers a share of requests with 429, 529,
500, dropped connections (before and in the middle of a stream), broken streams or silence past
the request timeout; the real SDK and loop absorb them, count them apart from the agent's work,
and a whole run still finishes. A permanently-down API ends the phase FAILED as infrastructure.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import pytest

from cli.demo import ScriptedAgents, demo_scripts, make_crate
from plan_parser.checkpoints import read_plan_state
from tasks.agent import loop
from tasks.agent.loop import build_client, request_timeout_s, run_agent
from tasks.agent.result import AgentRequest, FailureKind
from tasks.agent.standin import (
    DROPPED,
    DROPPED_MID_STREAM,
    FAULT_KINDS,
    OVERLOADED,
    RATE_LIMITED,
    SERVER_ERROR,
    SLOW,
    STREAM_ERROR,
    FaultPlan,
    Reply,
    StandinMessagesAPI,
    editor_create,
    text_turn,
    tool_turn,
)

API_KEY = "sk-test-faults"
CLIENT_TIMEOUT_S = 1.0
SLOW_S = 1.6
"""A ``slow`` fault stays silent longer than the client waits."""
LOOP_NAME = {SLOW: "timeout"}
"""The loop names a fault by what the client saw: silence past the timeout is a ``timeout``."""


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Short timeouts and backoffs, so faults cost little time; the counts do not change."""
    monkeypatch.setenv(loop.API_TIMEOUT_ENV, str(CLIENT_TIMEOUT_S))
    monkeypatch.setattr(loop, "STREAM_RETRY_BACKOFF_S", 0.05)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    (path / "src").mkdir(parents=True)
    (path / "README.md").write_text("# demo\n")
    return path


@pytest.fixture
def standin() -> Iterator[Any]:
    started: list[StandinMessagesAPI] = []

    def make(*args: Any, **kwargs: Any) -> StandinMessagesAPI:
        api = StandinMessagesAPI(*args, **kwargs).start()
        started.append(api)
        return api

    yield make
    for api in started:
        api.stop()


def client_for(api: StandinMessagesAPI, max_retries: int = 4) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        base_url=api.base_url, api_key=API_KEY, max_retries=max_retries, timeout=CLIENT_TIMEOUT_S
    )


def request_for(repo: Path, **overrides: Any) -> AgentRequest:
    fields: dict[str, Any] = {
        "repo": repo,
        "plan_name": "faults",
        "phase_id": "1",
        "owner": "general-purpose",
        "task": "Implement phase 1.",
        "allow_unsandboxed": True,
    }
    fields.update(overrides)
    return AgentRequest(**fields)


def ask(client: anthropic.Anthropic, text: str) -> str:
    with client.messages.stream(
        model="m", max_tokens=50, messages=[{"role": "user", "content": text}]
    ) as stream:
        message = stream.get_final_message()
    return "".join(b.text for b in message.content if b.type == "text")


def loop_names(injected: Counter[str]) -> dict[str, int]:
    return {LOOP_NAME.get(kind, kind): n for kind, n in injected.items() if n}


# -- the stand-in -------------------------------------------------------------------------------


def test_fault_plan_is_seeded_and_near_its_share(standin) -> None:
    kinds = (RATE_LIMITED, OVERLOADED, SERVER_ERROR)
    sequences = []
    for _ in range(2):
        api = standin([text_turn("ok") for _ in range(200)], faults=FaultPlan(0.3, kinds, seed=11))
        client = client_for(api, max_retries=0)
        for n in range(200):
            with contextlib.suppress(anthropic.APIStatusError):
                ask(client, f"request {n}")
        sequences.append([r.fault for r in api.message_requests])
    assert sequences[0] == sequences[1]  # the same seed faults the same requests
    faulted = [kind for kind in sequences[0] if kind]
    assert 40 <= len(faulted) <= 80  # about 30 % of 200
    assert set(faulted) == set(kinds)
    with pytest.raises(ValueError):
        FaultPlan(1.5)
    with pytest.raises(ValueError):
        FaultPlan(0.3, kinds=("teapot",))


EXPECTED_ERROR: dict[str, type[BaseException] | tuple[type[BaseException], ...]] = {
    RATE_LIMITED: anthropic.RateLimitError,
    OVERLOADED: anthropic.OverloadedError,
    SERVER_ERROR: anthropic.InternalServerError,
    DROPPED: anthropic.APIConnectionError,
    # anthropic <= 2.16 let httpx2's error through; 2.17 wraps the broken read in
    # APIConnectionError (chained to httpx2's RemoteProtocolError). Both are what users get.
    DROPPED_MID_STREAM: (httpx2.RemoteProtocolError, anthropic.APIConnectionError),
    STREAM_ERROR: anthropic.APIStatusError,
    SLOW: anthropic.APITimeoutError,
}


@pytest.mark.parametrize("kind", FAULT_KINDS)
def test_each_fault_reaches_the_sdk_as_a_real_outage_would(standin, kind: str) -> None:
    api = standin([text_turn("the scripted answer")], faults=FaultPlan(1.0, (kind,), slow_s=SLOW_S))
    client = client_for(api, max_retries=0)
    with pytest.raises(EXPECTED_ERROR[kind]) as caught:
        ask(client, "hello")
    if kind == DROPPED:
        assert not isinstance(caught.value, anthropic.APITimeoutError)
    if kind == DROPPED_MID_STREAM:
        assert not isinstance(caught.value, anthropic.APITimeoutError)
        root = (
            caught.value if isinstance(caught.value, httpx2.HTTPError) else caught.value.__cause__
        )
        assert isinstance(root, httpx2.RemoteProtocolError), repr(caught.value)
    if kind == STREAM_ERROR:
        assert getattr(caught.value, "status_code", None) == 200  # HTTP 200, then the error event
    if kind == RATE_LIMITED:
        assert api.message_requests[0].status == 429
        assert isinstance(caught.value, anthropic.RateLimitError)
        assert caught.value.response.headers.get("retry-after-ms") == "1"
    # The fault consumed nothing: once the API is back, the script goes on where it was.
    assert len(api.script) == 1
    api.set_faults(None)
    assert ask(client, "hello") == "the scripted answer"
    assert api.faults == Counter({kind: 1})


def test_a_faulted_request_never_reaches_the_responder(standin) -> None:
    answered: list[str] = []

    def responder(body: dict[str, Any]) -> Reply:
        answered.append(body["messages"][0]["content"])
        return text_turn(f"answer {len(answered)}")

    api = standin(responder=responder, faults=FaultPlan(0.3, seed=5, slow_s=SLOW_S))
    client = client_for(api, max_retries=8)
    replies = [ask(client, f"question {n}") for n in range(1, 13)]
    assert replies == [f"answer {n}" for n in range(1, 13)]
    assert answered == [f"question {n}" for n in range(1, 13)]
    assert sum(api.faults.values()) > 0


# -- the loop -------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", FAULT_KINDS)
def test_loop_retries_each_fault_and_counts_it_apart_from_the_turns(
    standin, repo: Path, kind: str
) -> None:
    script = [tool_turn(editor_create("src/a.rs", "pub fn a() {}\n")), text_turn("done")]
    api = standin(script, faults=FaultPlan(1.0, (kind,), slow_s=SLOW_S, limit=2))
    result = run_agent(request_for(repo), client=client_for(api))

    assert result.ok, result.error
    assert result.turns == 2  # the agent's turns, not the faulted requests
    assert (repo / "src/a.rs").read_text() == "pub fn a() {}\n"
    assert result.infra.faults == loop_names(api.faults) == {LOOP_NAME.get(kind, kind): 2}
    assert result.infra.retries == 2 and result.infra.restarts == 0
    log = (repo / str(result.details_log)).read_text()
    assert f"infrastructure: 2 API faults ({LOOP_NAME.get(kind, kind)}×2), 2 retried" in log


def test_loop_at_30_percent_of_every_kind(standin, repo: Path) -> None:
    script = [
        tool_turn(editor_create(f"src/f{n}.rs", f"pub fn f{n}() {{}}\n")) for n in range(6)
    ] + [text_turn("done")]
    api = standin(script, faults=FaultPlan(0.3, seed=3, slow_s=SLOW_S))
    result = run_agent(request_for(repo), client=client_for(api))

    assert result.ok, result.error
    assert result.turns == 7
    assert all((repo / f"src/f{n}.rs").exists() for n in range(6))
    assert sum(api.faults.values()) >= 2
    assert result.infra.faults == loop_names(api.faults)
    assert result.infra.retries == result.infra.total


def test_api_down_for_good_is_a_retryable_infrastructure_failure(standin, repo: Path) -> None:
    api = standin([text_turn("never reached")], faults=FaultPlan(1.0, (OVERLOADED,)))
    result = run_agent(request_for(repo), client=client_for(api, max_retries=2))

    assert result.failure is FailureKind.INFRASTRUCTURE and result.retryable
    assert result.infra.faults == {"529": 3}
    assert result.infra.retries == 2  # the third fault ended the call
    assert len(api.script) == 1


def test_request_timeout_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(loop.API_TIMEOUT_ENV)
    assert request_timeout_s() == loop.REQUEST_TIMEOUT_S == 600.0
    monkeypatch.setenv(loop.API_TIMEOUT_ENV, "2.5")
    assert request_timeout_s() == 2.5
    monkeypatch.setenv("ANTHROPIC_API_KEY", API_KEY)
    assert build_client().timeout == 2.5
    for bad in ("soon", "0", "-1"):
        monkeypatch.setenv(loop.API_TIMEOUT_ENV, bad)
        with pytest.raises(ValueError, match=loop.API_TIMEOUT_ENV):
            request_timeout_s()


# -- Prefect restarts of a call -----------------------------------------------------------------


@pytest.mark.slow
def test_a_call_restarted_by_prefect_is_one_agent_attempt(
    standin, repo: Path, prefect_api_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.phase import AGENT_RETRY_DELAYS_ENV, call_agent

    # Down for the SDK's five attempts of the first try, then back: Prefect restarts the call.
    api = standin(
        [tool_turn(editor_create("src/a.rs", "pub fn a() {}\n")), text_turn("done")],
        faults=FaultPlan(1.0, (OVERLOADED,), limit=loop.SDK_MAX_RETRIES + 1),
    )
    monkeypatch.setenv("ANTHROPIC_BASE_URL", api.base_url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", API_KEY)
    monkeypatch.setenv(AGENT_RETRY_DELAYS_ENV, "0.2,0.2")

    result = asyncio.run(call_agent(request_for(repo), 120.0))

    assert result.ok, result.error
    assert result.turns == 2
    assert result.infra.faults == {"529": loop.SDK_MAX_RETRIES + 1}
    assert result.infra.restarts == 1
    assert "1 call restarted" in result.infra.describe()


# -- whole runs -----------------------------------------------------------------------------------


class Echo:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, message: object = "", err: bool = False, **_: object) -> None:
        self.lines.append(str(message))

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def run_with_faults(
    plan: Path, faults: FaultPlan, monkeypatch: pytest.MonkeyPatch
) -> tuple[int, StandinMessagesAPI, Echo]:
    from cli.run import run_plan
    from flows.context import RunOptions
    from flows.phase import AGENT_RETRY_DELAYS_ENV

    scripts = demo_scripts()
    for script in scripts.values():
        script.delay_s = 0.0  # no reply may look like a slow fault to the 1 s client timeout
    echo = Echo()
    monkeypatch.setenv(AGENT_RETRY_DELAYS_ENV, "0.2,0.2")
    with StandinMessagesAPI(
        responder=ScriptedAgents(scripts), auto_summary=False, faults=faults
    ) as api:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", api.base_url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", API_KEY)
        code = run_plan(plan, RunOptions(repo=plan.parents[2]), live=False, echo=echo)
    return code, api, echo


def infrastructure_line(report: str) -> str:
    match = re.search(r"^\*\*Infrastructure:\*\* .*$", report, re.M)
    assert match, report
    return match.group(0)


def reported_faults(line: str) -> dict[str, int]:
    kinds = re.search(r"API faults? \(([^)]*)\)", line)
    assert kinds, line
    return {k: int(n) for k, n in re.findall(r"([\w]+)×(\d+)", kinds.group(1))}


def conversations(api: StandinMessagesAPI) -> int:
    """Distinct agent calls the API saw: each starts its own conversation (first message)."""
    firsts = set()
    for request in api.message_requests:
        content = request.body["messages"][0]["content"]
        blocks = [content] if isinstance(content, str) else [b.get("text") for b in content]
        firsts.add("\n".join(str(b) for b in blocks))  # without the moving cache marker
    return len(firsts)


@pytest.mark.slow
def test_run_with_30_percent_of_requests_faulted_completes_every_phase(
    tmp_path: Path, prefect_api_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = make_crate(tmp_path / "crate")
    code, api, echo = run_with_faults(plan, FaultPlan(0.3, seed=8, slow_s=SLOW_S), monkeypatch)

    assert code == 0, echo.text
    state = read_plan_state(plan)
    assert state is not None
    assert {pid: cp.status for pid, cp in state.phases.items()} == dict.fromkeys(
        ("1", "2", "3"), "complete"
    )
    injected = api.faults
    assert sum(injected.values()) >= 3, injected

    # The report counts every injected fault, by kind, apart from the agents' own failures.
    line = infrastructure_line(echo.text)
    assert reported_faults(line) == loop_names(injected), line
    assert "0 phases failed on infrastructure" in line
    assert "; 0 agent failures" in line
    # Retries and restarts are not agent attempts: one call per conversation the API saw.
    assert f"({conversations(api)} agent calls)" in line
    log = next((plan.parents[2] / ".ai" / "logs").glob("*.plan-execution-log.md")).read_text()
    assert "(infrastructure: " in log  # the execution log notes the faults of a phase
    for pid in ("1", "2", "3"):
        assert len(re.findall(rf"- Phase {pid} Running$", log, re.M)) == 1
        assert state.phases[pid].extra.get("attempt", "").endswith(f"-{pid}")


@pytest.mark.slow
def test_api_down_for_good_fails_the_phases_as_infrastructure(
    tmp_path: Path, prefect_api_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = make_crate(tmp_path / "crate")
    code, api, echo = run_with_faults(plan, FaultPlan(1.0, (OVERLOADED,)), monkeypatch)

    assert code == 1
    state = read_plan_state(plan)
    assert state is not None
    assert state.phases["1"].status == "failed" and state.phases["2"].status == "failed"
    assert state.phases["3"].status == "skipped"
    assert "infrastructure failure" in (state.phases["1"].error or "")
    line = infrastructure_line(echo.text)
    assert "phase(s) 1, 2 failed on infrastructure" in line
    assert "; 0 agent failures (2 agent calls)" in line
    # Per phase: three tries (two Prefect restarts) of five SDK attempts each.
    assert "4 calls restarted" in line
    assert reported_faults(line) == {"529": 2 * 3 * (loop.SDK_MAX_RETRIES + 1)}
    assert sum(api.faults.values()) == 2 * 3 * (loop.SDK_MAX_RETRIES + 1)
    assert "| failed (infrastructure) |" in echo.text
    assert "**failed** (infrastructure, not the agent)" in echo.text
    assert (plan.parents[2] / "tests/alpha.rs").exists() is False
