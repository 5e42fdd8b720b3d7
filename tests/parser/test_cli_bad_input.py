"""`plan-executor validate` on broken input: a clear message with file and line, exit 2, and the
file left exactly as it was."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.parser.helpers import invoke, phase_block, plan_text, run_cli


def _snapshot(path: Path) -> tuple[bytes, int]:
    return path.read_bytes(), os.stat(path).st_mtime_ns


def _validate_fails(path: Path, code: str, line: int | None = None) -> str:
    before = _snapshot(path)
    result = run_cli("validate", str(path))
    assert result.returncode == 2, result.stdout + result.stderr
    output = result.stdout + result.stderr
    line_pattern = str(line) if line is not None else r"\d+"
    where = re.escape(str(path)) + ":" + line_pattern + ": error " + code + r"\b"
    assert re.search(where, output), output
    assert _snapshot(path) == before
    return output


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.md"
    path.write_bytes(b"")
    output = _validate_fails(path, "E-EMPTY", 1)
    assert "empty" in output


def test_binary_file(tmp_path: Path) -> None:
    path = tmp_path / "image.md"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    output = _validate_fails(path, "E-BINARY", 3)  # the NUL byte starts line 3
    assert "binary" in output


def test_invalid_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.md"
    text = plan_text(phase_block("1", "Caf\u00e9 support"))
    path.write_bytes(text.encode("latin-1"))
    lines = text.splitlines()
    expected_line = next(n for n, line in enumerate(lines, 1) if "\u00e9" in line)
    output = _validate_fails(path, "E-ENCODING", expected_line)
    assert "UTF-8" in output


def test_five_megabyte_file(tmp_path: Path) -> None:
    path = tmp_path / "huge.md"
    chunk = plan_text(phase_block("1", "Big")).encode()
    path.write_bytes(chunk * (5 * 1024 * 1024 // len(chunk) + 1))
    assert path.stat().st_size > 5 * 1024 * 1024
    output = _validate_fails(path, "E-TOO-LARGE", 1)
    assert "limit" in output


def test_cycle_is_named(write_plan) -> None:
    path = write_plan(
        plan_text(
            phase_block("1", "Alpha", deps="Phase 3"),
            phase_block("2", "Beta", deps="Phase 1"),
            phase_block("3", "Gamma", deps="Phase 2"),
        )
    )
    output = _validate_fails(path, "E-DEP-CYCLE")
    assert "Phase 1 -> Phase 2 -> Phase 3 -> Phase 1" in output


def test_dangling_reference(write_plan) -> None:
    text = plan_text(phase_block("1", "Alpha"), phase_block("2", "Beta", deps="Phase 1, Phase 9"))
    path = write_plan(text)
    deps_line = [n for n, line in enumerate(text.splitlines(), 1) if "Phase 1, Phase 9" in line]
    output = _validate_fails(path, "E-DEP-UNKNOWN", deps_line[0])
    assert "Phase 9" in output and "phase 2 [depends_on]" in output


def test_duplicate_ids(write_plan) -> None:
    text = plan_text(phase_block("1", "Alpha"), phase_block("1", "Alpha again"))
    path = write_plan(text)
    second = [n for n, line in enumerate(text.splitlines(), 1) if line.startswith("### Phase 1")]
    output = _validate_fails(path, "E-DUP-ID", second[1])
    assert f"line {second[0]}" in output


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.md"
    code, output = invoke("validate", str(missing))
    assert code == 2
    assert f"{missing}:1: error E-UNREADABLE: cannot read: no such file" in output


def test_no_phases(write_plan) -> None:
    path = write_plan("# Notes\n\nJust thoughts, no phases.\n")
    code, output = invoke("validate", str(path))
    assert code == 2 and f"{path}:1: error E-NO-PHASES" in output


@pytest.mark.parametrize("command", ["parse", "graph"])
def test_other_commands_refuse_binary(tmp_path: Path, command: str) -> None:
    path = tmp_path / "blob.md"
    path.write_bytes(b"\x00\x01\x02" * 100)
    before = _snapshot(path)
    code, output = invoke(command, str(path))
    assert code == 2, output
    assert "E-BINARY" in output
    assert _snapshot(path) == before
