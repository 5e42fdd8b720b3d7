"""The global concurrency limit that every agent call holds a slot of.

Parallel phases of one plan and several plans of a nightly run all share one Anthropic account,
so the number of agent calls in flight is capped server-side by a Prefect *global concurrency
limit* (shown in the UI under Concurrency). The limit is created when missing; an operator may
change its size in the UI or with `prefect gcl update plan-executor-agents --limit N` and
plan-executor never resets it.

Without a reachable limit (deleted while a run is going) `concurrency(..., strict=False)` lets
the call through: a missing limit must not stop a plan.
"""

from __future__ import annotations

import asyncio
import logging
import os
import weakref
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

AGENT_LIMIT_NAME = "plan-executor-agents"
DEFAULT_AGENT_LIMIT = 4
AGENT_LIMIT_ENV = "PLAN_EXECUTOR_AGENT_LIMIT"
"""Size used when the limit is created (not when it exists already)."""

_log = logging.getLogger(__name__)
_ensured_for_api: set[str] = set()
_limit_size: dict[str, int] = {}
"""The limit's size as read when it was ensured, per API (sizes the process-local gate)."""
# A semaphore belongs to one event loop (one flow run): keyed by the loop, gone with it.
_local_gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Semaphore]] = (
    weakref.WeakKeyDictionary()
)


SLOT_LEASE_S = 60.0
"""How long a slot outlives its holder when the holder dies without releasing it (SIGKILL): the
holder renews its lease while alive, and the server's repossessor frees expired ones every 15 s.
Prefect's default lease is 300 s, so a rerun after a kill waited ~5 minutes for the dead run's
slots (docs/reliability.md, "Crash and resume"); 60 s is the shortest lease the server accepts."""


def default_agent_limit() -> int:
    raw = os.environ.get(AGENT_LIMIT_ENV, "").strip()
    return int(raw) if raw.isdigit() and int(raw) > 0 else DEFAULT_AGENT_LIMIT


async def ensure_agent_limit(limit: int | None = None) -> bool:
    """Create the agents' global concurrency limit unless it exists; True when this call created it.

    An existing limit keeps its size and active flag: the operator owns it once it exists.
    Safe to call concurrently: a creation race ends with one limit and no error.
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    size = limit if limit is not None else default_agent_limit()
    async with get_client() as client:
        try:
            existing = await client.read_global_concurrency_limit_by_name(AGENT_LIMIT_NAME)
            created = False
            if existing.active:
                _limit_size[_api_key()] = int(existing.limit)
        except ObjectNotFound:
            try:
                await client.create_global_concurrency_limit(
                    GlobalConcurrencyLimitCreate(name=AGENT_LIMIT_NAME, limit=size, active=True)
                )
                created = True
                _limit_size[_api_key()] = size
                _log.info("created global concurrency limit %r (limit=%d)", AGENT_LIMIT_NAME, size)
            except ObjectAlreadyExists:
                created = False
    _ensured_for_api.add(_api_key())
    return created


def _api_key() -> str:
    from prefect.settings import PREFECT_API_URL

    return str(PREFECT_API_URL.value() or "ephemeral")


async def _ensure_once() -> None:
    if _api_key() not in _ensured_for_api:
        await ensure_agent_limit()


@asynccontextmanager
async def agent_slot(*, ensure: bool = True) -> AsyncIterator[None]:
    """Hold one slot of :data:`AGENT_LIMIT_NAME` for the duration of one agent call.

    Waits (without a timeout) while all slots are taken. With ``ensure`` the limit is created
    first if missing (once per process and API).
    """
    from prefect.concurrency.asyncio import concurrency

    if ensure:
        await _ensure_once()
    # Why a local gate in front of the server's limit: a call that finds the limit full gets a
    # 423 and retries after the server's Retry-After, which grows with the number of waiters
    # (average occupancy x denied slots, up to 30 s, with jitter). With a wide wave of one run
    # waiting there, a freed slot stayed idle for seconds (docs/benchmarks.md, Makespan). Only
    # as many calls of this process as the limit allows ask the server; the rest wait here and
    # start as soon as one of ours ends. The server's limit still decides across processes.
    async with _local_gate(), concurrency(AGENT_LIMIT_NAME, occupy=1, lease_duration=SLOT_LEASE_S):
        yield


@asynccontextmanager
async def _local_gate() -> AsyncIterator[None]:
    size = _limit_size.get(_api_key())
    if not size:  # limit unknown (not ensured, inactive): the server alone decides
        yield
        return
    gates = _local_gates.setdefault(asyncio.get_running_loop(), {})
    gate = gates.setdefault(_api_key(), asyncio.Semaphore(size))
    async with gate:
        yield


@contextmanager
def agent_slot_sync() -> Iterator[None]:
    """:func:`agent_slot` for synchronous callers (an agent loop running in a worker thread).

    It does not create the limit: call :func:`ensure_agent_limit` at flow start.
    """
    from prefect.concurrency.sync import concurrency

    with concurrency(AGENT_LIMIT_NAME, occupy=1, lease_duration=SLOT_LEASE_S):
        yield


REPO_LIMIT_PREFIX = "plan-executor-repo-"
DEFAULT_REPO_LIMIT = 4
REPO_LIMIT_ENV = "PLAN_EXECUTOR_REPO_LIMIT"
"""Size of a repository's phase limit when it is created (an operator may change it later)."""


def repo_limit_name(url: str) -> str:
    """The global concurrency limit of one repository's distributed phases (by clone URL)."""
    import hashlib
    import re
    from urllib.parse import urlsplit

    from tasks.distribute import redact_url

    clean = redact_url(url).rstrip("/")
    tail = re.sub(r"[^A-Za-z0-9_-]+", "-", urlsplit(clean).path.rsplit("/", 1)[-1])
    tail = tail.removesuffix("-git").strip("-")[:40] or "repo"
    return f"{REPO_LIMIT_PREFIX}{tail}-{hashlib.sha256(clean.encode()).hexdigest()[:8]}"


def default_repo_limit() -> int:
    raw = os.environ.get(REPO_LIMIT_ENV, "").strip()
    return int(raw) if raw.isdigit() and int(raw) > 0 else DEFAULT_REPO_LIMIT


async def ensure_limit(name: str, size: int) -> bool:
    """Create the global concurrency limit ``name`` unless it exists (its size then stays)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    async with get_client() as client:
        try:
            await client.read_global_concurrency_limit_by_name(name)
            return False
        except ObjectNotFound:
            try:
                await client.create_global_concurrency_limit(
                    GlobalConcurrencyLimitCreate(name=name, limit=size, active=True)
                )
            except ObjectAlreadyExists:
                return False
    _log.info("created global concurrency limit %r (limit=%d)", name, size)
    return True


@asynccontextmanager
async def repo_slot(url: str) -> AsyncIterator[None]:
    """One slot of the repository's phase limit while a distributed phase is submitted and runs:
    however many plans of one repository start at once, they hold at most this many workers."""
    from prefect.concurrency.asyncio import concurrency

    name = repo_limit_name(url)
    await ensure_limit(name, default_repo_limit())
    async with concurrency(name, occupy=1, lease_duration=SLOT_LEASE_S):
        yield
