"""Arbitrary input never raises: problems come back as diagnostics with line numbers."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plan_parser import Plan, parse_bytes, parse_text
from plan_parser.schedule import CycleError, mermaid, transitive_dependents, waves

FRAGMENTS = [
    "---\n",
    "status: done\nstarted_at: 15:09:38\n",
    "requirements: x\n  - a: b\n",
    "# Title\n",
    "## Phases\n",
    "## Execution Order\n",
    "### Phase 1: One\n",
    "### Phase 2.5: Half (NEW)\n",
    "## Phase 7a - Lettered (Optional)\n",
    "### Phase 1A: Upper \u2705 COMPLETE\n",
    "#### Phase 3 (DO NOT EXECUTE)\n",
    "**Principal Owner:** Rust Developer\n",
    "**Agent:** `general-purpose` | **Skills:** rust | **Complexity:** Low\n",
    "**Deps:** Phase 1, Phase 2-4 | **Parallel:** Yes (with Phase 5)\n",
    "**Dependencies:** None (parallel with Phases 1-2)\n",
    "**Dependencies:** all previous phases\n",
    "**Dependencies:** Phase 5; Phase 1\n",
    "**Blast Radius:** `cargo test` + `cargo build` (note)\n",
    "**Files to create:**\n",
    "- `src/lib.rs:1-2` - thing\n",
    "**Acceptance Criteria:**\n",
    "- [ ] item\n",
    "  - [x] nested\n",
    "| Property | Value |\n|---|---|\n| **Subagent** | Bash |\n",
    "| Group | Phases |\n|---|---|\n| A | Phase 1, Phase 2 |\n",
    "```markdown\n",
    "```\n",
    "````\n",
    "~~~\n",
    "    indented code\n",
    "<!-- comment -->\n",
    "\n",
    "> quote\n",
    "1. numbered\n",
    "text with | pipe and `code`\n",
]

fragment_documents = st.lists(st.sampled_from(FRAGMENTS), max_size=40).map("".join)
mixed_documents = st.lists(
    st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=30)), max_size=30
).map("".join)


def _check(plan: Plan) -> None:
    for diagnostic in plan.diagnostics:
        assert diagnostic.line is not None and diagnostic.line >= 1, diagnostic
        diagnostic.render(plan.path)
    if plan.phases:
        try:
            layers = waves(plan, include_optional=True)
        except CycleError as exc:
            assert exc.cycle
            assert any(d.code == "E-DEP-CYCLE" for d in plan.errors)
        else:
            scheduled = [phase_id for layer in layers for phase_id in layer]
            assert len(scheduled) == len(set(scheduled))
        mermaid(plan)
        transitive_dependents(plan, plan.phases[0].id)
        for phase in plan.phases:
            assert phase.line <= phase.end_line


COMMON = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@COMMON
@given(st.text())
def test_arbitrary_text(text: str) -> None:
    _check(parse_text(text))


@COMMON
@given(st.binary())
def test_arbitrary_bytes(data: bytes) -> None:
    _check(parse_bytes(data, "fuzz.md"))


@COMMON
@given(fragment_documents)
def test_plan_shaped_documents(text: str) -> None:
    _check(parse_text(text, "2026-02-01.plan-for-fuzz.md"))


@COMMON
@given(mixed_documents, st.sampled_from(["utf-8", "utf-16", "latin-1"]))
def test_plan_shaped_bytes_in_other_encodings(text: str, encoding: str) -> None:
    _check(parse_bytes(text.encode(encoding, errors="replace"), "2026-02-01.plan-for-fuzz.md"))


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
    _check(parse_text(text))


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
