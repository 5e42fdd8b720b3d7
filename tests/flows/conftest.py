"""Helpers for the flow tests: which phase a stand-in request worked on, cargo availability."""

from __future__ import annotations

import os
import shutil

import pytest

from cli.demo import PHASE_HEADING, VERIFIER_FOR

needs_cargo = pytest.mark.skipif(shutil.which("cargo") is None, reason="cargo is not installed")


def phase_of(request: object) -> str | None:
    """The phase id a recorded request works on (owner, tester or verifier conversation)."""
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


@pytest.fixture(autouse=True)
def _quiet_prefect_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """CLI subprocesses started by a test log only warnings to the console (the API keeps all)."""
    monkeypatch.setenv(
        "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL",
        os.environ.get("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING"),
    )
