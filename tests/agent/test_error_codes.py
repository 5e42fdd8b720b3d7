"""plan-executor's own failure codes: one enum, values fixed (checkpoints and reports hold them)."""

from __future__ import annotations

from tasks.agent.budget import SPENDING_LIMITS
from tasks.agent.result import AgentResult, ErrorCode, FailureKind


def test_the_codes_keep_the_strings_earlier_runs_wrote() -> None:
    assert {code.name: code.value for code in ErrorCode} == {
        "DEADLINE": "deadline",
        "CONTEXT_EXHAUSTED": "context_exhausted",
        "COST_LIMIT": "budget_cost",
        "TOKEN_LIMIT": "budget_tokens",
        "NO_PROGRESS": "no_progress",
        "TURN_CAP": "turn_cap",
    }
    assert frozenset({ErrorCode.COST_LIMIT, ErrorCode.TOKEN_LIMIT}) == SPENDING_LIMITS


def test_a_code_read_back_as_text_is_still_the_code() -> None:
    result = AgentResult(
        agent="a",
        model="m",
        summary="s",
        failure=FailureKind.AGENT,
        error_code=ErrorCode.DEADLINE,
    )
    again = AgentResult.model_validate_json(result.model_dump_json())
    assert again.error_code == ErrorCode.DEADLINE
    assert again.model_dump(mode="json")["error_code"] == "deadline"
    assert "budget_tokens" in SPENDING_LIMITS


def test_the_apis_own_codes_pass_through_as_text() -> None:
    result = AgentResult(
        agent="a",
        model="m",
        summary="s",
        failure=FailureKind.INFRASTRUCTURE,
        error_code="enforced_spend_limit_reached",
    )
    assert result.error_code == "enforced_spend_limit_reached"
    assert result.error_code not in set(ErrorCode)
