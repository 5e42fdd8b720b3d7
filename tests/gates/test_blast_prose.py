"""Issue #15: the prose beside a blast-radius command is recorded as not run (nothing runs here:
test commands are refused for the phase, so only the ledger's bookkeeping is exercised)."""

from __future__ import annotations

from pathlib import Path

from plan_parser import parse_text
from tasks.gates.config import load_gate_config
from tasks.gates.phase_gates import _TestRuns, blast_radius_entries
from tests.parser.helpers import phase_block, plan_text


def test_prose_beside_the_command_is_recorded_as_not_run(tmp_path: Path) -> None:
    block = phase_block("1", "List").replace(
        "`cargo test -p demo`", "`cargo test --lib list` + manual testing with `-v` flag"
    )
    phase = parse_text(plan_text(block), "2026-02-01.plan-for-test.md").phases[0]
    config = load_gate_config(tmp_path)
    tests = _TestRuns(tmp_path, config, None, refused="refused for the test")
    entries = blast_radius_entries(tmp_path, phase, config, tests)
    prose = [e for e in entries if e.check == "blast-radius (prose)"]
    assert prose and "manual testing with `-v` flag" in prose[0].evidence
    assert [run.command for run in tests.runs.values()] == ["cargo test --lib list"]
