"""Waves, dependents and the mermaid graph from per-phase dependencies."""

from __future__ import annotations

import pytest

from plan_parser import parse_text
from plan_parser.schedule import CycleError, mermaid, transitive_dependents, waves
from tests.parser.helpers import phase_block, plan_text


def _plan(*phases: str):
    return parse_text(plan_text(*phases), "2026-02-01.plan-for-test.md")


def test_waves_are_kahn_layers_sorted_by_id_key() -> None:
    plan = _plan(
        phase_block("10", "Ten", deps="Phase 2"),
        phase_block("2", "Two"),
        phase_block("2.5", "Two and a half", deps="Phase 2"),
        phase_block("7a", "Seven A", deps="Phase 2"),
        phase_block("3", "Three", deps="Phases 2.5, 7a"),
    )
    assert waves(plan) == [["2"], ["2.5", "7a", "10"], ["3"]]


def test_forward_dependency_orders_by_graph_not_document() -> None:
    plan = _plan(
        phase_block("1", "One"),
        phase_block("2", "Two", deps="Phase 3"),
        phase_block("3", "Three", deps="Phase 1"),
    )
    assert waves(plan) == [["1"], ["3"], ["2"]]
    assert any(d.code == "I-FORWARD-DEP" and d.phase_id == "2" for d in plan.diagnostics)


def test_optional_phases_left_out_unless_asked() -> None:
    plan = _plan(
        phase_block("1", "One"),
        phase_block("2", "Cleanup (Optional)", deps="Phase 1"),
        phase_block("3", "Later (FUTURE - Requires User Approval)", deps="Phase 1"),
        phase_block("4", "Four", deps="Phase 1"),
    )
    assert [p.optional for p in plan.phases] == [False, True, True, False]
    assert waves(plan) == [["1"], ["4"]]
    assert waves(plan, include_optional=True) == [["1"], ["2", "3", "4"]]


def test_phase_after_an_optional_one_is_scheduled_with_a_warning() -> None:
    plan = _plan(
        phase_block("1", "One"),
        phase_block("2", "Cleanup (Optional)", deps="Phase 1"),
        phase_block("3", "Three", deps="Phase 2"),
    )
    assert waves(plan) == [["1"], ["3"]]
    [warning] = [d for d in plan.warnings if d.code == "W-OPTIONAL-DEPENDENCY"]
    assert warning.phase_id == "3" and warning.line == plan.phase("3").field_lines["depends_on"]


def test_cycle_raises_naming_the_cycle() -> None:
    plan = _plan(
        phase_block("1", "One"),
        phase_block("2", "Two", deps="Phase 1, Phase 4"),
        phase_block("3", "Three", deps="Phase 2"),
        phase_block("4", "Four", deps="Phase 3"),
    )
    with pytest.raises(CycleError) as caught:
        waves(plan)
    assert caught.value.cycle == ["2", "3", "4"]
    assert "Phase 2 -> Phase 3 -> Phase 4 -> Phase 2" in str(caught.value)
    [cycle] = [d for d in plan.errors if d.code == "E-DEP-CYCLE"]
    assert cycle.phase_id == "2" and cycle.field == "depends_on"
    assert cycle.line == plan.phase("2").field_lines["depends_on"]


def test_self_dependency_is_a_cycle() -> None:
    plan = _plan(phase_block("1", "One", deps="Phase 1"))
    with pytest.raises(CycleError):
        waves(plan)
    assert [d.code for d in plan.errors] == ["E-DEP-CYCLE"]


def test_transitive_dependents() -> None:
    plan = _plan(
        phase_block("1", "One"),
        phase_block("2", "Two", deps="Phase 1"),
        phase_block("3", "Three", deps="Phase 2"),
        phase_block("4", "Four"),
        phase_block("5", "Five", deps="Phases 3-4"),
    )
    assert transitive_dependents(plan, "1") == {"2", "3", "5"}
    assert transitive_dependents(plan, "4") == {"5"}
    assert transitive_dependents(plan, "5") == set()
    assert transitive_dependents(plan, "99") == set()


def test_no_dependency_fields_means_document_order() -> None:
    text = "# P\n\n## Phase 1: A\n\nText.\n\n## Phase 2: B\n\nText.\n\n## Phase 0: Z\n\nText.\n"
    plan = parse_text(text)
    assert plan.deps_source == "document_order"
    assert waves(plan) == [["1"], ["2"], ["0"]]
    assert any(d.code == "W-DEPS-MISSING" for d in plan.warnings)


def test_mermaid_graph_lists_nodes_and_edges() -> None:
    plan = _plan(
        phase_block("1", 'Say "hi"'),
        phase_block("2.5", "Two", deps="Phase 1"),
        phase_block("3", "Three (Optional)", deps="Phase 2.5"),
    )
    graph = mermaid(plan)
    assert graph.startswith("flowchart TD\n")
    assert "P1[\"Phase 1: Say 'hi'\"]" in graph
    assert "P1 --> P2_5" in graph and "P2_5 --> P3" in graph
    assert "class P3 optional" in graph


def test_wave_file_conflict_warning() -> None:
    plan = _plan(
        phase_block("1", "One"),
        phase_block("2", "Two", deps="Phase 1", files=["src/lib.rs", "src/a.rs"]),
        phase_block("3", "Three", deps="Phase 1", files=["src/lib.rs"]),
    )
    [conflict] = [d for d in plan.warnings if d.code == "W-WAVE-FILE-CONFLICT"]
    assert conflict.phase_id == "3" and "src/lib.rs" in conflict.message
    assert conflict.line == plan.phase("3").files[0].line


def test_mermaid_graph_schedules_a_plan_without_dependency_fields() -> None:
    text = (
        "# P\n\n## Phase 1: A\n\nx\n\n## Phase 2: B\n\nx\n\n## Phase 3: C\n\nx\n\n"
        "## Dependency Graph\n\n```mermaid\ngraph TD\n  P1 --> P3\n  P2 --> P3\n```\n"
    )
    plan = parse_text(text)
    assert plan.deps_source == "mermaid"
    assert [p.depends_on for p in plan.phases] == [[], [], []]  # as written: no fields
    assert waves(plan) == [["1", "2"], ["3"]]
    assert transitive_dependents(plan, "2") == {"3"}
    assert [d.code for d in plan.warnings if d.code.startswith("W-DEP")] == ["W-DEPS-MISSING"]
    assert not [d for d in plan.diagnostics if d.code == "W-GRAPH-CONFLICT"]
