"""Known secrets and where they are kept: what is scrubbed, what every sandbox hides."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

import pytest

from plan_parser.checkpoints import PhaseCheckpoint
from tasks import secrets
from tasks.agent.sandbox import secret_mounts
from tasks.agent.tools import EditorTool, ToolInputError


def test_known_secrets_come_from_the_environment_and_the_homes_credential_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key, auth, password = (f"value-{uuid.uuid4().hex}" for _ in range(3))
    monkeypatch.setenv("ANTHROPIC_API_KEY", key)
    monkeypatch.setenv("PREFECT_SERVER_API_AUTH_STRING", auth)
    monkeypatch.setenv("PLAN_EXECUTOR_HOME", str(tmp_path))
    (tmp_path / "prefect").mkdir()
    (tmp_path / "prefect" / "db-password").write_text(password + "\n")
    (tmp_path / "postgres").mkdir()  # the cluster's files are data, not credentials
    (tmp_path / "postgres" / "password-like-name").write_text("not-a-credential-value")
    (tmp_path / "server.json").write_text('{"port": 4200}')

    found = secrets.known_secrets("client-only-key", None, "short")
    assert {key, auth, password, "client-only-key"} <= set(found)
    assert "short" not in found and "not-a-credential-value" not in found
    assert secrets.scrub_known(f"a {key} b {password}", found) == "a [redacted] b [redacted]"


def test_scrub_value_reaches_every_string_of_a_checkpoint() -> None:
    secret = f"sk-ant-{uuid.uuid4().hex}"
    checkpoint = PhaseCheckpoint(
        phase_id="1", status="blocked", error=f"saw {secret}", ledger=[f"[fail] x: {secret}"]
    )
    clean = secrets.scrub_value(checkpoint, [secret])
    assert secret not in clean.model_dump_json()
    assert clean.error == "saw [redacted]" and clean.ledger == ["[fail] x: [redacted]"]


def test_log_records_are_scrubbed(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = f"sk-ant-{uuid.uuid4().hex}"
    monkeypatch.setenv("ANTHROPIC_API_KEY", secret)
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "got %s", (secret,), None)
    assert secrets.ScrubSecrets().filter(record)
    assert record.getMessage() == "got [redacted]"


def test_secret_places_are_hidden_after_every_bind_or_before_the_repository(
    tmp_path: Path,
) -> None:
    repo = tmp_path / "work" / "repo"
    inside, around, elsewhere = repo / ".pe-home", tmp_path / "work", tmp_path / "prefect"
    for path in (inside / "postgres", around, elsewhere):
        path.mkdir(parents=True, exist_ok=True)
    early, late = secret_mounts(repo, [inside, inside / "postgres", around, elsewhere])
    assert early == ["--tmpfs", str(around)]  # the repository is bound back over it
    assert late == ["--tmpfs", str(inside), "--tmpfs", str(elsewhere)]  # postgres/ is in inside


def test_the_editor_refuses_hidden_places_but_not_a_repository_inside_one(tmp_path: Path) -> None:
    repo = tmp_path / "home" / "repo"
    (repo / "pe-home").mkdir(parents=True)
    (repo / "pe-home" / "server.json").write_text("{}")
    (repo / "a.txt").write_text("a\n")
    editor = EditorTool(repo, hidden=[repo / "pe-home", tmp_path / "home"])
    with pytest.raises(ToolInputError, match="hidden from agents"):
        editor({"command": "view", "path": "pe-home/server.json"})
    with pytest.raises(ToolInputError, match="hidden from agents"):
        editor({"command": "create", "path": "pe-home/new.json", "file_text": "{}"})
    assert editor({"command": "view", "path": "a.txt"}).output == "1: a"
    listing = editor({"command": "view", "path": "."}).output
    assert "a.txt" in listing and "pe-home" not in listing


def test_a_secret_file_is_masked_with_dev_null(tmp_path: Path) -> None:
    secret = tmp_path / "prefect-home"
    secret.write_text("a file where a directory was expected")
    assert secret_mounts(tmp_path / "repo", [secret]) == (
        [],
        ["--ro-bind", "/dev/null", str(secret)],
    )


def test_the_plan_file_and_the_execution_log_never_hold_a_known_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    from cli.demo import demo_plan
    from tasks.mirror import PlanMirror

    secret = f"sk-ant-{uuid.uuid4().hex}"
    monkeypatch.setenv("ANTHROPIC_API_KEY", secret)
    plan_path = tmp_path / ".ai" / "plans" / "2026-11-24.demo-sums.md"
    plan_path.parent.mkdir(parents=True)
    plan_path.write_text(demo_plan(created="2026-11-24"))
    mirror = PlanMirror(plan_path, tmp_path, plan_title="Demo")

    async def scenario() -> None:
        await mirror.initialise([PhaseCheckpoint(phase_id="1", status="pending")], "## run")
        await mirror.transition(
            "1",
            "blocked",
            note=f"the agent said {secret}",
            error=f"output tail: {secret}",
            ledger=[f"[fail] tests (verified): {secret}"],
        )
        await mirror.set_summary(f"## Implementation Summary\n\n{secret}\n")
        await mirror.close()

    asyncio.run(scenario())
    assert secret not in plan_path.read_text()
    assert "[redacted]" in plan_path.read_text()
    assert secret not in mirror.log_path.read_text()
    assert secret not in mirror.checkpoints["1"].model_dump_json()
