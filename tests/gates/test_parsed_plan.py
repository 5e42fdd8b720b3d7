"""The whole gate chain on a plan read by the real parser: pre-flight, two phases, final."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from plan_parser.parser import parse_plan
from tasks.gates.final import run_final_validation
from tasks.gates.ledger import Verdict, VerdictStatus
from tasks.gates.phase_gates import run_phase_gates, snapshot
from tasks.gates.preflight import run_preflight
from tasks.gates.verdict import decide
from tests.gates.helpers import blocked_by, git
from tests.gates.test_phase_gates import add_halve

PLAN = """# Halve numbers

**Created:** 2026-01-01
**Status:** Ready for Implementation

## Phases

### Phase 1: Add halve

**Principal Owner:** Rust Developer

**Goal:** Add a halve function to the math module.

**Dependencies:** None

**Blast Radius:** `cargo test math::`

**Files to Modify:**
- `src/math.rs` - the new function and its test

**Acceptance Criteria:**
- [ ] File `src/math.rs` exists with >30 lines
- [ ] `grep "pub fn halve" src/math.rs` succeeds
- [ ] `cargo test math::` runs 4+ tests
- [ ] The function name reads naturally

### Phase 2: Document halve

**Principal Owner:** Rust Developer

**Dependencies:** Phase 1

**Blast Radius:** Documentation only

**Files to Create:**
- `docs/halve.md`

**Acceptance Criteria:**
- [ ] File `docs/halve.md` exists
"""


def test_parsed_plan_through_preflight_phases_and_final(
    repo_factory: Callable[[str], Path],
) -> None:
    repo = repo_factory("single")
    agents = repo / ".claude" / "agents"
    agents.mkdir(parents=True)
    (agents / "rust-developer.md").write_text("---\nname: rust-developer\n---\nYou write Rust.\n")
    git(repo, "add", ".claude")
    git(repo, "commit", "-q", "-m", "agents")
    plan_path = repo / ".ai" / "plans" / "2026-01-01.halve.md"
    plan_path.parent.mkdir(parents=True)
    plan_path.write_text(PLAN)
    plan = parse_plan(plan_path, repo=repo)
    one, two = plan.phases

    preflight = run_preflight(repo, plan, plan_path=plan_path)
    assert preflight.ok, preflight.message
    baseline = preflight.baseline
    assert baseline is not None and baseline.passed == 7

    # Phase 1: nothing done yet → phantom completion; then the work → COMPLETE.
    start = snapshot(repo, baseline=baseline)
    phantom = decide(run_phase_gates(repo, one, start=start, baseline=baseline))
    blocked_by(phantom, "scope: src/math.rs changed", "phantom completion")
    blocked_by(phantom, "criterion 2", "no match")
    add_halve(repo)
    done = decide(run_phase_gates(repo, one, start=start, baseline=baseline))
    assert done.status is VerdictStatus.COMPLETE, [e.line() for e in done.failing]
    assert [e.evidence for e in done.needs_judgement] == ["The function name reads naturally"]
    git(repo, "commit", "-q", "-am", "phase 1")

    # Phase 2: a prose blast radius is not run; the default scope is.
    start = snapshot(repo, baseline=baseline)
    (repo / "docs").mkdir()
    (repo / "docs" / "halve.md").write_text("# halve\n\nHalves a number.\n")
    ledger = run_phase_gates(repo, two, start=start, baseline=baseline)
    by_check = {e.check: e for e in ledger.entries}
    assert by_check["blast-radius"].verdict is Verdict.NOT_RUN
    assert by_check["tests (default scope): cargo test"].evidence.startswith("8 passed")
    assert by_check["scope: docs/halve.md changed"].evidence == "docs/halve.md (A)"
    assert decide(ledger).status is VerdictStatus.COMPLETE

    final = run_final_validation(repo, baseline=baseline)
    assert decide(final).status is VerdictStatus.COMPLETE, [e.line() for e in final.entries]
