"""`plan-executor demo` takes a free port when the configured one is held by another program,
and its closing "where to look" names only what the run wrote."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from backend.server import port_in_use
from cli.demo import demo_port, make_crate, where_to_look
from plan_parser.checkpoints import PhaseCheckpoint
from tasks.mirror import PlanMirror


@pytest.fixture
def held_port() -> Iterator[int]:
    """A port another program (this socket) listens on."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def test_a_held_port_gives_another_free_one(
    held_port: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setenv("PLAN_EXECUTOR_HOME", str(tmp_path / "home"))  # no server running there
    monkeypatch.setenv("PLAN_EXECUTOR_HOST", "127.0.0.1")
    monkeypatch.setenv("PLAN_EXECUTOR_PORT", str(held_port))
    assert port_in_use("127.0.0.1", held_port)
    chosen = demo_port("auto")
    assert chosen is not None and chosen != held_port
    assert not port_in_use("127.0.0.1", chosen)
    assert demo_port("server") is not None
    assert demo_port("ephemeral") is None  # no server is started at all
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    assert demo_port("auto") is None  # the user's server is used


def test_a_free_port_is_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setenv("PLAN_EXECUTOR_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PLAN_EXECUTOR_HOST", "127.0.0.1")
    monkeypatch.setenv("PLAN_EXECUTOR_PORT", str(free))
    assert demo_port("auto") is None


def test_where_to_look_names_only_what_exists(tmp_path: Path) -> None:
    root = tmp_path / "crate"
    plan = make_crate(root, plan_name="2026-11-24.demo-sums.md")
    assert where_to_look(root, plan) == [
        "Nothing was written: the run stopped before any phase started (see above)."
    ]

    mirror = PlanMirror(plan, root)

    async def ran() -> None:
        await mirror.initialise([PhaseCheckpoint(phase_id="1", status="pending")], "## run")
        await mirror.transition("1", "running")
        await mirror.update("1", flow_run_id="2dcc10f5-0c04-4241-bcf1-b0115ea82507")

    asyncio.run(ran())
    (root / ".ai" / "logs" / "2026-11-24.demo-sums-phase-1-details.md").write_text("# t\n")
    text = "\n".join(where_to_look(root, plan))
    assert f"plan-executor status {plan}" in text
    assert f"the execution log:        {mirror.log_path}" in text
    assert "(1 files)" in text and "the Prefect UI" in text
    assert "phases' commits" not in text  # no run branch was made
