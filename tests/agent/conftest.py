"""Fixtures for the agent runtime tests: a repository, a stand-in API and a real SDK client."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import anthropic
import pytest

from tasks.agent import loop
from tasks.agent.result import AgentRequest
from tests.fakes import StandinMessagesAPI

API_KEY = "sk-test-SECRET-KEY-must-not-leak"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    (path / "src").mkdir(parents=True)
    (path / "README.md").write_text("# demo\n")
    return path


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    path = tmp_path / "outside"
    path.mkdir()
    (path / "secret.txt").write_text("outside secret\n")
    return path


@pytest.fixture(autouse=True)
def fast_stream_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loop, "STREAM_RETRY_BACKOFF_S", 0.01)


@pytest.fixture
def standin() -> Iterator[Callable[..., StandinMessagesAPI]]:
    started: list[StandinMessagesAPI] = []

    def make(*args: object, **kwargs: object) -> StandinMessagesAPI:
        fake = StandinMessagesAPI(*args, **kwargs).start()  # type: ignore[arg-type]
        started.append(fake)
        return fake

    yield make
    for fake in started:
        fake.stop()


def client_for(fake: StandinMessagesAPI, max_retries: int = 4) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=fake.base_url, api_key=API_KEY, max_retries=max_retries)


def make_request(repo: Path, **overrides: object) -> AgentRequest:
    fields: dict[str, object] = {
        "repo": repo,
        "plan_name": "demo-plan",
        "phase_id": "1",
        "owner": "general-purpose",
        "task": "Implement phase 1 of the demo plan.",
    }
    fields.update(overrides)
    return AgentRequest(**fields)  # type: ignore[arg-type]
