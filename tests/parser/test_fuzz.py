"""Arbitrary input never raises: problems come back as diagnostics with line numbers."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from plan_parser import parse_text
from plan_parser.schedule import transitive_dependents, waves
from tests.parser.strategies import PROPERTIES, check_invariants

# CI runs a few hundred examples per property; `bench/fuzz_parser.py` runs 10,000+ each.
COMMON = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _property_test(name: str):  # noqa: ANN202 - a pytest test function
    prop, strategies = PROPERTIES[name]
    test = COMMON(given(*strategies)(prop))
    test.__name__ = f"test_{name}"
    return test


test_arbitrary_text = _property_test("arbitrary_text")
test_arbitrary_bytes = _property_test("arbitrary_bytes")
test_plan_shaped_documents = _property_test("plan_shaped_documents")
test_plan_shaped_bytes_in_other_encodings = _property_test("plan_shaped_bytes_in_other_encodings")
test_frontmatter_never_raises = _property_test("frontmatter_never_raises")
test_valid_plans_validate = _property_test("valid_plans_validate")
test_malformed_plans_are_refused = _property_test("malformed_plans_are_refused")


def test_every_property_runs_in_ci() -> None:
    defined = {name.removeprefix("test_") for name in globals() if name.startswith("test_")}
    assert set(PROPERTIES) <= defined


PATHOLOGICAL = [
    "*" * 100_000,
    "(" * 100_000,
    "Phase 1: " + "\u2705 A" * 20_000,
    "| **a:** " * 20_000,
    "|" * 100_000,
    "/" * 100_000 + "!",
    "P1 " + "-" * 100_000 + " P2",
]


@pytest.mark.timeout(120)  # a hang guard against quadratic regexes, not a benchmark
@pytest.mark.parametrize("line", PATHOLOGICAL, ids=range(len(PATHOLOGICAL)))
def test_pathological_lines_in_every_position(line: str) -> None:
    text = (
        f"# {line}\n\n## Phase 1: {line}\n\n**Agent:** {line}\n**Deps:** {line}\n\n"
        f"**Blast Radius:** {line}\n\n**Files:**\n- {line}\n\n**Pass when:**\n- [ ] {line}\n\n"
        f"```mermaid\nflowchart TD\n{line}\n```\n\n| Group | Phases |\n|---|---|\n| {line} | {line} |\n"
    )
    check_invariants(parse_text(text))


def test_long_dependency_chain_and_too_many_phases() -> None:
    chain = "# P\n\n" + "".join(
        f"### Phase {n}: P{n}\n\n**Deps:** Phase {n - 1}\n\n" for n in range(1, 490)
    )
    plan = parse_text(chain.replace("**Deps:** Phase 0", "**Deps:** None"))
    assert len(waves(plan)) == 489  # no recursion limit in cycle search or scheduling
    assert transitive_dependents(plan, "1") == {str(n) for n in range(2, 490)}
    many = "# P\n\n" + "".join(f"## Phase {n}: P{n}\n\n" for n in range(1, 601))
    big = parse_text(many)
    assert len(big.phases) == 500
    [error] = [d for d in big.errors if d.code == "E-TOO-MANY-PHASES"]
    assert many.splitlines()[error.line - 1] == "## Phase 501: P501"
