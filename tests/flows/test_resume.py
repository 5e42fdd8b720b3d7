"""Resume without Prefect (tasks/resume.py): which phases a run does not run again, the attempt
an interrupted run left, and the outcome a resumed phase reports."""

from __future__ import annotations

from pathlib import Path

from flows.context import plain_outcome, resumed_outcome
from plan_parser import parse_text
from plan_parser.checkpoints import ExecutionState, PhaseCheckpoint
from plan_parser.model import Plan
from tasks.resume import (
    MARKED_COMPLETE,
    continued_attempt,
    landing_branch,
    marked_complete,
    marked_complete_ids,
    pending_checkpoint,
    resumable_phases,
    resume_reason,
)
from tests.parser.helpers import phase_block, plan_text


def _plan() -> Plan:
    return parse_text(
        plan_text(
            phase_block("1", "Config", files=["src/config.rs"]),
            phase_block("2", "Cache", deps="Phase 1"),
            phase_block("3a", "Done by hand \u2705 COMPLETE", deps="Phase 1"),
        ),
        "2026-02-01.resume-me.md",
    )


def _state(**checkpoints: PhaseCheckpoint) -> ExecutionState:
    return ExecutionState(phases=dict(checkpoints))


def test_a_complete_unchanged_checkpoint_resumes_only_while_its_files_exist(tmp_path: Path) -> None:
    plan = _plan()
    previous = _state(
        **{
            "1": PhaseCheckpoint(
                phase_id="1", status="complete", phase_hash=plan.phase("1").body_hash
            )
        }
    )
    assert resumable_phases(plan, previous, tmp_path, ["1", "2"]) == {}  # src/config.rs missing
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "config.rs").write_text("// config\n")
    resumed = resumable_phases(plan, previous, tmp_path, ["1", "2"])
    assert list(resumed) == ["1"] and resume_reason(resumed["1"]) == "checkpoint"


def test_a_checkpoint_is_matched_however_its_id_is_spelled(tmp_path: Path) -> None:
    plan = _plan()
    previous = _state(
        **{
            "3A": PhaseCheckpoint(
                phase_id="3A", status="complete", phase_hash=plan.phase("3a").body_hash
            )
        }
    )
    resumed = resumable_phases(plan, previous, tmp_path, ["3a"])
    assert resumed["3a"].phase_id == "3a"  # the plan's spelling, for the mirror
    assert resume_reason(resumed["3a"]) == "checkpoint"


def test_a_changed_or_unfinished_phase_runs_again(tmp_path: Path) -> None:
    plan = _plan()
    changed = _state(**{"2": PhaseCheckpoint(phase_id="2", status="complete", phase_hash="0" * 16)})
    failed = _state(
        **{
            "2": PhaseCheckpoint(
                phase_id="2", status="failed", phase_hash=plan.phase("2").body_hash
            )
        }
    )
    assert resumable_phases(plan, changed, tmp_path, ["2"]) == {}
    assert resumable_phases(plan, failed, tmp_path, ["2"]) == {}


def test_a_phase_marked_complete_in_the_plan_resumes_without_a_checkpoint(tmp_path: Path) -> None:
    plan = _plan()
    resumed = resumable_phases(plan, None, tmp_path, ["2", "3a"])
    assert list(resumed) == ["3a"]
    assert resumed["3a"] == marked_complete(plan.phase("3a"))
    assert resume_reason(resumed["3a"]) == MARKED_COMPLETE
    assert marked_complete_ids(resumed) == ["3a"]


def test_an_interrupted_attempt_is_continued_only_on_unchanged_text() -> None:
    phase = _plan().phase("2")
    running = PhaseCheckpoint(
        phase_id="2", status="running", phase_hash=phase.body_hash, extra={"attempt": "abc-2"}
    )
    assert continued_attempt(_state(**{"2": running}), phase) == "abc-2"
    edited = running.model_copy(update={"phase_hash": "0" * 16})
    assert continued_attempt(_state(**{"2": edited}), phase) is None
    ended = running.model_copy(update={"status": "failed"})
    assert continued_attempt(_state(**{"2": ended}), phase) is None
    no_attempt = running.model_copy(update={"extra": {}})
    assert continued_attempt(_state(**{"2": no_attempt}), phase) is None
    assert continued_attempt(None, phase) is None


def test_phases_that_run_start_pending_with_their_hash() -> None:
    phase = _plan().phase("2")
    pending = pending_checkpoint(phase)
    assert (pending.phase_id, pending.status, pending.phase_hash) == (
        "2",
        "pending",
        phase.body_hash,
    )


def test_previous_work_is_looked_for_on_the_plan_branch_only_with_worktrees() -> None:
    plan_path = Path("/r/.ai/plans/2026-02-01.resume-me.md")
    assert landing_branch(plan_path, worktrees=True, on_current_branch=False) == (
        "plan-executor/resume-me"
    )
    assert landing_branch(plan_path, worktrees=True, on_current_branch=True) is None
    assert landing_branch(plan_path, worktrees=False, on_current_branch=False) is None


def test_a_resumed_outcome_carries_the_checkpoints_record() -> None:
    phase = _plan().phase("1")
    checkpoint = PhaseCheckpoint(
        phase_id="1",
        status="complete",
        phase_hash=phase.body_hash,
        artifacts=["src/config.rs"],
        tokens={"input": 10, "output": 5},
        cost_usd=0.25,
        flow_run_id="run-1",
    )
    outcome = resumed_outcome(phase, checkpoint, 2)
    assert (outcome.status, outcome.wave, outcome.owner) == ("complete", 2, "rust-developer")
    assert outcome.artifacts == ["src/config.rs"] and outcome.tokens == {"input": 10, "output": 5}
    assert (outcome.cost_usd, outcome.flow_run_id) == (0.25, "run-1")
    assert outcome.resumed and outcome.verdict == "complete (checkpoint)"


def test_a_plain_outcome_says_why_the_phase_did_not_run() -> None:
    phase = _plan().phase("2")
    outcome = plain_outcome(phase, 1, "skipped", "not run: depends on phase 1, which ended failed")
    assert (outcome.phase_id, outcome.title, outcome.status) == ("2", "Cache", "skipped")
    assert outcome.error == "not run: depends on phase 1, which ended failed"
    assert not outcome.resumed and plain_outcome(phase, 1, "pending").error is None
