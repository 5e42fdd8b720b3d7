"""Round trip on every corpus plan: checkpoints, status and summary in; clear; bytes identical."""

from __future__ import annotations

import difflib
import re
from pathlib import Path

import yaml

from plan_parser.checkpoints import PhaseCheckpoint, read_plan_state
from plan_parser.writer import PlanFileWriter
from tests.writer.helpers import corpus_plans, phase_ids

BODY_STATUS_RE = re.compile(r"^\*\*Status(?::\*\*|\*\*:)[ \t]*(.*)$")
NEW_STATUS = "Implemented"


def _frontmatter(text: str) -> str | None:
    match = re.match(r"---\n(.*?\n)---\n", text, re.DOTALL)
    return match.group(1) if match else None


def _status_before(text: str) -> tuple[str, str | None]:
    """Where the status is and what it says, found independently of the writer."""
    in_fence = False
    for line in (
        text.split("\n")[1:]
        if _frontmatter(text) is None
        else text.split("---\n", 2)[2].split("\n")
    ):
        if line.startswith(("```", "~~~")):
            in_fence = not in_fence
        if in_fence:
            continue
        if line.startswith("## "):
            break
        match = BODY_STATUS_RE.match(line)
        if match:
            return "body", match.group(1).strip()
    if text.split("\n", 1)[0].startswith("**Status") and BODY_STATUS_RE.match(
        text.split("\n", 1)[0]
    ):
        return "body", BODY_STATUS_RE.match(text.split("\n", 1)[0]).group(1).strip()  # type: ignore[union-attr]
    frontmatter = _frontmatter(text)
    if frontmatter is not None:
        found = re.search(r"^status:[ \t]*(.*)$", frontmatter, re.MULTILINE)
        if found:
            return "frontmatter", found.group(1).strip().strip("\"'")
        return "frontmatter", None
    return "body", None


def _checkpoints(ids: list[str]) -> dict[str, PhaseCheckpoint]:
    return {
        phase_id: PhaseCheckpoint(
            phase_id=phase_id,
            status="complete",
            started_at=f"2026-01-{number % 28 + 1:02d}T10:00:00Z",
            completed_at=f"2026-01-{number % 28 + 1:02d}T10:30:00Z",
            artifacts=[f"src/phase_{number}.rs", f"tests/phase {number}.rs"],
            phase_hash=f"{number:016x}",
            flow_run_id=f"00000000-0000-0000-0000-{number:012d}",
            tokens={"input": number * 1000, "output": number * 10},
        )
        for number, phase_id in enumerate(ids)
    }


def _round_trip(source: Path, plan: Path) -> list[str]:
    """The problems found with one plan (empty when it round-trips)."""
    problems: list[str] = []
    original = source.read_bytes()
    text = original.decode("utf-8")
    plan.write_bytes(original)
    writer = PlanFileWriter(plan)
    ids = phase_ids(text)
    expected = _checkpoints(ids)

    writer.set_phases(expected.values())
    if not plan.read_bytes().startswith(original):
        problems.append("set_phases changed bytes of the original text")

    failed = PhaseCheckpoint(
        phase_id=ids[0],
        status="failed",
        started_at="2026-01-01T10:00:00Z",
        failed_at="2026-01-01T10:05:00Z",
        error='Type error in "parser.rs:42": expected `u8`\n  found: i32 # not a comment',
        last_successful_step="Created parser module",
        ledger=["FAIL tests: cargo test -p lib (exit 101)", "FAIL files: src/lib.rs missing"],
    )
    writer.set_phase(failed)
    expected[ids[0]] = failed

    writer.set_status("In Progress")
    writer.set_status(NEW_STATUS)
    writer.set_summary("**Completed:** first draft\n")
    writer.set_summary("**Completed:** 2026-01-02\n\n**Phases Completed:**\n- Phase 1: done\n")

    state = read_plan_state(plan)
    after = plan.read_text(encoding="utf-8")
    if state is None:
        return [*problems, "no checkpoint state read back"]
    if state.phases != expected or list(state.phases) != list(expected):
        problems.append(f"phases read back differ: {sorted(state.phases)} vs {sorted(expected)}")
    if state.problems:
        problems.append(f"reading reported problems: {state.problems}")
    where, before = _status_before(text)
    if state.status_before != before:
        problems.append(f"status_before {state.status_before!r}, expected {before!r}")
    if not state.has_summary or "first draft" in after or "**Completed:** 2026-01-02" not in after:
        problems.append("summary not replaced")
    if after.count("## Implementation Summary") != text.count("## Implementation Summary") + 1:
        problems.append("a human-written Implementation Summary was touched")
    problems += _status_written(text, after, where)
    problems += _only_status_changed(text, after)

    writer.clear_execution_state()
    if plan.read_bytes() != original:
        problems.append("clear_execution_state did not restore the original bytes")
    return problems


def _status_written(text: str, after: str, where: str) -> list[str]:
    if where == "body":
        head = after.split("\n## ", 1)[0]
        if not re.search(r"^\*\*Status(?::\*\*|\*\*:) Implemented$", head, re.MULTILINE):
            return ["body status line not set"]
        return []
    frontmatter = _frontmatter(after)
    if frontmatter is None or not re.search(r"^status: .*Implemented", frontmatter, re.MULTILINE):
        return ["frontmatter status not set"]
    try:
        original_fm = yaml.safe_load(_frontmatter(text) or "")
    except yaml.YAMLError:
        return []  # invalid YAML before: it cannot be checked with a YAML loader
    data = yaml.safe_load(frontmatter)
    if data.get("status") != NEW_STATUS or set(data) != set(original_fm) | {"status"}:
        return [f"frontmatter after set_status reads {data.get('status')!r}"]
    return []


def _only_status_changed(text: str, after: str) -> list[str]:
    """Outside our section only the status line (plus blank lines around an added one) changed."""
    head = after.split("\n## Execution Checkpoints\n", 1)[0] + "\n"
    old, new = text.splitlines(), head.splitlines()
    while old and not old[-1].strip():
        old.pop()
    while new and not new[-1].strip():
        new.pop()
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=old, b=new, autojunk=False).get_opcodes():
        if tag == "equal":
            continue
        changed = old[i1:i2] + new[j1:j2]
        if not all(
            not line.strip() or BODY_STATUS_RE.match(line) or line.startswith("status:")
            for line in changed
        ):
            return [f"lines outside the section changed: {changed[:4]}"]
    return []


def test_round_trip_on_every_corpus_plan(shared_dir: Path, tmp_path: Path) -> None:
    failures: dict[str, list[str]] = {}
    plans = corpus_plans(shared_dir)
    for source in plans:
        problems = _round_trip(source, tmp_path / source.name)
        if problems:
            failures[source.name] = problems
    assert not failures, failures
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []
