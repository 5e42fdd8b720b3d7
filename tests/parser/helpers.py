"""Helpers for the parser tests: plans written into tmp_path and the real CLI in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`plan-executor ARGS` as a user runs it (a new interpreter, the installed entry point)."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run(
        [sys.executable, "-m", "cli.app", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=timeout,
    )


def phase_block(
    phase_id: str,
    name: str,
    deps: str = "None",
    owner: str = "rust-developer",
    files: list[str] | None = None,
    extra: str = "",
) -> str:
    files_text = ""
    if files:
        files_text = "**Files to modify:**\n" + "".join(f"- `{f}`\n" for f in files) + "\n"
    return (
        f"### Phase {phase_id}: {name}\n\n"
        f"**Principal Owner:** {owner}\n\n"
        f"**Dependencies:** {deps}\n\n"
        f"**Blast Radius:** `cargo test -p demo`\n\n"
        f"{files_text}{extra}"
        f"**Acceptance Criteria:**\n- [ ] {name} works\n- [ ] tests pass\n\n"
    )


def plan_text(*phases: str, title: str = "Demo Plan") -> str:
    header = (
        f"# {title}\n\n**Created:** 2026-02-01\n**Status:** Reviewed - Ready for Implementation\n\n"
    )
    return header + "## Phases\n\n" + "---\n\n".join(phases)


def invoke(*args: str) -> tuple[int, str]:
    """The same typer app in this process (fast); returns the exit code and stdout + stderr."""
    from typer.testing import CliRunner

    from cli.app import app

    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output
