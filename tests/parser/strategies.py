"""Hypothesis strategies and properties for the plan parser, shared by the CI fuzz tests
(`tests/parser/test_fuzz.py`, a few hundred examples each) and the benchmark run
(`bench/fuzz_parser.py`, 10,000+ examples each).

Each property is a plain function of the drawn values; :data:`PROPERTIES` pairs it with its
strategies so both callers wrap it with their own example counts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

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
    "**Blast Radius:** Manual testing only\n",
    "**Blast Radius:** `python -m pytest | tee log`\n",
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
    "- a list item at column 0\n",
    "Some prose at column 0.\n",
]

fragment_documents = st.lists(st.sampled_from(FRAGMENTS), max_size=40).map("".join)
mixed_documents = st.lists(
    st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=30)), max_size=30
).map("".join)
# Documents that open with a frontmatter marker: the block is closed, left open, or closed
# after Markdown that it swallowed.
frontmatter_documents = st.lists(st.sampled_from(FRAGMENTS), max_size=30).map(
    lambda parts: "---\n" + "".join(parts)
)

KNOWN_AGENTS = frozenset({"rust-developer", "feature-tester-rust"})
"""The agent definitions the generated plans' repository has."""

_OWNERS = [
    "Rust Developer",
    "rust-developer",
    "`feature-tester-rust`",
    "Feature Tester (Rust)",
    "general-purpose",
    "`Explore`",
    "self",
]
_BLASTS = [
    "`cargo test -p demo`",
    "`cargo test --lib x` + `cargo build`",
    "`cargo test -p a && grep -q halve src/lib.rs`",
    "`just test` (the whole suite)",
    "Manual testing only",
    "None - documentation only",
    "link::detection",
]
_WORDS = ["Parser", "Gates", "Writer", "Schema", "CLI", "Docs", "Cache", "Flow", "Retry", "Ledger"]


def check_invariants(plan: Plan, line_count: int | None = None) -> None:
    """What holds for any input: diagnostics have a line inside the file and render; phases,
    when found, schedule (or the cycle is reported) and draw."""
    for diagnostic in plan.diagnostics:
        assert diagnostic.line is not None and diagnostic.line >= 1, diagnostic
        if line_count is not None:
            assert diagnostic.line <= max(line_count, 1) + 1, (diagnostic, line_count)
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


def _lines(text: str) -> int:
    return text.count("\n") + 1


@dataclass
class GeneratedPhase:
    id: str
    title: str
    owner: str
    deps: list[str]
    blast: str
    compact: bool
    """Family C (`**Agent:** … | …`, `**Deps:**`, `**Pass when:**`) instead of family A."""

    def render(self) -> str:
        deps = ", ".join(f"Phase {dep}" for dep in self.deps) or "None"
        head = f"### Phase {self.id}: {self.title}\n\n"
        if self.compact:
            return head + (
                f"**Agent:** {self.owner} | **Skills:** rust | **Complexity:** Low\n"
                f"**Deps:** {deps} | **Parallel:** No\n\n"
                f"**Goal:** {self.title}.\n\n**Blast Radius:** {self.blast}\n\n"
                f"**Pass when:**\n- [ ] {self.title} works\n- [ ] tests pass\n\n"
            )
        return head + (
            f"**Principal Owner:** {self.owner}\n\n**Dependencies:** {deps}\n\n"
            f"**Blast Radius:** {self.blast}\n\n"
            f"**Acceptance Criteria:**\n- [ ] {self.title} works\n\n"
        )


@dataclass
class GeneratedPlan:
    phases: list[GeneratedPhase]
    frontmatter: str = ""
    extra: list[str] = field(default_factory=list)
    """Phase blocks appended after the generated ones (a duplicate id)."""

    def render(self) -> str:
        blocks = [phase.render() for phase in self.phases] + self.extra
        body = "# Generated plan\n\n**Status:** Reviewed\n\n## Phases\n\n" + "---\n\n".join(blocks)
        return self.frontmatter + body


@st.composite
def dag_plans(draw: Any) -> GeneratedPlan:
    """A well-formed plan: unique ids, dependencies only on earlier phases, known owners,
    runnable or explicitly empty blast radii, acceptance criteria everywhere."""
    count = draw(st.integers(min_value=1, max_value=12))
    suffixes = draw(st.lists(st.sampled_from(["", "", "a", "b"]), min_size=count, max_size=count))
    ids = [
        f"{number}{suffix}" for number, suffix in zip(range(1, count + 1), suffixes, strict=True)
    ]
    phases = []
    for index, phase_id in enumerate(ids):
        deps = (
            draw(st.lists(st.sampled_from(ids[:index]), unique=True, max_size=3)) if index else []
        )
        words = draw(st.lists(st.sampled_from(_WORDS), min_size=1, max_size=3))
        phases.append(
            GeneratedPhase(
                id=phase_id,
                title=" ".join(words),
                owner=draw(st.sampled_from(_OWNERS)),
                deps=deps,
                blast=draw(st.sampled_from(_BLASTS)),
                compact=draw(st.booleans()),
            )
        )
    frontmatter = draw(
        st.sampled_from(
            ["", "---\nstatus: done\nstarted_at: 15:09:38\nrequired_skills: [rust]\n---\n\n"]
        )
    )
    return GeneratedPlan(phases, frontmatter)


MUTATIONS = [
    "cycle",
    "dangling",
    "duplicate",
    "unknown-owner",
    "prose-blast",
    "bad-program",
    "frontmatter-list",
    "frontmatter-swallow",
]


def _line_with(text: str, needle: str, occurrence: int = 0) -> int:
    hits = [n for n, line in enumerate(text.split("\n"), 1) if needle in line]
    return hits[occurrence]


def mutate(plan: GeneratedPlan, kind: str, index: int) -> tuple[str, str, Callable[[str], int]]:
    """Break `plan` one way; returns the text, the error code and where the error must point."""
    phase = plan.phases[index % len(plan.phases)]
    if kind == "cycle":
        first, last = plan.phases[0], plan.phases[-1]
        if len(plan.phases) == 1:
            plan.phases.append(
                GeneratedPhase("99", "Loop", "self", [first.id], "Manual testing only", False)
            )
            last = plan.phases[-1]
        if last.id not in first.deps:
            first.deps.append(last.id)
        if first.id not in last.deps:
            last.deps.append(first.id)
        # Which phase the cycle report starts at is the search's choice: the property checks
        # that it points at a dependency line instead of at one given line.
        return plan.render(), "E-DEP-CYCLE", lambda text: 0
    if kind == "dangling":
        phase.deps.append("999")
        return plan.render(), "E-DEP-UNKNOWN", lambda text: _line_with(text, "Phase 999")
    if kind == "duplicate":
        copy = GeneratedPhase(phase.id, "Again", "self", [], "Manual testing only", False)
        plan.extra.append(copy.render())
        return (
            plan.render(),
            "E-DUP-ID",
            lambda text: _line_with(text, f"### Phase {phase.id}: Again"),
        )
    if kind == "unknown-owner":
        phase.owner = "Schema Architect"
        return plan.render(), "E-OWNER-UNKNOWN", lambda text: _line_with(text, "Schema Architect")
    if kind == "prose-blast":
        phase.blast = "the parser and its callers"
        return plan.render(), "E-BLAST-NOT-COMMAND", lambda text: _line_with(text, "its callers")
    if kind == "bad-program":
        phase.blast = "`python -m pytest tests/`"
        return plan.render(), "E-BLAST-COMMAND", lambda text: _line_with(text, "python -m pytest")
    if kind == "frontmatter-list":
        plan.frontmatter = "---\n- status: done\n- rust\n---\n\n"
        return plan.render(), "E-FM-NOT-MAPPING", lambda text: 2
    assert kind == "frontmatter-swallow"
    plan.frontmatter = "---\nstatus: done\n\n# Swallowed title\n\n"
    if len(plan.phases) == 1:  # no `---` separator closes the block: it is never closed
        return plan.render(), "E-FM-UNTERMINATED", lambda text: 1
    return plan.render(), "E-FM-NOT-YAML", lambda text: _line_with(text, "# Swallowed title")


# --- properties --------------------------------------------------------------------------------


def arbitrary_text(text: str) -> None:
    check_invariants(parse_text(text), _lines(text))


def arbitrary_bytes(data: bytes) -> None:
    check_invariants(parse_bytes(data, "fuzz.md"), data.count(b"\n") + 1)


def plan_shaped_documents(text: str) -> None:
    check_invariants(parse_text(text, "2026-02-01.plan-for-fuzz.md"), _lines(text))


def plan_shaped_bytes_in_other_encodings(text: str, encoding: str) -> None:
    data = text.encode(encoding, errors="replace")
    check_invariants(parse_bytes(data, "2026-02-01.plan-for-fuzz.md"), data.count(b"\n") + 1)


def frontmatter_never_raises(text: str) -> None:
    plan = parse_text(text, "2026-02-01.plan-for-fuzz.md")
    check_invariants(plan, _lines(text))
    bad = [d for d in plan.errors if d.code.startswith("E-FM")]
    assert len(bad) <= 1, bad
    assert not (bad and any(d.code == "W-FM-INVALID" for d in plan.warnings))


def valid_plans_validate(plan: GeneratedPlan) -> None:
    text = plan.render()
    parsed = parse_text(text, "2026-02-01.plan-for-fuzz.md", agents=set(KNOWN_AGENTS))
    assert not parsed.errors, [d.render(parsed.path) for d in parsed.errors]
    assert [phase.id for phase in parsed.phases] == [phase.id for phase in plan.phases]
    for written, read in zip(plan.phases, parsed.phases, strict=True):
        assert set(read.depends_on) == set(written.deps), (written, read.depends_on)
        assert read.acceptance_criteria
    check_invariants(parsed, _lines(text))


def malformed_plans_are_refused(plan: GeneratedPlan, kind: str, index: int) -> None:
    text, code, where = mutate(plan, kind, index)
    parsed = parse_text(text, "2026-02-01.plan-for-fuzz.md", agents=set(KNOWN_AGENTS))
    found = [d for d in parsed.errors if d.code == code]
    assert found, (code, [d.render(parsed.path) for d in parsed.diagnostics])
    lines = text.split("\n")
    if code == "E-DEP-CYCLE":
        assert any(lines[d.line - 1].startswith(("**Dependencies:**", "**Deps:**")) for d in found)
    else:
        assert where(text) in [d.line for d in found], (where(text), found)
    check_invariants(parsed, _lines(text))


PROPERTIES: dict[str, tuple[Callable[..., None], tuple[st.SearchStrategy[Any], ...]]] = {
    "arbitrary_text": (arbitrary_text, (st.text(),)),
    "arbitrary_bytes": (arbitrary_bytes, (st.binary(),)),
    "plan_shaped_documents": (plan_shaped_documents, (fragment_documents,)),
    "plan_shaped_bytes_in_other_encodings": (
        plan_shaped_bytes_in_other_encodings,
        (mixed_documents, st.sampled_from(["utf-8", "utf-16", "latin-1"])),
    ),
    "frontmatter_never_raises": (frontmatter_never_raises, (frontmatter_documents,)),
    "valid_plans_validate": (valid_plans_validate, (dag_plans(),)),
    "malformed_plans_are_refused": (
        malformed_plans_are_refused,
        (dag_plans(), st.sampled_from(MUTATIONS), st.integers(min_value=0, max_value=20)),
    ),
}
