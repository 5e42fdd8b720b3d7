"""Property tests: arbitrary checkpoint strings and arbitrary plan text survive write + read +
clear."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plan_parser.checkpoints import (
    KNOWN_FIELDS,
    PHASE_STATUSES,
    PhaseCheckpoint,
    read_execution_state,
    read_plan_state,
)
from plan_parser.model import id_key
from plan_parser.writer import (
    PlanFileWriter,
    apply_phases,
    apply_status,
    apply_summary,
    remove_execution_state,
)

# Characters that break naive YAML or Markdown scanning: quotes, colons, hashes, line breaks of
# every kind (NEL, U+2028), tabs, controls, BOM, non-characters, astral unicode, YAML indicators.
_NASTY = st.sampled_from(
    list("\"':# \n\r\t\\\x00\x1b\x7f\x85\u2028\u2029\ufeff\ufffe\u00e9\U0001d11e-[]{},&*!|>%@`~")
)
TEXT = st.text(st.one_of(_NASTY, st.characters(exclude_categories=["Cs"])), max_size=20)
IDS = st.one_of(st.sampled_from(["0", "1", "2.5", "7a", "1A", "10b"]), TEXT.filter(bool))
OPTIONAL = st.none() | TEXT


@st.composite
def checkpoints(draw: st.DrawFn) -> PhaseCheckpoint:
    return PhaseCheckpoint(
        phase_id=draw(IDS),
        status=draw(st.sampled_from(PHASE_STATUSES)),  # type: ignore[arg-type]
        started_at=draw(OPTIONAL),
        completed_at=draw(OPTIONAL),
        failed_at=draw(OPTIONAL),
        error=draw(OPTIONAL),
        last_successful_step=draw(OPTIONAL),
        artifacts=draw(st.lists(TEXT, max_size=3)),
        phase_hash=draw(OPTIONAL),
        flow_run_id=draw(OPTIONAL),
        tokens=draw(st.none() | st.dictionaries(TEXT, st.integers(), max_size=3)),
        ledger=draw(st.lists(TEXT, max_size=3)),
        extra=draw(st.dictionaries(TEXT.filter(lambda k: k not in KNOWN_FIELDS), TEXT, max_size=3)),
    )


def _unique(batch: list[PhaseCheckpoint]) -> dict[str, PhaseCheckpoint]:
    by_id: dict[str, PhaseCheckpoint] = {}
    for checkpoint in batch:
        by_id[checkpoint.phase_id] = checkpoint
    return by_id


PLAN = "# Plan\n\n**Status:** Draft\n\n## Phases\n\n### Phase 1: a\n"


@settings(max_examples=100, deadline=None)
@given(st.lists(checkpoints(), min_size=1, max_size=4, unique_by=lambda c: id_key(c.phase_id)))
def test_checkpoint_strings_round_trip(batch: list[PhaseCheckpoint]) -> None:
    text = apply_phases(PLAN, batch)
    state = read_execution_state(text)
    assert state is not None and state.problems == []
    assert state.phases == _unique(batch)
    assert remove_execution_state(apply_status(text, "Implemented")) == PLAN


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(checkpoints(), min_size=1, max_size=3, unique_by=lambda c: id_key(c.phase_id)))
def test_checkpoint_strings_round_trip_through_the_file(batch: list[PhaseCheckpoint]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        plan = Path(folder) / "plan.md"
        plan.write_text(PLAN)
        writer = PlanFileWriter(plan)
        for checkpoint in batch:
            writer.set_phase(checkpoint)
        state = read_plan_state(plan)
        assert state is not None and state.problems == []
        assert state.phases == _unique(batch)
        writer.clear_execution_state()
        assert plan.read_text() == PLAN


# Plan-like text: lines that matter to the scanner mixed with arbitrary ones.
_LINES = st.sampled_from(
    ["---", "...", "status: done", 'status: "done"', "status: |", "  indented", "# Title",
     "## Phases", "### Phase 1: a", "## Execution Checkpoints", "## Implementation Summary",
     "**Status:** Draft", "**Status**: Planning", "```", "```yaml", "~~~", "````", "- phase_1:",
     "    status: complete", "- plan_executor:", "", " ", "\t", "text", "#", "##", "## "]
)  # fmt: skip
_EOLS = st.sampled_from(["\n", "\r\n", "\r"])


@st.composite
def plan_texts(draw: st.DrawFn) -> str:
    lines = draw(st.lists(st.one_of(_LINES, st.text(max_size=12)), max_size=25))
    parts = [line + draw(_EOLS) for line in lines]
    if parts and draw(st.booleans()):
        parts[-1] = parts[-1].rstrip("\r\n")
    return "".join(parts)


@settings(max_examples=150, deadline=None)
@given(plan_texts(), st.lists(checkpoints(), min_size=1, max_size=2), TEXT, plan_texts())
def test_any_plan_text_round_trips(
    original: str, batch: list[PhaseCheckpoint], status: str, summary: str
) -> None:
    text = apply_phases(original, batch)
    text = apply_status(text, status)
    text = apply_summary(text, summary)
    text = apply_phases(text, batch[:1])
    state = read_execution_state(text)
    assert state is not None and state.written_by_executor and state.has_summary
    for checkpoint in batch:
        assert state.get(checkpoint.phase_id) is not None
    assert remove_execution_state(text) == original
