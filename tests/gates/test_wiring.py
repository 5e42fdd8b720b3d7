"""The scope contract knows how Rust code is wired: what declaring a file implies is `wiring`,
anything else outside the declared files still blocks the phase."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from plan_parser.model import FileAction
from tasks.gates.ledger import LedgerEntry, Verdict, VerdictStatus
from tasks.gates.phase_gates import phase_changes, run_phase_gates, scope_entries, snapshot
from tasks.gates.verdict import decide
from tasks.gates.wiring import manifest_wiring, module_wiring, parent_modules
from tests.gates.helpers import edit, phase

CREATE = FileAction.CREATE
ALPHA = "/// Alpha.\npub fn alpha() -> i32 {\n    1\n}\n"


def scope(repo: Path, start, plan_phase, policy: str = "siblings") -> dict[str, LedgerEntry]:
    changes = phase_changes(repo, start)
    entries = scope_entries(plan_phase, changes, start, repo, policy)  # type: ignore[arg-type]
    return {entry.check: entry for entry in entries}


def test_parents_of_a_module_directory() -> None:
    assert parent_modules("src") == ["src/lib.rs", "src/main.rs", "src/mod.rs", "src.rs"]
    assert parent_modules("crates/a/src/net") == [
        "crates/a/src/net/lib.rs",
        "crates/a/src/net/main.rs",
        "crates/a/src/net/mod.rs",
        "crates/a/src/net.rs",
    ]


def test_module_lines_for_declared_modules_only() -> None:
    old = "pub mod math;\n\npub fn add() {}\n"
    assert module_wiring(old, "pub mod alpha;\npub mod math;\n\npub fn add() {}\n", {"alpha"})
    assert module_wiring(old, old.replace("math;", "math;\npub use alpha::alpha;"), {"alpha"})
    # A mod line for a module the phase did not declare, or code, is not wiring.
    assert not module_wiring(old, "pub mod beta;\n" + old, {"alpha"})
    assert not module_wiring(old, old + "pub fn sneaky() {}\n", {"alpha"})
    # Removing another module is not implied by adding one.
    assert not module_wiring(old, "pub mod alpha;\n\npub fn add() {}\n", {"alpha"})


def test_manifest_dependencies_the_plan_names() -> None:
    old = '[package]\nname = "x"\nversion = "0.1.0"\n\n[dependencies]\n'
    new = old + 'serde = "1"\n'
    assert manifest_wiring(old, new, "Add `serde` for the config type")
    assert not manifest_wiring(old, new, "Add a config type")
    bumped = new.replace('version = "0.1.0"', 'version = "0.2.0"')
    assert not manifest_wiring(old, bumped, "Add serde")
    workspace = '[workspace]\nmembers = ["a"]\n\n[workspace.dependencies]\n'
    assert manifest_wiring(workspace, workspace + 'thiserror = "2"\n', "use thiserror")


def test_registering_a_new_module_is_wiring(repo_factory: Callable[[str], Path]) -> None:
    repo = repo_factory("single")
    start = snapshot(repo)
    (repo / "src/alpha.rs").write_text(ALPHA)
    edit(repo, "src/lib.rs", "pub mod math;", "pub mod alpha;\npub mod math;")
    (repo / "Cargo.lock").write_text("# lock\n")
    by_check = scope(repo, start, phase([("src/alpha.rs", CREATE)]))
    wiring = by_check["scope: wiring"]
    assert wiring.verdict is Verdict.PASS
    assert "src/lib.rs (registers the declared module(s) alpha)" in wiring.evidence
    assert "Cargo.lock (lock file)" in wiring.evidence
    assert by_check["scope: outside declared files"].verdict is Verdict.PASS


@pytest.mark.parametrize(
    ("path", "old", "new"),
    [
        ("src/lib.rs", "pub mod math;", "pub mod math;\npub mod beta;"),  # not its module
        ("src/lib.rs", "a + b", "a + b + 0"),  # code in the parent module
        ("src/math.rs", "pub fn", "pub fn extra() {}\npub fn"),  # an undeclared source file
    ],
)
def test_other_changes_outside_the_declared_files_still_block(
    repo_factory: Callable[[str], Path], path: str, old: str, new: str
) -> None:
    repo = repo_factory("single")
    start = snapshot(repo)
    (repo / "src/alpha.rs").write_text(ALPHA)
    edit(repo, "src/lib.rs", "pub mod math;", "pub mod alpha;\npub mod math;")
    edit(repo, path, old, new)
    outside = scope(repo, start, phase([("src/alpha.rs", CREATE)]))["scope: outside declared files"]
    assert outside.verdict is Verdict.FAIL and path in outside.evidence


def test_a_formatter_run_over_the_crate_is_wiring(repo_factory: Callable[[str], Path]) -> None:
    from tests.gates.helpers import git

    repo = repo_factory("single")
    tidy, spread = (
        "pub fn mul(a: i32, b: i32) -> i32 {",
        "pub fn mul(\n    a: i32,\n    b: i32,\n) -> i32 {",
    )
    edit(repo, "src/lib.rs", tidy, spread)
    (repo / "src/math.rs").write_text((repo / "src/math.rs").read_text().replace("    ", "\t"))
    git(repo, "commit", "-qam", "not formatted")
    start = snapshot(repo)
    (repo / "src/alpha.rs").write_text(ALPHA)
    edit(repo, "src/lib.rs", spread, tidy)  # what `cargo fmt` does to the crate
    (repo / "src/math.rs").write_text((repo / "src/math.rs").read_text().replace("\t", "    "))
    edit(repo, "src/lib.rs", "pub mod math;", "pub mod alpha;\npub mod math;")
    by_check = scope(repo, start, phase([("src/alpha.rs", CREATE)]))
    wiring = by_check["scope: wiring"].evidence
    assert "src/lib.rs (registers the declared module(s) alpha, formatted)" in wiring
    assert "src/math.rs (whitespace only)" in wiring
    assert by_check["scope: outside declared files"].verdict is Verdict.PASS


def test_honest_new_module_phase_is_complete(repo_factory: Callable[[str], Path]) -> None:
    repo = repo_factory("single")
    start = snapshot(repo)
    (repo / "src/alpha.rs").write_text(
        ALPHA + "\n#[cfg(test)]\nmod tests {\n    #[test]\n    fn one() {\n"
        "        assert_eq!(super::alpha(), 1);\n    }\n}\n"
    )
    edit(repo, "src/lib.rs", "pub mod math;", "pub mod alpha;\npub mod math;")
    ledger = run_phase_gates(
        repo, phase([("src/alpha.rs", CREATE)], blast="alpha::"), start=start, baseline=None,
        scope_policy="siblings",
    )  # fmt: skip
    verdict = decide(ledger)
    assert verdict.status is VerdictStatus.COMPLETE, [e.line() for e in verdict.failing]
