"""Value grammars (plan-format.md §6.2): phase headings, dependencies, blast radius, files."""

from __future__ import annotations

import pytest

from plan_parser import id_sort_key
from plan_parser.model import FileAction
from plan_parser.values import (
    parse_blast_radius,
    parse_dependencies,
    parse_file_item,
    parse_phase_heading,
)

DEFINED = ["0", "1", "1A", "2", "2a", "2.5", "3", "4", "5a", "5b", "6", "7"]


def test_id_sort_key_orders_numbers_decimals_letters() -> None:
    ids = ["10", "2", "2.5", "7a", "1A", "1", "0", "7", "1b"]
    assert sorted(ids, key=id_sort_key) == ["0", "1", "1A", "1b", "2", "2.5", "7", "7a", "10"]


@pytest.mark.parametrize(
    ("raw", "position", "ids", "form"),
    [
        ("None", None, [], "none"),
        ("None (can run in parallel with Phases 1-2)", None, [], "none"),
        ("N/A - foundational", None, [], "none"),
        ("Phase 1", None, ["1"], "single"),
        ("Phase 1, Phase 2", None, ["1", "2"], "list"),
        ("Phases 1 and 2 complete (types exist)", None, ["1", "2"], "list"),
        ("Phase 1 & 2", None, ["1", "2"], "list"),
        ("Phase 3 (needs enum), Phase 1 (for errors)", None, ["3", "1"], "list"),
        ("Phases 1-4", None, ["1", "1A", "2", "2a", "2.5", "3", "4"], "range"),
        (
            "Phases 2-6 (partial), Phase 7 (full)",
            None,
            ["2", "2a", "2.5", "3", "4", "5a", "5b", "6", "7"],
            "range",
        ),
        ("Phase 2, Phase 4-6", None, ["2", "4", "5a", "5b", "6"], "range"),
        ("`Phase 2.5`", None, ["2.5"], "single"),
        ("Phase 1a (function signature only)", None, ["1A"], "single"),
        ("All previous phases", 4, ["0", "1", "1A", "2"], "all_previous"),
        ("Incremental (after each implementation phase)", 3, ["0", "1", "1A"], "all_previous"),
        ("Phases 0-6 (\u2705 core implementation complete, deferred)", None, DEFINED[:-1], "range"),
    ],
)
def test_dependency_grammar(raw: str, position: int | None, ids: list[str], form: str) -> None:
    deps = parse_dependencies(raw, DEFINED, position)
    assert deps.ids == ids
    assert deps.form == form
    assert deps.unknown == []


def test_none_note_is_kept_not_parsed() -> None:
    deps = parse_dependencies("None (decoupled from Phase 3)", DEFINED)
    assert deps.ids == [] and deps.note == "decoupled from Phase 3"


def test_parent_id_expands_to_lettered_children() -> None:
    deps = parse_dependencies("Phase 5", DEFINED)
    assert deps.ids == ["5a", "5b"] and deps.parents == ["5"]


def test_undefined_reference_is_kept_and_reported() -> None:
    deps = parse_dependencies("Phase 1, Phase 9", DEFINED)
    assert deps.ids == ["1", "9"] and deps.unknown == ["9"]


def test_soft_clause_after_semicolon() -> None:
    deps = parse_dependencies("Phase 2; Phase 3 for the docs part", DEFINED)
    assert deps.ids == ["2"] and deps.soft_ids == ["3"]


def test_prose_without_phase_numbers_gives_nothing() -> None:
    deps = parse_dependencies("after rig-core 0.29 lands", DEFINED)
    assert deps.ids == [] and deps.form == "prose"


@pytest.mark.parametrize(
    ("heading", "phase_id", "title", "optional"),
    [
        ("Phase 1: Core Types", "1", "Core Types", False),
        ("Phase 2.5: Image Loading", "2.5", "Image Loading", False),
        ("Phase 7a - Lettered", "7a", "Lettered", False),
        ("Phase 1A: Upper", "1A", "Upper", False),
        (
            "Phase 0: Setup and Shared Utilities \u2705 COMPLETE",
            "0",
            "Setup and Shared Utilities",
            False,
        ),
        ("Phase 4: Update Mechanism \u2705 PARTIAL COMPLETE", "4", "Update Mechanism", False),
        ("Phase 6: Codegen \u23f8\ufe0f READY", "6", "Codegen", False),
        ("Phase 1: Icon Pack (LOW complexity) \u26a1 PARALLEL START", "1", "Icon Pack", False),
        ("Phase 3: Update CLI Output (PARALLEL)", "3", "Update CLI Output", False),
        ("Phase 4.5: Row Adapters (NEW)", "4.5", "Row Adapters", False),
        ("Phase 3: Create Binary (Parallel with Phase 1)", "3", "Create Binary", False),
        (
            "Phase 3: Comprehensive Testing (Before Cleanup!)",
            "3",
            "Comprehensive Testing (Before Cleanup!)",
            False,
        ),
        ("Phase 4: Historical Plan Files (Optional Cleanup)", "4", "Historical Plan Files", True),
        ("Phase 3: Research (FUTURE - Requires User Clarification)", "3", "Research", True),
        ("Phase 7: Skip Ignored Files", "7", "Skip Ignored Files", False),
        (
            "Phase 7: Known Limitations and Future Work",
            "7",
            "Known Limitations and Future Work",
            False,
        ),
        ("Phase 0: Extract Logic (Prerequisite)", "0", "Extract Logic", False),
        ("Phase 10 (Optional): Telemetry", "10", "Telemetry", True),
        ("**Phase 2: Bold Heading**", "2", "Bold Heading", False),
        ("Phase 7: Breaking Rename (FUTURE)", "7", "Breaking Rename", True),
        ("Phase 4: Add `research pull` CLI Command", "4", "Add `research pull` CLI Command", False),
    ],
)
def test_phase_heading(heading: str, phase_id: str, title: str, optional: bool) -> None:
    parsed = parse_phase_heading(heading)
    assert parsed is not None
    assert (parsed.id, parsed.title, parsed.optional) == (phase_id, title, optional)


@pytest.mark.parametrize(
    "heading",
    ["Phase 1 Internal Parallelization", "Phase 1+: Later", "Phases", "Phase One: x", "Step 1: x"],
)
def test_not_a_phase_heading(heading: str) -> None:
    assert parse_phase_heading(heading) is None


def test_qualifier_only_heading() -> None:
    parsed = parse_phase_heading("Phase 3 (Requires User Approval - DO NOT EXECUTE)")
    assert parsed is not None and parsed.optional and parsed.title == ""


@pytest.mark.parametrize(
    ("raw", "text", "commands", "runnable"),
    [
        ("`cargo test -p shared`", "cargo test -p shared", ["cargo test -p shared"], True),
        ("`cargo test` (full test suite)", "cargo test", ["cargo test"], True),
        (
            "`cargo test --lib` + `cargo test --test it`",
            "cargo test --lib + cargo test --test it",
            ["cargo test --lib", "cargo test --test it"],
            True,
        ),
        (
            "`just build` and `just test` (verify)",
            "just build and just test",
            ["just build", "just test"],
            True,
        ),
        ("Manual testing only (prompt changes)", "Manual testing only", [], False),
        ("None - documentation only", "None - documentation only", [], False),
    ],
)
def test_blast_radius(raw: str, text: str, commands: list[str], runnable: bool) -> None:
    blast = parse_blast_radius(raw)
    assert (blast.text, blast.commands, blast.runnable) == (text, commands, runnable)


def test_blast_radius_empty_string_means_full_suite() -> None:
    blast = parse_blast_radius('""')
    assert blast.full_suite and blast.text == ""


def test_file_items() -> None:
    ref = parse_file_item("`src/lib.rs:186-191` - wire the module", FileAction.MODIFY, 4)
    assert ref is not None
    assert (ref.path, ref.action, ref.description, ref.line) == (
        "src/lib.rs",
        FileAction.MODIFY,
        "wire the module",
        4,
    )
    new = parse_file_item("`src/new.rs` (new)", FileAction.MODIFY, None)
    assert new is not None and new.action is FileAction.CREATE
    glob = parse_file_item("docs/*.md", FileAction.UNSPECIFIED, None)
    assert glob is not None and glob.is_glob
    assert parse_file_item("update the README wording", FileAction.MODIFY, None) is None
