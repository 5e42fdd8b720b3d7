"""The verdict rules and the mechanical criteria, without cargo."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.gates.cargo_output import TestRun
from tasks.gates.criteria import dependency_names_from_field, evaluate_criterion, grep_argv
from tasks.gates.ledger import Ledger, LedgerEntry, Verdict, VerdictStatus
from tasks.gates.phase_gates import PhaseStart, integrity_entries
from tasks.gates.repo_state import RustInventory, scan_rust_file
from tasks.gates.verdict import decide
from tests.gates.helpers import phase


def e(verdict: Verdict, required: bool = True, check: str = "c") -> LedgerEntry:
    return LedgerEntry(check=check, verdict=verdict, required=required)


def test_verdict_rules() -> None:
    assert (
        decide(Ledger(entries=[e(Verdict.PASS), e(Verdict.WARN), e(Verdict.FAIL, False)])).status
        is VerdictStatus.COMPLETE
    )
    not_run = decide(Ledger(entries=[e(Verdict.PASS), e(Verdict.NOT_RUN, check="tests")]))
    assert not_run.status is VerdictStatus.BLOCKED and [x.check for x in not_run.failing] == [
        "tests"
    ]
    assert decide(Ledger(entries=[e(Verdict.NOT_RUN, False)])).status is VerdictStatus.COMPLETE
    pending = decide(
        Ledger(entries=[e(Verdict.PASS), e(Verdict.NEEDS_JUDGEMENT, check="criterion 2")])
    )
    assert pending.status is VerdictStatus.COMPLETE
    assert [x.check for x in pending.needs_judgement] == ["criterion 2"]
    judged = LedgerEntry(check="criterion 2", verdict=Verdict.FAIL, judged=True)
    verdict = decide(Ledger(entries=[judged]))
    assert verdict.status is VerdictStatus.BLOCKED and verdict.needs_judgement == []
    assert "(judged)" in verdict.failing[0].line()


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "lib.rs").write_text(
        "pub mod link;\n\n#[cfg(test)]\nmod tests {\n    #[test]\n    fn a() {}\n    #[test]\n    fn b() {}\n}\n"
    )
    (tmp_path / "Cargo.toml").write_text(
        '[package]\nname = "x"\n\n[dependencies]\nserde_yaml = "0.9"\nlocal = { path = "../l", package = "real-name" }\n\n'
        '[dev-dependencies]\nproptest = "1"\n'
    )
    from tasks import shell

    shell.run(["git", "init", "-q"], cwd=tmp_path)
    return tmp_path


def never_counts(argv: list[str] | None) -> tuple[TestRun | None, str]:
    raise AssertionError("no test count expected")


def verdicts(repo: Path, text: str) -> list[Verdict]:
    return [
        x.verdict
        for x in evaluate_criterion(
            repo, 1, text, count_tests=never_counts, allowed_programs={"cargo"}
        )
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("File `src/lib.rs` exists", [Verdict.PASS]),
        ("File `src/lib.rs` exists with >150 lines", [Verdict.FAIL]),
        ("File `src/lib.rs` exists with 2+ tests", [Verdict.PASS]),
        ("File `src/lib.rs` exists with 3+ tests", [Verdict.FAIL]),
        ("File `src/other.rs` exists", [Verdict.FAIL]),
        ("Directory `src/` exists", [Verdict.PASS]),
        ('`grep "pub mod link" src/lib.rs` succeeds', [Verdict.PASS]),
        ('Command `grep "pub mod nope" src/lib.rs` succeeds', [Verdict.FAIL]),
        ("`grep -q unsafe src/lib.rs` returns nothing", [Verdict.PASS]),
        ('`grep "fn " src/lib.rs` finds 2+ tests', [Verdict.PASS]),
        ('`grep "#\\[test\\]" src/*.rs` finds 3+', [Verdict.FAIL]),
        ('`rg "mod tests" src` succeeds', [Verdict.PASS]),
        ('`grep "x" src/lib.rs | wc -l` shows 3', [Verdict.NEEDS_JUDGEMENT]),
        ("`serde_yaml` dependency added to `Cargo.toml`", [Verdict.PASS]),
        ("`tokio` dependency added to `Cargo.toml`", [Verdict.FAIL]),
        ('Cargo.toml includes `proptest = "1"` in `[dev-dependencies]`', [Verdict.PASS]),
        ("`real-name` in `Cargo.toml`", [Verdict.PASS]),
        ('File `Cargo.toml` contains `serde_yaml = "0.9"`', [Verdict.PASS]),
        ("Function `check_symlink_exists` has 8+ unit tests", [Verdict.NEEDS_JUDGEMENT]),
        ("5+ unit tests for `ImageRenderer::new()` pass", [Verdict.NEEDS_JUDGEMENT]),
        ("`src/lib.rs` contains `pub mod link;` and `fn b()`", [Verdict.PASS]),
        ("`src/lib.rs` contains `pub mod link;` and `fn c()`", [Verdict.FAIL]),
        ("`lib.rs` contains `mod tests`", [Verdict.PASS]),
        ("`nested/lib.rs` contains `mod tests`", [Verdict.FAIL]),
        ("File `src/lib.rs` exists with `fn a()` and `fn b()`", [Verdict.PASS, Verdict.PASS]),
        ("`src/lib.rs` does not contain `unsafe`", [Verdict.PASS]),
        ("File `src/lib.rs` mentions `link`", [Verdict.PASS]),
        ("`pub mod link;` removed from `src/lib.rs`", [Verdict.FAIL]),
        ("`tokio` dependency removed from `Cargo.toml`", [Verdict.PASS]),
        ("`serde_yaml` dependency removed from `Cargo.toml`", [Verdict.FAIL]),
        ("`src/old.rs` deleted", [Verdict.PASS]),
        ("`src/lib.rs` is deleted", [Verdict.FAIL]),
        ("Unit tests added: 2+ tests in `lib.rs`", [Verdict.PASS]),
        ("Integration tests in `src/lib.rs` exist with 8+ tests", [Verdict.FAIL]),
        ("`sub/Cargo.toml` includes `serde_yaml` dependency", [Verdict.PASS]),
        ("Error messages are helpful", [Verdict.NEEDS_JUDGEMENT]),
    ],
)
def test_mechanical_criteria(tree: Path, text: str, expected: list[Verdict]) -> None:
    assert verdicts(tree, text) == expected


def test_grep_is_never_given_to_a_shell() -> None:
    assert grep_argv('grep "a b" src/x.rs') == (["grep", "a b", "src/x.rs"], "")
    argv, why = grep_argv("grep x $(rm -rf /)")
    assert argv is None and ("shell operators" in why or "substitution" in why)
    assert grep_argv("grep x f; rm y")[0] is None


def test_test_count_criteria_use_the_phase_runs(tree: Path) -> None:
    seen: list[list[str] | None] = []

    def counts(argv: list[str] | None) -> tuple[TestRun | None, str]:
        seen.append(argv)
        return TestRun(passed=3, summaries=1), "cargo test --lib link"

    [entry] = evaluate_criterion(
        tree,
        1,
        "`cargo test --lib link` runs 10+ tests",
        count_tests=counts,
        allowed_programs={"cargo"},
    )
    assert entry.verdict is Verdict.FAIL and "3 tests ran" in entry.evidence
    [entry] = evaluate_criterion(
        tree, 2, "All 3+ tests pass", count_tests=counts, allowed_programs={"cargo"}
    )
    assert entry.verdict is Verdict.PASS
    assert seen == [["cargo", "test", "--lib", "link"], None]


def test_dependency_field_names() -> None:
    assert dependency_names_from_field('`serde` (derive), `tokio = "1"`') == ["serde", "tokio"]
    assert dependency_names_from_field("None") == []


BEFORE = "#[test]\nfn keeps() {}\n#[test]\nfn goes() {}\nfn f() {}\n"
AFTER = "#[test]\n#[ignore]\nfn keeps() {}\n#[allow(clippy::too_many_arguments)]\nfn f() {}\n"


@pytest.mark.parametrize(
    ("body", "allowed"),
    [
        ("Add a builder.", set()),
        (
            "Allow `clippy::too_many_arguments` on the builder: it mirrors the C API.",
            {"suppressions"},
        ),
        ("Remove the obsolete `goes` test.", {"deleted", "count"}),
        ("#[ignore] the slow `keeps` test until the fixture is fast.", {"ignored"}),
        ("Replace the old parser; errors are ignored; tests verify it.", set()),
    ],
)
def test_integrity_failures_unless_the_plan_asks(
    tmp_path: Path, body: str, allowed: set[str]
) -> None:
    from tasks import shell

    shell.run(["git", "init", "-q"], cwd=tmp_path)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.rs").write_text(AFTER)
    before = RustInventory()
    scan_rust_file("src/a.rs", BEFORE, before)
    start = PhaseStart(head="", inventory=before)
    verdicts = {e.check: e.verdict for e in integrity_entries(tmp_path, phase(body=body), start)}
    checks = {
        "count": "integrity: test count",
        "deleted": "integrity: deleted tests",
        "ignored": "integrity: newly ignored tests",
        "suppressions": "integrity: lint suppressions",
    }
    for key, check in checks.items():
        assert verdicts[check] is (Verdict.PASS if key in allowed else Verdict.FAIL), (check, body)


def test_rust_inventory_reads_tests_ignores_and_suppressions() -> None:
    inventory = RustInventory()
    source = (
        "#[test] fn one() {}\n"
        '#[test]\n#[ignore = "slow"]\n// a comment\nfn two() {}\n'
        "#[cfg(test)]\nmod t {\n"
        "    #[tokio::test] async fn three() {}\n"
        "    #[allow(dead_code)] fn helper() {}\n"
        '    #[test]\n    #[should_panic(expected = "[x]")]\n    pub fn four() {}\n'
        "    // #[allow(unused)] in a comment does not count\n"
        "}\n"
    )
    scan_rust_file("src/a.rs", source, inventory)
    assert inventory.tests == {
        "src/a.rs::one": False,
        "src/a.rs::two": True,
        "src/a.rs::three": False,
        "src/a.rs::four": False,
    }
    assert inventory.suppressions == {"src/a.rs: #[allow(dead_code)]": 1}


def test_dependencies_to_add_field_is_checked_in_cargo_toml(tree: Path) -> None:
    from tasks.gates.phase_gates import dependency_field_entries

    adds = phase(extra={"Dependencies to add": '`serde_yaml = "0.9"`, `proptest`, `tokio`'})
    entries = {e.check: e for e in dependency_field_entries(tree, adds)}
    assert entries["dependency serde_yaml"].verdict is Verdict.PASS
    assert entries["dependency proptest"].verdict is Verdict.PASS
    assert entries["dependency tokio"].verdict is Verdict.FAIL
    assert "not declared in Cargo.toml" in entries["dependency tokio"].evidence
    assert dependency_field_entries(tree, phase(extra={"Dependencies": "Phase 1"})) == []
