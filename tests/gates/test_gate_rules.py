"""The gates as tables (issue #19): the phase gates' rules and the criterion recognisers, each
on a tiny repository, without cargo."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from plan_parser.gate_commands import (
    APPENDABLE_TEST_FILTER,
    NAMED_TEST_PATH,
    blast_problem,
    split_segments,
)
from plan_parser.model import FileAction, PhaseType
from tasks.gates.cargo_output import TestRun
from tasks.gates.config import load_gate_config
from tasks.gates.criteria import (
    CRITERION_RECOGNISERS,
    CriterionContext,
    Recogniser,
    evaluate_criterion,
)
from tasks.gates.ledger import LedgerEntry, Verdict
from tasks.gates.phase_gates import PHASE_GATES, GateContext, PhaseStart
from tests.gates.helpers import git, phase
from tests.gates.test_verdict_and_criteria import never_counts

CREATE, MODIFY = FileAction.CREATE, FileAction.MODIFY

LIB = """pub fn halve(x: i32) -> i32 {
    x / 2
}

#[test]
fn halves_two() {}

#[test]
fn halves_zero() {}

#[test]
fn halves_minus_two() {}
"""
MANIFEST = '[package]\nname = "demo"\nversion = "0.1.0"\n\n[dependencies]\nserde = "1"\n'


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A committed git repository with a Cargo.toml and a source file (never built)."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "lib.rs").write_text(LIB)
    (tmp_path / "Cargo.toml").write_text(MANIFEST)
    git(tmp_path, "init", "-q", "-b", "main")
    git(tmp_path, "add", "-A")
    git(
        tmp_path,
        "-c",
        "user.email=rules@example.invalid",
        "-c",
        "user.name=rules",
        "-c",
        "commit.gpgsign=false",
        "commit",
        "-q",
        "-m",
        "fixture",
    )
    return tmp_path


# --- the phase gates --------------------------------------------------------------------------


def test_phase_gates_run_in_the_ledger_order() -> None:
    assert [gate.name for gate in PHASE_GATES] == [
        "declared files",
        "scope",
        "test runs",
        "blast radius",
        "regressions",
        "criteria",
        "dependency fields",
        "integrity",
        "gate configuration",
        "quality",
    ]


def _context(repo: Path, **phase_args: Any) -> GateContext:
    return GateContext(
        repo=repo,
        phase=phase(**phase_args),
        start=PhaseStart(head=git(repo, "rev-parse", "HEAD").strip(), gate_config={}),
        baseline=None,
        config=load_gate_config(repo),
    )


def _gate(name: str) -> Callable[[GateContext], list[LedgerEntry]]:
    return next(gate for gate in PHASE_GATES if gate.name == name).entries


def test_declared_files_gate_alone_fails_an_empty_declared_file(tree: Path) -> None:
    (tree / "src" / "empty.rs").write_text("")
    ctx = _context(tree, files=[("src/lib.rs", MODIFY), ("src/empty.rs", CREATE)])
    entries = _gate("declared files")(ctx)
    assert [(e.check, e.verdict) for e in entries] == [
        ("file src/lib.rs", Verdict.PASS),
        ("file src/empty.rs", Verdict.FAIL),
    ]
    assert entries[1].evidence == "src/empty.rs is empty"


def test_a_phase_that_changed_gate_configuration_runs_no_command(tree: Path) -> None:
    (tree / "justfile").write_text("test:\n    echo the agent's recipe\n")
    ctx = _context(tree, blast_commands=["cargo test halve"], criteria=["`cargo build` succeeds"])
    assert ctx.gate_config_entry.verdict is Verdict.FAIL
    assert ctx.refused is not None
    by_name = {gate.name: gate.entries(ctx) for gate in PHASE_GATES}
    runs = by_name["test runs"]
    assert [(e.check, e.verdict, e.exit_code) for e in runs] == [
        ("blast-radius: cargo test halve", Verdict.NOT_RUN, None),
        ("run for criteria: cargo build", Verdict.NOT_RUN, None),
    ]
    assert [(e.check, e.verdict) for e in by_name["quality"]] == [
        ("build", Verdict.NOT_RUN),
        ("lint", Verdict.NOT_RUN),
        ("fmt", Verdict.NOT_RUN),
    ]
    assert all(e.evidence == ctx.refused for e in by_name["quality"])
    assert by_name["gate configuration"] == [ctx.gate_config_entry]


def test_a_design_phase_has_no_regression_gate(tree: Path) -> None:
    ctx = _context(tree, type=PhaseType.DESIGN)
    regressions = _gate("regressions")(ctx)
    assert regressions == []
    blast = _gate("blast radius")(ctx)
    assert [(e.check, e.verdict) for e in blast] == [("tests", Verdict.NOT_RUN)]


# --- the criterion recognisers ----------------------------------------------------------------


def test_criterion_recognisers_are_tried_in_order() -> None:
    assert [r.name for r in CRITERION_RECOGNISERS] == [
        "grep command",
        "tests in file",
        "Cargo.toml includes",
        "file contains",
        "removed from file",
        "file gone",
        "dependency added",
        "in file",
        "file exists",
        "run test count",
        "command succeeds",
    ]


def _recogniser(name: str) -> Recogniser:
    return next(r for r in CRITERION_RECOGNISERS if r.name == name)


def _grep_recorded(repo: Path, check: str, command: str, _text: str) -> LedgerEntry:
    return LedgerEntry(check=check, verdict=Verdict.PASS, evidence=f"recorded {command}")


def _criterion(repo: Path, text: str, **overrides: object) -> CriterionContext:
    fields: dict[str, object] = {
        "repo": repo,
        "text": text,
        "label": f"criterion 1: {text[:80]}",
        "count_tests": never_counts,
        "allowed_programs": {"cargo"},
        "run_command": None,
        "grep": _grep_recorded,
    }
    fields.update(overrides)
    return CriterionContext(**fields)  # type: ignore[arg-type]


RECOGNISED = [
    # (recogniser, criterion, verdict, evidence part, the parts it consumes)
    ("grep command", "`grep -q halve src/lib.rs` succeeds", Verdict.PASS, "recorded grep", None),
    ("tests in file", "3+ tests in `src/lib.rs`", Verdict.PASS, "3 test functions", {"src/lib.rs"}),
    (
        "Cargo.toml includes",
        'Cargo.toml includes `serde = "1"` as a dependency',
        Verdict.PASS,
        "`serde` is declared in Cargo.toml",
        {'serde = "1"', "Cargo.toml"},
    ),
    (
        "file contains",
        "File `src/lib.rs` contains `pub fn halve` and `x / 2`",
        Verdict.PASS,
        "src/lib.rs:1:",
        {"src/lib.rs", "pub fn halve", "x / 2"},
    ),
    (
        "removed from file",
        "`fn double` removed from `src/lib.rs`",
        Verdict.PASS,
        "holds none of",
        {"fn double", "src/lib.rs"},
    ),
    ("file gone", "File `src/old.rs` is deleted", Verdict.PASS, "is gone", {"src/old.rs"}),
    (
        "dependency added",
        "`tokio` dependency added to `Cargo.toml`",
        Verdict.FAIL,
        "`tokio` is not declared in Cargo.toml",
        {"tokio"},
    ),
    ("in file", "`halve` is in `src/lib.rs`", Verdict.PASS, "src/lib.rs:1:", None),
    (
        "file exists",
        "File `src/lib.rs` exists with 10+ lines",
        Verdict.PASS,
        "(wanted >= 10 lines)",
        {"src/lib.rs"},
    ),
]


@pytest.mark.parametrize(
    ("name", "text", "verdict", "evidence", "consumed"), RECOGNISED, ids=[r[0] for r in RECOGNISED]
)
def test_each_recogniser_on_its_sentence(
    tree: Path,
    name: str,
    text: str,
    verdict: Verdict,
    evidence: str,
    consumed: set[str] | None,
) -> None:
    ctx = _criterion(tree, text)
    entries = _recogniser(name)(ctx)
    assert len(entries) == 1, [e.line() for e in entries]
    assert entries[0].check == ctx.label
    assert entries[0].verdict is verdict, entries[0].line()
    assert evidence in entries[0].evidence
    spans = set(re.findall(r"`([^`]+)`", text))
    assert ctx.handled == (consumed if consumed is not None else spans)


def test_a_recogniser_skips_what_an_earlier_one_consumed(tree: Path) -> None:
    ctx = _criterion(tree, "File `src/lib.rs` contains `halve`", handled={"src/lib.rs"})
    assert _recogniser("file contains")(ctx) == []
    # The whole table: `Cargo.toml includes` consumes the manifest, so `file contains` (which
    # matches the same words) adds nothing.
    entries = evaluate_criterion(
        tree,
        1,
        'Cargo.toml includes `serde = "1"`',
        count_tests=never_counts,
        allowed_programs={"cargo"},
    )
    assert [(e.verdict, e.evidence) for e in entries] == [
        (Verdict.PASS, 'Cargo.toml:6: serde = "1"')
    ]


def test_run_test_count_recogniser_counts_the_named_run(tree: Path) -> None:
    asked: list[list[str] | None] = []

    def count(argv: list[str] | None) -> tuple[TestRun | None, str]:
        asked.append(argv)
        return TestRun(passed=4, summaries=1, exit_code=0), "cargo test halve"

    ctx = _criterion(tree, "`cargo test halve` runs 3+ tests", count_tests=count)
    entries = _recogniser("run test count")(ctx)
    assert asked == [["cargo", "test", "halve"]]
    assert [(e.verdict, e.evidence) for e in entries] == [
        (
            Verdict.PASS,
            "cargo test halve: 4 tests ran (4 passed, 0 failed, 0 ignored); wanted 3+ passing",
        )
    ]
    # One function's tests are not a run's total.
    assert _recogniser("run test count")(_criterion(tree, "Function `halve` has 3+ tests")) == []


def test_command_succeeds_recogniser_runs_only_when_nothing_decided(tree: Path) -> None:
    ran: list[list[str]] = []

    def run(argv: list[str]) -> LedgerEntry:
        ran.append(argv)
        return LedgerEntry(check="criterion command", verdict=Verdict.PASS, evidence="exit 0")

    ctx = _criterion(tree, "`cargo build --release` succeeds", run_command=run)
    entries = _recogniser("command succeeds")(ctx)
    assert ran == [["cargo", "build", "--release"]]
    assert [(e.check, e.verdict) for e in entries] == [(ctx.label, Verdict.PASS)]
    decided = _criterion(tree, "`cargo build` succeeds", run_command=run)
    decided.entries.append(LedgerEntry(check="x", verdict=Verdict.FAIL))
    assert _recogniser("command succeeds")(decided) == []
    printing = _criterion(tree, "`cargo run` prints the version", run_command=run)
    assert _recogniser("command succeeds")(printing) == []
    assert len(ran) == 1


def test_an_unrecognised_criterion_needs_judgement(tree: Path) -> None:
    entries = evaluate_criterion(
        tree, 2, "The API feels consistent", count_tests=never_counts, allowed_programs={"cargo"}
    )
    assert [(e.check, e.verdict, e.evidence) for e in entries] == [
        ("criterion 2", Verdict.NEEDS_JUDGEMENT, "The API feels consistent")
    ]


# --- the shared gate-command vocabulary -------------------------------------------------------


@pytest.mark.parametrize("text", ["audio::", "link::detection", "a::b::c", "_x::"])
def test_a_test_path_validation_accepts_is_a_filter_the_gates_append(text: str) -> None:
    assert NAMED_TEST_PATH.match(text)
    assert APPENDABLE_TEST_FILTER.match(text)
    assert blast_problem(text, [], full_suite=False) is None


@pytest.mark.parametrize("text", ["halve", "test_halve", "9::x"])
def test_the_gates_append_a_single_word_validation_calls_prose(text: str) -> None:
    assert APPENDABLE_TEST_FILTER.match(text)
    assert not NAMED_TEST_PATH.match(text)
    problem = blast_problem(text, [], full_suite=False)
    assert problem is not None and problem.code == "E-BLAST-NOT-COMMAND"


def test_split_segments_splits_on_and_and_keeps_other_operators() -> None:
    assert split_segments("cargo test a && grep -q 'x y' f") == [
        ["cargo", "test", "a"],
        ["grep", "-q", "x y", "f"],
    ]
    assert split_segments("cargo test | tee log") == [["cargo", "test", "|", "tee", "log"]]
    why = split_segments("grep 'unclosed f")
    assert isinstance(why, str) and why.startswith("cannot split `grep 'unclosed f`")


def test_a_blank_backticked_span_is_no_grep_and_no_crash(tree: Path) -> None:
    """`` `  ` `` in a criterion (a plan quoting spaces) used to raise IndexError while the
    recognisers looked for a grep command, which failed the whole phase."""
    entries = evaluate_criterion(
        tree,
        1,
        "Indentation uses `  ` (two spaces) and `grep -q halve src/lib.rs` succeeds",
        count_tests=never_counts,
        allowed_programs={"cargo"},
    )
    assert [e.verdict for e in entries if "grep" in (e.command or "")] == [Verdict.PASS]


def _rust_tests(count: int) -> str:
    return "".join(f"#[test]\nfn case_{n}() {{}}\n" for n in range(count))


@pytest.mark.parametrize(
    ("criterion", "tests_in_file", "verdict"),
    [
        # A count of tests the phase adds: a total that reaches it cannot tell (the file may
        # have had them all before), so the verifier decides; a total below it is a failure.
        ('`grep -c "#\\[test\\]" src/many.rs` shows 15+ more tests', 20, Verdict.NEEDS_JUDGEMENT),
        ('`grep -c "#\\[test\\]" src/many.rs` shows 15+ more tests', 3, Verdict.FAIL),
        ("5+ new tests in `src/many.rs`", 20, Verdict.NEEDS_JUDGEMENT),
        ("5+ new tests in `src/many.rs`", 2, Verdict.FAIL),
        # A total stays a total, and a parenthesis about the tests is not a count of new ones.
        ('`grep -c "#\\[test\\]" src/many.rs` shows 15+ tests', 20, Verdict.PASS),
        ("File `src/many.rs` exists with 8+ tests (added edge cases)", 20, Verdict.PASS),
    ],
)
def test_a_count_of_added_tests_is_not_passed_on_a_total(
    tree: Path, criterion: str, tests_in_file: int, verdict: Verdict
) -> None:
    """ "`grep -c ...` shows 15+ more tests" passed on a file that already had 20 tests: a phase
    that added none was COMPLETE on this criterion."""
    (tree / "src" / "many.rs").write_text(_rust_tests(tests_in_file))
    entries = evaluate_criterion(
        tree, 1, criterion, count_tests=never_counts, allowed_programs={"cargo"}
    )
    assert [e.verdict for e in entries] == [verdict], [e.line() for e in entries]
