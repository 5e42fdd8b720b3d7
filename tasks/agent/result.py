"""What an agent call takes and gives back (the contract between the agent runtime and the flows)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, model_validator


class Usage(BaseModel):
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cache_creation_input_tokens=self.cache_creation_input_tokens
            + other.cache_creation_input_tokens,
            cache_read_input_tokens=self.cache_read_input_tokens + other.cache_read_input_tokens,
        )

    @property
    def total(self) -> int:
        return (
            self.input_tokens
            + self.output_tokens
            + self.cache_creation_input_tokens
            + self.cache_read_input_tokens
        )


class InfraFaults(BaseModel):
    """API faults met by agent calls, kept apart from what the agents did.

    A fault is one failed HTTP attempt (429, 529, 5xx, a dropped connection, a timeout, a stream
    that broke mid-way). The SDK retries most of them, the loop retries broken streams, and
    Prefect restarts a call that failed on infrastructure; none of that is an agent attempt.
    """

    faults: dict[str, int] = Field(default_factory=dict)
    """Fault kind (`429`, `529`, `500`, `dropped`, `dropped_mid_stream`, `stream_error`,
    `timeout`, ...) → how many times it happened."""
    retries: int = 0
    """Faulted requests that were sent again (by the SDK or the loop)."""
    restarts: int = 0
    """Whole agent calls started again after an infrastructure failure (Prefect task retries)."""
    lost_s: float = 0.0
    """Wall-clock seconds spent on faulted attempts and the waits between retries."""

    @property
    def total(self) -> int:
        return sum(self.faults.values())

    def note(self, kind: str) -> None:
        self.faults[kind] = self.faults.get(kind, 0) + 1

    def __add__(self, other: InfraFaults) -> InfraFaults:
        faults = dict(self.faults)
        for kind, count in other.faults.items():
            faults[kind] = faults.get(kind, 0) + count
        return InfraFaults(
            faults=faults,
            retries=self.retries + other.retries,
            restarts=self.restarts + other.restarts,
            lost_s=round(self.lost_s + other.lost_s, 3),
        )

    def describe(self) -> str:
        """`7 API faults (429×2, 529×3, dropped×2), 6 retried, 1 call restarted, 3.2 s lost`."""
        if not self.total and not self.restarts:
            return "no API faults"
        kinds = ", ".join(f"{kind}×{n}" for kind, n in sorted(self.faults.items()))
        parts = [f"{self.total} API fault{'s' if self.total != 1 else ''} ({kinds})"]
        parts.append(f"{self.retries} retried")
        if self.restarts:
            parts.append(f"{self.restarts} call{'s' if self.restarts != 1 else ''} restarted")
        parts.append(f"{self.lost_s:.1f} s lost")
        return ", ".join(parts)


class FailureKind(StrEnum):
    NONE = "none"
    INFRASTRUCTURE = "infrastructure"
    """API unreachable, overloaded, rate limited, spend limit: the flows may retry these."""
    AGENT = "agent"
    """Refusal, context exhausted, tool misuse: never retried blindly."""
    BUDGET = "budget"
    """A limit of the run stopped the call: its cost or token budget (the call's phase or the
    whole run), the no-progress rule or the turn cap (`error_code` says which; see
    `tasks.agent.budget`). Neither the agent's failure nor the infrastructure's."""


class ErrorCode(StrEnum):
    """The ``AgentResult.error_code`` values plan-executor recognises itself, defined once.

    The flows decide on these codes, never on the wording of a message. ``error_code`` stays
    ``str | None`` rather than ``ErrorCode | None``: it also carries the API's own codes
    (``error.details.error_code``, e.g. ``enforced_spend_limit_reached``), which are the API's
    vocabulary, not ours, and must pass through unchanged. A StrEnum member equals its value,
    so a code read back from a checkpoint or a Prefect result (a plain ``str``) compares equal
    to the member: ``result.error_code == ErrorCode.DEADLINE``.
    """

    DEADLINE = "deadline"
    """AGENT: the call's own wall-clock budget (``deadline_s``) ran out (both runtimes)."""
    CONTEXT_EXHAUSTED = "context_exhausted"
    """AGENT: the API refused the request as too long for the model's context window."""
    COST_LIMIT = "budget_cost"
    """BUDGET: the cost limit of the call's phase or of the run (``tasks.agent.budget``)."""
    TOKEN_LIMIT = "budget_tokens"
    """BUDGET: the token limit of the call's phase or of the run."""
    NO_PROGRESS = "no_progress"
    """BUDGET: the no-progress rule stopped the call (``tasks.agent.budget.NoProgress``)."""
    TURN_CAP = "turn_cap"
    """BUDGET: the call reached its turn cap (``AgentRequest.max_turns``)."""


class RecordedVerdict(BaseModel):
    """One verdict a verifier recorded with the `record_verdict` tool (never parsed from text)."""

    criterion: str
    """The plan's own number of the criterion (`3` for the ledger's `criterion 3`)."""
    verdict: Literal["PASS", "FAIL"]
    path: str
    """The cited file, as the verifier gave it (checked against the repository by the flow)."""
    line: int
    reason: str


class AgentRequest(BaseModel):
    repo: Path
    plan_name: str
    """Used in the details-log file name: `.ai/logs/YYYY-MM-DD.<plan_name>-phase-<id>-details.md`."""
    phase_id: str
    owner: str
    """The phase owner as written; resolved to an agent definition by the runtime."""
    task: str
    """The phase context and instructions (the user message)."""
    skills: list[str] = Field(default_factory=list)
    model: str | None = None
    """Overrides the agent definition's model."""
    max_turns: int = 200
    """A safety net well above real phases; budgets and the no-progress rule are the guard."""
    no_progress_turns: int = 30
    """Consecutive turns that change no file and run no new command before the call is stopped
    (outcome `budget`); 0 turns the rule off (see `tasks.agent.budget.NoProgress`)."""
    budget_account: str | None = None
    """The key of the process-local budget account the call charges (its phase's, which
    charges the run's): `tasks.agent.budget.account_for`. None: no spending limit."""
    command_timeout_s: float = 120.0
    network: bool = True
    allow_unsandboxed: bool = False
    read_only: bool = False
    """Verifier calls: the editor can only view and bash runs with the repository read-only."""
    protected_paths: list[Path] = Field(default_factory=list)
    """Files the agent may read but never change (the plan file: its criteria and checkpoints are
    plan-executor's evidence): read-only in the sandbox, refused by the editor."""
    role_suffix: str = "details"
    """Distinguishes the log of several calls in one phase (owner, tester, verifier)."""
    bwrap: str = "bwrap"
    """The bubblewrap executable (name on PATH or path) that sandboxes the agent's commands."""
    log_repo: Path | None = None
    """Where `.ai/logs/` is (the user's checkout); None: ``repo``. A phase's worktree is removed
    after the run, its details logs must not go with it."""
    runtime: Literal["anthropic", "claude-code"] = "anthropic"
    """The run's agent runtime (:mod:`tasks.agent.runtimes`); an agent definition's own
    ``runtime:`` wins, verifier calls always use ``anthropic``."""
    verdict_criteria: list[str] = Field(default_factory=list)
    """Verifier calls: the plan's numbers of the criteria to judge. The call gets the
    `record_verdict` tool with these as its only accepted values, and criteria still without a
    verdict when the model stops are asked for once more."""

    @model_validator(mode="after")
    def _verdicts_only_read_only(self) -> AgentRequest:
        # A call that can change the code must not also be the one that judges it.
        if self.verdict_criteria and not self.read_only:
            raise ValueError("verdict_criteria is for read-only (verifier) calls only")
        return self


class AgentResult(BaseModel):
    agent: str
    model: str
    summary: str
    """At most 500 tokens, from a final request with no tools allowed. A claim, never evidence."""
    stop_reason: str | None = None
    turns: int = 0
    usage: Usage = Field(default_factory=Usage)
    files_touched: list[str] = Field(default_factory=list)
    commands_run: list[str] = Field(default_factory=list)
    details_log: str | None = None
    failure: FailureKind = FailureKind.NONE
    error: str | None = None
    sandboxed: bool = True
    error_code: str | None = None
    """Which failure, when known: one of plan-executor's own :class:`ErrorCode` values or the
    API's `error.details.error_code` (e.g. `enforced_spend_limit_reached`). Code decides on this
    field, never on ``error``'s text."""
    retryable: bool = False
    """For INFRASTRUCTURE failures: whether retrying the call can help (not for spend limits,
    authentication or a missing sandbox)."""
    requests: int = 0
    """Messages API requests this call completed (summary request included)."""
    infra: InfraFaults = Field(default_factory=InfraFaults)
    """API faults this call met and the retries that absorbed them (never agent attempts)."""
    verdicts: list[RecordedVerdict] = Field(default_factory=list)
    """Verifier calls: the verdicts recorded with `record_verdict`, one per criterion (the last
    one given), in the order of ``AgentRequest.verdict_criteria``."""
    verdicts_missing: list[str] = Field(default_factory=list)
    """Verifier calls: criteria still without a verdict after the one follow-up request."""
    runtime: str = "anthropic"
    """The runtime that ran the call (`anthropic` or `claude-code`)."""
    cost_usd: float | None = None
    """The runtime's own cost estimate when it gives one (Claude Code's `total_cost_usd`); the
    flows price calls from ``usage`` with :mod:`tasks.agent.pricing` either way."""

    @property
    def ok(self) -> bool:
        return self.failure is FailureKind.NONE
