"""`plan-executor run` when its Prefect backend cannot start: a clear message and exit 2."""

from __future__ import annotations

import os
import shutil
import socket
import sys
from pathlib import Path

from tasks.shell import run

CLI = shutil.which("plan-executor") or str(Path(sys.executable).with_name("plan-executor"))
REPO = Path(__file__).resolve().parents[2]


def test_port_taken_by_something_else_is_a_clear_error(tmp_path: Path) -> None:
    plan = tmp_path / "plan.md"
    # A valid plan: an invalid one is refused before any backend starts.
    plan.write_text(
        "# P\n\n## Phases\n\n### Phase 1: A\n\n**Principal Owner:** self\n\n"
        "**Acceptance Criteria:**\n- [ ] done\n"
    )
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    port = squatter.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update(PLAN_EXECUTOR_HOME=str(tmp_path / "home"), PLAN_EXECUTOR_PORT=str(port))
    try:
        result = run(
            [CLI, "run", str(plan), "--backend", "server", "--no-live"],
            cwd=REPO,
            env=env,
            timeout_s=180,
        )
    finally:
        squatter.close()
    assert result.exit_code == 2, result.output
    assert "error: the Prefect backend could not start" in result.output
    assert str(port) in result.output
    assert "Traceback" not in result.output
