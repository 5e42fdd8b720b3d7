"""`plan-executor status` at 80 columns: the phases in a narrow table, each blocked phase's
reason and failing checks below it, wrapped with a hanging indent, never one word a line, and
`[fail]` never cut."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console
from typer.testing import CliRunner

from cli.app import app
from cli.status_view import print_status
from plan_parser.checkpoints import PhaseCheckpoint, read_plan_state
from plan_parser.writer import apply_phases, apply_status

ERROR = "gates failed: fmt, criterion 2 (`cargo test --test beta` passes), scope: src/other.rs"
LEDGER = [
    "[fail] fmt exit=1 (verified): exit 1; not formatted: tests/beta.rs:3\n"
    "-fn beta(){ assert_eq!(add(-40,-2),-42) }\n"
    "+fn beta() {",
    "[fail] criterion 2: `cargo test --test beta` passes exit=101 (verified): exit 101; "
    "0 passed, 1 failed, 0 ignored; failing: beta_adds_negative_numbers",
]


def _plan(tmp_path: Path) -> Path:
    checkpoints = [
        PhaseCheckpoint(
            phase_id="1",
            status="complete",
            started_at="2026-12-07T17:20:57Z",
            completed_at="2026-12-07T17:22:03Z",
            flow_run_id="2dcc10f5-0c04-4241-bcf1-b0115ea82507",
            tokens={"input": 1200, "output": 318},
        ),
        PhaseCheckpoint(
            phase_id="2",
            status="blocked",
            started_at="2026-12-07T17:20:57Z",
            failed_at="2026-12-07T17:21:02Z",
            flow_run_id="1362a937-46f6-4a64-b50a-5a794988cb3a",
            error=ERROR,
            ledger=LEDGER,
        ),
        PhaseCheckpoint(phase_id="3", status="skipped", error="depends on phase 2 (blocked)"),
    ]
    text = apply_status(apply_phases("# Plan\n\n**Status:** Ready\n", checkpoints), "Partial")
    plan = tmp_path / "2026-12-07.plan.md"
    plan.write_text(text)
    return plan


def _check_80_columns(output: str) -> None:
    lines = output.splitlines()[1:]  # the plan's path stays on one line, to be copied whole
    assert all(len(line) <= 80 for line in lines), [line for line in lines if len(line) > 80]
    assert "1      complete  2026-12-07 17:20  1m06s    1518  2dcc10f5" in output
    error_lines = [line for line in lines if line.startswith("phase 2 blocked: ")]
    assert len(error_lines) == 1 and len(error_lines[0].split()) >= 10  # not a word a line
    following = lines[lines.index(error_lines[0]) + 1]
    assert following.startswith("    ") and following.strip() in ERROR  # a hanging indent
    assert "  [fail] fmt exit=1 (verified): exit 1; not formatted: tests/beta.rs:3" in lines
    assert "    -fn beta(){ assert_eq!(add(-40,-2),-42) }" in lines
    assert any(line.startswith("  [fail] criterion 2: `cargo test --test beta`") for line in lines)
    assert "phase 3 skipped: depends on phase 2 (blocked)" in lines


def test_status_fits_80_columns(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    out = io.StringIO()
    console = Console(width=80, file=out, color_system=None)
    print_status(str(plan), "Partial", read_plan_state(plan), console)
    _check_80_columns(out.getvalue())


def test_the_status_command_at_columns_80(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    result = CliRunner().invoke(app, ["status", str(plan)], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Plan: {plan}\nStatus: Partial\n")
    _check_80_columns(result.output)
