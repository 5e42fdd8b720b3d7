"""A failed format check shows where and the changed lines, not `exit 1` over a header and an
unchanged context line."""

from __future__ import annotations

from pathlib import Path

from flows.report import failing_line
from tasks.gates.config import default_config
from tasks.gates.evidence import simple_gate
from tasks.gates.fmt_output import fmt_failure_summary
from tasks.gates.ledger import Verdict
from tests.gates.helpers import CARGO_OUTPUT, make_repo

# Recorded from `cargo fmt --check --all` on a copy of tests/fixtures/crates/single with three
# places unformatted, on a terminal type that made rustfmt colour its diff (as the gates saw it).
RECORDED = CARGO_OUTPUT / "fmt-check.txt"


def test_the_summary_of_recorded_cargo_fmt_output_keeps_the_changed_lines() -> None:
    output = RECORDED.read_text()
    assert "\x1b[" in output and " /// ```" in output  # colours and context lines to drop
    summary = fmt_failure_summary(output, Path("/tmp/pe-fixture-single"))
    assert summary.splitlines() == [
        "exit 1; not formatted: src/lib.rs:8 and 2 more place(s)",
        "-    a+b",
        "+    a + b",
        "src/lib.rs:16:",
        "-pub fn mul(a: i32,b: i32) -> i32 { a*b }",
        "+pub fn mul(a: i32, b: i32) -> i32 {",
        "+    a * b",
        "+}",
        "src/math.rs:1:",
        "-pub fn square(x:i32)->i32{",
        "+pub fn square(x: i32) -> i32 {",
    ]


def test_long_diffs_are_cut_and_unknown_output_gives_no_summary() -> None:
    body = "".join(f"-old {n}\n+new {n}\n" for n in range(20))
    summary = fmt_failure_summary(f"Diff in /r/src/a.rs at line 3:\n{body}", Path("/r"))
    lines = summary.splitlines()
    assert lines[0] == "exit 1; not formatted: src/a.rs:3"
    assert lines[-1] == "… 28 more line(s) in the output tail" and len(lines) == 14
    assert fmt_failure_summary("error: rustfmt crashed\n") == ""
    ruff = "Would reformat: src/pkg/mod.py\n1 file would be reformatted\n"
    assert fmt_failure_summary(ruff).splitlines() == ["exit 1; not formatted: src/pkg/mod.py"]


def test_the_fmt_gate_on_a_real_crate_shows_the_diff(tmp_path: Path) -> None:
    repo = make_repo("single", tmp_path / "single")
    lib = repo / "src" / "lib.rs"
    lib.write_text(lib.read_text().replace("    a * b\n", "    a*b\n"))
    config = default_config(repo)
    entry = simple_gate("fmt", config.fmt, repo, config)
    assert entry.verdict is Verdict.FAIL and entry.exit_code == 1
    assert "\x1b" not in entry.evidence
    # what the plan's checkpoint keeps of a failing entry (its first lines)
    shown = failing_line(entry).splitlines()
    assert shown[0].startswith("[fail] fmt exit=1 (verified): exit 1; not formatted: src/lib.rs:")
    assert shown[1:3] == ["-    a*b", "+    a * b"]
    assert "--- output tail ---" in entry.evidence  # the full tail is still there
