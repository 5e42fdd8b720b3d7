"""Settings read from environment variables, one reader per kind of value.

A variable that is unset or blank means the default. A value that cannot mean what the variable
is for raises :class:`EnvSettingError`, naming the variable, the value and what is expected: a
typo in a timeout must not quietly become the default, or a crash deep inside a library.
"""

from __future__ import annotations

import math
import os

from plan_parser.errors import PlanExecutorError

__all__ = ["EnvSettingError", "env_seconds", "env_seconds_list"]


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
