"""The pure parts of bench/worktrees.py: the plan's waves, the summary statistics, the plan text
and the check grouping. The benchmark itself (cargo, Prefect) runs from bench/, never here."""

from __future__ import annotations

import importlib
import math
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def wt():  # type: ignore[no-untyped-def]
    sys.path.insert(0, str(BENCH))
    try:
        yield importlib.import_module("worktrees")
    finally:
        sys.path.remove(str(BENCH))


def test_the_plan_runs_three_then_two_then_one(wt) -> None:  # type: ignore[no-untyped-def]
    assert wt.waves(wt.DEPENDS) == [[1, 2, 3], [4, 5], [6]]
    assert wt.waves({1: [], 2: [1], 3: [2]}) == [[1], [2], [3]]


def test_the_plan_text_parses_into_the_same_waves(wt) -> None:  # type: ignore[no-untyped-def]
    from plan_parser import parse_plan

    path = Path(__file__).parent / "_worktrees_plan.md"
    path.write_text(wt.plan_text(), encoding="utf-8")
    try:
        plan = parse_plan(path)
    finally:
        path.unlink()
    assert [p.id for p in plan.phases] == [str(i) for i in range(1, 7)]
    for phase in plan.phases:
        paths = {ref.path for ref in phase.files}
        assert {f"src/m{phase.id}.rs", "src/lib.rs"} <= paths


def test_spread_and_its_format(wt) -> None:  # type: ignore[no-untyped-def]
    assert wt.spread([3.0, 1.0, 2.0]) == {"median": 2.0, "min": 1.0, "max": 3.0, "n": 3}
    assert math.isnan(wt.spread([])["median"])
    assert wt.fmt_spread([1.0, 2.0, 4.0]) == "2.00 (1.00-4.00)"
    assert wt.fmt_spread([]) == "-"


@pytest.mark.parametrize(
    ("check", "kind"),
    [
        ("build", "build"),
        ("integration: build", "integration: build"),
        ("blast-radius: cargo test m1", "blast-radius"),
        ("criterion 2: `cargo test m1` passes", "criterion"),
        ("lint", "lint"),
    ],
)
def test_check_kinds(wt, check: str, kind: str) -> None:  # type: ignore[no-untyped-def]
    assert wt.check_kind(check) == kind


def test_a_criterion_that_reuses_the_blast_radius_run_counts_once(wt) -> None:  # type: ignore[no-untyped-def]
    from types import SimpleNamespace as E

    entries = [
        E(check="blast-radius: cargo test m1", duration_s=2.0),
        E(check="criterion 2: `cargo test m1` passes", duration_s=2.0),
        E(check="build", duration_s=0.5),
        E(check="integration: build", duration_s=0.25),
    ]
    assert wt.gate_commands_s(entries) == 2.5
