"""Fixtures for the flow tests: a demo crate in tmp_path and stand-in agents on 127.0.0.1."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from flows.demo import PHASE_HEADING, VERIFIER_FOR, ScriptedAgents, demo_plan, make_crate

needs_cargo = pytest.mark.skipif(shutil.which("cargo") is None, reason="cargo is not installed")


@pytest.fixture
def crate(tmp_path: Path) -> Path:
    """The demo crate with the three-phase demo plan, committed; returns the plan path."""
    return make_crate(tmp_path / "crate", plan_text=demo_plan())


def start_standin(agents: ScriptedAgents, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    from tasks.agent.standin import StandinMessagesAPI

    with StandinMessagesAPI(responder=agents, auto_summary=False) as api:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", api.base_url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "stand-in-test-key")
        yield api


def phase_of(request: object) -> str | None:
    """The phase id a recorded request works on (from its first user message)."""
    body = request.body  # type: ignore[attr-defined]
    messages = body.get("messages") or []
    if not messages:
        return None
    content = messages[0].get("content")
    text = (
        content
        if isinstance(content, str)
        else "\n".join(b.get("text", "") for b in content or [] if isinstance(b, dict))
    )
    match = PHASE_HEADING.search(text) or VERIFIER_FOR.search(text)
    return match["id"] if match else None


def work_requests(api: object, phase_id: str) -> list[object]:
    """Requests of an owner conversation of ``phase_id`` (not the verifier, not summaries)."""
    return [
        r
        for r in api.message_requests  # type: ignore[attr-defined]
        if phase_of(r) == phase_id and not r.is_summary_request  # type: ignore[attr-defined]
    ]


@pytest.fixture(autouse=True)
def _quiet_prefect_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL",
        os.environ.get("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING"),
    )
