"""Issue #15: what real plans say about order, owners, blast radius prose and finished phases."""

from __future__ import annotations

from pathlib import Path

import pytest

from plan_parser import parse_plan, parse_text
from plan_parser.schedule import serialised, waves
from tests.parser.helpers import invoke, phase_block, plan_text

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus" / "plans"
corpus = pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/corpus is not beside the repo")


def _plan(*phases: str):
    return parse_text(plan_text(*phases), "2026-02-01.plan-for-test.md")


def test_phase_marked_not_parallel_runs_alone() -> None:
    plan = _plan(
        phase_block("1", "One"),
        phase_block("2", "Two", deps="Phase 1", extra="**Parallel:** No\n\n"),
        phase_block("3", "Three", deps="Phase 1", extra="**Parallel:** Yes (with Phase 4)\n\n"),
        phase_block("4", "Four", deps="Phase 1"),
    )
    assert waves(plan) == [["1"], ["2"], ["3", "4"]]
    assert "marked not parallel" in serialised(plan)["2"]
    assert any(d.code == "W-SERIALISED" and d.phase_id == "2" for d in plan.warnings)


def test_not_parallel_alone_in_its_layer_changes_nothing() -> None:
    plan = _plan(phase_block("1", "One", extra="**Parallel:** No (foundation)\n\n"))
    assert waves(plan) == [["1"]]
    assert not any(d.code == "W-SERIALISED" for d in plan.diagnostics)


def test_prose_note_naming_phases_keeps_them_apart() -> None:
    text = plan_text(
        phase_block("1", "One"),
        phase_block("2", "Two"),
        phase_block("3", "Three"),
    ) + ("## Notes\n\nPhase 1 and Phase 3 CANNOT run in parallel: both rewrite the schema.\n")
    plan = parse_text(text, "2026-02-01.plan-for-test.md")
    assert [note.phase_ids for note in plan.serial_notes] == [["1", "3"]]
    assert waves(plan) == [["1", "2"], ["3"]]
    assert "must not run with Phase 1" in serialised(plan)["3"]


def test_prose_note_naming_a_file_keeps_the_phases_touching_it_apart() -> None:
    text = (
        plan_text(
            phase_block("1", "One", files=["src/format.rs"]),
            phase_block("2", "Two", files=["src/other.rs"]),
            phase_block("3", "Three", files=["src/format.rs"]),
        )
        + "## Notes\n\nPhases touching `format.rs` CANNOT run in parallel.\n"
    )
    plan = parse_text(text, "2026-02-01.plan-for-test.md")
    assert waves(plan) == [["1", "2"], ["3"]]


def test_prose_note_that_names_too_little_is_a_warning_with_its_line() -> None:
    text = (
        plan_text(phase_block("1", "One"), phase_block("2", "Two"))
        + "## Notes\n\nChanges to `build.rs` must not run in parallel.\n"
    )
    plan = parse_text(text, "2026-02-01.plan-for-test.md")
    note = next(d for d in plan.warnings if d.code == "W-SERIAL-NOTE")
    assert (
        note.line == text.split("\n").index("Changes to `build.rs` must not run in parallel.") + 1
    )
    assert waves(plan) == [["1", "2"]]


@corpus
def test_corpus_phases_marked_not_parallel_never_share_a_wave() -> None:
    checked = 0
    for path in sorted(CORPUS.glob("*.md")):
        plan = parse_plan(path)
        if not plan.phases or plan.errors and any(d.code == "E-DEP-CYCLE" for d in plan.errors):
            continue
        for wave in waves(plan, include_optional=True):
            exclusive = [pid for pid in wave if plan.phase(pid).exclusive]
            assert not exclusive or len(wave) == 1, (path.name, wave)
            checked += len(exclusive)
    assert checked > 100


@corpus
def test_sniff_package_roundout_phases_4_and_6_run_apart() -> None:
    plan_file = CORPUS / "2026-01-14.plan-for-sniff-package-roundout.md"
    layers = waves(parse_plan(plan_file))
    assert ["4"] in layers and ["6"] in layers
    code, out = invoke("graph", str(plan_file))
    assert code == 0 and "Phase 4 marked not parallel" in out
    code, out = invoke("validate", str(plan_file))
    assert "W-SERIALISED phase 6" in out


# -- owners that cannot do the work ---------------------------------------------------------


def _owned(owner: str, name: str = "Create db module", files: list[str] | None = None):
    return plan_text(phase_block("1", name, owner=owner, files=files))


def test_read_only_builtin_owner_on_a_writing_phase_is_reported() -> None:
    plan = parse_text(_owned("`Plan`", files=["src/db.rs"]), "2026-02-01.plan-for-test.md")
    warning = next(d for d in plan.warnings if d.code == "W-OWNER-READONLY")
    assert warning.phase_id == "1" and "read-only" in warning.message


def test_read_only_agent_definition_is_reported_when_named() -> None:
    plan = parse_text(
        _owned("reviewer", files=["src/db.rs"]),
        "2026-02-01.plan-for-test.md",
        agents={"reviewer"},
        read_only_agents={"reviewer"},
    )
    assert any(d.code == "W-OWNER-READONLY" for d in plan.warnings)


def test_writing_owner_is_not_reported() -> None:
    plan = parse_text(_owned("rust-developer", files=["src/db.rs"]), "2026-02-01.plan-for-x.md")
    assert not any(d.code == "W-OWNER-READONLY" for d in plan.diagnostics)


def test_unknown_owner_error_offers_the_option_and_a_close_match() -> None:
    plan = parse_text(
        _owned("tester"), "2026-02-01.plan-for-test.md", agents={"feature-tester-rust"}
    )
    error = next(d for d in plan.errors if d.code == "E-OWNER-UNKNOWN")
    assert "did you mean 'feature-tester-rust'?" in error.message
    assert "--unknown-owners general-purpose" in error.message


def test_unknown_owners_general_purpose_makes_it_a_warning() -> None:
    plan = parse_text(
        _owned("tester"),
        "2026-02-01.plan-for-test.md",
        agents={"rust-developer"},
        unknown_owners="general-purpose",
    )
    assert not plan.errors
    assert any(d.code == "W-OWNER-UNKNOWN" for d in plan.warnings)


def test_validate_cli_unknown_owners_option(write_plan, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / ".claude" / "agents").mkdir(parents=True)
    (repo / ".claude" / "agents" / "rust-developer.md").write_text("---\nmodel: x\n---\nBody\n")
    path = write_plan(_owned("tester"))
    code, out = invoke("validate", str(path), "--repo", str(repo))
    assert code == 2 and "--unknown-owners general-purpose" in out
    code, out = invoke(
        "validate", str(path), "--repo", str(repo), "--unknown-owners", "general-purpose"
    )
    assert code == 0 and "W-OWNER-UNKNOWN" in out


@corpus
def test_sqlite_inventory_plan_owners_are_reported_read_only() -> None:
    plan = parse_plan(CORPUS / "2026-01-29.plan-for-sqlite-inventory-migration.md")
    flagged = [d.phase_id for d in plan.warnings if d.code == "W-OWNER-READONLY"]
    assert len(flagged) == 9


# -- blast radius prose ---------------------------------------------------------------------

PROSE_BLAST = "`cargo test --lib list` + manual testing with `-v` flag"


def test_prose_beside_a_command_validates_with_the_command() -> None:
    block = phase_block("1", "List").replace("`cargo test -p demo`", PROSE_BLAST)
    plan = parse_text(plan_text(block), "2026-02-01.plan-for-test.md")
    assert not plan.errors
    phase = plan.phases[0]
    assert phase.blast_commands == ["cargo test --lib list"]
    assert phase.blast_prose == "manual testing with `-v` flag"


def test_flags_words_and_paths_in_backticks_are_not_commands() -> None:
    from plan_parser.values import is_command_span

    assert not any(is_command_span(s, alone=False) for s in ["-v", "list", "src/lib.rs"])
    assert not is_command_span("audio::") and not is_command_span("-v")
    assert all(map(is_command_span, ["cargo test", "pytest", "just test", "true"]))


def test_validate_cli_accepts_the_prose_blast_radius(write_plan) -> None:
    block = phase_block("1", "List").replace("`cargo test -p demo`", PROSE_BLAST)
    code, out = invoke("validate", str(write_plan(plan_text(block))))
    assert code == 0, out


# -- the checklist says what the diagnostics say ---------------------------------------------


def test_files_row_warns_with_the_count_when_phases_list_no_files(write_plan) -> None:
    path = write_plan(plan_text(phase_block("1", "One"), phase_block("2", "Two", files=["a.rs"])))
    code, out = invoke("validate", str(path))
    row = next(line for line in out.splitlines() if "Files to create/modify" in line)
    assert row.lstrip().startswith("[warn]") and "1 of 2 phases list no files" in row
    skills_row = next(line for line in out.splitlines() if "SKILL.md" in line)
    assert "[ -- ]" in skills_row and "not checked" in skills_row


@pytest.mark.parametrize(
    ("sentence", "forbids"),
    [
        ("Do not run Phase 1 and Phase 3 in parallel.", True),
        ("Phase 1 and Phase 3 must not run concurrently.", True),
        ("Phase 1 cannot be run at the same time as Phase 3.", True),
        ("Phase 3 cannot start before Phase 1, but Phases 1 and 2 can run in parallel.", False),
        ("Phase 3 cannot begin until Phase 1 completes and then 1 and 2 run in parallel.", False),
        ("Phase 2 is not blocked and can run concurrently with Phase 1.", False),
    ],
)
def test_which_prose_forbids_running_together(sentence: str, forbids: bool) -> None:
    text = plan_text(phase_block("1", "One"), phase_block("2", "Two"), phase_block("3", "Three"))
    plan = parse_text(text + f"## Notes\n\n{sentence}\n", "2026-02-01.plan-for-test.md")
    assert bool(plan.serial_notes) is forbids
