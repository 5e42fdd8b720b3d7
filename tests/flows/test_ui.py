"""What the Prefect UI shows, as pure functions: run names, state messages, a phase's page, the
progress line, the gates task's state. The same facts read back through the Prefect API after a
real run are asserted in tests/flows/test_run_e2e.py (test_agent_claiming_success_...)."""

from __future__ import annotations

from pathlib import Path

from flows.context import PhaseOutcome
from flows.report import RunReport
from flows.ui import (
    phase_message,
    phase_page,
    phase_run_name,
    plan_run_name,
    progress_text,
    run_message,
    run_state_name,
    transcripts_of,
)
from tasks.gates.ledger import Ledger, LedgerEntry, Verdict
from tasks.phase_steps import gates_state

MISSING = LedgerEntry(
    check="file src/shout.rs", verdict=Verdict.FAIL, evidence="src/shout.rs is missing"
)
CLIPPY = LedgerEntry(
    check="lint", exit_code=101, verdict=Verdict.FAIL, evidence="--- output tail ---\nerror: x"
)
BUILD = LedgerEntry(check="build", exit_code=0, verdict=Verdict.PASS, evidence="exit 0")


def outcome(pid: str, status: str, *entries: LedgerEntry, **fields: object) -> PhaseOutcome:
    return PhaseOutcome(
        phase_id=pid,
        title=f"Phase {pid} title",
        status=status,  # type: ignore[arg-type]
        ledger=Ledger(entries=list(entries)),
        **fields,  # type: ignore[arg-type]
    )


def test_runs_are_named_by_repository_and_plan() -> None:
    name = plan_run_name(
        Path("/src/tiny-crate/.ai/plans/2026-11-24.tiny.md"), Path("/src/tiny-crate")
    )
    assert name == "tiny-crate: 2026-11-24.tiny"
    assert phase_run_name("3", "Shouting Module") == "phase-3: Shouting Module"
    assert phase_run_name("3") == "phase-3"


def test_the_run_message_says_the_outcome_and_why() -> None:
    report = RunReport(
        plan_path="p.md",
        status="Partially Implemented (2/3 phases complete)",
        outcomes=[
            outcome("1", "complete", BUILD),
            outcome("2", "complete", BUILD),
            outcome("3", "blocked", BUILD, MISSING, CLIPPY, error="[fail] file src/shout.rs"),
        ],
    )
    assert run_message(report) == (
        "2/3 complete; phase 3 blocked: file src/shout.rs: src/shout.rs is missing (+1 more failing)"
    )
    report.outcomes[2] = outcome(
        "3", "skipped", error="not run: depends on phase 2, which ended timeout"
    )
    report.outcomes[1] = outcome("2", "timeout", error="phase exceeded its timeout of 60s")
    assert run_message(report) == (
        "1/3 complete; phase 2 timeout: phase exceeded its timeout of 60s; "
        "phase 3 skipped (depends on phase 2)"
    )
    assert run_state_name(report) == "Partial"  # the badge in the runs list
    report.outcomes[0] = outcome("1", "blocked", MISSING)
    assert run_state_name(report) == "Failed"


def test_a_complete_run_and_an_invalid_plan_say_so_and_differ() -> None:
    done = RunReport(
        plan_path="p.md", status="Implemented", outcomes=[outcome("1", "complete", BUILD)]
    )
    assert run_message(done) == "1/1 complete"
    invalid = RunReport(plan_path="p.md", status="invalid", invalid=True, errors=["E-DEP x"])
    assert run_message(invalid) == "invalid plan: E-DEP x"
    assert (run_state_name(done), run_state_name(invalid)) == ("Completed", "Invalid")
    preflight = RunReport(
        plan_path="p.md",
        status="Not Implemented (0/1 phases complete)",
        preflight_ok=False,
        preflight_message="the tree has uncommitted changes",
        outcomes=[outcome("1", "pending")],
    )
    assert run_message(preflight).startswith("pre-flight failed, no phase ran: the tree has")
    final = RunReport(
        plan_path="p.md",
        status="Partially Implemented",
        outcomes=[outcome("1", "complete", BUILD)],
        final_ledger=Ledger(entries=[CLIPPY]),
    )
    assert run_message(final) == "1/1 complete; final validation failed: lint (exit 101): error: x"


def test_the_phase_message_names_the_first_failing_check() -> None:
    blocked = outcome("3", "blocked", BUILD, MISSING)
    assert phase_message(blocked) == "blocked: file src/shout.rs: src/shout.rs is missing"
    assert phase_message(outcome("1", "complete", BUILD)) == "complete (1 checks)"


def test_a_phase_page_shows_the_ledger_the_claim_beside_the_evidence_and_the_transcripts(
    tmp_path: Path,
) -> None:
    blocked = outcome(
        "3",
        "blocked",
        BUILD,
        MISSING,
        CLIPPY,
        claims={"owner": "Status: COMPLETE. Created src/shout.rs."},
        transcripts={"owner": str(tmp_path / ".ai/logs/2026-12-07.x-phase-3-details.md")},
    )
    page = phase_page(blocked, transcripts=transcripts_of(blocked, tmp_path))
    assert page.startswith("# Phase 3: Phase 3 title\n\n**Verdict:** BLOCKED: file src/shout.rs")
    assert "| pass | build (exit 0) | yes | verified | exit 0 |" in page
    assert "| **FAIL** | file src/shout.rs | yes | verified | src/shout.rs is missing |" in page
    assert "| **FAIL** | lint (exit 101) | yes | verified | error: x |" in page  # no tail marker
    claim_row = next(line for line in page.splitlines() if line.startswith("| owner |"))
    assert "Status: COMPLETE. Created src/shout.rs." in claim_row
    assert "src/shout.rs is missing" in claim_row  # what the checks found, in the same row
    assert "- owner: `.ai/logs/2026-12-07.x-phase-3-details.md`" in page
    # The story first: the claim and what was found come before the full ledger.
    assert page.index("| owner |") < page.index("## Checks (the evidence)")
    quiet = phase_page(outcome("1", "complete", BUILD))
    assert "- none (no agent was called)" in quiet and "Agents claimed" not in quiet


def test_progress_names_the_running_phases() -> None:
    text = progress_text(1, 3, "1", "complete", [("2", "Beta tests"), ("3", "Report")])
    assert (
        text
        == "1/3 phases finished; phase 1 complete; running: phase 2: Beta tests, phase 3: Report"
    )
    assert progress_text(3, 3, "3", "blocked", []).endswith("running: none")


def test_the_gates_state_is_failed_with_the_ledger_when_a_check_failed() -> None:
    failing = Ledger(entries=[BUILD, MISSING, CLIPPY])
    state = gates_state(failing)
    assert state.is_failed()
    assert state.data == failing  # the phase reads the ledger from the Failed state
    assert state.message == (
        "2 failing: [fail] file src/shout.rs (verified): src/shout.rs is missing (+1 more)"
    )
    passing = gates_state(Ledger(entries=[BUILD]))
    assert passing.is_completed() and passing.data == Ledger(entries=[BUILD])
    awaiting = LedgerEntry(check="criterion 2", verdict=Verdict.NEEDS_JUDGEMENT)
    assert gates_state(Ledger(entries=[BUILD, awaiting])).is_completed()  # not a failure yet
