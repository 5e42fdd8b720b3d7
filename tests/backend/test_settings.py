"""Offline settings and the home directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.server import ServerConfig
from backend.settings import offline_env, plan_executor_home


def test_offline_env_silences_telemetry_and_only_the_console(monkeypatch) -> None:
    monkeypatch.delenv("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", raising=False)
    env = offline_env()
    assert env["DO_NOT_TRACK"] == "1"
    assert env["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"
    assert env["PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL"] == "WARNING"
    # PREFECT_LOGGING_LEVEL would also drop the INFO records the UI shows
    assert "PREFECT_LOGGING_LEVEL" not in env

    monkeypatch.setenv("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "DEBUG")
    assert offline_env()["PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL"] == "DEBUG"


def test_home_host_and_port_come_from_the_environment(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("PLAN_EXECUTOR_HOME", raising=False)
    monkeypatch.delenv("PLAN_EXECUTOR_HOST", raising=False)
    monkeypatch.delenv("PLAN_EXECUTOR_PORT", raising=False)
    assert plan_executor_home() == Path.home() / ".plan-executor"
    assert ServerConfig.from_env().port == 4200
    assert ServerConfig.from_env().host == "127.0.0.1"

    monkeypatch.setenv("PLAN_EXECUTOR_HOME", str(tmp_path))
    monkeypatch.setenv("PLAN_EXECUTOR_PORT", "4321")
    config = ServerConfig.from_env()
    assert (config.home, config.port) == (tmp_path, 4321)
    assert ServerConfig.from_env(port=5000).port == 5000

    monkeypatch.setenv("PLAN_EXECUTOR_PORT", "http")
    with pytest.raises(ValueError, match="PLAN_EXECUTOR_PORT"):
        ServerConfig.from_env()
