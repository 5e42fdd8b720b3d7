"""The words every package shares, each defined once: phase statuses, the dirty-tree policy,
phase-id keys, the two forms of "now", the run's default time limits; and, defined beside the
code that reads them and listed here so that a newcomer finds them in one place, the built-in
agents (`plan_parser.owners`) and what a gate command may be (`plan_parser.gate_commands`).

Pure Python (no Prefect, no I/O) so that `plan_parser` can hold it and `flows`/`tasks` import it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal, get_args

from plan_parser.gate_commands import (
    APPENDABLE_TEST_FILTER,
    DEFAULT_GATE_PROGRAMS,
    EXPLICIT_NO_TESTS,
    GREP_PROGRAMS,
    NAMED_TEST_PATH,
    SHELL_OPERATORS,
)
from plan_parser.ids import id_key
from plan_parser.owners import BUILTIN_AGENTS, GENERAL_PURPOSE

__all__ = [
    "APPENDABLE_TEST_FILTER",
    "BUILTIN_AGENTS",
    "DEFAULT_AGENT_TIMEOUT_S",
    "DEFAULT_GATE_PROGRAMS",
    "DEFAULT_PHASE_TIMEOUT_S",
    "EXPLICIT_NO_TESTS",
    "GENERAL_PURPOSE",
    "GREP_PROGRAMS",
    "NAMED_TEST_PATH",
    "SHELL_OPERATORS",
    "TREE_CHANGING_POLICIES",
    "DIRTY_POLICIES",
    "FAILED_LIKE_STATUSES",
    "PHASE_STATUSES",
    "TERMINAL_STATUSES",
    "DirtyPolicy",
    "STAMP_FORMAT",
    "PhaseStatus",
    "id_key",
    "utc_now",
    "utc_stamp",
]

# --- phase status: what the checkpoint mirror records for one phase ---------------------------

PhaseStatus = Literal[
    "pending", "running", "complete", "failed", "blocked", "timeout", "budget", "skipped"
]
PHASE_STATUSES: tuple[str, ...] = get_args(PhaseStatus)

TERMINAL_STATUSES: frozenset[str] = frozenset(
    {"complete", "failed", "blocked", "timeout", "budget", "skipped"}
)
"""A phase in one of these has finished this run: it is not scheduled again until a retry."""
FAILED_LIKE_STATUSES: frozenset[str] = frozenset({"failed", "blocked", "timeout", "budget"})
"""Finished without its work done: a rerun or a person's retry starts the phase again."""

# --- dirty-tree policy: what a run does with uncommitted changes before it starts ------------

DirtyPolicy = Literal["stop", "stash", "commit", "proceed"]
DIRTY_POLICIES: tuple[str, ...] = get_args(DirtyPolicy)
TREE_CHANGING_POLICIES: frozenset[str] = frozenset({"stash", "commit"})
"""The policies that change the working tree before the run (a dry run only says it would)."""

# --- now: checkpoints are stamped to the second, in UTC ---------------------------------------

STAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def utc_now() -> datetime:
    """Now in UTC, to the second (a `datetime`)."""
    return datetime.now(UTC).replace(microsecond=0)


def utc_stamp(moment: datetime | None = None) -> str:
    """`moment` (default: now) as the ISO-8601 UTC string the checkpoints use
    (`2025-12-19T14:30:00Z`)."""
    return (moment or utc_now()).strftime(STAMP_FORMAT)


DEFAULT_PHASE_TIMEOUT_S = 600.0
"""A phase's default time limit: 10 minutes, as the original orchestration prompt had it."""
DEFAULT_AGENT_TIMEOUT_S = 300.0
"""An agent call's default time limit: 5 minutes, as the original orchestration prompt had it."""
