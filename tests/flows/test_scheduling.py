"""The run's scheduling decisions without Prefect (tasks/scheduling.py): a phase that does not
complete takes its dependents with it, a spent budget starts nothing, a stopped run starts
nothing, a retried phase gives its dependents back."""

from __future__ import annotations

from plan_parser import parse_text
from plan_parser.model import Plan
from plan_parser.schedule import waves
from tasks.scheduling import NotRun, WaveSchedule, skipped_dependency
from tests.parser.helpers import phase_block, plan_text


def _plan() -> Plan:
    # 1 → 2 → 4, 1 → 3; 5 depends on nothing
    return parse_text(
        plan_text(
            phase_block("1", "Base"),
            phase_block("2", "Middle", deps="Phase 1"),
            phase_block("3", "Side", deps="Phase 1"),
            phase_block("4", "Top", deps="Phase 2"),
            phase_block("5", "Alone"),
        ),
        "2026-02-01.schedule-me.md",
    )


def _not_run(schedule: WaveSchedule, pid: str, **statuses: str) -> NotRun | None:
    return schedule.not_run(pid, statuses=statuses, budget_spent=None)


def test_the_waves_put_each_phase_after_its_dependencies() -> None:
    assert waves(_plan()) == [["1", "5"], ["2", "3"], ["4"]]


def test_every_phase_starts_while_all_complete() -> None:
    schedule = WaveSchedule(_plan())
    for pid in ("1", "5", "2", "3", "4"):
        assert _not_run(schedule, pid) is None
        schedule.ended(pid, "complete")
    assert schedule.skipped_by == {}


def test_a_phase_that_does_not_complete_skips_its_transitive_dependents_only() -> None:
    schedule = WaveSchedule(_plan())
    schedule.ended("1", "blocked")
    schedule.ended("5", "complete")
    assert schedule.skipped_by == {"2": "1", "3": "1", "4": "1"}
    assert _not_run(schedule, "2", **{"1": "blocked"}) == NotRun(
        "skipped", "not run: depends on phase 1, which ended blocked"
    )
    # the transitive dependent names the phase that caused it, not its direct dependency
    assert _not_run(schedule, "4", **{"1": "blocked", "2": "skipped"}) == NotRun(
        "skipped", "not run: depends on phase 1, which ended blocked"
    )
    assert _not_run(schedule, "5") is None


def test_the_first_cause_stays_the_cause() -> None:
    schedule = WaveSchedule(_plan())
    schedule.ended("1", "timeout")
    schedule.ended("2", "failed")
    assert schedule.skipped_by["4"] == "1"


def test_a_cause_without_an_outcome_reads_skipped() -> None:
    schedule = WaveSchedule(_plan())
    schedule.ended("1", "failed")
    not_run = _not_run(schedule, "3")
    assert not_run is not None and not_run.error.endswith("which ended skipped")


def test_a_spent_budget_starts_nothing_and_takes_the_dependents() -> None:
    schedule = WaveSchedule(_plan())
    not_run = schedule.not_run("2", statuses={}, budget_spent="run budget of $1.00 spent")
    assert not_run == NotRun("budget", "not run: run budget of $1.00 spent")
    assert not_run.takes_dependents
    schedule.ended("2", not_run.status)
    assert schedule.skipped_by == {"4": "2"}


def test_a_skipped_dependency_wins_over_the_budget() -> None:
    schedule = WaveSchedule(_plan())
    schedule.ended("1", "failed")
    not_run = schedule.not_run("2", statuses={"1": "failed"}, budget_spent="spent")
    assert not_run is not None and not_run.status == "skipped" and not not_run.takes_dependents


def test_a_stopped_run_starts_nothing_more() -> None:
    schedule = WaveSchedule(_plan(), stopped_after="1")
    for pid in ("5", "2"):
        assert _not_run(schedule, pid) == NotRun(
            "skipped", "not run: the run was stopped after phase 1 failed"
        )


def test_a_retried_phase_gives_its_dependents_back() -> None:
    schedule = WaveSchedule(_plan())
    schedule.ended("1", "failed")
    schedule.ended("5", "failed")  # nothing depends on 5
    schedule.retrying("1")
    assert schedule.skipped_by == {}
    assert _not_run(schedule, "2") is None


def test_a_skipped_dependency_is_found_however_its_id_is_spelled() -> None:
    plan = parse_text(
        plan_text(phase_block("1a", "Base"), phase_block("2", "Next", deps="Phase 1A")),
        "2026-02-01.spelling.md",
    )
    assert skipped_dependency(plan.phase("2"), {"1A": "1A"}) == "1A"
    assert skipped_dependency(plan.phase("2"), {"3": "1A"}) is None
    schedule = WaveSchedule(plan, skipped_by={"1A": "0"})
    not_run = _not_run(schedule, "2")
    assert not_run is not None and "depends on phase 0" in not_run.error
