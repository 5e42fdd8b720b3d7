"""The agent loop with the real SDK against the stand-in Messages API on 127.0.0.1."""

from __future__ import annotations

import json
import re
import shutil
import uuid
from pathlib import Path
from typing import Any

import anthropic
import pytest

from tasks.agent import loop
from tasks.agent.loop import run_agent
from tasks.agent.result import ErrorCode, FailureKind
from tests.agent.conftest import API_KEY, client_for, make_request
from tests.fakes import (
    StandinMessagesAPI,
    bash_command,
    context_exceeded_turn,
    editor_create,
    editor_str_replace,
    editor_view,
    http_error,
    max_tokens_turn,
    overloaded,
    pause_turn,
    rate_limited,
    refusal_turn,
    spend_limit_reached,
    stream_error,
    text_turn,
    tool_call,
    tool_turn,
)

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap not installed")


def tool_results(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The tool_result blocks of the last user message of a request body."""
    last_user = [m for m in body["messages"] if m["role"] == "user"][-1]
    return [b for b in last_user["content"] if b.get("type") == "tool_result"]


def strip_markers(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: strip_markers(v) for k, v in value.items() if k != "cache_control"}
    if isinstance(value, list):
        return [strip_markers(v) for v in value]
    return value


def markers(value: Any) -> int:
    if isinstance(value, dict):
        return int("cache_control" in value) + sum(markers(v) for v in value.values())
    if isinstance(value, list):
        return sum(markers(v) for v in value)
    return 0


@needs_bwrap
def test_four_turn_loop_creates_edits_and_runs(standin, repo: Path) -> None:
    create = editor_create("src/lib.rs", "pub fn add(a: i32, b: i32) -> i32 {\n    a + b\n}\n")
    replace = editor_str_replace("src/lib.rs", "a + b", "a.wrapping_add(b)")
    run = bash_command("cat src/lib.rs && echo ran > ran.txt")
    fake = standin(
        [
            tool_turn(create, text="I'll create the library."),
            tool_turn(replace),
            tool_turn(run),
            text_turn("All done: lib.rs created and edited, command ran."),
        ]
    )
    result = run_agent(make_request(repo, skills=["rust-testing"]), client=client_for(fake))

    assert result.ok, result.error
    assert result.stop_reason == "end_turn" and result.turns == 4 and result.requests == 5
    assert (
        repo / "src/lib.rs"
    ).read_text() == "pub fn add(a: i32, b: i32) -> i32 {\n    a.wrapping_add(b)\n}\n"
    assert (repo / "ran.txt").read_text() == "ran\n"
    assert result.files_touched == ["src/lib.rs"]
    assert result.commands_run == ["cat src/lib.rs && echo ran > ran.txt"]
    assert result.sandboxed

    requests = fake.message_requests
    assert len(requests) == 5 and all(r.body["stream"] is True for r in requests)
    assert tool_results(requests[1].body)[0]["tool_use_id"] == create["id"]
    assert "a.wrapping_add(b)" in tool_results(requests[3].body)[0]["content"]
    assert requests[0].body["model"] == "claude-sonnet-5-5"
    assert "rust-testing" in requests[0].text()

    # usage is the sum of what the stand-in reported for each request
    assert result.usage.output_tokens == sum(r.output_tokens for r in requests)
    assert result.usage.input_tokens == sum(r.input_tokens for r in requests)
    assert result.usage.cache_read_input_tokens == sum(r.cache_read_input_tokens for r in requests)
    assert result.usage.cache_creation_input_tokens == sum(
        r.cache_creation_input_tokens for r in requests
    )
    assert result.usage.cache_read_input_tokens > 0


def test_cache_prefix_is_byte_identical_and_marker_on_newest_block(standin, repo: Path) -> None:
    (repo / "a.txt").write_text("alpha\n")
    fake = standin(
        [
            tool_turn(editor_view("a.txt")),
            tool_turn(editor_view("README.md")),
            tool_turn(editor_create("b.txt", "beta\n")),
            text_turn("done"),
        ]
    )
    result = run_agent(make_request(repo), client=client_for(fake))
    assert result.ok
    bodies = [r.body for r in fake.message_requests]
    assert len(bodies) == 5
    first = bodies[0]
    for body in bodies[1:]:
        # tools and system: byte-identical, markers included
        assert json.dumps(body["tools"]) == json.dumps(first["tools"])
        assert json.dumps(body["system"]) == json.dumps(first["system"])
    assert first["system"][-1]["cache_control"] == {"type": "ephemeral"}
    for previous, current in zip(bodies, bodies[1:], strict=False):
        # earlier turns are re-sent unchanged (only the moving marker differs)
        earlier = strip_markers(previous["messages"])
        assert json.dumps(strip_markers(current["messages"][: len(earlier)])) == json.dumps(earlier)
    for body in bodies:
        # exactly one marker in the messages, on the newest block
        assert markers(body["messages"]) == 1
        assert body["messages"][-1]["content"][-1]["cache_control"] == {"type": "ephemeral"}
    # the summary request keeps the same prefix, forbids tools and caps the output
    assert bodies[-1]["tool_choice"] == {"type": "none"} and bodies[-1]["max_tokens"] == 500
    reads = [r.cache_read_input_tokens for r in fake.message_requests]
    assert reads[0] == 0 and all(
        later > earlier for earlier, later in zip(reads, reads[1:], strict=False)
    )


def test_529_and_429_are_retried_then_succeed(standin, repo: Path) -> None:
    fake = standin([overloaded(retry_after_ms=1), rate_limited(retry_after_ms=1), text_turn("ok")])
    result = run_agent(make_request(repo), client=client_for(fake))
    assert result.ok and result.turns == 1
    attempts = fake.message_requests[:3]
    assert [r.status for r in attempts] == [529, 429, 200]
    assert [r.headers.get("x-stainless-retry-count") for r in attempts] == ["0", "1", "2"]
    assert len({r.headers.get("idempotency-key") for r in attempts}) == 1


def test_retries_exhausted_is_a_retryable_infrastructure_failure(standin, repo: Path) -> None:
    fake = standin([overloaded() for _ in range(3)])
    result = run_agent(make_request(repo), client=client_for(fake, max_retries=2))
    assert result.failure is FailureKind.INFRASTRUCTURE and result.retryable
    assert "529" in (result.error or "")
    assert len(fake.message_requests) == 3


def test_spend_limit_is_fatal_without_retries(standin, repo: Path) -> None:
    fake = standin([spend_limit_reached(), text_turn("must never be reached")])
    result = run_agent(make_request(repo), client=client_for(fake, max_retries=4))
    assert result.failure is FailureKind.INFRASTRUCTURE
    assert not result.retryable
    assert result.error_code == "enforced_spend_limit_reached"
    assert len(fake.message_requests) == 1  # the SDK alone would have sent 5
    assert result.requests == 0 and "spend limit" in result.summary


def test_mid_stream_error_event_is_retried_by_the_loop(standin, repo: Path) -> None:
    fake = standin(
        [stream_error("overloaded_error"), stream_error("api_error"), text_turn("recovered")]
    )
    result = run_agent(make_request(repo), client=client_for(fake))
    assert result.ok and result.turns == 1
    assert [r.reply_kind for r in fake.message_requests[:3]] == [
        "stream_error",
        "stream_error",
        "message",
    ]


def test_mid_stream_errors_that_persist_are_infrastructure(standin, repo: Path) -> None:
    fake = standin([stream_error() for _ in range(loop.STREAM_RETRIES + 1)])
    result = run_agent(make_request(repo), client=client_for(fake))
    assert result.failure is FailureKind.INFRASTRUCTURE and result.retryable
    assert len(fake.message_requests) == loop.STREAM_RETRIES + 1


def test_max_tokens_ends_the_call_as_agent_failure(standin, repo: Path) -> None:
    fake = standin([max_tokens_turn("I was writing a very long")])
    result = run_agent(make_request(repo), client=client_for(fake))
    assert result.failure is FailureKind.AGENT and result.stop_reason == "max_tokens"
    assert fake.message_requests[-1].is_summary_request  # a summary is still asked for


def test_pause_turn_is_resent_unchanged(standin, repo: Path) -> None:
    fake = standin([pause_turn("Thinking about it..."), text_turn("finished")])
    result = run_agent(make_request(repo), client=client_for(fake))
    assert result.ok and result.turns == 2
    resent = fake.message_requests[1].body["messages"]
    assert resent[-1]["role"] == "assistant"
    assert resent[-1]["content"][0]["text"] == "Thinking about it..."


def test_refusal_and_context_window_are_agent_failures(standin, repo: Path) -> None:
    fake = standin([refusal_turn("cyber", "declined")])
    refused = run_agent(make_request(repo), client=client_for(fake))
    assert refused.failure is FailureKind.AGENT and refused.stop_reason == "refusal"
    assert "cyber" in (refused.error or "")
    assert len(fake.message_requests) == 1  # no summary request after a refusal

    fake = standin([context_exceeded_turn()])
    full = run_agent(make_request(repo, phase_id="2"), client=client_for(fake))
    assert full.failure is FailureKind.AGENT and full.stop_reason == "model_context_window_exceeded"


def test_max_turns_reached(standin, repo: Path) -> None:
    fake = standin([tool_turn(editor_view("README.md")) for _ in range(5)])
    result = run_agent(make_request(repo, max_turns=2), client=client_for(fake))
    # The turn cap is a limit of the run (outcome budget), not the agent's failure.
    assert result.failure is FailureKind.BUDGET and result.error_code == "turn_cap"
    assert "turn cap reached (2 turns)" in (result.error or "")
    assert result.turns == 2 and len(fake.message_requests) == 3
    summary_body = fake.message_requests[-1].body
    assert summary_body["tool_choice"] == {"type": "none"}
    last = summary_body["messages"][-1]
    assert last["role"] == "user" and last["content"][0]["type"] == "tool_result"
    assert last["content"][-1]["type"] == "text"


def test_repeated_tool_misuse_ends_the_call(
    standin, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(loop, "MAX_MISUSE_TURNS", 2)
    bad = [
        tool_turn(tool_call("str_replace_based_edit_tool", {"command": "explode"}))
        for _ in range(4)
    ]
    fake = standin(bad)
    result = run_agent(make_request(repo), client=client_for(fake))
    assert result.failure is FailureKind.AGENT and "misuse" in (result.error or "")
    assert result.turns == 2


def test_wall_clock_budget(standin, repo: Path) -> None:
    slow = tool_turn(editor_view("README.md"))
    slow.delay_s = 0.3
    fake = standin([slow, tool_turn(editor_view("README.md"))])
    result = run_agent(make_request(repo), client=client_for(fake), deadline_s=0.2)
    assert result.failure is FailureKind.AGENT and "budget" in (result.error or "")
    assert result.error_code == ErrorCode.DEADLINE  # the flows decide on the code, not the message
    assert result.turns == 1


def test_api_errors_are_classified(standin, repo: Path) -> None:
    fake = standin([http_error(401, "authentication_error", "invalid x-api-key")])
    auth = run_agent(make_request(repo), client=client_for(fake))
    assert auth.failure is FailureKind.INFRASTRUCTURE and not auth.retryable
    assert len(fake.message_requests) == 1

    fake = standin([http_error(400, "invalid_request_error", "prompt is too long: 2000000 tokens")])
    too_long = run_agent(make_request(repo, phase_id="2"), client=client_for(fake))
    assert (
        too_long.failure is FailureKind.AGENT and too_long.error_code == ErrorCode.CONTEXT_EXHAUSTED
    )

    closed = anthropic.Anthropic(base_url="http://127.0.0.1:9", api_key=API_KEY, max_retries=0)
    unreachable = run_agent(make_request(repo, phase_id="3"), client=closed)
    assert unreachable.failure is FailureKind.INFRASTRUCTURE and unreachable.retryable


@needs_bwrap
def test_hostile_tool_calls_stay_in_the_repository(
    standin, repo: Path, outside: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-parent-env-secret")
    (repo / "escape").symlink_to(outside)
    marker = f"pe-escape-{uuid.uuid4().hex}"
    calls = [
        editor_view("../outside/secret.txt"),
        editor_view(str(outside / "secret.txt")),
        editor_create("escape/planted.txt", "x"),
        bash_command("cat ~/.ssh/id_rsa"),
        bash_command('echo "key=[$ANTHROPIC_API_KEY]"'),
        bash_command("echo x > ../outside/file"),
        bash_command(f"touch /etc/{marker}"),
        bash_command("sleep 1000"),
        bash_command("head -c 10000000 /dev/zero | tr '\\0' y"),
    ]
    fake = standin([tool_turn(*calls), text_turn("tried everything")])
    result = run_agent(make_request(repo, command_timeout_s=1), client=client_for(fake))

    assert result.ok
    results = tool_results(fake.message_requests[1].body)
    assert len(results) == len(calls)
    by_call = dict(zip(range(len(calls)), results, strict=True))
    for index in (0, 1, 2):
        assert by_call[index]["is_error"] and "outside the repository" in by_call[index]["content"]
    assert by_call[3]["is_error"] and "No such file" in by_call[3]["content"]
    assert "key=[]" in by_call[4]["content"]
    assert "sk-parent-env-secret" not in json.dumps(results)
    assert by_call[5]["is_error"]
    assert by_call[6]["is_error"] and "Read-only file system" in by_call[6]["content"]
    assert by_call[7]["is_error"] and "timed out" in by_call[7]["content"]
    assert len(by_call[8]["content"]) < 31_000 and "output was cut" in by_call[8]["content"]
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    assert not (Path("/etc") / marker).exists()
    assert result.files_touched == []


def test_details_log_is_written_without_secrets(standin, repo: Path) -> None:
    fake = standin([tool_turn(editor_create("notes.md", "hello")), text_turn("done")])
    request = make_request(repo, plan_name="my plan", phase_id="2.5", role_suffix="tester")
    result = run_agent(request, client=client_for(fake))
    assert result.details_log is not None
    assert re.fullmatch(
        r"\.ai/logs/\d{4}-\d{2}-\d{2}\.my-plan-phase-2\.5-tester\.md", result.details_log
    )
    text = (repo / result.details_log).read_text()
    for expected in (
        "## Turn 1",
        "## Turn 2",
        "req_standin_1",
        "notes.md",
        "## Summary",
        "## Result",
        "usage",
    ):
        assert expected in text
    assert API_KEY not in text and "authorization" not in text.lower()


def test_summary_is_capped_at_500_tokens(standin, repo: Path) -> None:
    long_summary = " ".join(f"word{i}" for i in range(2000))
    fake = standin([text_turn("done"), text_turn(long_summary)], auto_summary=False)
    result = run_agent(make_request(repo), client=client_for(fake))
    summary_request = fake.message_requests[-1]
    assert summary_request.is_summary_request
    assert summary_request.body["max_tokens"] == 500
    assert summary_request.body["tools"] == fake.message_requests[0].body["tools"]
    assert 0 < summary_request.output_tokens <= 500
    assert len(result.summary.split()) <= 500 and result.summary.startswith("word0")


def test_missing_bwrap_refuses_to_start(standin, repo: Path) -> None:
    fake = standin([tool_turn(bash_command("touch ran.txt")), text_turn("done")])
    refused = run_agent(make_request(repo, bwrap="/nonexistent/bwrap"), client=client_for(fake))
    assert refused.failure is FailureKind.INFRASTRUCTURE and not refused.retryable
    assert not refused.sandboxed and "bubblewrap" in (refused.error or "")
    assert fake.message_requests == [] and not (repo / "ran.txt").exists()

    allowed = run_agent(
        make_request(repo, bwrap="/nonexistent/bwrap", allow_unsandboxed=True, phase_id="2"),
        client=client_for(fake),
    )
    assert allowed.ok and not allowed.sandboxed
    assert (repo / "ran.txt").exists()
    assert "NONE: bubblewrap unusable (not found)" in (repo / allowed.details_log).read_text()  # type: ignore[operator]


def test_model_from_definition_request_and_env_client(
    standin, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    agents = repo / ".claude" / "agents"
    agents.mkdir(parents=True)
    (agents / "rust-developer.md").write_text(
        "---\nname: rust-developer\ndescription: Rust\nmodel: claude-opus-4-5-20251101\n---\nYou write Rust.\n"
    )
    fake = standin([text_turn("a"), text_turn("b"), text_turn("c")])
    monkeypatch.setenv("ANTHROPIC_API_KEY", API_KEY)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.base_url)
    from_file = run_agent(make_request(repo, owner="Rust Developer"))  # client built from the env
    overridden = run_agent(make_request(repo, owner="rust-developer", model="haiku", phase_id="2"))
    builtin = run_agent(make_request(repo, owner="Plan", phase_id="3"))
    assert from_file.ok and from_file.model == "claude-opus-4-5-20251101"
    assert overridden.model == "claude-haiku-5-5"
    assert builtin.model == loop.DEFAULT_MODEL
    work = [r for r in fake.message_requests if not r.is_summary_request]
    assert [r.body["model"] for r in work] == [
        "claude-opus-4-5-20251101",
        "claude-haiku-5-5",
        loop.DEFAULT_MODEL,
    ]
    assert work[0].body["system"][0]["text"].startswith("You write Rust.")
    assert all(r.headers["authorization"] == "<redacted>" for r in work)


def test_not_an_agent_call(repo: Path) -> None:
    for owner in ("human", "self", "None (orchestrator)"):
        with pytest.raises(ValueError):
            run_agent(make_request(repo, owner=owner))


@needs_bwrap
@pytest.mark.parametrize(
    "fields", [{"read_only": True, "role_suffix": "verifier"}, {"owner": "Explore"}]
)
def test_read_only_calls_change_nothing(standin, repo: Path, fields: dict[str, Any]) -> None:
    attempts = tool_turn(
        editor_create("new.txt", "x"),
        editor_str_replace("README.md", "demo", "changed"),
        bash_command("touch made.txt; echo changed > README.md"),
        editor_view("README.md"),
    )
    fake = standin([attempts, text_turn("verified")])
    result = run_agent(make_request(repo, **fields), client=client_for(fake))
    assert result.ok and result.files_touched == []
    results = tool_results(fake.message_requests[1].body)
    assert [bool(r.get("is_error")) for r in results] == [True, True, True, False]
    assert "Read-only file system" in results[2]["content"]
    assert (repo / "README.md").read_text() == "# demo\n"
    assert not (repo / "new.txt").exists() and not (repo / "made.txt").exists()


def test_empty_text_turns_keep_the_history_valid(standin, repo: Path) -> None:
    fake = standin(
        [tool_turn(editor_view("README.md"), text=None), pause_turn(""), text_turn("done")]
    )
    fake.script[0].content.insert(0, {"type": "text", "text": ""})
    result = run_agent(make_request(repo), client=client_for(fake))
    assert result.ok, result.error
    assert all(r.status == 200 for r in fake.message_requests)


def test_no_api_key_anywhere_fails_clearly_before_any_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)
    with StandinMessagesAPI([text_turn("done")]) as api:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", api.base_url)
        result = run_agent(make_request(tmp_path))
    assert result.failure is FailureKind.INFRASTRUCTURE
    assert result.retryable is False
    assert "ANTHROPIC_API_KEY" in (result.error or "")
    assert "anthropic-api-key" in (result.error or "")
    assert api.requests == []
