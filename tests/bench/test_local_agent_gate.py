"""The process-local gate in front of the agents' global concurrency limit (tasks/concurrency).

Found by bench/makespan.py: waiters on a full Prefect limit retry after a growing Retry-After,
so freed slots sat idle. The local gate lets only `limit` calls of this process ask the server.
"""

from __future__ import annotations

import asyncio

import pytest

from tasks import concurrency


async def _peak(calls: int) -> int:
    running = 0
    peak = 0

    async def one() -> None:
        nonlocal running, peak
        async with concurrency._local_gate():
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.01)
            running -= 1

    await asyncio.gather(*(one() for _ in range(calls)))
    return peak


def test_local_gate_admits_at_most_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(concurrency._limit_size, concurrency._api_key(), 2)
    assert asyncio.run(_peak(7)) == 2
    # A new event loop (the next flow run) gets its own gate: no "bound to a different loop".
    assert asyncio.run(_peak(3)) == 2


def test_unknown_limit_leaves_the_decision_to_the_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(concurrency._limit_size, concurrency._api_key(), raising=False)
    assert asyncio.run(_peak(5)) == 5
