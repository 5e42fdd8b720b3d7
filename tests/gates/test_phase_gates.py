"""Phase gates on real fixture crates in fresh git repositories: what makes a phase COMPLETE and
which ledger line BLOCKS it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from plan_parser.model import FileAction, PhaseType
from tasks.gates.cargo_output import TestRun
from tasks.gates.ledger import Verdict, VerdictStatus
from tasks.gates.phase_gates import run_phase_gates, snapshot
from tasks.gates.verdict import decide
from tests.gates.helpers import blocked_by, edit, phase

MODIFY = FileAction.MODIFY
CREATE = FileAction.CREATE

HALVE = """pub fn halve(x: i32) -> i32 {
    x / 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_ten() {
        assert_eq!(halve(10), 5);
    }
"""
HALVE_ANCHOR = """#[cfg(test)]
mod tests {
    use super::*;
"""


def add_halve(repo: Path, expected: int = 5) -> None:
    edit(repo, "src/math.rs", HALVE_ANCHOR, HALVE.replace("5);", f"{expected});"))


def math_phase(criteria: list[str] | None = None, **kwargs: object):
    return phase(
        [("src/math.rs", MODIFY)],
        criteria,
        blast="cargo test math::",
        blast_commands=["cargo test math::"],
        **kwargs,
    )  # type: ignore[arg-type]


def test_phase_with_files_and_passing_tests_is_complete_with_evidence(
    repo_factory: Callable[[str], Path], single_baseline: TestRun
) -> None:
    repo = repo_factory("single")
    start = snapshot(repo, baseline=single_baseline)
    add_halve(repo)
    criteria = [
        "File `src/math.rs` exists with >30 lines",
        '`grep "pub fn halve" src/math.rs` succeeds',
        "`cargo test math::` runs 4+ tests",
        "Halving reads naturally in the API docs",
        "Command `cargo build --lib` succeeds",
    ]
    ledger = run_phase_gates(repo, math_phase(criteria), start=start, baseline=single_baseline)
    verdict = decide(ledger)

    assert verdict.status is VerdictStatus.COMPLETE, [e.line() for e in verdict.failing]
    by_check = {entry.check: entry for entry in ledger.entries}
    assert by_check["file src/math.rs"].evidence.startswith("src/math.rs exists, ")
    assert "lines" in by_check["file src/math.rs"].evidence
    assert by_check["scope: src/math.rs changed"].evidence == "src/math.rs (M)"
    blast = by_check["blast-radius: cargo test math::"]
    assert (blast.verdict, blast.command, blast.exit_code) == (Verdict.PASS, "cargo test math::", 0)
    assert blast.evidence.startswith("4 passed, 0 failed, 0 ignored")
    assert "sha256" in blast.evidence
    assert by_check["regressions vs baseline"].verdict is Verdict.PASS
    for check in ("build", "lint", "fmt", "integrity: test count", "integrity: lint suppressions"):
        assert by_check[check].verdict is Verdict.PASS, by_check[check].line()
    assert "6 at the start, 7 now (+1)" in by_check["integrity: test count"].evidence
    criteria_entries = [e for e in ledger.entries if e.check.startswith("criterion")]
    assert [e.verdict for e in criteria_entries] == [Verdict.PASS] * 3 + [
        Verdict.NEEDS_JUDGEMENT,
        Verdict.PASS,
    ]
    assert criteria_entries[4].command == "cargo build --lib"
    assert [e.check for e in verdict.needs_judgement] == ["criterion 4"]
    assert all(e.phase_id == "1" for e in ledger.entries)


def test_declared_file_missing(
    repo_factory: Callable[[str], Path], single_baseline: TestRun
) -> None:
    repo = repo_factory("single")
    start = snapshot(repo, baseline=single_baseline)
    add_halve(repo)
    plan_phase = phase(
        [("src/math.rs", MODIFY), ("src/halve.rs", CREATE)],
        blast="cargo test math::",
        blast_commands=["cargo test math::"],
    )
    verdict = decide(run_phase_gates(repo, plan_phase, start=start, baseline=single_baseline))
    blocked_by(verdict, "file src/halve.rs", "src/halve.rs is missing")
    blocked_by(verdict, "scope: src/halve.rs changed", "phantom completion")
    assert {e.check for e in verdict.failing} == {
        "file src/halve.rs",
        "scope: src/halve.rs changed",
    }


def test_grep_criterion_fails_on_present_file(
    repo_factory: Callable[[str], Path], single_baseline: TestRun
) -> None:
    repo = repo_factory("single")
    start = snapshot(repo, baseline=single_baseline)
    add_halve(repo)
    criteria = ['`grep "pub fn third" src/math.rs` succeeds', "File `src/math.rs` exists"]
    verdict = decide(
        run_phase_gates(repo, math_phase(criteria), start=start, baseline=single_baseline)
    )
    entry = blocked_by(verdict, "criterion 1", "no match")
    assert entry.command == "grep 'pub fn third' src/math.rs"
    assert entry.exit_code == 1
    assert len(verdict.failing) == 1


def test_failing_blast_radius_test(
    repo_factory: Callable[[str], Path], single_baseline: TestRun
) -> None:
    repo = repo_factory("single")
    start = snapshot(repo, baseline=single_baseline)
    add_halve(repo, expected=4)  # the phase's new test fails
    verdict = decide(run_phase_gates(repo, math_phase(), start=start, baseline=single_baseline))
    entry = blocked_by(
        verdict, "blast-radius: cargo test math::", "failing: single::math::tests::halves_ten"
    )
    assert entry.exit_code == 101
    # A new test that fails is not a regression: it never passed before.
    assert [e.check for e in verdict.failing] == ["blast-radius: cargo test math::"]


def test_regression_against_the_baseline(
    repo_factory: Callable[[str], Path], single_baseline: TestRun
) -> None:
    repo = repo_factory("single")
    start = snapshot(repo, baseline=single_baseline)
    edit(repo, "src/math.rs", "    x * x\n}", "    x * x + 1\n}")
    verdict = decide(run_phase_gates(repo, math_phase(), start=start, baseline=single_baseline))
    entry = blocked_by(verdict, "regressions vs baseline")
    assert "single::math::tests::square_of_three" in entry.evidence
    assert "single::math::tests::square_of_zero" in entry.evidence
    assert "cube_of_two" not in entry.evidence


def test_deleted_test(repo_factory: Callable[[str], Path], single_baseline: TestRun) -> None:
    repo = repo_factory("single")
    start = snapshot(repo, baseline=single_baseline)
    edit(
        repo,
        "src/math.rs",
        "\n    #[test]\n    fn cube_of_two() {\n        assert_eq!(cube(2), 8);\n    }\n",
        "",
    )
    verdict = decide(run_phase_gates(repo, math_phase(), start=start, baseline=single_baseline))
    blocked_by(verdict, "integrity: deleted tests", "src/math.rs::cube_of_two")
    blocked_by(verdict, "integrity: test count", "6 at the start, 5 now (-1)")
    assert {e.check for e in verdict.failing} == {
        "integrity: deleted tests",
        "integrity: test count",
    }


def test_newly_ignored_test(repo_factory: Callable[[str], Path], single_baseline: TestRun) -> None:
    repo = repo_factory("single")
    start = snapshot(repo, baseline=single_baseline)
    edit(
        repo,
        "src/math.rs",
        "    #[test]\n    fn square_of_zero",
        "    #[test]\n    #[ignore]\n    fn square_of_zero",
    )
    ledger = run_phase_gates(repo, math_phase(), start=start, baseline=single_baseline)
    verdict = decide(ledger)
    blocked_by(verdict, "integrity: newly ignored tests", "src/math.rs::square_of_zero")
    assert len(verdict.failing) == 1
    blast = next(e for e in ledger.entries if e.check == "blast-radius: cargo test math::")
    assert "2 passed, 0 failed, 1 ignored" in blast.evidence


def test_new_clippy_allow(repo_factory: Callable[[str], Path], single_baseline: TestRun) -> None:
    repo = repo_factory("single")
    start = snapshot(repo, baseline=single_baseline)
    edit(repo, "src/math.rs", "pub fn cube(", "#[allow(clippy::let_and_return)]\npub fn cube(")
    verdict = decide(run_phase_gates(repo, math_phase(), start=start, baseline=single_baseline))
    blocked_by(
        verdict, "integrity: lint suppressions", "src/math.rs: #[allow(clippy::let_and_return)]"
    )
    assert len(verdict.failing) == 1


def test_clippy_warning(repo_factory: Callable[[str], Path], single_baseline: TestRun) -> None:
    repo = repo_factory("single")
    start = snapshot(repo, baseline=single_baseline)
    edit(
        repo,
        "src/math.rs",
        "pub fn cube(x: i32) -> i32 {\n    x * x * x\n}",
        "pub fn cube(x: i32) -> i32 {\n    return x * x * x;\n}",
    )
    verdict = decide(run_phase_gates(repo, math_phase(), start=start, baseline=single_baseline))
    entry = blocked_by(verdict, "lint", "exit 101")
    assert entry.command == "cargo clippy --workspace -- -D warnings"
    assert "needless_return" in entry.evidence
    assert [e.check for e in verdict.failing] == ["lint"]


def test_unformatted_code(repo_factory: Callable[[str], Path], single_baseline: TestRun) -> None:
    repo = repo_factory("single")
    start = snapshot(repo, baseline=single_baseline)
    edit(
        repo,
        "src/math.rs",
        "pub fn cube(x: i32) -> i32 {\n    x * x * x\n}",
        "pub fn cube(x:i32)->i32{x*x*x}",
    )
    verdict = decide(run_phase_gates(repo, math_phase(), start=start, baseline=single_baseline))
    entry = blocked_by(verdict, "fmt", "exit 1")
    assert entry.command == "cargo fmt --check --all"
    assert "src/math.rs" in entry.evidence
    assert [e.check for e in verdict.failing] == ["fmt"]


def test_runs_8_plus_tests_with_only_3(
    repo_factory: Callable[[str], Path], single_baseline: TestRun
) -> None:
    repo = repo_factory("single")
    start = snapshot(repo, baseline=single_baseline)
    edit(repo, "src/math.rs", "pub fn square(", "/// Squares a number.\npub fn square(")
    criteria = ["`cargo test math::` runs 8+ tests covering squares and cubes"]
    verdict = decide(
        run_phase_gates(repo, math_phase(criteria), start=start, baseline=single_baseline)
    )
    entry = blocked_by(
        verdict, "criterion 1", "3 tests ran (3 passed, 0 failed, 0 ignored); wanted 8+"
    )
    assert entry.command == "cargo test math::"
    assert len(verdict.failing) == 1


def test_justfile_recipes_are_the_gate_commands(repo_factory: Callable[[str], Path]) -> None:
    repo = repo_factory("justcrate")
    start = snapshot(repo)
    edit(repo, "src/lib.rs", "pub fn greet(", "/// Greets someone.\npub fn greet(")
    ledger = run_phase_gates(repo, phase([("src/lib.rs", MODIFY)]), start=start, baseline=None)
    verdict = decide(ledger)
    assert verdict.status is VerdictStatus.COMPLETE, [e.line() for e in verdict.failing]
    tests = next(e for e in ledger.entries if e.check.startswith("tests (default scope)"))
    assert tests.command == "just test"
    assert tests.evidence.startswith("1 passed, 0 failed, 0 ignored")
    build = next(e for e in ledger.entries if e.check == "build")
    assert build.command == "just build"
    assert build.verdict is Verdict.PASS


def test_unrunnable_blast_radius_is_never_a_pass(
    repo_factory: Callable[[str], Path], single_baseline: TestRun
) -> None:
    repo = repo_factory("single")
    start = snapshot(repo, baseline=single_baseline)
    add_halve(repo)
    plan_phase = phase(
        [("src/math.rs", MODIFY)],
        blast="`cargo test math:: && grep -q halve src/math.rs` + `cargo test | tail -3` + `rm -rf /`",
        blast_commands=[
            "cargo test math:: && grep -q halve src/math.rs",
            "cargo test | tail -3",
            "rm -rf /",
            "cargo publish --dry-run",
        ],
    )
    ledger = run_phase_gates(repo, plan_phase, start=start, baseline=single_baseline)
    by_check = {entry.check: entry for entry in ledger.entries}
    assert by_check["blast-radius: cargo test math::"].verdict is Verdict.PASS
    assert by_check["blast-radius: grep -q halve src/math.rs"].verdict is Verdict.PASS
    piped = by_check["blast-radius: cargo test '|' tail -3"]
    assert piped.verdict is Verdict.NOT_RUN and "shell operators" in piped.evidence
    refused = by_check["blast-radius: rm -rf /"]
    assert refused.verdict is Verdict.NOT_RUN and "not an allowed gate program" in refused.evidence
    publish = by_check["blast-radius: cargo publish --dry-run"]
    assert publish.verdict is Verdict.NOT_RUN and "not an allowed subcommand" in publish.evidence
    assert (repo / "src" / "math.rs").is_file()
    assert decide(ledger).status is VerdictStatus.COMPLETE


def test_prose_blast_radius_is_recorded_not_run_and_the_default_scope_runs(
    repo_factory: Callable[[str], Path], single_baseline: TestRun
) -> None:
    repo = repo_factory("single")
    start = snapshot(repo, baseline=single_baseline)
    add_halve(repo)
    plan_phase = phase([("src/math.rs", MODIFY)], blast="Manual testing only")
    ledger = run_phase_gates(repo, plan_phase, start=start, baseline=single_baseline)
    by_check = {entry.check: entry for entry in ledger.entries}
    assert by_check["blast-radius"].verdict is Verdict.NOT_RUN
    assert "Manual testing only" in by_check["blast-radius"].evidence
    default = by_check["tests (default scope): cargo test"]
    assert default.verdict is Verdict.PASS and default.evidence.startswith(
        "8 passed, 0 failed, 1 ignored"
    )


@pytest.mark.parametrize("radius", ["None", "Documentation", "nothing", "docs"])
def test_one_word_no_tests_radius_is_not_a_test_filter(
    repo_factory: Callable[[str], Path], single_baseline: TestRun, radius: str
) -> None:
    """A blast radius of one word that says "no tests" is the author's "none", not a filter:
    `cargo test None` selects nothing, and a scoped run of nothing would block an honest phase."""
    repo = repo_factory("single")
    start = snapshot(repo, baseline=single_baseline)
    add_halve(repo)
    plan_phase = phase([("src/math.rs", MODIFY)], blast=radius)
    ledger = run_phase_gates(repo, plan_phase, start=start, baseline=single_baseline)
    by_check = {entry.check: entry for entry in ledger.entries}
    assert f"blast-radius: {radius}" not in by_check
    assert by_check["blast-radius"].verdict is Verdict.NOT_RUN
    assert by_check["tests (default scope): cargo test"].verdict is Verdict.PASS
    assert decide(ledger).status is VerdictStatus.COMPLETE


def test_design_phase_needs_artifacts_not_tests(repo_factory: Callable[[str], Path]) -> None:
    repo = repo_factory("single")
    start = snapshot(repo)
    (repo / "docs").mkdir()
    (repo / "docs" / "adr-001.md").write_text("# ADR 1\n\nWe halve numbers.\n")
    design = phase(
        [("docs/adr-001.md", CREATE), ("docs/schema.md", CREATE)],
        ["File `docs/adr-001.md` exists with 3+ lines"],
        type=PhaseType.DESIGN,
    )
    ledger = run_phase_gates(repo, design, start=start, baseline=None)
    verdict = decide(ledger)
    blocked_by(verdict, "file docs/schema.md", "missing")
    tests = next(e for e in ledger.entries if e.check == "tests")
    assert (tests.verdict, tests.required) == (Verdict.NOT_RUN, False)
    (repo / "docs" / "schema.md").write_text("# Schema\n")
    assert (
        decide(run_phase_gates(repo, design, start=start, baseline=None)).status
        is VerdictStatus.COMPLETE
    )


def test_out_of_scope_changes_warn_by_default_and_fail_by_policy(
    repo_factory: Callable[[str], Path], single_baseline: TestRun
) -> None:
    repo = repo_factory("single")
    (repo / "NOTES.md").write_text("dirty before the phase: a sibling's work\n")
    start = snapshot(repo, baseline=single_baseline)
    add_halve(repo)
    (repo / "README.md").write_text("# single\n")
    ledger = run_phase_gates(repo, math_phase(), start=start, baseline=single_baseline)
    scope = next(e for e in ledger.entries if e.check == "scope: outside declared files")
    assert (scope.verdict, scope.required) == (Verdict.WARN, False)
    assert "README.md" in scope.evidence and "NOTES.md" not in scope.evidence
    assert decide(ledger).status is VerdictStatus.COMPLETE
    strict = run_phase_gates(
        repo, math_phase(), start=start, baseline=single_baseline, scope_policy="fail"
    )
    blocked_by(decide(strict), "scope: outside declared files", "README.md")


def test_loosely_named_existing_file_resolves_to_the_one_it_names(
    repo_factory: Callable[[str], Path], single_baseline: TestRun
) -> None:
    repo = repo_factory("single")
    start = snapshot(repo, baseline=single_baseline)
    add_halve(repo)
    loose = phase(
        [("math.rs", MODIFY)], blast="cargo test math::", blast_commands=["cargo test math::"]
    )
    ledger = run_phase_gates(repo, loose, start=start, baseline=single_baseline)
    by_check = {e.check: e for e in ledger.entries}
    assert by_check["file math.rs"].evidence.startswith("src/math.rs exists")
    assert by_check["scope: math.rs changed"].evidence == "src/math.rs (M)"
    assert decide(ledger).status is VerdictStatus.COMPLETE


def test_a_phase_that_changed_gate_configuration_runs_no_gate_command(
    repo_factory: Callable[[str], Path],
) -> None:
    """`just test` reads the working tree's justfile: the integrity check comes first, and a
    phase that failed it runs no test, build, lint or format command (the agent's recipe here)."""
    from tasks.gates.config import load_committed_gate_config

    repo = repo_factory("justcrate")
    config = load_committed_gate_config(repo)  # what pre-flight read: `just test`, `just build`
    assert (config.test, config.build) == (["just", "test"], ["just", "build"])
    start = snapshot(repo)
    justfile = (repo / "justfile").read_text()
    (repo / "justfile").write_text(justfile.replace("cargo test", "touch agent-recipe-ran; true"))

    ledger = run_phase_gates(
        repo, phase(blast="`cargo test`", blast_commands=["just test"]), start=start,
        baseline=None, config=config,
    )  # fmt: skip

    assert not (repo / "agent-recipe-ran").exists()
    config_entry = next(e for e in ledger.entries if e.check == "integrity: gate configuration")
    assert config_entry.verdict is Verdict.FAIL and "justfile (changed)" in config_entry.evidence
    ran = [e for e in ledger.entries if e.exit_code is not None or e.duration_s]
    assert ran == [], [e.line() for e in ran]
    for check in ("build", "lint", "fmt"):
        entry = next(e for e in ledger.entries if e.check == check)
        assert entry.verdict is Verdict.NOT_RUN and "gate configuration" in entry.evidence
    assert decide(ledger).status is VerdictStatus.BLOCKED
