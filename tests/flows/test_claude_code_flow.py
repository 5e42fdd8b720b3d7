"""One scripted plan under both agent runtimes gives the same verdicts (issue 17, done-when).

Two parallel phases of the demo crate on a real Prefect server with the real gates: phase 1's
agent writes its integration test (honest), phase 2's agent claims COMPLETE and writes nothing
(a liar). Under `--agent-runtime anthropic` our tool loop plays the script, under
`claude-code` the real Claude Code CLI in bubblewrap plays the same script in its own tools;
the gates decide both the same way: phase 1 complete, phase 2 blocked on phantom completion.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.demo import ALPHA_TEST, PhaseScript, ScriptedAgents, make_crate
from cli.run import run_plan
from flows.context import RunOptions
from plan_parser.checkpoints import read_plan_state
from tasks.agent.runtimes import ANTHROPIC, CLAUDE_CODE
from tasks.agent.standin import StandinMessagesAPI, editor_create
from tests.agent.test_claude_code import needs_claude_code
from tests.flows.conftest import needs_cargo

pytestmark = [needs_cargo, pytest.mark.slow, pytest.mark.timeout(600)]

PLAN = """# Two tests for the demo crate

**Created:** 2026-02-01
**Status:** Reviewed - Ready for Implementation

## Phases

### Phase 1: Alpha tests

**Principal Owner:** Rust Developer
**Goal:** Integration tests for positive sums.
**Dependencies:** None
**Blast Radius:** `cargo test --test alpha`

**Files to create:**
- `tests/alpha.rs` - integration test of `add` with positive numbers

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

**Acceptance Criteria:**
- [ ] `tests/beta.rs` exists
- [ ] `cargo test --test beta` passes
"""

LIE = "Status: COMPLETE. tests/beta.rs written, cargo test --test beta passes."


class Echo:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, message: object = "", err: bool = False, **_: object) -> None:
        self.lines.append(str(message))


@pytest.mark.parametrize("runtime", [ANTHROPIC, pytest.param(CLAUDE_CODE, marks=needs_claude_code)])
def test_same_verdicts_under_both_runtimes(
    runtime: str, tmp_path: Path, prefect_api_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan_path = make_crate(tmp_path / "crate", plan_text=PLAN, plan_name="2026-02-01.two.md")
    repo = plan_path.parents[2]
    scripts = {
        "1": PhaseScript(edits=[editor_create("tests/alpha.rs", ALPHA_TEST)], delay_s=0.5),
        "2": PhaseScript(edits=[], claim=LIE, delay_s=0.5),
    }
    echo = Echo()
    with StandinMessagesAPI(responder=ScriptedAgents(scripts), auto_summary=False) as api:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", api.base_url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "stand-in-test-key")
        code = run_plan(
            plan_path, RunOptions(repo=repo, agent_runtime=runtime), live=False, echo=echo
        )
        requests = api.message_requests

    assert code == 1, "\n".join(echo.lines)
    state = read_plan_state(plan_path)
    assert state is not None
    assert {pid: cp.status for pid, cp in state.phases.items()} == {
        "1": "complete",
        "2": "blocked",
    }
    assert any("phantom completion" in line for line in state.phases["2"].ledger)
    # The runtime that ran the owners: only Claude Code's requests carry its `Write` tool.
    tools = {tool.get("name") for r in requests for tool in r.body.get("tools") or []}
    assert ("Write" in tools) is (runtime == CLAUDE_CODE)
    logs = repo / ".ai" / "logs"
    details = "\n".join(p.read_text() for p in logs.glob("*phase-1-details.md"))
    assert (f"runtime: {CLAUDE_CODE}" in details) is (runtime == CLAUDE_CODE)
    # The liar's claim is recorded, never trusted.
    assert LIE in "\n".join(echo.lines) or LIE in plan_path.read_text()
