"""The current run and its observers are context variables (flows/context.py), not module
registries: what the plan's flow sets is seen by its phases (asyncio tasks of one wave, the
retry entrypoint's thread) and by nothing outside the block that set it."""

from __future__ import annotations

import asyncio
import contextvars
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from flows.context import (
    RunContext,
    RunOptions,
    current_run,
    observers,
    observing,
    running,
)
from plan_parser import parse_text
from plan_parser.checkpoints import PhaseCheckpoint
from tasks.mirror import PlanMirror
from tests.parser.helpers import phase_block, plan_text


def _context(tmp_path: Path, name: str) -> RunContext:
    plan_path = tmp_path / f"2026-02-01.{name}.md"
    plan = parse_text(plan_text(phase_block("1", "Only")), plan_path.name)
    return RunContext(
        plan_path=plan_path,
        plan=plan,
        options=RunOptions(repo=tmp_path),
        mirror=PlanMirror(plan_path, tmp_path, plan_title=plan.title, enabled=False),
        skills=[],
    )


def test_the_current_run_is_set_for_the_block_and_its_plan_only(tmp_path: Path) -> None:
    context = _context(tmp_path, "one")
    assert current_run(context.plan_path) is None
    with running(context):
        assert current_run(context.plan_path) is context
        assert current_run(tmp_path / "." / context.plan_path.name) is context  # resolved
        assert current_run(tmp_path / "2026-02-01.other.md") is None
    assert current_run(context.plan_path) is None


def test_concurrent_phases_and_concurrent_runs_each_see_their_own(tmp_path: Path) -> None:
    one, two = _context(tmp_path, "one"), _context(tmp_path, "two")

    async def phase(plan_path: Path) -> RunContext | None:
        await asyncio.sleep(0.01)  # the other run's task runs meanwhile
        return current_run(plan_path)

    async def run(context: RunContext) -> list[RunContext | None]:
        with running(context):
            return list(await asyncio.gather(*(phase(context.plan_path) for _ in range(3))))

    async def both() -> tuple[list[RunContext | None], list[RunContext | None]]:
        return await asyncio.gather(run(one), run(two))

    seen_one, seen_two = asyncio.run(both())
    assert seen_one == [one] * 3 and seen_two == [two] * 3
    assert current_run(one.plan_path) is None


def test_the_retry_entrypoints_thread_sees_what_its_body_sets(tmp_path: Path) -> None:
    # execute_plan_sync runs the flow's body on a fresh loop in a thread, in a copy of the
    # caller's context: the run the body sets reaches the phases it starts there.
    context = _context(tmp_path, "one")

    async def body() -> RunContext | None:
        with running(context):
            return await asyncio.create_task(asyncio.sleep(0, current_run(context.plan_path)))

    copied = contextvars.copy_context()
    with ThreadPoolExecutor(max_workers=1) as pool:
        seen = pool.submit(copied.run, lambda: asyncio.run(body())).result()
    assert seen is context
    assert current_run(context.plan_path) is None


class _Recorder:
    def __init__(self) -> None:
        self.waves: list[list[str]] = []
        self.seen: list[tuple[str, str]] = []

    def set_waves(self, waves: list[list[str]]) -> None:
        self.waves = waves

    def observe(self, checkpoint: PhaseCheckpoint) -> None:
        self.seen.append((checkpoint.phase_id, checkpoint.status))


def test_observers_are_scoped_to_the_block_that_observes() -> None:
    outer, inner = _Recorder(), _Recorder()
    assert observers() == ()
    with observing(outer):
        with observing(inner):
            assert observers() == (outer, inner)
        assert observers() == (outer,)

        async def in_the_flow() -> tuple[object, ...]:
            return observers()

        assert asyncio.run(in_the_flow()) == (outer,)  # asyncio.run copies the context
    assert observers() == ()


def test_an_observer_on_the_mirror_sees_each_transition(tmp_path: Path) -> None:
    # What the flow does with each observer: the waves once, then every mirror transition.
    context = _context(tmp_path, "one")
    recorder = _Recorder()
    with observing(recorder):
        for observer in observers():
            observer.set_waves([["1"]])
            context.mirror.listeners.append(observer.observe)
    for status in ("running", "complete"):
        asyncio.run(context.mirror.transition("1", status))
    assert recorder.waves == [["1"]]
    assert recorder.seen == [("1", "running"), ("1", "complete")]
