"""The checkpoint section, status line and summary on hand-made plans: shapes, traps, errors."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from plan_parser.checkpoints import (
    PhaseCheckpoint,
    read_execution_state,
    read_plan_state,
    utc_now,
)
from plan_parser.writer import (
    PlanFileWriter,
    PlanWriteError,
    apply_phases,
    apply_status,
    apply_summary,
    remove_execution_state,
)

SEED_SECTION = """\
## Execution Checkpoints

- phase_1:
    status: complete
    completed_at: 2025-12-19T14:30:00Z
    artifacts: [research/lib/src/feature.rs, research/lib/src/feature/tests.rs]
- phase_2:
    status: complete
    completed_at: 2025-12-19T15:00:00Z
    artifacts: [research/cli/src/commands/feature.rs, tests/integration/feature.rs]
- phase_3:
    status: failed
    failed_at: 2025-12-19T15:30:00Z
    error: "Type error in parser.rs:42"
    last_successful_step: "Created parser module"
"""

PLAN_A = """\
# Feature X

**Created:** 2025-12-19
**Status:** Reviewed - Ready for Implementation

## Phases

### Phase 1: Types
**Principal Owner:** Rust Developer

## Review Summary

**Status:** ✅ SUCCESS
"""


def _plan(tmp_path: Path, text: str | bytes, name: str = "plan.md") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


def _cp(phase_id: str, status: str = "complete", **fields: object) -> PhaseCheckpoint:
    return PhaseCheckpoint.model_validate({"phase_id": phase_id, "status": status, **fields})


# ---- the seed's hand-written form ---------------------------------------------------------------


def test_reads_the_seeds_bare_list_section() -> None:
    state = read_execution_state(PLAN_A + "\n" + SEED_SECTION)
    assert state is not None and not state.written_by_executor
    assert list(state.phases) == ["1", "2", "3"]
    assert state.phases["1"].artifacts == [
        "research/lib/src/feature.rs",
        "research/lib/src/feature/tests.rs",
    ]
    assert state.phases["1"].completed_at == "2025-12-19T14:30:00Z"
    failed = state.phases["3"]
    assert (failed.status, failed.error, failed.last_successful_step) == (
        "failed",
        "Type error in parser.rs:42",
        "Created parser module",
    )
    assert state.problems == []


def test_reads_a_fenced_section_whose_heading_is_a_yaml_comment() -> None:
    text = (
        PLAN_A
        + "\n## Execution Checkpoints\n\n```yaml\n## Execution Checkpoints\n\n- phase_7a:\n    status: in_progress\n```\n"
    )
    state = read_execution_state(text)
    assert state is not None
    assert state.phases["7a"].status == "running"


def test_writing_replaces_a_hand_written_section_in_place_and_clear_restores_it(
    tmp_path: Path,
) -> None:
    original = PLAN_A.replace("## Review Summary", SEED_SECTION + "\n## Review Summary")
    plan = _plan(tmp_path, original)
    writer = PlanFileWriter(plan)
    writer.set_phase(_cp("4", "running", started_at="2025-12-19T16:00:00Z"))
    text = plan.read_text()
    assert text.count("\n## Execution Checkpoints\n") == 1  # (the old one is kept in the record)
    assert text.index("## Execution Checkpoints") < text.index("## Review Summary")
    state = read_plan_state(plan)
    assert state is not None and state.written_by_executor
    assert list(state.phases) == ["1", "2", "3", "4"]
    assert state.phases["3"].error == "Type error in parser.rs:42"
    writer.set_summary("**Completed:** now")
    assert text.split("## Review Summary")[1] == plan.read_text().split("## Review Summary")[1]
    writer.clear_execution_state()
    assert plan.read_text() == original


def test_reads_and_replaces_the_seed_example_copied_literally_into_a_fence(tmp_path: Path) -> None:
    """The seed shows heading and list inside one ```yaml fence; agents copied it like that."""
    fenced = "```yaml\n" + SEED_SECTION + "```\n"
    original = PLAN_A + "\n" + fenced + "\nTrailing words.\n"
    state = read_execution_state(original)
    assert state is not None and list(state.phases) == ["1", "2", "3"]
    plan = _plan(tmp_path, original)
    writer = PlanFileWriter(plan)
    writer.set_phase(_cp("3", "complete"))
    text = plan.read_text()
    assert "```yaml\n## Execution Checkpoints" not in text
    assert re.search(r"```\n<!-- plan-executor: \{.*\} -->\n\nTrailing words\.\n\Z", text)
    state = read_plan_state(plan)
    assert state is not None and state.written_by_executor
    assert [c.status for c in state.phases.values()] == ["complete"] * 3
    writer.set_summary("**Completed:** now")
    writer.set_summary("**Completed:** later")
    assert plan.read_text().endswith("**Completed:** later\n\nTrailing words.\n")
    writer.clear_execution_state()
    assert plan.read_text() == original


# ---- broken sections ----------------------------------------------------------------------------


BROKEN = """\
## Execution Checkpoints

- phase_1:
    status: complete
    artifacts: [a.rs, b.rs
- phase_2:
    status: failed
    error: "unterminated
- phase_3:
    status: done
"""


def test_a_broken_section_reads_what_it_can_and_says_where() -> None:
    state = read_execution_state(PLAN_A + "\n" + BROKEN)
    assert state is not None
    assert list(state.phases) == ["3"]
    assert state.phases["3"].status == "complete"  # `done` is the seed's word for complete
    assert any("not valid YAML" in problem for problem in state.problems)
    lines = [problem.split(":")[0] for problem in state.problems]
    first_line = PLAN_A.count("\n") + 2  # the heading
    assert f"line {first_line + 2}" in lines  # phase_1's entry


def test_writing_over_a_broken_section_replaces_it(tmp_path: Path) -> None:
    original = PLAN_A + "\n" + BROKEN
    plan = _plan(tmp_path, original)
    writer = PlanFileWriter(plan)
    writer.set_phase(_cp("1", "running"))
    state = read_plan_state(plan)
    assert state is not None and state.problems == []
    assert set(state.phases) == {"1", "3"}
    writer.clear_execution_state()
    assert plan.read_text() == original


def test_garbage_inside_the_section_never_raises() -> None:
    for body in [
        "- [\n",
        "{{{",
        "- 1\n- 2\n",
        "phase_1: 3\n",
        "- phase_x:\n    tokens: many\n",
        "\t-\n",
    ]:
        state = read_execution_state(f"# T\n\n## Execution Checkpoints\n\n{body}")
        assert state is not None


def test_unknown_status_is_pending_and_kept() -> None:
    state = read_execution_state("## Execution Checkpoints\n\n- phase_1:\n    status: Wobbly\n")
    assert state is not None
    assert state.phases["1"].status == "pending"
    assert state.phases["1"].extra == {"status_raw": "Wobbly"}
    assert state.problems


def test_no_section_reads_none() -> None:
    assert read_execution_state(PLAN_A) is None
    text = (
        PLAN_A
        + "\n```markdown\n## Execution Checkpoints\n\n- phase_1:\n    status: complete\n```\n"
    )
    assert read_execution_state(text) is None  # a heading inside code is not the section


# ---- ids ------------------------------------------------------------------------------------------


def test_ids_round_trip_and_keys_are_quoted_when_needed() -> None:
    ids = ["0", "2.5", "7a", "1A", "10"]
    text = apply_phases(PLAN_A, [_cp(phase_id) for phase_id in ids])
    assert '- "phase_2.5":' in text and "- phase_7a:" in text and "- phase_0:" in text
    block = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    loaded = yaml.safe_load(block)  # also readable by an ordinary YAML reader
    assert [next(iter(item)) for item in loaded] == [f"phase_{i}" for i in ids]
    state = read_execution_state(text)
    assert state is not None and list(state.phases) == ids


def test_a_differently_spelled_id_replaces_the_entry() -> None:
    text = apply_phases(PLAN_A, [_cp("1A", "running"), _cp("2")])
    text = apply_phases(text, [_cp("1a", "complete")])
    state = read_execution_state(text)
    assert state is not None
    assert list(state.phases) == ["2", "1a"]
    assert state.get("1A") == state.phases["1a"]


# ---- status -------------------------------------------------------------------------------------


def test_body_status_line_is_set_and_review_status_untouched() -> None:
    text = apply_status(PLAN_A, "Implemented")
    assert "**Status:** Implemented\n" in text
    assert "**Status:** ✅ SUCCESS" in text
    state = read_execution_state(text)
    assert state is not None and state.status_before == "Reviewed - Ready for Implementation"
    text = apply_status(text, "Failed")
    state = read_execution_state(text)
    assert state is not None and state.status_before == "Reviewed - Ready for Implementation"
    assert remove_execution_state(text) == PLAN_A


def test_colon_after_bold_form() -> None:
    original = "# Plan\n\n**Status**: Planning\n**Created**: today\n\n## Phase 1: x\n"
    text = apply_status(original, "Implemented")
    assert "**Status**: Implemented\n" in text
    assert remove_execution_state(text) == original


def test_status_lines_in_code_or_after_the_first_h2_are_not_the_plan_status() -> None:
    original = "# Plan\n\n```md\n**Status:** example\n```\n\n## Phases\n\n**Status:** phase note\n"
    text = apply_status(original, "Implemented")
    assert "**Status:** example" in text and "**Status:** phase note" in text
    assert text.startswith("# Plan\n\n**Status:** Implemented\n\n```md\n")
    assert remove_execution_state(text) == original


@pytest.mark.parametrize(
    ("line", "expected", "before"),
    [
        ('status: "done"\n', 'status: "Implemented: 3/3"\n', "done"),
        ("status: 'it''s done'\n", "status: 'Implemented: 3/3'\n", "it's done"),
        ("status: done\n", 'status: "Implemented: 3/3"\n', "done"),
        ('status:   "done"   # planner\n', 'status:   "Implemented: 3/3"   # planner\n', "done"),
        ("status: |\n  multi\n  line\n", 'status: "Implemented: 3/3"\n', "multi\nline"),
    ],
)
def test_frontmatter_status_keeps_its_quoting(line: str, expected: str, before: str) -> None:
    original = (
        f"---\n{line}duration: 5m\nstarted_at: 15:09:38\n---\n# Planning Process\n\n## Plan\n"
    )
    text = apply_status(original, "Implemented: 3/3")
    assert text.startswith(f"---\n{expected}duration: 5m\n")
    assert yaml.safe_load(text.split("---\n")[1])["status"] == "Implemented: 3/3"
    state = read_execution_state(text)
    assert state is not None and state.status_before == before
    assert remove_execution_state(text) == original


def test_bare_frontmatter_status_stays_bare_when_safe() -> None:
    original = "---\nstatus: done\n---\n## Plan\n"
    assert apply_status(original, "implemented").startswith("---\nstatus: implemented\n---\n")
    assert apply_status(original, "yes").startswith('---\nstatus: "yes"\n')


def test_frontmatter_without_status_gets_one_and_loses_it_again() -> None:
    original = "---\nrequirements: |\n  ## Phase 0: not a heading\nstatus_note: x\n---\n# Planning Process\n"
    text = apply_status(original, "Implemented")
    assert yaml.safe_load(text.split("---\n")[1])["status"] == "Implemented"
    state = read_execution_state(text)
    assert state is not None and state.status_before is None
    assert remove_execution_state(text) == original


@pytest.mark.parametrize(
    "original",
    [
        "# Title\n\nSome text.\n\n## Phase 1: a\n",
        "# Title\nSome text.\n",
        "# Title",
        "Just text, no headings\n",
        "## Only H2\n\n# H1 later\n",
        "",
        "\n\n\n",
    ],
)
def test_plans_without_any_status_get_a_body_line_that_clear_removes(original: str) -> None:
    text = apply_status(original, "Implemented")
    assert "**Status:** Implemented" in text
    state = read_execution_state(text)
    assert state is not None and state.status_before is None
    assert remove_execution_state(text) == original


# ---- bytes outside our sections ---------------------------------------------------------------


@pytest.mark.parametrize("eol", ["\n", "\r\n"])
@pytest.mark.parametrize("final_newline", [True, False])
def test_line_endings_and_final_newline_are_kept(eol: str, final_newline: bool) -> None:
    original = PLAN_A.replace("\n", eol)
    if not final_newline:
        original = original.rstrip(eol)
    text = apply_summary(
        apply_status(apply_phases(original, [_cp("1")]), "Implemented"), "done\nok\n"
    )
    assert text.startswith(original[:20])
    assert text.count("\n") == text.count(eol) if eol == "\r\n" else "\r" not in text
    state = read_execution_state(text)
    assert state is not None and list(state.phases) == ["1"] and state.has_summary
    assert remove_execution_state(text) == original


def test_section_goes_at_the_end_after_exactly_one_blank_line() -> None:
    text = apply_phases(PLAN_A, [_cp("1")])
    assert text.startswith(PLAN_A + "\n## Execution Checkpoints\n\n```yaml\n- phase_1:\n")
    assert re.search(r"\n```\n<!-- plan-executor: \{.*\} -->\n\Z", text)
    text = apply_summary(text, "**Completed:** now")
    assert re.search(
        r"\n```\n<!-- plan-executor: \{.*\} -->\n\n## Implementation Summary\n\n"
        r"\*\*Completed:\*\* now\n\Z",
        text,
    )


def test_a_human_implementation_summary_is_never_touched() -> None:
    original = (
        "# P\n\n**Status:** Implemented\n\n## Implementation Summary\n\nHuman words.\n\n## Phases\n"
    )
    text = apply_summary(original, "Ours, first")
    text = apply_summary(text, "Ours, second")
    assert text.startswith(original)
    assert "Ours, first" not in text and text.endswith(
        "## Implementation Summary\n\nOurs, second\n"
    )
    assert remove_execution_state(text) == original


def test_summary_headings_are_demoted_and_fences_closed() -> None:
    summary = "## Plan Execution Complete\n\n# Big\n\n```bash\ncargo test\n## not a heading"
    text = apply_summary(apply_phases(PLAN_A, [_cp("1")]), summary)
    assert "### Plan Execution Complete" in text and "### Big" in text
    assert "## not a heading\n```\n" in text
    text = apply_phases(text, [_cp("2")])  # the summary is kept as it is
    assert "### Plan Execution Complete" in text
    state = read_execution_state(text)
    assert state is not None and list(state.phases) == ["1", "2"] and state.has_summary
    assert remove_execution_state(text) == PLAN_A


def test_summary_cannot_close_an_unterminated_frontmatter() -> None:
    original = "---\ntitle: never closed\n\n# Plan\n"
    text = apply_summary(original, "one\n---\ntwo\n...\n")
    assert "\n***\n" in text and "\n\\...\n" in text
    text = apply_phases(text, [_cp("1")])
    assert text.count("\n## Execution Checkpoints\n") == 1
    assert remove_execution_state(text) == original


def test_text_added_after_our_section_is_kept() -> None:
    text = apply_phases(PLAN_A, [_cp("1")]) + "\n## Notes by a human\n\nkeep me\n"
    text = apply_summary(apply_phases(text, [_cp("2")]), "sum")
    assert text.endswith("## Implementation Summary\n\nsum\n\n## Notes by a human\n\nkeep me\n")
    state = read_execution_state(text)
    assert state is not None and list(state.phases) == ["1", "2"]


def test_an_example_of_our_block_in_a_code_block_is_not_our_section() -> None:
    ours = apply_phases("# Doc\n", [_cp("9")])
    example = ours.split("\n", 2)[2]  # our block as text, quoted in a plan
    original = PLAN_A + "\n~~~~markdown\n" + example + "~~~~\n\nMore text.\n"
    assert read_execution_state(original) is None
    text = apply_phases(original, [_cp("1")])
    assert text.startswith(original)
    state = read_execution_state(text)
    assert state is not None and list(state.phases) == ["1"]
    assert remove_execution_state(text) == original


def test_an_unterminated_fence_before_our_section_does_not_duplicate_it() -> None:
    original = PLAN_A + "\n````rust\nfn main() {\n"
    text = apply_phases(apply_phases(original, [_cp("1")]), [_cp("2")])
    assert text.startswith(original + "\n## Execution Checkpoints\n")
    assert text.count("## Execution Checkpoints") == 1
    text = apply_summary(text, "~~~\n## Execution Checkpoints\n")  # cannot pair with the old fence
    assert text.count("\n## Execution Checkpoints\n") == 2
    state = read_execution_state(text)
    assert state is not None and list(state.phases) == ["1", "2"]
    assert remove_execution_state(apply_status(text, "Done")) == original


def test_all_fields_round_trip() -> None:
    checkpoint = PhaseCheckpoint(
        phase_id="2.5",
        status="failed",
        started_at=utc_now(),
        completed_at=None,
        failed_at="2026-01-01T00:00:00Z",
        error="line one\nline: two # three\t'four' \"five\" \\six",
        last_successful_step="- a list? no",
        artifacts=["a.rs", "b c.rs", "[x]", "", "#hash"],
        phase_hash="abc123",
        flow_run_id="0c9a-...",
        tokens={"input": 12, "output": 0, "cache read": -1},
        ledger=["FAIL tests: exit 101", "yes", "null", "~"],
        extra={"note": "kept", "weird key: yes": "v"},
    )
    text = apply_phases("# P\n", [checkpoint, _cp("3", tokens={})])
    state = read_execution_state(text)
    assert state is not None and state.problems == []
    assert state.phases["2.5"] == checkpoint
    assert state.phases["3"].tokens == {}


def test_extra_keys_may_not_shadow_fields() -> None:
    with pytest.raises(ValidationError):
        PhaseCheckpoint(phase_id="1", status="complete", extra={"status": "x"})


# ---- the writer on files ------------------------------------------------------------------------


def test_update_phase_merges_under_the_lock(tmp_path: Path) -> None:
    plan = _plan(tmp_path, PLAN_A)
    writer = PlanFileWriter(plan)
    writer.update_phase("1", {"status": "running", "started_at": "2026-01-01T00:00:00Z"})
    merged = writer.update_phase(
        "1", {"status": "complete", "completed_at": "2026-01-01T01:00:00Z"}
    )
    assert merged.started_at == "2026-01-01T00:00:00Z" and merged.status == "complete"
    assert writer.read_state() is not None
    assert read_plan_state(plan).phases["1"] == merged  # type: ignore[union-attr]


def test_missing_file_raises_with_the_path(tmp_path: Path) -> None:
    plan = tmp_path / "nope.md"
    writer = PlanFileWriter(plan)
    for call in (
        lambda: writer.set_phase(_cp("1")),
        lambda: writer.set_status("x"),
        lambda: writer.set_summary("x"),
        writer.clear_execution_state,
    ):
        with pytest.raises(PlanWriteError, match=str(plan)):
            call()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("data", "line"),
    [
        (b"# Plan\n\n**Status:** caf\xe9\n", 3),
        (b"\xff\xfe# Plan\n", 1),
        (b"# Plan\n" * 4 + b"\x00\x9c\n", 5),
    ],
)
def test_non_utf8_file_raises_with_path_and_line_and_is_untouched(
    tmp_path: Path, data: bytes, line: int
) -> None:
    plan = _plan(tmp_path, data)
    with pytest.raises(PlanWriteError) as raised:
        PlanFileWriter(plan).set_status("Implemented")
    assert f"{plan}:{line}:" in str(raised.value)
    with pytest.raises(PlanWriteError, match="not valid UTF-8"):
        PlanFileWriter(plan).set_phase(_cp("1"))
    assert plan.read_bytes() == data
    assert sorted(p.name for p in tmp_path.iterdir()) == [".plan.md.lock", "plan.md"]


def test_a_directory_is_not_a_plan(tmp_path: Path) -> None:
    with pytest.raises(PlanWriteError, match="not a regular file"):
        PlanFileWriter(tmp_path).set_status("x")


def test_lock_file_mode_and_symlink(tmp_path: Path) -> None:
    plan = _plan(tmp_path, PLAN_A)
    os.chmod(plan, 0o640)
    link = tmp_path / "link.md"
    link.symlink_to(plan)
    PlanFileWriter(link).set_phase(_cp("1"))
    assert link.is_symlink()  # the link still points at the plan, which was rewritten
    assert stat.S_IMODE(plan.stat().st_mode) == 0o640
    assert (tmp_path / ".plan.md.lock").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert read_plan_state(link) is not None


def test_nothing_is_written_when_nothing_changes(tmp_path: Path) -> None:
    plan = _plan(tmp_path, PLAN_A)
    writer = PlanFileWriter(plan)
    writer.clear_execution_state()  # no section: nothing to do
    writer.set_phases([])
    inode = plan.stat().st_ino
    assert plan.read_text() == PLAN_A and plan.stat().st_ino == inode
