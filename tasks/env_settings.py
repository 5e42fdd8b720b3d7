"""Settings read from environment variables, one reader per kind of value.

A variable that is unset or blank means the default. A value that cannot mean what the variable
is for raises :class:`EnvSettingError`, naming the variable, the value and what is expected: a
typo in a timeout must not quietly become the default, or a crash deep inside a library.
"""

from __future__ import annotations

import math
import os

from plan_parser.errors import PlanExecutorError

__all__ = [
    "AGENT_RETRY_DELAYS_ENV",
    "API_TIMEOUT_ENV",
    "DEFAULT_API_TIMEOUT_S",
    "DEFAULT_QUESTION_TIMEOUT_S",
    "QUESTION_TIMEOUT_ENV",
    "EnvSettingError",
    "agent_retry_delays_s",
    "check_env_settings",
    "env_seconds",
    "env_seconds_list",
    "question_timeout_s",
    "request_timeout_s",
]

API_TIMEOUT_ENV = "PLAN_EXECUTOR_API_TIMEOUT_S"
DEFAULT_API_TIMEOUT_S = 600.0
"""One Messages API request's timeout, unless ``PLAN_EXECUTOR_API_TIMEOUT_S`` says otherwise."""
QUESTION_TIMEOUT_ENV = "PLAN_EXECUTOR_QUESTION_TIMEOUT_S"
DEFAULT_QUESTION_TIMEOUT_S = 3600.0
"""How long an interactive run waits for a person's answer."""
AGENT_RETRY_DELAYS_ENV = "PLAN_EXECUTOR_AGENT_RETRY_DELAYS_S"
"""Comma-separated seconds between Prefect's restarts of an agent call that failed on
infrastructure (default: the task's own 30, 120); one restart per value."""


class EnvSettingError(PlanExecutorError, ValueError):
    """An environment variable holds a value its setting cannot take."""

    def __init__(self, name: str, raw: str, expected: str) -> None:
        super().__init__(f"{name}={raw!r} is not valid: expected {expected}")
        self.name = name
        self.raw = raw
        self.expected = expected


def _raw(name: str) -> str:
    return os.environ.get(name, "").strip()


def _seconds(text: str) -> float | None:
    """``text`` as a finite number of seconds, or None (`soon`, `nan`, `inf`)."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def env_seconds(name: str, default: float) -> float:
    """The positive number of seconds in ``name``; ``default`` when it is unset or blank."""
    raw = _raw(name)
    if not raw:
        return default
    value = _seconds(raw)
    if value is None or value <= 0:
        raise EnvSettingError(name, raw, f"a positive number of seconds (e.g. {default:g})")
    return value


def env_seconds_list(name: str) -> list[float] | None:
    """The comma-separated seconds in ``name`` (each zero or more; empty items are skipped);
    None when it is unset or blank."""
    raw = _raw(name)
    if not raw:
        return None
    values = [_seconds(part) for part in raw.split(",") if part.strip()]
    if any(value is None or value < 0 for value in values):
        raise EnvSettingError(
            name, raw, "comma-separated numbers of seconds, each zero or more (e.g. 30,120)"
        )
    return [value for value in values if value is not None]


def request_timeout_s() -> float:
    """One API request's timeout: ``PLAN_EXECUTOR_API_TIMEOUT_S``, else 600 s."""
    return env_seconds(API_TIMEOUT_ENV, DEFAULT_API_TIMEOUT_S)


def question_timeout_s() -> float:
    """How long an interactive run waits for a person: ``PLAN_EXECUTOR_QUESTION_TIMEOUT_S``,
    else an hour."""
    return env_seconds(QUESTION_TIMEOUT_ENV, DEFAULT_QUESTION_TIMEOUT_S)


def agent_retry_delays_s() -> list[float] | None:
    """The restart delays of an agent call in ``PLAN_EXECUTOR_AGENT_RETRY_DELAYS_S``; None:
    the task's own."""
    return env_seconds_list(AGENT_RETRY_DELAYS_ENV)


def check_env_settings() -> None:
    """Read every setting once, so that a bad value ends a run before its first phase instead
    of in the middle of it (the question timeout is otherwise read only when a person is
    asked)."""
    request_timeout_s()
    question_timeout_s()
    agent_retry_delays_s()
