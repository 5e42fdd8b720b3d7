"""The checkpoint section opens with the phases; plan-executor's own record (what it changed in
the file) is one HTML comment line after the block. Files written by older versions, with the
record as a `plan_executor:` list item, are still read, resumed and restored."""

from __future__ import annotations

import asyncio
from pathlib import Path

from plan_parser.checkpoints import (
    PhaseCheckpoint,
    read_execution_state,
    record_comment,
    render_record_comment,
)
from plan_parser.writer import apply_phases, apply_status, apply_summary, remove_execution_state

PLAN = """\
# Feature X

**Status:** Reviewed - Ready for Implementation

## Phases

### Phase 1: Types
**Principal Owner:** Rust Developer

### Phase 2: Parser
**Principal Owner:** Rust Developer
"""

# Exactly what plan-executor wrote before the record moved into a comment (a demo run's file).
OLD_SHAPE = PLAN.replace(
    "**Status:** Reviewed - Ready for Implementation", "**Status:** Partially Implemented (1/2)"
) + (
    "\n"
    "## Execution Checkpoints\n"
    "\n"
    "```yaml\n"
    "- plan_executor:\n"
    "    placement: appended\n"
    '    separator: "\\n"\n'
    "    status_where: body\n"
    '    status_before: "Reviewed - Ready for Implementation"\n'
    '    status_text_before: "**Status:** Reviewed - Ready for Implementation\\n"\n'
    "    summary: true\n"
    "    tail_lines: 4\n"
    "- phase_1:\n"
    "    status: complete\n"
    "    started_at: 2026-12-07T17:20:57Z\n"
    "    completed_at: 2026-12-07T17:21:03Z\n"
    "    phase_hash: a9677de8de690321\n"
    "- phase_2:\n"
    "    status: blocked\n"
    "    started_at: 2026-12-07T17:20:57Z\n"
    "    failed_at: 2026-12-07T17:21:02Z\n"
    '    error: "gates failed"\n'
    "```\n"
    "\n"
    "## Implementation Summary\n"
    "\n"
    "**Status:** Partially Implemented (1/2)\n"
)


def _cp(phase_id: str, status: str = "complete") -> PhaseCheckpoint:
    return PhaseCheckpoint(phase_id=phase_id, status=status)  # type: ignore[arg-type]


def test_the_section_opens_with_the_phases_and_the_record_is_a_comment() -> None:
    text = apply_summary(apply_status(apply_phases(PLAN, [_cp("1")]), "Implemented"), "Done.")
    section = text.split("## Execution Checkpoints\n", 1)[1]
    assert section.startswith("\n```yaml\n- phase_1:\n    status: complete\n```\n<!-- ")
    assert "plan_executor" not in text and "tail_lines:" not in text
    comment = section.split("```\n", 2)[1].splitlines()[0]
    assert record_comment(comment) == {
        "placement": "appended",
        "separator": "\n",
        "status_where": "body",
        "status_before": "Reviewed - Ready for Implementation",
        "status_text_before": "**Status:** Reviewed - Ready for Implementation\n",
        "summary": "true",
        "tail_lines": "4",
    }
    state = read_execution_state(text)
    assert state is not None and state.written_by_executor and state.has_summary
    assert state.status_before == "Reviewed - Ready for Implementation"
    assert remove_execution_state(text) == PLAN


def test_the_comment_cannot_end_early_or_break_the_line() -> None:
    record = {"status_before": "a --> b -- c <!-- d\n\u2028é \\-", "tail_lines": "0"}
    line = render_record_comment(record)
    inner = line[len("<!-- ") : -len(" -->")]
    assert "--" not in inner and ">" not in inner and "\n" not in line and line.isascii()
    assert record_comment(line) == record
    assert record_comment("<!-- plan-executor: not json -->") is None
    assert record_comment("<!-- something else -->") is None


def test_a_status_with_comment_syntax_round_trips() -> None:
    plan = PLAN.replace("Reviewed - Ready for Implementation", "Draft --> review <!-- x -->")
    text = apply_summary(apply_status(apply_phases(plan, [_cp("1")]), "Done -->"), "**x** -->")
    state = read_execution_state(text)
    assert state is not None and state.problems == [] and state.has_summary
    assert state.status_before == "Draft --> review <!-- x -->"
    assert remove_execution_state(text) == plan


def test_a_file_in_the_old_shape_is_read_resumed_and_restored() -> None:
    state = read_execution_state(OLD_SHAPE)
    assert state is not None and state.problems == []
    assert state.written_by_executor and state.has_summary
    assert state.status_before == "Reviewed - Ready for Implementation"
    assert {pid: cp.status for pid, cp in state.phases.items()} == {"1": "complete", "2": "blocked"}
    assert state.phases["1"].phase_hash == "a9677de8de690321"
    assert remove_execution_state(OLD_SHAPE) == PLAN  # the old record still restores the file

    resumed = apply_phases(OLD_SHAPE, [_cp("2", "running")])  # the next run's first write
    assert "plan_executor" not in resumed and "<!-- plan-executor: " in resumed
    assert resumed.endswith(
        "-->\n\n## Implementation Summary\n\n**Status:** Partially Implemented (1/2)\n"
    )
    assert resumed.count("## Implementation Summary") == 1
    again = read_execution_state(resumed)
    assert again is not None and again.problems == [] and again.has_summary
    assert {pid: cp.status for pid, cp in again.phases.items()} == {"1": "complete", "2": "running"}
    assert again.status_before == "Reviewed - Ready for Implementation"
    assert remove_execution_state(resumed) == PLAN


def test_a_skipped_phase_gets_no_failed_at(tmp_path: Path) -> None:
    from tasks.mirror import PlanMirror

    plan = tmp_path / "plan.md"
    plan.write_text(PLAN)
    mirror = PlanMirror(plan, tmp_path)

    async def scenario() -> None:
        await mirror.transition("2", "blocked", error="gates failed")  # an earlier run
        await mirror.transition("2", "skipped", error="depends on phase 1, which is blocked")

    asyncio.run(scenario())
    state = read_execution_state(plan.read_text())
    assert state is not None
    skipped = state.phases["2"]
    assert skipped.status == "skipped" and skipped.failed_at is None
    assert skipped.completed_at is None and skipped.error
