"""`plan-executor demo`: a throwaway Rust crate, a three-phase plan, and scripted stand-in agents.

THE AGENTS HERE ARE A STAND-IN: `tasks.agent.standin` plays the Anthropic Messages API on
127.0.0.1 and answers with scripted turns that make real edits (the editor tool's `create` and
`str_replace`). Everything else is the product: the real SDK and tool loop, the real gates
(cargo test, clippy, fmt, build), the real Prefect flow, mirror and artifacts.

The tests use :class:`ScriptedAgents` and :func:`make_crate` too.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from backend.settings import PORT_ENV, configured_port, temporary_environ

if TYPE_CHECKING:  # the stand-in is imported when a demo or a test runs, not with the CLI
    from anthropic.types import ToolUseBlockParam

    from tasks.agent.standin import Reply

CRATE_FILES = {
    "Cargo.toml": """[package]
name = "demo"
version = "0.1.0"
edition = "2021"

[dependencies]
""",
    ".gitignore": "target/\n",
    "src/lib.rs": """//! A tiny crate for the plan-executor demo.

/// Adds two numbers.
pub fn add(a: i64, b: i64) -> i64 {
    a + b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds() {
        assert_eq!(add(2, 2), 4);
    }
}
""",
    ".claude/agents/rust-developer.md": """---
description: Rust developer (demo definition)
model: claude-standin
---
You are a Rust developer. Implement the phase and keep the build, clippy and tests clean.
""",
}

ALPHA_TEST = """use demo::add;

#[test]
fn alpha_adds_positive_numbers() {
    assert_eq!(add(40, 2), 42);
}
"""

BETA_TEST = """use demo::add;

#[test]
fn beta_adds_negative_numbers() {
    assert_eq!(add(-40, -2), -42);
}
"""

REPORT_MODULE = """//! A report of sums.

/// Describes a sum in words.
pub fn describe(a: i64, b: i64) -> String {
    format!("{a} + {b} = {}", crate::add(a, b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_describes_a_sum() {
        assert_eq!(describe(1, 2), "1 + 2 = 3");
    }
}
"""

LIB_ANCHOR = "/// Adds two numbers."


def demo_plan(*, created: str | None = None) -> str:
    """Three phases: 1 and 2 in parallel, 3 after both."""
    created = created or f"{datetime.now(UTC):%Y-%m-%d}"
    return f"""# Demo: sums for the demo crate

**Created:** {created}
**Status:** Reviewed - Ready for Implementation

## Executive Summary

Add integration tests for `add` (two independent phases) and a report module that depends on them.

## Phases

### Phase 1: Alpha tests

**Principal Owner:** Rust Developer
**Goal:** Integration tests for positive sums.
**Dependencies:** None
**Blast Radius:** `cargo test --test alpha`

**Files to create:**
- `tests/alpha.rs` - integration test of `add` with positive numbers

**Deliverables:**
- An integration test file `tests/alpha.rs`

**Acceptance Criteria:**
- [ ] `tests/alpha.rs` exists
- [ ] `cargo test --test alpha` passes

---

### Phase 2: Beta tests

**Principal Owner:** Rust Developer
**Goal:** Integration tests for negative sums.
**Dependencies:** None
**Blast Radius:** `cargo test --test beta`

**Files to create:**
- `tests/beta.rs` - integration test of `add` with negative numbers

**Deliverables:**
- An integration test file `tests/beta.rs`

**Acceptance Criteria:**
- [ ] `tests/beta.rs` exists
- [ ] `cargo test --test beta` passes

---

### Phase 3: Report module

**Principal Owner:** Rust Developer
**Goal:** A `report` module that describes sums.
**Dependencies:** Phase 1, Phase 2
**Blast Radius:** `cargo test report`

**Files to create:**
- `src/report.rs` - the `describe` function and its unit test

**Files to modify:**
- `src/lib.rs` - declare `pub mod report;`

**Deliverables:**
- `src/report.rs` with `describe(a, b)`

**Acceptance Criteria:**
- [ ] `src/report.rs` exists
- [ ] `cargo test report` passes
- [ ] `describe` explains a sum in plain words, e.g. `1 + 2 = 3`

## Parallelization Opportunities

| Parallel Group | Phases | Reason |
|---|---|---|
| Group A | Phase 1, Phase 2 | independent test files |
| Group B | Phase 3 | needs both |
"""


def make_crate(root: Path, *, plan_text: str | None = None, plan_name: str | None = None) -> Path:
    """Write the demo crate and plan into ``root`` and commit them; returns the plan path."""
    from tasks.shell import run

    root.mkdir(parents=True, exist_ok=True)
    for relative, text in CRATE_FILES.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    plans = root / ".ai" / "plans"
    plans.mkdir(parents=True, exist_ok=True)
    plan_path = plans / (plan_name or f"{datetime.now(UTC):%Y-%m-%d}.demo-sums.md")
    plan_path.write_text(plan_text or demo_plan(), encoding="utf-8")
    (root / ".ai" / "logs").mkdir(parents=True, exist_ok=True)
    git_env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "plan-executor demo",
        "GIT_AUTHOR_EMAIL": "demo@localhost",
        "GIT_COMMITTER_NAME": "plan-executor demo",
        "GIT_COMMITTER_EMAIL": "demo@localhost",
    }
    for argv in (
        ["git", "init", "-q", "-b", "main"],
        ["cargo", "generate-lockfile", "--offline"],
        ["git", "add", "-A"],
        ["git", "commit", "-q", "-m", "demo crate and plan"],
    ):
        result = run(argv, cwd=root, env=git_env, timeout_s=120)
        if not result.ok:
            raise RuntimeError(f"{' '.join(argv)} failed: {result.tail()}")
    return plan_path


# -- the scripted agents ---------------------------------------------------------------------


@dataclass
class PhaseScript:
    """What the stand-in agent does for one phase."""

    edits: list[ToolUseBlockParam] = field(default_factory=list)
    """Tool calls of the first turn (build them with `standin.editor_create` etc.)."""
    claim: str = "Status: COMPLETE. All files created and tests pass."
    delay_s: float = 0.0
    """Seconds the first turn takes to arrive (overlap, timeouts, kills)."""
    cite: str | None = None
    """The file:line the verifier cites for this phase (default: the first file created)."""
    verdict: str = "PASS"
    """What the verifier records for each criterion of this phase with `record_verdict`:
    `PASS`, `FAIL`, or `none` (it answers in prose only and records nothing)."""
    verifier_prose: str = ""
    """Text the verifier writes beside its tool calls (default: a short line); never read for
    verdicts, so tests put misleading `VERDICT n: ...` lines here."""
    every_turn: bool = False
    """Repeat the edits (with the delay) on every turn: an agent that never finishes."""
    reply: Reply | None = None
    """A stand-in `Reply` for every work turn instead of the edits (e.g. an API error)."""
    later: list[list[ToolUseBlockParam]] = field(default_factory=list)
    """Tool calls of turns 2, 3, ... (each arriving after ``delay_s``): work that takes a while,
    e.g. a module registered in turn 1 and written in turn 2."""
    resolution: list[ToolUseBlockParam] = field(default_factory=list)
    """Tool calls the owner makes when asked to resolve an integration problem."""
    forever: Callable[[int], list[ToolUseBlockParam]] | None = None
    """Tool calls of work turn n (0, 1, 2, ...), for ever: an agent that never stops on its
    own, for the budgets and the no-progress rule to stop (see :func:`reading_forever`)."""


def reading_forever(path: str) -> Callable[[int], list[ToolUseBlockParam]]:
    """An agent that views the same file every turn: no change, no command (no progress)."""
    from tasks.agent.standin import editor_view

    return lambda turn: [editor_view(path)]


def new_commands_forever() -> Callable[[int], list[ToolUseBlockParam]]:
    """An agent that runs a command never run before every turn and writes nothing: progress
    by the rule's letter, so only a budget stops it."""
    from tasks.agent.standin import bash_command

    return lambda turn: [bash_command(f"echo looking around, turn {turn}")]


def demo_scripts() -> dict[str, PhaseScript]:
    from tasks.agent.standin import editor_create, editor_str_replace

    return {
        "1": PhaseScript(edits=[editor_create("tests/alpha.rs", ALPHA_TEST)], delay_s=1.0),
        "2": PhaseScript(edits=[editor_create("tests/beta.rs", BETA_TEST)], delay_s=1.0),
        "3": PhaseScript(
            edits=[
                editor_create("src/report.rs", REPORT_MODULE),
                editor_str_replace("src/lib.rs", LIB_ANCHOR, f"pub mod report;\n\n{LIB_ANCHOR}"),
            ]
        ),
    }


PHASE_HEADING = re.compile(r"^#\s*Phase\s+(?P<id>[^\s:]+)\s*:", re.M)
INTEGRATION_TASK = re.compile(r"^#\s*Phase\s+[^\s:]+\s*:.*: integration$", re.M)
VERIFIER_FOR = re.compile(r"read-only VERIFIER for phase (?P<id>[^\s(]+)")
CRITERION_ID = re.compile(r"^- criterion (?P<id>\S+?):", re.M)


class ScriptedAgents:
    """A responder for `StandinMessagesAPI(responder=..., auto_summary=False)`.

    Routes each request by the phase id in its first user message (`# Phase 2: ...`), so the
    concurrent conversations of a wave get their own scripts. Turn 1: the phase's edits; then
    a plain "done"; the summary request gets the phase's claim. Verifier calls: turn 1 records
    the phase's `verdict` (default PASS) for every criterion the `record_verdict` tool offers,
    citing ``cite`` (default: the phase's first created file at line 1); then "verified".
    """

    def __init__(self, scripts: Mapping[str, PhaseScript]) -> None:
        self.scripts = dict(scripts)
        self.phases_seen: list[str] = []

    def __call__(self, body: dict[str, Any]) -> Reply:
        from tasks.agent.standin import claude_code_turn, is_claude_code, working_directory

        reply = self._reply(body)
        # Claude Code (the claude-code runtime): the same actions in its own tools, with
        # absolute paths in the working directory it announces.
        if is_claude_code(body) and (cwd := working_directory(body)):
            return claude_code_turn(reply, cwd)
        return reply

    def _reply(self, body: dict[str, Any]) -> Reply:
        from tasks.agent.standin import (
            delayed,
            is_claude_code,
            text_turn,
            tool_turn,
            turns_taken,
        )

        messages = body.get("messages") or []
        first = _text(messages[0]) if messages else ""
        is_summary = (body.get("tool_choice") or {}).get("type") == "none"
        verifier = VERIFIER_FOR.search(first)
        if verifier:
            return self._verifier(verifier["id"], body, is_summary)
        match = PHASE_HEADING.search(first)
        pid = match["id"] if match else "?"
        script = self.scripts.get(pid, PhaseScript())
        if is_summary:
            return text_turn(script.claim)
        turns = turns_taken(messages)
        # Claude Code makes no separate summary request: its last message is the report.
        done = script.claim if is_claude_code(body) else f"Phase {pid}: done."
        if INTEGRATION_TASK.search(first):
            if turns == 0 and script.resolution:
                return tool_turn(*script.resolution, text=f"Resolving phase {pid}'s integration.")
            return text_turn(f"Phase {pid}: integration done.")
        if script.reply is not None:
            return script.reply
        if script.forever is not None:
            if turns == 0:
                self.phases_seen.append(pid)
            return tool_turn(*script.forever(turns), text=f"Still looking at phase {pid}.")
        if 1 <= turns <= len(script.later):
            reply = tool_turn(*script.later[turns - 1], text=f"Still on phase {pid}.")
            return delayed(reply, script.delay_s) if script.delay_s else reply
        if turns == 0 or (script.every_turn and script.edits):
            if turns == 0:
                self.phases_seen.append(pid)
            reply = (
                tool_turn(*script.edits, text=f"Working on phase {pid}.")
                if script.edits
                else text_turn(done)
            )
            return delayed(reply, script.delay_s) if script.delay_s else reply
        return text_turn(done)

    def _verifier(self, pid: str, body: dict[str, Any], is_summary: bool) -> Reply:
        from tasks.agent.standin import record_verdict, text_turn, tool_turn, turns_taken

        script = self.scripts.get(pid, PhaseScript())
        prose = script.verifier_prose or f"Phase {pid}: verified."
        turns = turns_taken(body.get("messages") or [])
        verdict = script.verdict.upper()
        ids = verdict_ids(body)
        if is_summary or turns > 0 or verdict == "NONE" or not ids:
            return text_turn(prose)
        path, _, line = (script.cite or _first_path(script) or "Cargo.toml:1").rpartition(":")
        reason = "the code there meets it" if verdict == "PASS" else "it does not meet it"
        calls = [record_verdict(cid, verdict, path, int(line), reason) for cid in ids]
        return tool_turn(*calls, text=prose)


def verdict_ids(body: dict[str, Any]) -> list[str]:
    """The criteria a verifier request asks about: the `record_verdict` tool's choices, else
    the `- criterion N:` lines of its task."""
    for tool in body.get("tools") or []:
        if tool.get("name") == "record_verdict":
            schema = tool.get("input_schema") or {}
            return list(schema.get("properties", {}).get("criterion", {}).get("enum") or [])
    messages = body.get("messages") or []
    first = _text(messages[0]) if messages else ""
    return [match["id"] for match in CRITERION_ID.finditer(first)]


def _first_path(script: PhaseScript) -> str | None:
    for call in script.edits:
        tool_input = call["input"]
        if tool_input.get("command") == "create" and tool_input.get("path"):
            return f"{tool_input['path']}:1"
    return None


def _text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    parts = []
    for block in content or []:
        if isinstance(block, dict) and isinstance(block.get("text"), str):
            parts.append(block["text"])
    return "\n".join(parts)


# -- the command ----------------------------------------------------------------------------


def run_demo(
    directory: Path | None,
    *,
    backend_mode: str = "auto",
    live: bool | None = None,
    environ: Mapping[str, str] | None = None,
    prefect_logs: bool = False,
    agent_runtime: str = "anthropic",
) -> int:
    import typer

    from cli.run import run_plan
    from tasks.agent.standin import StandinMessagesAPI
    from tasks.options import RunOptions

    if shutil.which("cargo") is None:
        typer.echo("error: the demo needs cargo on PATH", err=True)
        return 2
    root = Path(directory) if directory else Path(tempfile.mkdtemp(prefix="plan-executor-demo-"))
    root = root.resolve()
    plan_path = make_crate(root)
    banner = (
        "="
        * 72
        + "\nDEMO: the agents are played by a scripted STAND-IN for the Anthropic Messages API\n"
        "(tasks/agent/standin.py on 127.0.0.1). No API key is used and no model runs.\n"
        "The gates, the Prefect flow, the mirror and the reports are the real product.\n" + "=" * 72
    )
    typer.echo(banner)
    typer.echo(f"crate: {root}\nplan:  {plan_path}")
    agents = ScriptedAgents(demo_scripts())
    with (
        StandinMessagesAPI(responder=agents, auto_summary=False) as standin,
        temporary_environ(
            {
                "ANTHROPIC_BASE_URL": standin.base_url,
                "ANTHROPIC_API_KEY": "stand-in-no-key",
                PORT_ENV: os.environ.get(PORT_ENV),
            }
        ),
    ):
        port = demo_port(backend_mode)
        if port is not None:
            typer.echo(
                f"port {configured_port()} is taken by another program: the demo's Prefect "
                f"server uses port {port} ({PORT_ENV}={port})"
            )
            os.environ[PORT_ENV] = str(port)
        code = run_plan(
            plan_path,
            RunOptions.model_validate({"repo": root, "agent_runtime": agent_runtime}),
            backend_mode=backend_mode,
            live=live,
            prefect_logs=prefect_logs,
        )
        requests = len(standin.message_requests)
    typer.echo(banner.splitlines()[0])
    typer.echo(f"Stand-in answered {requests} Messages API requests.")
    typer.echo("\n".join(where_to_look(root, plan_path)))
    return code


def demo_port(backend_mode: str) -> int | None:
    """The port the demo's server should use instead of the configured one, or None.

    `run` stops with exit 2 when another program holds the port (a person's choice of port is
    not overridden silently there); the demo, meant to work at the first try, takes a free
    port instead. None when nothing needs changing: another backend is used (`ephemeral`, or
    PREFECT_API_URL), a server of this home is running (it is reused, on its own port), or the
    configured port is free."""
    from backend.server import ServerConfig, free_port, port_in_use, server_status

    if backend_mode == "ephemeral" or (
        backend_mode == "auto" and os.environ.get("PREFECT_API_URL")
    ):
        return None
    config = ServerConfig.from_env()
    if server_status(config) is not None or not port_in_use(config.host, config.port):
        return None
    return free_port(config.host)


def where_to_look(root: Path, plan_path: Path) -> list[str]:
    """The demo's closing pointers, each only when it exists: a run that stopped early (a
    backend that could not start, an invalid plan) wrote no checkpoints and no logs."""
    from cli.console import cli_command
    from plan_parser.checkpoints import read_plan_state

    lines = ["Where to look:"]
    state = read_plan_state(plan_path) if plan_path.is_file() else None
    if state is not None and state.phases:
        lines += [
            f"  - the plan file's mirror:   {plan_path}  (## Execution Checkpoints)",
            f"                              {cli_command()} status {plan_path}",
        ]
    log_dir = root / ".ai" / "logs"
    for log in sorted(log_dir.glob("*.plan-execution-log.md")):
        lines.append(f"  - the execution log:        {log}")
    transcripts = sorted(log_dir.glob("*-phase-*.md"))
    if transcripts:
        lines.append(f"  - the agents' transcripts:  {log_dir}/ ({len(transcripts)} files)")
    if state is not None and any(cp.flow_run_id for cp in state.phases.values()):
        lines += [
            "  - the Prefect UI:           the flow-run URL above (subflows, artifacts); if the server",
            "                              was started for this run it has stopped: `plan-executor",
            "                              server start` brings it back with the run's history",
        ]
    branch = _run_branch(root, plan_path)
    if branch is not None:
        lines.append(f"  - the phases' commits:      git -C {root} log --oneline main..{branch}")
    if len(lines) == 1:
        return ["Nothing was written: the run stopped before any phase started (see above)."]
    return lines


def _run_branch(root: Path, plan_path: Path) -> str | None:
    """The run's branch `plan-executor/<plan>` when the run made it."""
    from tasks.plan_input import plan_name
    from tasks.worktree import branch_tip, integration_branch

    if not (root / ".git").exists():
        return None
    branch = integration_branch(plan_name(plan_path))
    return branch if branch_tip(root, branch) else None
