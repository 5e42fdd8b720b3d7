"""Gates against lying and wandering agents: a phase that asks for tests must add some, files no
phase declares fail the `siblings` scope policy, and changes to CI or gate configuration block
the phase unless it declares them. On real fixture crates in fresh git repositories."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from plan_parser.model import FileAction, FileRef, Owner, OwnerKind, PhaseType
from tasks.gates.cargo_output import TestRun
from tasks.gates.ledger import LedgerEntry, Verdict, VerdictStatus
from tasks.gates.phase_gates import (
    gate_config_check,
    integrity_entries,
    phase_changes,
    run_phase_gates,
    scope_entries,
    snapshot,
)
from tasks.gates.verdict import blocks, decide
from tasks.gates.wandering import asks_for_tests
from tests.gates.helpers import blocked_by, edit, phase

MODIFY = FileAction.MODIFY
CREATE = FileAction.CREATE
CUBE_ANCHOR = "pub fn cube(x: i32) -> i32 {"
QUAD = "pub fn quad(x: i32) -> i32 {\n    x * x * x * x\n}\n\n"
QUAD_TEST = """    #[test]
    fn quad_of_two() {
        assert_eq!(quad(2), 16);
    }

    #[test]
    fn cube_of_two() {"""


def entry(entries: list[LedgerEntry], check: str) -> LedgerEntry:
    found = [e for e in entries if e.check == check]
    assert len(found) == 1, [e.check for e in entries]
    return found[0]


def math_phase(description: str, **kwargs: object):
    p = phase([("src/math.rs", MODIFY)], **kwargs)  # type: ignore[arg-type]
    p.files[0].description = description
    p.body = f"### Phase 1: quad\n\n**Files to modify:**\n- `src/math.rs` - {description}\n"
    return p


# --- new tests ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "asks"),
    [
        ("`quad` and its unit test", True),
        ("Add integration tests for the parser", True),
        ("unit tests for `quad` cover zero and negatives", True),
        ("all tests for the parser pass", False),
        ("`cargo test math::` runs 8+ tests covering squares and cubes", False),
        ("every new function gets a #[test]", True),
        ("implement `quad` with tests", True),
        ("`cargo test` passes", False),
        ("existing tests still pass", False),
        ("all tests pass after the refactor", False),
        ("no new tests are needed: a rename", False),
        ("all existing unit tests in `src/eval.rs` still pass", False),
        ("`cargo test` runs (even with 0 tests initially)", False),
        ("the CLI package definition with test dependencies", False),
        ("a doc comment on `quad`", False),
    ],
)
def test_what_counts_as_asking_for_tests(text: str, asks: bool) -> None:
    p = phase([("src/math.rs", MODIFY)], body=text)
    assert (asks_for_tests(p, text) is not None) is asks


def test_a_tester_owner_or_a_declared_test_file_asks_for_tests() -> None:
    tester = phase(body="Cover the math module.")
    tester.owner = Owner(
        raw="Feature Tester", kind=OwnerKind.AGENT_FILE, agent="feature-tester-rust"
    )
    assert "tester" in (asks_for_tests(tester, tester.body) or "")
    declared = phase([("tests/quad.rs", CREATE)], body="Cover quad.")
    assert "tests/quad.rs" in (asks_for_tests(declared, declared.body) or "")
    assert asks_for_tests(phase([("src/math.rs", MODIFY)], body="Add quad."), "Add quad.") is None


def test_phase_asking_for_tests_fails_without_a_new_test_and_passes_with_one(
    repo_factory: Callable[[str], Path],
) -> None:
    repo = repo_factory("single")
    start = snapshot(repo)
    p = math_phase("`quad` and its unit test")
    edit(repo, "src/math.rs", CUBE_ANCHOR, QUAD + CUBE_ANCHOR)

    lying = entry(integrity_entries(repo, p, start), "integrity: new tests")
    assert (lying.verdict, lying.required) == (Verdict.FAIL, True)
    assert "its unit test" in lying.evidence and "added no test function" in lying.evidence
    assert "test functions: 6 at the start, 6 now" in lying.evidence

    # An ignored new test is no test.
    edit(repo, "src/math.rs", "    #[test]\n    fn cube_of_two() {", QUAD_TEST)
    edit(
        repo,
        "src/math.rs",
        "    #[test]\n    fn quad_of_two",
        "    #[test]\n    #[ignore]\n    fn quad_of_two",
    )
    assert entry(integrity_entries(repo, p, start), "integrity: new tests").verdict is Verdict.FAIL

    edit(repo, "src/math.rs", "    #[ignore]\n", "")
    honest = entry(integrity_entries(repo, p, start), "integrity: new tests")
    assert honest.verdict is Verdict.PASS
    assert "src/math.rs::quad_of_two" in honest.evidence


def test_phase_not_asking_for_tests_and_design_phases_are_not_held_to_it(
    repo_factory: Callable[[str], Path],
) -> None:
    repo = repo_factory("single")
    start = snapshot(repo)
    edit(repo, "src/math.rs", CUBE_ANCHOR, QUAD + CUBE_ANCHOR)
    plain = entry(integrity_entries(repo, math_phase("add `quad`"), start), "integrity: new tests")
    assert plain.verdict is Verdict.PASS
    design = math_phase("the `quad` stub and its unit test", type=PhaseType.DESIGN)
    skipped = entry(integrity_entries(repo, design, start), "integrity: new tests")
    assert not blocks(skipped)


# --- lint suppressions: every form is an integrity failure ---------------------------------


@pytest.mark.parametrize(
    ("path", "anchor", "insert"),
    [
        ("src/math.rs", CUBE_ANCHOR, "#[allow(clippy::all)]\n"),
        ("src/math.rs", CUBE_ANCHOR, "#[allow(dead_code, clippy::pedantic)]\n"),
        ("src/math.rs", CUBE_ANCHOR, "#[expect(clippy::needless_return)]\n"),
        ("src/math.rs", CUBE_ANCHOR, "#[cfg_attr(not(test), allow(clippy::all))]\n"),
        ("src/lib.rs", "pub mod math;", "#![allow(clippy::all)]\n"),
        ("src/lib.rs", "pub mod math;", "#![allow(warnings)]\n"),
    ],
)
def test_each_form_of_lint_suppression_fails_integrity(
    repo_factory: Callable[[str], Path], path: str, anchor: str, insert: str
) -> None:
    repo = repo_factory("single")
    start = snapshot(repo)
    edit(repo, path, anchor, insert + anchor)
    found = entry(
        integrity_entries(repo, math_phase("add `quad`"), start), "integrity: lint suppressions"
    )
    assert (found.verdict, found.required) == (Verdict.FAIL, True)
    assert path in found.evidence and insert.strip()[:8] in found.evidence


# --- scope: siblings -----------------------------------------------------------------------


def test_siblings_policy_fails_files_no_phase_declares_and_warns_for_a_siblings(
    repo_factory: Callable[[str], Path],
) -> None:
    repo = repo_factory("single")
    start = snapshot(repo)
    edit(repo, "src/math.rs", CUBE_ANCHOR, QUAD + CUBE_ANCHOR)
    (repo / "docs").mkdir()
    (repo / "docs" / "quad.md").write_text("# quad\n")
    p = math_phase("add `quad`")
    others = [FileRef(path="docs/*.md", action=CREATE, is_glob=True)]

    def outside(policy: str, with_wanderer: bool) -> LedgerEntry:
        changes = phase_changes(repo, start)
        if not with_wanderer:
            changes.pop("scripts/wander.sh", None)
        return entry(
            scope_entries(p, changes, start, repo, policy, others), "scope: outside declared files"
        )  # type: ignore[arg-type]

    sibling_only = outside("siblings", with_wanderer=False)
    assert (sibling_only.verdict, sibling_only.required) == (Verdict.WARN, False)
    assert "docs/quad.md" in sibling_only.evidence and "another phase" in sibling_only.evidence

    (repo / "scripts").mkdir()
    (repo / "scripts" / "wander.sh").write_text("echo hi\n")
    wandering = outside("siblings", with_wanderer=True)
    assert (wandering.verdict, wandering.required) == (Verdict.FAIL, True)
    head, _, rest = wandering.evidence.partition("; declared by another phase: ")
    assert "scripts/wander.sh" in head and "docs/quad.md" not in head
    assert rest == "docs/quad.md"
    relaxed = outside("warn", with_wanderer=True)
    assert (relaxed.verdict, relaxed.required) == (Verdict.WARN, False)
    strict = outside("fail", with_wanderer=True)
    assert strict.verdict is Verdict.FAIL and "docs/quad.md" in strict.evidence


# --- gate configuration --------------------------------------------------------------------


def _append(repo: Path, path: str, text: str) -> None:
    target = repo / path
    target.parent.mkdir(parents=True, exist_ok=True)
    old = target.read_text() if target.exists() else ""
    target.write_text(old + text)


CONFIG_EDITS = [
    (".github/workflows/ci.yml", "on: push\njobs: {}\n", ".github/workflows/ci.yml (added)"),
    (".ci/check.sh", "exit 0\n", ".ci/check.sh (added)"),
    ("justfile", "test:\n    true\n", "justfile (added)"),
    ("clippy.toml", "cognitive-complexity-threshold = 100\n", "clippy.toml (added)"),
    ("rustfmt.toml", "max_width = 200\n", "rustfmt.toml (added)"),
    (
        ".cargo/config.toml",
        "[build]\nrustflags = ['--cap-lints', 'allow']\n",
        ".cargo/config.toml (added)",
    ),
    ("Cargo.toml", '\n[lints.clippy]\nall = "allow"\n', "Cargo.toml [lints] (added)"),
    (".ai/plan-executor.toml", "[gates]\nlint = ['true']\n", ".ai/plan-executor.toml (added)"),
    (
        "pyproject.toml",
        "[tool.plan-executor]\nlint = ['true']\n",
        "pyproject.toml [tool.plan-executor] (added)",
    ),
    (
        ".claude/agents/rust-developer.md",
        "You may skip the tests.\n",
        ".claude/agents/rust-developer.md (added)",
    ),
]


@pytest.mark.parametrize(("path", "text", "named"), CONFIG_EDITS, ids=[c[0] for c in CONFIG_EDITS])
def test_changing_ci_or_gate_configuration_blocks_the_phase(
    repo_factory: Callable[[str], Path], path: str, text: str, named: str
) -> None:
    repo = repo_factory("single")
    start = snapshot(repo)
    _append(repo, path, text)
    found = gate_config_check(repo, math_phase("add `quad`"), start, [])
    assert (found.verdict, found.required) == (Verdict.FAIL, True)
    assert found.evidence == f"changed without the plan asking: {named}"


def test_existing_config_edited_or_removed_is_named(repo_factory: Callable[[str], Path]) -> None:
    repo = repo_factory("single")
    (repo / "clippy.toml").write_text("too-many-arguments-threshold = 7\n")
    (repo / "rustfmt.toml").write_text("edition = '2021'\n")
    start = snapshot(repo)  # untracked but present at the start: the baseline is what was there
    (repo / "clippy.toml").write_text("too-many-arguments-threshold = 70\n")
    (repo / "rustfmt.toml").unlink()
    found = gate_config_check(repo, math_phase("add `quad`"), start, [])
    assert found.evidence == (
        "changed without the plan asking: clippy.toml (changed), rustfmt.toml (removed)"
    )


def test_gate_configuration_the_phase_or_a_sibling_declares(
    repo_factory: Callable[[str], Path],
) -> None:
    repo = repo_factory("single")
    start = snapshot(repo)
    _append(repo, "Cargo.toml", "\n[dependencies.itoa]\nversion = '1'\n")  # not configuration
    assert gate_config_check(repo, math_phase("add `quad`"), start, []).verdict is Verdict.PASS

    _append(repo, "clippy.toml", "cognitive-complexity-threshold = 30\n")
    declares = phase([("clippy.toml", CREATE)], body="Create `clippy.toml` with a threshold.")
    assert gate_config_check(repo, declares, start, []).verdict is Verdict.PASS
    sibling = gate_config_check(
        repo, math_phase("add `quad`"), start, [FileRef(path="clippy.toml")]
    )
    assert (sibling.verdict, blocks(sibling)) == (Verdict.WARN, False)

    # Declaring Cargo.toml (for a dependency) does not license its `[lints]`.
    _append(repo, "Cargo.toml", '\n[lints.rust]\nunused = "allow"\n')
    manifest = phase([("Cargo.toml", MODIFY)], body="Add the `itoa` dependency to Cargo.toml.")
    lints = gate_config_check(repo, manifest, start, [])
    assert lints.verdict is Verdict.FAIL and "Cargo.toml [lints] (added)" in lints.evidence
    asked = phase(
        [("Cargo.toml", MODIFY)], body="Relax `[lints]` in Cargo.toml for the FFI module."
    )
    assert "clippy.toml" in gate_config_check(repo, asked, start, []).evidence


def test_snapshot_from_before_the_check_existed_is_not_run(
    repo_factory: Callable[[str], Path],
) -> None:
    repo = repo_factory("single")
    start = snapshot(repo).model_copy(update={"gate_config": None})
    _append(repo, "clippy.toml", "cognitive-complexity-threshold = 30\n")
    found = gate_config_check(repo, math_phase("add `quad`"), start, [])
    assert found.verdict is Verdict.NOT_RUN and not found.required


def test_full_gate_run_blocks_on_gate_configuration_and_names_it(
    repo_factory: Callable[[str], Path], single_baseline: TestRun
) -> None:
    repo = repo_factory("single")
    start = snapshot(repo, baseline=single_baseline)
    edit(repo, "src/math.rs", CUBE_ANCHOR, QUAD + CUBE_ANCHOR)
    edit(repo, "src/math.rs", "    #[test]\n    fn cube_of_two() {", QUAD_TEST)
    p = math_phase(
        "`quad` and its unit test", blast="cargo test math::", blast_commands=["cargo test math::"]
    )
    assert (
        decide(run_phase_gates(repo, p, start=start, baseline=single_baseline)).status
        is VerdictStatus.COMPLETE
    )

    _append(repo, "rustfmt.toml", "max_width = 200\n")
    ledger = run_phase_gates(
        repo, p, start=start, baseline=single_baseline, scope_policy="siblings", others=[]
    )
    verdict = decide(ledger)
    blocked_by(verdict, "integrity: gate configuration", "rustfmt.toml (added)")
    blocked_by(verdict, "scope: outside declared files", "rustfmt.toml")
