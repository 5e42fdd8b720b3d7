"""Document-level parsing: the corpus traps (plan-format.md §5) on small plans written here."""

from __future__ import annotations

from pathlib import Path

from plan_parser import DocKind, PhaseType, parse_bytes, parse_plan, parse_text
from plan_parser.model import FileAction, OwnerKind
from tests.parser.helpers import phase_block, plan_text

FAMILY_B = """---
status: done
started_at: 15:09:38
finished_at: 2026-01-13
duration:
---

# Planning Process

- [x] 15:09 Read the code
- [x] 15:20 Wrote the plan

## Plan

### Phase 1: Add UpdateStrategy Enum

| Property | Value |
|----------|-------|
| **Subagent** | `general-purpose` |
| **Required Skills** | rust, thiserror |
| **Suggested Skills** | strum (for derive macros) |
| **Complexity** | Low |
| **Dependencies** | None |
| **Parallelizable** | Yes (with Phase 2) |

**Objective:** Define the enum.

**Deliverables:**
- Enum with two variants
- Re-export from `lib.rs`

**Acceptance Criteria:**
- [ ] Enum exists
- [x] Doc comments explain usage

### Phase 2: Use It

| Property | Value |
|----------|-------|
| **Subagent** | feature-tester-rust |
| **Dependencies** | Phase 1 (enum exists) |

**Acceptance Criteria:**
- [ ] Tests use it
"""

FAMILY_C = """---
status: "done"
---

# Planning Process

## Plan

### Phase 0: Setup
**Agent:** `Explore` | **Skills:** rust, clap | **Complexity:** Medium
**Deps:** None | **Parallel:** No

**Goal:** Prepare the `a|b` parser.

**Files to create:** `src/a.rs`, `src/b.rs:10-20`

**Deliver:**
```rust
pub fn a() {}
```

**Pass when:**
- [ ] `cargo test -p x` passes
  - [ ] nested item is not counted
- [ ] clippy clean

**If failed:**
- Rollback: revert

### Phase 1: Build
**Agent:** self | **Skills:** None | **Complexity:** Low
**Deps:** Phase 0 | **Parallel:** No

**Pass when:**
- [ ] builds
"""


def test_family_b_property_table_and_frontmatter_strings() -> None:
    plan = parse_text(FAMILY_B, "2026-01-13.plan-for-x.md")
    assert plan.kind is DocKind.PLAN
    assert plan.frontmatter["started_at"] == "15:09:38"  # not YAML 1.1's base-60 integer
    assert plan.frontmatter["finished_at"] == "2026-01-13"
    assert plan.title == "x" and plan.title_source == "slug"
    assert plan.status == "done" and plan.status_line == 2
    one, two = plan.phases
    assert one.owner is not None and one.owner.kind is OwnerKind.BUILTIN
    assert one.owner.raw == "general-purpose"
    assert one.skills == ["rust", "thiserror", "strum"]
    assert one.complexity == "Low" and one.parallel_hint == "Yes (with Phase 2)"
    assert one.depends_on == [] and one.goal == "Define the enum."
    assert one.deliverables == ["Enum with two variants", "Re-export from `lib.rs`"]
    assert [(c.text, c.checked) for c in one.acceptance_criteria] == [
        ("Enum exists", False),
        ("Doc comments explain usage", True),
    ]
    assert two.depends_on == ["1"] and two.depends_note == "enum exists"
    assert two.owner is not None and two.owner.agent == "feature-tester-rust"
    # Every field knows its source line.
    lines = FAMILY_B.splitlines()
    assert lines[one.field_lines["owner"] - 1].startswith("| **Subagent**")
    assert lines[one.field_lines["acceptance_criteria"] - 1] == "**Acceptance Criteria:**"
    assert lines[one.acceptance_criteria[1].line - 1] == "- [x] Doc comments explain usage"


def test_family_c_compact_lines() -> None:
    plan = parse_text(FAMILY_C, "2026-01-30.plan-for-y.md")
    zero, one = plan.phases
    assert zero.id == "0" and zero.owner is not None and zero.owner.agent == "explore"
    assert zero.skills == ["rust", "clap"] and zero.complexity == "Medium"
    assert zero.goal == "Prepare the `a|b` parser."
    assert [(f.path, f.action) for f in zero.files] == [
        ("src/a.rs", FileAction.CREATE),
        ("src/b.rs", FileAction.CREATE),
    ]
    assert zero.deliverables == [] and "pub fn a()" in zero.extra_fields["deliverable_code"]
    assert len(zero.acceptance_criteria) == 2
    assert "Rollback: revert" in zero.extra_fields["on_failure"]
    assert one.owner is not None and one.owner.kind is OwnerKind.ORCHESTRATOR
    assert one.skills == [] and one.depends_on == ["0"]


def test_body_is_exact_source_slice_and_line_numbers_hold() -> None:
    text = plan_text(phase_block("1", "One"), phase_block("2", "Two", deps="Phase 1"))
    crlf = text.replace("\n", "\r\n")
    for source in (text, crlf):
        plan = parse_text(source)
        one, two = plan.phases
        assert one.body.startswith("### Phase 1: One")
        assert two.body.startswith("### Phase 2: Two")
        assert source.endswith(two.body)
        assert one.body + two.body in source
        assert source.splitlines()[two.line - 1] == "### Phase 2: Two"
    # The resume fingerprint ignores line endings.
    assert parse_text(text).phases[0].body_hash == parse_text(crlf).phases[0].body_hash


def test_headings_in_frontmatter_and_code_are_not_phases() -> None:
    text = (
        "---\nrequirements: |\n  ## Phase 0: In the frontmatter\n  ## Phase 1+: Later\n---\n"
        "# Plan\n\n## Plan\n\n"
        "```markdown\n### Phase 9: In a code block\n```\n\n"
        "    ### Phase 8: indented code\n\n"
        "### Phase 1: Real\n\n**Agent:** general-purpose\n\n**Pass when:**\n- [ ] ok\n"
    )
    plan = parse_text(text)
    assert [p.id for p in plan.phases] == ["1"]
    assert plan.phases[0].line == text.splitlines().index("### Phase 1: Real") + 1


def test_reference_containers_and_false_phase() -> None:
    text = plan_text(phase_block("1", "One"), phase_block("2", "Two", deps="Phase 1")) + (
        "## Parallelization Opportunities\n\n### Phase 1 Internal Parallelization\n\ntext\n\n"
        "## Execution Order\n\n### Phase 1 (Execute Now)\n\n### Phase 2: Again\n\nrepeat\n"
    )
    plan = parse_text(text)
    assert [p.id for p in plan.phases] == ["1", "2"]
    assert not plan.errors
    refs = [d for d in plan.diagnostics if d.code == "I-PHASE-REF"]
    assert len(refs) == 3 and all(d.line for d in refs)


def test_mis_nested_fence_is_repaired() -> None:
    text = plan_text(
        phase_block(
            "1",
            "Docs",
            extra=(
                "**Example:**\n\n```markdown\n# Title\n\n```yaml\nkey: value\n```\n\nmore\n```\n\n"
            ),
        ),
        phase_block("2", "Hidden by a stray fence", deps="Phase 1"),
    )
    plan = parse_text(text)
    assert [p.id for p in plan.phases] == ["1", "2"]
    assert len(plan.phases[0].acceptance_criteria) == 2
    [warning] = [d for d in plan.diagnostics if d.code == "W-FENCE-NESTING"]
    assert text.splitlines()[warning.line - 1] == "```markdown"


def test_invalid_frontmatter_is_read_loosely() -> None:
    text = (
        "---\nstatus: done\nrequirements: add a thing\n  - with: a list\nplan_notes: x\n---\n"
        + plan_text(phase_block("1", "One"))
    )
    plan = parse_text(text)
    assert not plan.frontmatter_valid
    assert plan.frontmatter["status"] == "done" and "plan_notes" in plan.frontmatter
    assert [p.id for p in plan.phases] == ["1"]
    [invalid] = [d for d in plan.warnings if d.code == "W-FM-INVALID"]
    assert invalid.line in (3, 4)  # where PyYAML gave up, inside the frontmatter
    assert not plan.errors


def test_phase_type_heuristic_and_override() -> None:
    plan = parse_text(
        plan_text(
            phase_block("1", "Architecture Design"),
            phase_block("2", "Research Area Integration"),
            phase_block("3", "Research Show Command"),
            phase_block("4", "Wire Things", extra="**Type:** design\n\n"),
            phase_block("5", "API Design Review", extra="**Type:** implementation\n\n"),
        )
    )
    types = [(p.type, p.type_source) for p in plan.phases]
    assert types == [
        (PhaseType.DESIGN, "heuristic"),
        (PhaseType.IMPLEMENTATION, "default"),
        (PhaseType.IMPLEMENTATION, "default"),
        (PhaseType.DESIGN, "explicit"),
        (PhaseType.IMPLEMENTATION, "explicit"),
    ]


def test_owner_forms() -> None:
    owners = ["`Rust Developer`", "Feature Tester (Rust)", "human", "None (orchestrator)", "Bash"]
    plan = parse_text(
        plan_text(*(phase_block(str(n), f"P{n}", owner=o) for n, o in enumerate(owners)))
    )
    got = [(p.owner.raw, p.owner.kind, p.owner.agent) for p in plan.phases if p.owner]
    assert got == [
        ("Rust Developer", OwnerKind.AGENT_FILE, "rust-developer"),
        ("Feature Tester (Rust)", OwnerKind.AGENT_FILE, "feature-tester-rust"),
        ("human", OwnerKind.HUMAN, None),
        ("None (orchestrator)", OwnerKind.ORCHESTRATOR, None),
        ("Bash", OwnerKind.BUILTIN, "bash"),
    ]
    assert any(d.code == "W-OWNER-HUMAN" and d.phase_id == "2" for d in plan.warnings)


def test_owner_resolution_against_repo(tmp_path: Path) -> None:
    agents = tmp_path / ".claude" / "agents"
    agents.mkdir(parents=True)
    (agents / "rust-developer.md").write_text("---\ndescription: x\n---\n")
    text = plan_text(
        phase_block("1", "A", owner="Rust Developer"),
        phase_block("2", "B", owner="Schema Architect"),
    )
    plan = parse_text(text, repo=tmp_path)
    [error] = plan.errors
    assert (error.code, error.phase_id, error.field) == ("E-OWNER-UNKNOWN", "2", "owner")
    assert text.splitlines()[error.line - 1] == "**Principal Owner:** Schema Architect"
    assert "'Schema Architect'" in error.message and "rust-developer" in error.message
    assert plan.phase("2").owner is not None and plan.phase("2").owner.kind is OwnerKind.UNKNOWN
    assert plan.phase("1").owner is not None and plan.phase("1").owner.kind is OwnerKind.AGENT_FILE


def test_owner_typo_gets_a_suggestion_and_frontmatter_names_count(tmp_path: Path) -> None:
    agents = tmp_path / ".claude" / "agents"
    agents.mkdir(parents=True)
    (agents / "rust-developer.md").write_text("---\ndescription: x\n---\n")
    (agents / "reviewer.md").write_text("---\nname: Code Reviewer\n---\nReview.\n")
    text = plan_text(
        phase_block("1", "A", owner="Rust Develloper"),
        phase_block("2", "B", owner="Code Reviewer"),
    )
    [error] = parse_text(text, repo=tmp_path).errors
    assert error.phase_id == "1" and "did you mean 'rust-developer'?" in error.message
    # The caller may pass the names it knows (the agent runtime's view) instead of a repository.
    assert not parse_text(
        text.replace("Develloper", "Developer"), agents={"rust-developer", "code-reviewer"}
    ).errors


def test_missing_fields_diagnostics() -> None:
    text = "# P\n\n## Phases\n\n### Phase 1: Bare\n\nJust prose.\n\n### Phase 2: Also bare\n\n**Dependencies:** Phase 1\n"
    plan = parse_text(text)
    codes = {(d.code, d.phase_id) for d in plan.diagnostics}
    assert ("E-OWNER-MISSING", "1") in codes and ("E-AC-MISSING", "2") in codes
    assert ("W-BLAST-MISSING", "1") in codes and ("W-DEPS-MISSING", "1") in codes
    assert all(d.line for d in plan.diagnostics)


def test_group_table_conflict_warning() -> None:
    text = plan_text(phase_block("1", "One"), phase_block("2", "Two", deps="Phase 1")) + (
        "## Parallelization Opportunities\n\n| Parallel Group | Phases | Reason |\n"
        "|---|---|---|\n| Group A | Phase 1, Phase 2 | both small |\n| Sequential | Phase 1, Phase 2 | x |\n"
    )
    plan = parse_text(text)
    [conflict] = [d for d in plan.warnings if d.code == "W-GROUP-CONFLICT"]
    assert text.splitlines()[conflict.line - 1].startswith("| Group A")
    assert plan.groups[0].phase_ids == ["1", "2"]


def test_kinds() -> None:
    log = "---\nplan_file: a.md\n---\n# Plan Execution\n\n## Phase 1: A\n\n| Property | Value |\n|--|--|\n| **Subagent** | x |\n"
    assert parse_text(log, "2026-01-13.execution-of-a.md").kind is DocKind.EXECUTION_LOG
    assert parse_text(log, "2026-01-13.execution-of-a.md").phases == []
    template = "# Planning Process\n\n- [ ] {datetime} start\n\n## Plan\n\n{ fill in when ready }\n"
    assert parse_text(template).kind is DocKind.TEMPLATE
    assert parse_text("# Notes\n\n### Step 1: x\n").kind is DocKind.NOTE


def test_bad_bytes_become_diagnostics(tmp_path: Path) -> None:
    assert [d.code for d in parse_bytes(b"").errors] == ["E-EMPTY"]
    assert [d.code for d in parse_bytes(b"# x\n\x00\x01").errors] == ["E-BINARY"]
    bad = parse_bytes("# Plan\n\n## Phase 1: Caf\u00e9\n".encode("latin-1"))
    assert bad.errors[0].code == "E-ENCODING" and bad.errors[0].line == 3
    assert [p.title for p in bad.phases] == ["Caf\ufffd"]
    assert [d.code for d in parse_plan(tmp_path / "missing.md").errors] == ["E-UNREADABLE"]
    assert [d.code for d in parse_plan(tmp_path).errors] == ["E-UNREADABLE"]


def test_labels_in_list_items_are_a_fallback() -> None:
    text = (
        "# P\n\n## Phases\n\n### Phase 1. Setup\n\n"
        "- **Owner:** rust-developer\n- **Depends on:** None\n- **Success Criteria:**\n"
        "  - [ ] builds\n  - [ ] tests pass\n\n"
        "### Phase 2 - Use\n\n**Agent:** Bash\n\n"
        "- **Agent:** ignored, the bold line above wins\n- **Prerequisites:** Phase 1\n"
        "- **Done when:** it runs\n"
    )
    plan = parse_text(text)
    one, two = plan.phases
    assert (one.id, one.title, two.title) == ("1", "Setup", "Use")
    assert one.owner is not None and one.owner.agent == "rust-developer"
    assert [c.text for c in one.acceptance_criteria] == ["builds", "tests pass"]
    assert two.owner is not None and two.owner.agent == "bash"
    assert two.depends_on == ["1"]
    assert [c.text for c in two.acceptance_criteria] == ["it runs"]
    assert not plan.errors


def test_owner_with_note_or_second_name() -> None:
    from plan_parser.owners import normalise_owner

    assert normalise_owner("rust-developer (also writes tests)").agent == "rust-developer"
    assert normalise_owner("`Rust Developer` + `Feature Tester (Rust)`").agent == "rust-developer"
    assert normalise_owner("general-purpose (Explore first)").kind is OwnerKind.BUILTIN
    odd = normalise_owner("Schema Architect (review)")
    assert (odd.raw, odd.kind, odd.agent) == (
        "Schema Architect (review)",
        OwnerKind.AGENT_FILE,
        "schema-architect",
    )


def test_repo_without_agent_folder_is_one_clear_warning(tmp_path: Path) -> None:
    plan = parse_text(plan_text(phase_block("1", "A", owner="rust-developer")), repo=tmp_path)
    codes = [d.code for d in plan.warnings]
    assert codes.count("W-AGENTS-MISSING") == 1
    assert [d.code for d in plan.errors] == ["E-OWNER-UNKNOWN"]
    assert "Agents defined in the repository: none" in plan.errors[0].message


def test_headings_quoted_or_in_lists_are_not_phases() -> None:
    text = "# P\n\n## Phase 1: Real\n\n> ### Phase 2: quoted\n\n- ### Phase 3: in a list\n"
    assert [p.id for p in parse_text(text).phases] == ["1"]


def _with_graph(graph: str) -> str:
    return (
        plan_text(
            phase_block("1", "One"),
            phase_block("2", "Two", deps="Phase 1"),
            phase_block("2.5", "Half", deps="Phase 2"),
        )
        + "## Dependency Graph\n\n```mermaid\nflowchart TD\n"
        + graph
        + "\n    style P1 fill:#fff\n```\n"
    )


def test_mermaid_graph_agreeing_transitively_is_quiet() -> None:
    plan = parse_text(
        _with_graph("    P1[Phase 1: One] --> P2[Phase 2: Two] --> P2_5\n    P1 --> P2_5")
    )
    assert ("1", "2", plan.graph_edges[0][2]) in plan.graph_edges
    assert ("2", "2.5", plan.graph_edges[0][2]) in plan.graph_edges
    assert not [d for d in plan.diagnostics if d.code == "W-GRAPH-CONFLICT"]


def test_mermaid_graph_conflict_warns() -> None:
    text = _with_graph("    A[Phase 1: One] & B[Phase 2.5: Half] --> C[Phase 2: Two]")
    plan = parse_text(text)
    [conflict] = [d for d in plan.warnings if d.code == "W-GRAPH-CONFLICT"]
    assert text.splitlines()[conflict.line - 1] == "```mermaid"
    assert "2.5->2" in conflict.message and "2->2.5" in conflict.message


def test_label_alone_takes_the_next_paragraph() -> None:
    text = (
        "# P\n\n## Phases\n\n### Phase 1: Split labels\n\n**Principal Owner:**\n\nRust Developer\n\n"
        "**Blast Radius:**\n\n`cargo test -p x` (unit tests)\n\n**Goal:**\n**Dependencies:** None\n\n"
        "**Acceptance Criteria:**\n- [ ] ok\n"
    )
    [phase] = parse_text(text).phases
    assert phase.owner is not None and phase.owner.agent == "rust-developer"
    assert (phase.blast_radius, phase.blast_commands) == ("cargo test -p x", ["cargo test -p x"])
    assert phase.goal == "" or phase.goal is None
    assert phase.depends_raw == "None" and len(phase.acceptance_criteria) == 1
