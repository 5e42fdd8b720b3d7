"""Budgets that hold: what agent calls may spend, and the rule that stops an agent going nowhere.

Usage is counted from the API's own ``usage`` field of every response (the loop charges each
turn and the summary as they arrive) and priced with the run's price table
(:mod:`tasks.agent.pricing`, read once from the committed ``HEAD``): input, output, cache
writes and cache reads each at their own rate.

Accounts nest: a phase's account charges the run's account too, so one charge is seen by the
phase limit and the run limit alike. Concurrent phases share the run's account; the loop checks
it between turns (a lock makes charges from worker threads safe), so once the run's budget is
spent no new agent call starts and running ones finish their current turn and stop. A budget is
checked before a turn, not inside it: a run can overshoot its limit by at most one turn per
running agent call.

Agent calls run in worker threads of the flow's process and their requests are Prefect task
parameters; the account itself is not something to send through the API, so a request carries a
key into :data:`_ACCOUNTS`, this process's registry of open accounts.

The no-progress rule (:class:`NoProgress`): ``N`` consecutive turns that change no file (editor
writes whose content really changed) and run no shell command that was not already run in the
call stop it. Reading is not progress but it is allowed: ``N`` defaults to 30, more than an
agent that reads its way into a large repository needs before it writes (a file per turn, or
several at once), while an agent that views the same file or re-runs the same command forever is
stopped after 30 turns instead of at the turn cap of 200.
"""

from __future__ import annotations

import threading
import uuid
from typing import TYPE_CHECKING, TypeVar

from pydantic import BaseModel, Field

from tasks.agent.result import ErrorCode, Usage

if TYPE_CHECKING:  # the CLI imports the defaults here; the price table is the flows' business
    from tasks.agent.pricing import PriceTable

DEFAULT_MAX_TURNS = 200
"""The turn cap of one agent call: a safety net well above real phases (a phase in a large
repository takes 40 to 100 turns); budgets and the no-progress rule are the guard."""
DEFAULT_NO_PROGRESS_TURNS = 30
"""Consecutive turns without a changed file or a new command before a call is stopped."""

SPENDING_LIMITS = frozenset({ErrorCode.COST_LIMIT, ErrorCode.TOKEN_LIMIT})
"""Limits on spending: a call they stop sends no more requests, not even for its summary."""
_Number = TypeVar("_Number", int, float)


class Limits(BaseModel):
    """Spending limits of one account (None: no limit of that kind)."""

    max_cost_usd: float | None = Field(default=None, gt=0)
    max_tokens: int | None = Field(default=None, gt=0)
    """Every token the API counted: input, output, cache writes and cache reads."""

    def tighter(self, other: Limits) -> Limits:
        """Both limits at once: the lower of each."""
        return Limits(
            max_cost_usd=_lower(self.max_cost_usd, other.max_cost_usd),
            max_tokens=_lower(self.max_tokens, other.max_tokens),
        )

    @property
    def any(self) -> bool:
        return self.max_cost_usd is not None or self.max_tokens is not None

    def describe(self) -> str:
        parts = []
        if self.max_cost_usd is not None:
            parts.append(f"${self.max_cost_usd:.2f}")
        if self.max_tokens is not None:
            parts.append(f"{self.max_tokens:,} tokens")
        return " / ".join(parts) or "no limit"


def _lower(a: _Number | None, b: _Number | None) -> _Number | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


class Spent(BaseModel):
    """What an account has spent: tokens by kind and USD."""

    usage: Usage = Field(default_factory=Usage)
    cost_usd: float = 0.0


class LimitReached(BaseModel):
    """Why an account may not spend more."""

    code: ErrorCode
    """``ErrorCode.COST_LIMIT`` or ``ErrorCode.TOKEN_LIMIT``."""
    message: str


class BudgetAccount:
    """Spending of one phase or one run against its limits; thread safe.

    ``parent``: the account that is charged too (a phase's run). :meth:`limit_reached` answers
    for this account and every account above it.
    """

    def __init__(
        self,
        name: str,
        limits: Limits,
        prices: PriceTable,
        parent: BudgetAccount | None = None,
    ) -> None:
        self.name = name
        self.limits = limits
        self.prices = prices
        self.parent = parent
        self._spent = Spent()
        self._lock = threading.Lock()

    def charge(self, model: str, usage: Usage) -> float:
        """Add one response's usage (priced for ``model``) here and above; returns its USD."""
        cost = self.prices.cost(model, usage)
        self._add(usage, cost)
        return cost

    def _add(self, usage: Usage, cost: float) -> None:
        with self._lock:
            self._spent = Spent(
                usage=self._spent.usage + usage, cost_usd=self._spent.cost_usd + cost
            )
        if self.parent is not None:
            self.parent._add(usage, cost)

    @property
    def spent(self) -> Spent:
        with self._lock:
            return self._spent.model_copy(deep=True)

    def own_limit_reached(self) -> LimitReached | None:
        spent = self.spent
        cost_cap, token_cap = self.limits.max_cost_usd, self.limits.max_tokens
        if cost_cap is not None and spent.cost_usd >= cost_cap:
            return LimitReached(
                code=ErrorCode.COST_LIMIT,
                message=f"{self.name} cost budget spent: ${spent.cost_usd:.4f} of ${cost_cap:.2f}",
            )
        if token_cap is not None and spent.usage.total >= token_cap:
            return LimitReached(
                code=ErrorCode.TOKEN_LIMIT,
                message=f"{self.name} token budget spent: {spent.usage.total:,} of "
                f"{token_cap:,} tokens",
            )
        return None

    def limit_reached(self) -> LimitReached | None:
        """The first limit reached, the outermost (the run's) first."""
        above = self.parent.limit_reached() if self.parent is not None else None
        return above or self.own_limit_reached()


def remaining_usd(account: BudgetAccount) -> float | None:
    """USD left under the tightest cost cap of ``account`` and the accounts above it (None: no
    cost cap applies)."""
    left: float | None = None
    current: BudgetAccount | None = account
    while current is not None:
        cap = current.limits.max_cost_usd
        if cap is not None:
            room = max(0.0, cap - current.spent.cost_usd)
            left = room if left is None else min(left, room)
        current = current.parent
    return left


class NoProgress:
    """Counts consecutive turns that changed no file and ran no command not run before.

    ``limit`` 0: the rule is off. A command counts as new by its text with runs of whitespace
    made one, so `cargo test` and `cargo  test` are the same command.
    """

    def __init__(self, limit: int) -> None:
        self.limit = max(0, limit)
        self.stale_turns = 0
        self._commands: set[str] = set()

    def turn(self, *, files_changed: bool, commands: list[str]) -> None:
        """Record one turn: whether an editor call changed a file, and the commands it ran."""
        fresh = False
        for command in commands:
            key = " ".join(command.split())
            if key not in self._commands:
                self._commands.add(key)
                fresh = True
        self.stale_turns = 0 if files_changed or fresh else self.stale_turns + 1

    @property
    def stalled(self) -> bool:
        return self.limit > 0 and self.stale_turns >= self.limit

    def message(self) -> str:
        return (
            f"no progress: {self.stale_turns} consecutive turns changed no file and ran no "
            "command that was not already run"
        )


# -- the registry of this process's accounts --------------------------------------------------

_ACCOUNTS: dict[str, BudgetAccount] = {}
_ACCOUNTS_LOCK = threading.Lock()


def open_account(account: BudgetAccount) -> str:
    """Register ``account``; returns the key an AgentRequest carries (``budget_account``)."""
    key = f"{account.name}-{uuid.uuid4().hex[:12]}"
    with _ACCOUNTS_LOCK:
        _ACCOUNTS[key] = account
    return key


def account_for(key: str | None) -> BudgetAccount | None:
    if key is None:
        return None
    with _ACCOUNTS_LOCK:
        return _ACCOUNTS.get(key)


def close_account(key: str | None) -> None:
    if key is None:
        return
    with _ACCOUNTS_LOCK:
        _ACCOUNTS.pop(key, None)


def format_cost(usd: float) -> str:
    """`$0.0123` below a dollar (cents of cents matter there), `$12.35` above."""
    return f"${usd:.4f}" if usd < 1 else f"${usd:.2f}"


class RunBudget:
    """The run's account, the limits each phase gets, and the prices (one per run).

    Each phase opens its own account under the run's (:meth:`open_phase`); every charge counts
    against the phase's limits and the run's at once.
    """

    def __init__(self, run: Limits, phase: Limits, prices: PriceTable) -> None:
        self.account = BudgetAccount("run", run, prices)
        self.phase_limits = phase
        self.prices = prices

    def open_phase(self, phase_id: str) -> str:
        """Register a fresh account for one attempt at a phase; returns its key."""
        return open_account(
            BudgetAccount(f"phase {phase_id}", self.phase_limits, self.prices, self.account)
        )

    def limit_reached(self) -> LimitReached | None:
        """The run's own limit, once reached: no new agent call starts."""
        return self.account.own_limit_reached()

    def cost(self, model: str, usage: Usage) -> float:
        return self.prices.cost(model, usage)

    def describe(self) -> str:
        """`run: $5.00 / 2,000,000 tokens; per phase: $1.00` for reports and logs."""
        return f"run: {self.account.limits.describe()}; per phase: {self.phase_limits.describe()}"
