"""A phase ends `timeout` on the runtime's DEADLINE code, never on the wording of an error."""

from __future__ import annotations

import pytest

from flows.phase import _hit_deadline
from tasks.agent.result import AgentResult, ErrorCode, FailureKind


def _result(failure: FailureKind, error: str | None, code: str | None = None) -> AgentResult:
    return AgentResult(
        agent="implementer", model="m", summary="", failure=failure, error=error, error_code=code
    )


def test_the_deadline_code_ends_the_call_on_time() -> None:
    # Both runtimes' messages: the anthropic loop's and Claude Code's.
    for message in ("wall-clock budget exhausted", "wall-clock budget exhausted (deadline)"):
        assert _hit_deadline(_result(FailureKind.AGENT, message, ErrorCode.DEADLINE))


@pytest.mark.parametrize(
    ("failure", "error", "code"),
    [
        (FailureKind.NONE, None, None),
        # Words alone are not the deadline: a command or an API request that timed out.
        (FailureKind.AGENT, "Claude Code error_during_execution: request timed out", None),
        (FailureKind.INFRASTRUCTURE, "API unreachable: ReadTimeout('deadline')", None),
        (FailureKind.BUDGET, "turn cap reached (200 turns)", ErrorCode.TURN_CAP),
    ],
)
def test_anything_else_is_not_the_deadline(
    failure: FailureKind, error: str | None, code: str | None
) -> None:
    assert not _hit_deadline(_result(failure, error, code))
