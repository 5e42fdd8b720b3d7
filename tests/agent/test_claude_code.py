"""The claude-code runtime (issue 17): Claude Code (the CLI bundled in claude-agent-sdk) run in
bubblewrap against the stand-in Messages API, through the same `run_agent` entry point.

Real parts only: the real CLI, the real bwrap, the stand-in on 127.0.0.1. Each call starts
Claude Code (~2-4 s), so the calls here are few; the pure parts are unit tests.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cli.demo import PhaseScript, ScriptedAgents
from tasks.agent.budget import BudgetAccount, Limits, close_account, open_account
from tasks.agent.claude_code import tool_choice, wrapper_script
from tasks.agent.definitions import AgentDefinition, load_agent_file, resolve_agent
from tasks.agent.loop import run_agent
from tasks.agent.pricing import PriceTable
from tasks.agent.result import ErrorCode, FailureKind, Usage
from tasks.agent.runtimes import (
    ANTHROPIC,
    CLAUDE_CODE,
    RuntimeUnavailable,
    check_runtime_name,
    pick_runtime,
    require_runtime,
)
from tasks.agent.standin import (
    as_claude_code,
    cc_bash,
    cc_write,
    claude_code_turn,
    delayed,
    editor_create,
    text_turn,
    tool_turn,
    turns_taken,
)
from tests.agent.conftest import API_KEY, make_request

needs_claude_code = pytest.mark.skipif(
    importlib.util.find_spec("claude_agent_sdk") is None or shutil.which("bwrap") is None,
    reason="needs the claude-code extra (claude-agent-sdk) and bubblewrap",
)


def definition(tools: list[str] | None = None, read_only: bool = False) -> AgentDefinition:
    return AgentDefinition(
        name="dev",
        description="",
        model=None,
        tools=tools,
        prompt="You are dev.",
        source="test",
        read_only=read_only,
    )


# --- pure parts ------------------------------------------------------------------------------


def test_subagents_and_web_tools_are_off_unless_the_definition_lists_them() -> None:
    offered, refused = tool_choice(definition(), read_only=False)
    assert {"Bash", "Read", "Write", "Edit"} <= set(offered)
    assert set(refused) == {"Agent", "Task", "WebFetch", "WebSearch"}
    assert not set(offered) & set(refused)

    offered, refused = tool_choice(definition(["Read", "WebFetch", "Bash(git:*)"]), read_only=False)
    assert offered == ["Read", "WebFetch", "Bash"]
    assert "WebFetch" not in refused and "Agent" in refused

    offered, refused = tool_choice(definition(["Read", "Write", "Edit", "Bash"]), read_only=True)
    assert offered == ["Read", "Bash"] and {"Write", "Edit"} <= set(refused)


def test_runtime_choice_per_run_per_definition_and_never_for_verifiers(tmp_path: Path) -> None:
    assert pick_runtime(CLAUDE_CODE, None) == CLAUDE_CODE
    assert pick_runtime(ANTHROPIC, "claude-code") == CLAUDE_CODE  # the definition wins
    assert pick_runtime(CLAUDE_CODE, "anthropic") == ANTHROPIC
    assert pick_runtime(CLAUDE_CODE, None, verifier=True) == ANTHROPIC  # record_verdict
    assert check_runtime_name("Claude_Code") == CLAUDE_CODE
    with pytest.raises(ValueError, match="choose one of anthropic, claude-code"):
        check_runtime_name("cursor")

    agents = tmp_path / ".claude" / "agents"
    agents.mkdir(parents=True)
    (agents / "cc-dev.md").write_text("---\nruntime: claude-code\n---\nYou are cc-dev.\n")
    (agents / "bad.md").write_text("---\nruntime: vim\n---\nYou are bad.\n")
    assert load_agent_file(agents / "cc-dev.md").runtime == CLAUDE_CODE
    with pytest.raises(ValueError, match=r"bad.md: frontmatter field 'runtime'.*'vim'"):
        load_agent_file(agents / "bad.md")
    found = resolve_agent("cc-dev", tmp_path)
    assert found is not None and found.runtime == CLAUDE_CODE


def test_the_wrapper_quotes_its_words_and_passes_the_clis_arguments_on() -> None:
    script = wrapper_script(["bwrap", "--setenv", "X", "it's $HOME", "--", "claude"])
    assert "'it'\"'\"'s $HOME'" in script
    assert script.startswith("#!/bin/sh\nexec bwrap ") and script.endswith(' claude "$@"\n')


def test_scripted_turns_in_claude_codes_tools_and_merged_history() -> None:
    create = editor_create("tests/a.rs", "fn a() {}\n")
    assert as_claude_code(create, "/w/tree")["input"] == {
        "file_path": "/w/tree/tests/a.rs",
        "content": "fn a() {}\n",
    }
    first = claude_code_turn(tool_turn(create, cc_bash("ls")), "/w")
    second = claude_code_turn(tool_turn(cc_write("/w/b", "b")), "/w")
    # Claude Code's history: one assistant message whose tool_use blocks accumulate.
    merged = [
        {"role": "user", "content": "task"},
        {"role": "assistant", "content": first.content + second.content},
    ]
    assert turns_taken(merged) == 2
    assert turns_taken([{"role": "user", "content": "task"}]) == 0


def test_missing_extra_is_a_clear_error_before_the_run_and_in_a_call(
    monkeypatch: pytest.MonkeyPatch, repo: Path, tmp_path: Path
) -> None:
    from cli.run import EXIT_INVALID, run_plan
    from flows.context import RunOptions

    monkeypatch.setitem(sys.modules, "claude_agent_sdk", None)  # import fails: not installed
    with pytest.raises(RuntimeUnavailable, match=r"pip install 'plan-executor\[claude-code\]'"):
        require_runtime(CLAUDE_CODE)
    require_runtime(ANTHROPIC)

    plan = tmp_path / "plan.md"
    plan.write_text("# plan\n")
    errors: list[str] = []
    code = run_plan(
        plan,
        RunOptions(repo=repo, agent_runtime=CLAUDE_CODE),
        echo=lambda message="", err=False, **_: errors.append(str(message)),
    )
    assert code == EXIT_INVALID
    assert errors and "--agent-runtime claude-code" in errors[0]
    assert "plan-executor[claude-code]" in errors[0]

    # An agent definition asking for claude-code: the call fails on infrastructure, not retried.
    result = run_agent(make_request(repo, runtime=CLAUDE_CODE))
    assert result.failure is FailureKind.INFRASTRUCTURE and not result.retryable
    assert "plan-executor[claude-code]" in (result.error or "")


# --- Claude Code itself ----------------------------------------------------------------------


@needs_claude_code
@pytest.mark.timeout(120)
def test_claude_code_writes_in_its_tree_and_reports_like_the_loop(
    standin, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    network = True  # the network-off path: tests/reliability/test_sandbox_claude_code.py
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    # The owner's definition, the repository's CLAUDE.md (project settings load) and a
    # user-level CLAUDE.md of the machine (must not load: the sandbox's HOME is private).
    (repo / ".claude" / "agents").mkdir(parents=True)
    (repo / ".claude" / "agents" / "one-dev.md").write_text(
        "---\ndescription: d\n---\nYou are one-dev, ROLE-MARKER-7f3.\n"
    )
    (repo / "CLAUDE.md").write_text("Project memory: PROJECT-MARKER-2c9.\n")
    home = repo.parent / "home"
    (home / ".claude").mkdir(parents=True)
    (home / ".claude" / "CLAUDE.md").write_text("User memory: USER-MARKER-b41.\n")
    monkeypatch.setenv("HOME", str(home))
    script = {
        "1": PhaseScript(
            edits=[editor_create("src/lib.rs", "pub fn one() -> u32 { 1 }\n")],
            later=[[cc_bash("echo built > build.txt")]],
            claim="Status: COMPLETE. src/lib.rs written.",
        )
    }
    fake = standin(responder=ScriptedAgents(script), auto_summary=False)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.base_url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", API_KEY)
    account = BudgetAccount("phase 1", Limits(max_cost_usd=50.0), PriceTable())
    key = open_account(account)
    try:
        result = run_agent(
            make_request(
                repo,
                owner="one-dev",
                task="# Phase 1: One\n\nWrite src/lib.rs.",
                network=network,
                runtime=CLAUDE_CODE,
                budget_account=key,
            ),
            deadline_s=90,
        )
    finally:
        close_account(key)

    assert result.ok, result.error
    assert result.runtime == CLAUDE_CODE and result.sandboxed
    assert (repo / "src" / "lib.rs").read_text() == "pub fn one() -> u32 { 1 }\n"
    assert (repo / "build.txt").read_text() == "built\n"
    assert result.files_touched == ["src/lib.rs"]
    assert result.commands_run == ["echo built > build.txt"]
    # Three scripted turns (Write, Bash, the final report): three requests, no summary request.
    assert len(fake.message_requests) == 3 and result.requests == 3 and result.turns == 3
    assert result.summary == "Status: COMPLETE. src/lib.rs written."
    assert result.agent == "one-dev"
    sent = "\n".join(r.text() for r in fake.message_requests)
    assert "ROLE-MARKER-7f3" in sent and "PROJECT-MARKER-2c9" in sent
    assert "USER-MARKER-b41" not in sent
    assert result.usage.total > 0 and (result.cost_usd or 0) > 0
    # The call is charged to its phase's account (so a run budget sees Claude Code's spending
    # too), and Claude Code was told how much of the cost cap was left.
    assert account.spent.usage == result.usage
    log = (repo / result.details_log).read_text() if result.details_log else ""
    assert "runtime: claude-code" in log and "Tool call `Write`" in log
    assert "$50.0000 left (Claude Code's `max_budget_usd`)" in log
    assert "as uid 1000" in log or "IS_SANDBOX=1" in log
    assert ("network off" in log) is (not network)
    assert API_KEY not in log
    # Nothing of Claude Code's own is left in the tree (no mount-point files, no settings).
    assert sorted(p.name for p in repo.iterdir()) == [
        ".ai",
        ".claude",
        ".git",
        "CLAUDE.md",
        "README.md",
        "build.txt",
        "src",
    ]
    assert [p.name for p in (repo / ".claude").iterdir()] == ["agents"]


def test_the_api_proxy_swaps_the_placeholder_for_the_real_key(tmp_path: Path) -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    import httpx

    from tasks.agent.api_proxy import PLACEHOLDER_KEY, ApiProxy

    seen: list[dict[str, str]] = []

    class Upstream(BaseHTTPRequestHandler):
        def log_message(self, *_: object) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            seen.append({k.lower(): v for k, v in self.headers.items()} | {"body": body.decode()})
            payload = b"event: ping\ndata: {}\n\n"
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    upstream = ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{upstream.server_address[1]}"
    headers = {"x-api-key": PLACEHOLDER_KEY, "authorization": "Bearer stolen"}
    try:
        with ApiProxy(base, api_key=API_KEY, auth_token=None) as proxy:
            answer = httpx.post(f"{proxy.base_url}/v1/messages?beta=true", headers=headers, json={})
        sock = tmp_path / "api.sock"
        with ApiProxy(base, api_key=API_KEY, auth_token=None, unix_socket=sock) as proxy:
            transport = httpx.HTTPTransport(uds=str(sock))
            with httpx.Client(transport=transport) as client:
                over_socket = client.post("http://sandbox/v1/messages", headers=headers, json={})
    finally:
        upstream.shutdown()
    assert answer.status_code == 200 and answer.text == "event: ping\ndata: {}\n\n"
    assert over_socket.status_code == 200 and over_socket.text == answer.text
    assert [s["x-api-key"] for s in seen] == [API_KEY, API_KEY]
    assert not any("authorization" in s for s in seen)
    assert seen[0]["body"] == "{}"


def test_result_messages_are_classified_like_the_loops_failures() -> None:
    from types import SimpleNamespace

    from tasks.agent.claude_code import classify_result

    def message(subtype: str, status: int | None = None, is_error: bool = True) -> object:
        return SimpleNamespace(
            subtype=subtype, is_error=is_error, api_error_status=status, errors=[], result=""
        )

    assert classify_result(message("success", is_error=False)) is None
    turns = classify_result(message("error_max_turns"))
    assert turns is not None and turns.kind is FailureKind.BUDGET and turns.error_code == "turn_cap"
    spent = classify_result(message("error_max_budget_usd"))
    assert spent is not None and spent.kind is FailureKind.BUDGET
    assert spent.error_code == "budget_cost"
    overloaded = classify_result(message("error_during_execution", 529))
    assert overloaded is not None and overloaded.kind is FailureKind.INFRASTRUCTURE
    assert overloaded.retryable
    refused = classify_result(message("error_during_execution", 401))
    assert refused is not None and refused.kind is FailureKind.INFRASTRUCTURE
    assert not refused.retryable
    silent = classify_result(None)
    assert silent is not None and silent.kind is FailureKind.INFRASTRUCTURE


@needs_claude_code
@pytest.mark.timeout(120)
def test_a_spend_limit_ends_the_call_at_once_as_infrastructure_not_retried(
    standin, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tasks.agent.standin import spend_limit_reached

    # Claude Code retries even this; the API proxy sees the answer and ends the call.
    fake = standin(responder=lambda body: spend_limit_reached(), auto_summary=False)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.base_url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", API_KEY)
    result = run_agent(make_request(repo, runtime=CLAUDE_CODE), deadline_s=90)

    assert result.failure is FailureKind.INFRASTRUCTURE and not result.retryable
    assert "enforced_spend_limit_reached" in (result.error or "")
    assert result.infra.faults.get("429", 0) >= 1
    assert len(fake.message_requests) <= 1 + 4  # never more than Claude Code's 4 retries


@needs_claude_code
@pytest.mark.timeout(120)
def test_the_deadline_ends_a_claude_code_call_with_the_deadline_code(
    standin, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The model answers too late: the call's own deadline stops it, said by its code (the flows
    # end the phase `timeout` on it), not only in its message.
    fake = standin(responder=lambda body: delayed(text_turn("too late"), 8.0), auto_summary=False)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.base_url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", API_KEY)
    result = run_agent(make_request(repo, runtime=CLAUDE_CODE), deadline_s=3)

    assert result.failure is FailureKind.AGENT and result.error_code == ErrorCode.DEADLINE, (
        result.error
    )
    assert "wall-clock budget exhausted" in (result.error or "")


def test_a_spent_budget_starts_no_claude_code_call(standin, repo: Path) -> None:
    """Like the loop: once the run's (or the phase's) budget is spent, no new call starts."""
    run = BudgetAccount("run", Limits(max_tokens=10), PriceTable())
    run.charge("claude-sonnet-5-5", Usage(input_tokens=10))
    phase = BudgetAccount("phase 2", Limits(), PriceTable(), parent=run)
    key = open_account(phase)
    fake = standin(responder=ScriptedAgents({}), auto_summary=False)
    try:
        result = run_agent(
            make_request(repo, runtime=CLAUDE_CODE, budget_account=key), deadline_s=30
        )
    finally:
        close_account(key)
    assert result.failure is FailureKind.BUDGET and result.error_code == "budget_tokens"
    assert "run token budget spent" in (result.error or "")
    assert fake.message_requests == []
