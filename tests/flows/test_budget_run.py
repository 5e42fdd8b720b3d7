"""End to end: a run budget spent in wave 1 stops the run's later waves, and budget outcomes and
costs are recorded in the checkpoints, the execution log, the final report and the phase table
(real crate, real gates, a real Prefect server, agents played by the stand-in)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cli.demo import (
    ALPHA_TEST,
    BETA_TEST,
    PhaseScript,
    ScriptedAgents,
    make_crate,
    reading_forever,
)
from cli.run import checkpoint_cost_line
from plan_parser.checkpoints import read_plan_state
from tasks.agent.standin import editor_create
from tests.flows.conftest import needs_cargo, phase_of
from tests.flows.test_run_e2e import echo_flow_run_id, read_artifacts, run

pytestmark = [needs_cargo, pytest.mark.slow]


def budget_plan() -> str:
    """Wave 1: phase 1 (gates only) and phase 2 (an agent); wave 2: phase 3 after phase 1 and
    phase 4 after phase 2."""
    return f"""# Budget: a run that spends its budget in wave 1

**Created:** {datetime.now(UTC):%Y-%m-%d}
**Status:** Reviewed - Ready for Implementation

## Executive Summary

Check the crate, then add tests; the run's budget runs out on the way.

## Phases

### Phase 1: Check the crate

**Principal Owner:** self
**Goal:** The crate's tests pass as they are.
**Dependencies:** None
**Blast Radius:** `cargo test`

**Acceptance Criteria:**
- [ ] `cargo test` passes

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

---

### Phase 3: Alpha tests

**Principal Owner:** Rust Developer
**Goal:** Integration tests for positive sums.
**Dependencies:** Phase 1
**Blast Radius:** `cargo test --test alpha`

**Files to create:**
- `tests/alpha.rs` - integration test of `add` with positive numbers

**Acceptance Criteria:**
- [ ] `tests/alpha.rs` exists
- [ ] `cargo test --test alpha` passes

---

### Phase 4: More beta tests

**Principal Owner:** Rust Developer
**Goal:** More negative sums.
**Dependencies:** Phase 2
**Blast Radius:** `cargo test --test beta`

**Files to modify:**
- `tests/beta.rs` - one more case

**Acceptance Criteria:**
- [ ] `cargo test --test beta` passes
"""


def test_a_spent_run_budget_stops_the_next_wave_and_every_cost_is_recorded(
    tmp_path: Path, prefect_api_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan_path = make_crate(tmp_path / "crate", plan_text=budget_plan())
    agents = ScriptedAgents(
        {
            # Would never stop on its own: it reads the same file turn after turn.
            "2": PhaseScript(forever=reading_forever("Cargo.toml")),
            "3": PhaseScript(edits=[editor_create("tests/alpha.rs", ALPHA_TEST)]),
            "4": PhaseScript(edits=[editor_create("tests/beta.rs", BETA_TEST)]),
        }
    )

    # One token: phase 2's first turn spends the run's budget, whatever the turn cost.
    code, requests, echo = run(plan_path, agents, monkeypatch, max_tokens=1)

    assert code == 1, echo.text
    state = read_plan_state(plan_path)
    assert state is not None
    phases = state.phases
    assert {pid: cp.status for pid, cp in phases.items()} == {
        "1": "complete",  # the first wave's result stands
        "2": "budget",
        "3": "budget",
        "4": "skipped",
    }
    # Phase 2's agent finished its one turn and stopped at the run's limit: no further turn and,
    # the budget being spent, no summary request; phases 3 and 4 sent nothing at all.
    assert [phase_of(r) for r in requests] == ["2"] and agents.phases_seen == ["2"]
    assert (phases["2"].error or "").startswith(
        "owner agent stopped: run token budget spent: "
    ) and (phases["2"].error or "").endswith(" of 1 tokens")
    assert (phases["3"].error or "").startswith("not run: run token budget spent")
    assert phases["4"].error == "not run: depends on phase 2, which ended budget"

    # Tokens by kind and cost per phase in the checkpoints, from the API's own usage fields.
    spent = phases["2"].tokens or {}
    answered = requests[0]
    assert spent == {
        "input": answered.input_tokens,
        "output": answered.output_tokens,
        "cache_creation_input": answered.cache_creation_input_tokens,
        "cache_read_input": answered.cache_read_input_tokens,
    }
    from tasks.agent.pricing import PriceTable
    from tasks.agent.result import Usage

    usage = Usage(**{f"{kind}_tokens": count for kind, count in spent.items()})
    assert phases["2"].cost_usd == pytest.approx(
        PriceTable().cost("claude-standin", usage), abs=1e-4
    )
    assert (phases["2"].cost_usd or 0) > 0
    assert phases["1"].cost_usd is None and phases["3"].cost_usd is None
    assert checkpoint_cost_line(state).startswith(f"Cost: ${phases['2'].cost_usd:.4f} (")

    # The final report: status and cost per phase, the run's total, the limit reached.
    report = echo.text
    assert "| 2 | Beta tests | Rust Developer | 1 | budget |" in report
    assert f"${phases['2'].cost_usd:.4f}" in report
    assert "**Run budget reached:** run token budget spent" in report
    assert "**Budget:** run: 1 tokens; per phase: no limit" in report
    assert "stopped by a budget or by the no-progress rule" in report  # next steps
    # The plan's Implementation Summary and the execution log carry the cost too.
    assert "**Cost:** $" in plan_path.read_text()
    log = next((plan_path.parents[2] / ".ai" / "logs").glob("*.plan-execution-log.md")).read_text()
    assert "Phase 2 Budget" in log and "- Cost: $" in log
    assert "- Budget: run: 1 tokens; per phase: no limit; no-progress stop after 30 turns" in log

    # The phase-table artifact.
    flow_run_id = echo_flow_run_id(echo.text, state)
    found = asyncio.run(read_artifacts(flow_run_id))
    table = next(a for k, a in found.items() if str(k).endswith("-phases"))
    assert "cost_usd" in str(table.data) and "budget" in str(table.data)
