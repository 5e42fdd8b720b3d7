"""Commands from the corpus plans that no phase could make pass, run on the fixture crate.

A blast radius whose test filter starts with the crate's own name (`cargo test --lib
research_lib::utils::filename`, `cargo test --lib research_lib`): Rust test names never hold
the crate name, so the filter selects no test whatever the phase did. The gates run it as
written; when it selects nothing, they run it again without the crate name, and that run
decides (not a false BLOCKED for the plan's slip, and still a FAIL when the tests are missing).

A criterion's command that cargo rejects as a command line (`cargo build --lib research_lib`)
goes to the verifier; a command that fails for real still fails."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tasks.gates.config import load_gate_config
from tasks.gates.ledger import LedgerEntry, Verdict
from tasks.gates.phase_gates import (
    _TestRuns,
    blast_radius_entries,
    criteria_entries,
    without_crate_prefix,
)
from tests.gates.helpers import phase


def blast(repo: Path, command: str) -> tuple[list[LedgerEntry], _TestRuns]:
    config = load_gate_config(repo)
    tests = _TestRuns(repo, config, None)
    entries = blast_radius_entries(
        repo, phase(blast=command, blast_commands=[command]), config, tests
    )
    return entries, tests


def test_the_crate_name_is_dropped_from_a_filter_that_selected_nothing(
    repo_factory: Callable[[str], Path],
) -> None:
    repo = repo_factory("single")
    _, tests = blast(repo, "cargo test --lib single::math")
    verdicts = [(e.command, e.verdict) for e in tests.entries]
    assert verdicts == [
        ("cargo test --lib single::math", Verdict.WARN),
        ("cargo test --lib math", Verdict.PASS),
    ]
    assert "crate" in tests.entries[0].evidence
    assert tests.runs[("cargo", "test", "--lib", "math")].total == 3


def test_a_bare_crate_name_runs_the_crate_tests(repo_factory: Callable[[str], Path]) -> None:
    repo = repo_factory("single")
    _, tests = blast(repo, "cargo test --lib single")
    assert [(e.command, e.verdict) for e in tests.entries] == [
        ("cargo test --lib single", Verdict.WARN),
        ("cargo test --lib", Verdict.PASS),
    ]


def test_a_filter_that_is_no_crate_name_still_fails(repo_factory: Callable[[str], Path]) -> None:
    repo = repo_factory("single")
    _, tests = blast(repo, "cargo test --lib nothing::math")
    assert [(e.command, e.verdict) for e in tests.entries] == [
        ("cargo test --lib nothing::math", Verdict.FAIL)
    ]
    # Without the crate name it still selects nothing: the phase's tests are missing.
    _, tests = blast(repo, "cargo test --lib single::nothing")
    assert [(e.command, e.verdict) for e in tests.entries] == [
        ("cargo test --lib single::nothing", Verdict.WARN),
        ("cargo test --lib nothing", Verdict.FAIL),
    ]


def test_where_the_filter_is(tmp_path: Path) -> None:
    (tmp_path / "Cargo.toml").write_text('[workspace]\nmembers = ["lib"]\n', encoding="utf-8")
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "Cargo.toml").write_text(
        '[package]\nname = "research-lib"\nversion = "0.1.0"\n', encoding="utf-8"
    )
    from tasks import shell

    shell.run(["git", "init", "-q"], cwd=tmp_path)
    shell.run(["git", "add", "-A"], cwd=tmp_path)

    def strip(command: str) -> list[str] | None:
        return without_crate_prefix(tmp_path, command.split())

    assert strip("cargo test --lib research_lib::utils::filename") == [
        "cargo",
        "test",
        "--lib",
        "utils::filename",
    ]
    assert strip("cargo test -p research-lib --lib research_lib") == [
        "cargo",
        "test",
        "-p",
        "research-lib",
        "--lib",
    ]
    assert strip("cargo test -p research_lib --lib utils") is None
    assert strip("cargo test --features research_lib utils") is None
    assert strip("cargo test -- research_lib::utils") == ["cargo", "test", "--", "utils"]
    assert strip("cargo test --lib utils::filename") is None
    assert strip("cargo build -p research_lib") is None
    assert strip("just test research_lib") is None


def test_a_criterion_command_cargo_rejects_goes_to_the_verifier(
    repo_factory: Callable[[str], Path],
) -> None:
    """Corpus: "`cargo build --lib research_lib` succeeds" (`--lib` takes no crate name):
    cargo rejects the arguments whatever the phase did."""
    repo = repo_factory("single")
    config = load_gate_config(repo)
    tests = _TestRuns(repo, config, None)
    texts = ["`cargo build --lib single` succeeds", "`cargo build --lib` succeeds"]
    entries = criteria_entries(repo, phase(criteria=texts), config, tests, design=False)
    assert [e.verdict for e in entries] == [Verdict.NEEDS_JUDGEMENT, Verdict.PASS]
    assert "not a valid command line" in entries[0].evidence
    assert [(e.command, e.verdict) for e in tests.entries] == [
        ("cargo build --lib single", Verdict.WARN),
        ("cargo build --lib", Verdict.PASS),
    ]


def test_a_criterion_command_that_fails_for_real_still_fails(
    repo_factory: Callable[[str], Path],
) -> None:
    repo = repo_factory("single")
    (repo / "src" / "lib.rs").write_text("pub fn broken( {}\n")
    config = load_gate_config(repo)
    tests = _TestRuns(repo, config, None)
    entries = criteria_entries(
        repo, phase(criteria=["`cargo build --lib` succeeds"]), config, tests, design=False
    )
    assert [e.verdict for e in entries] == [Verdict.FAIL]
    assert [e.verdict for e in tests.entries] == [Verdict.FAIL]


def test_a_blast_radius_the_plan_lets_run_zero_tests_only_warns(
    repo_factory: Callable[[str], Path],
) -> None:
    """Corpus: blast radius `cargo test --lib link` with the criterion "`cargo test --lib link`
    runs (even if 0 tests initially)": a skeleton phase whose tests come later."""
    repo = repo_factory("single")
    command = "cargo test --lib nothing_yet"
    config = load_gate_config(repo)
    for criterion, verdict in [
        (f"`{command}` runs (even if 0 tests initially)", Verdict.WARN),
        (f"`{command}` runs (even with 0 tests initially)", Verdict.WARN),
        ("`cargo test --lib other` runs (even if 0 tests initially)", Verdict.FAIL),
        (f"`{command}` passes", Verdict.FAIL),
    ]:
        tests = _TestRuns(repo, config, None)
        plan_phase = phase(criteria=[criterion], blast=command, blast_commands=[command])
        blast_radius_entries(repo, plan_phase, config, tests)
        assert [(e.command, e.verdict) for e in tests.entries] == [(command, verdict)], criterion
