"""Agent definitions: loading `.claude/agents/*.md` and resolving the owners real plans name."""

from __future__ import annotations

import re
import shutil
from collections import Counter
from pathlib import Path

import pytest

from plan_parser import parse_text
from plan_parser.model import OwnerKind
from plan_parser.owners import normalise_owner, resolve_owner
from tasks.agent.definitions import (
    known_agent_names,
    load_agents,
    load_agents_dir,
    owner_kind,
    resolve_agent,
)

OWNER_LINES = [
    re.compile(r"\*\*Principal Owner:\*\*\s*(?P<owner>[^|\n]+)"),
    re.compile(r"\|\s*\*\*Subagent\*\*\s*\|\s*(?P<owner>[^|\n]+)\|"),
    re.compile(r"\*\*Agent:\*\*\s*(?P<owner>[^|\n]+)"),
]


@pytest.fixture
def corpus_repo(tmp_path: Path, shared_dir: Path) -> Path:
    """A repository whose `.claude/agents/` holds the corpus agent files."""
    repo = tmp_path / "repo"
    shutil.copytree(shared_dir / "corpus" / "agents", repo / ".claude" / "agents")
    return repo


def test_corpus_agents_load(corpus_repo: Path) -> None:
    agents = load_agents(corpus_repo)
    assert set(agents) == {"feature-tester-rust", "rust-designer", "rust-developer"}
    developer = agents["rust-developer"]
    assert developer.model == "claude-opus-4-5-20251101"
    assert developer.prompt.startswith("# Rust Developer Sub-Agent")
    assert developer.source.endswith("rust-developer.md") and developer.tools is None


def test_frontmatter_fields(tmp_path: Path) -> None:
    agents = tmp_path / ".claude" / "agents"
    agents.mkdir(parents=True)
    (agents / "reviewer.md").write_text(
        "---\nname: Code Reviewer\ndescription: reviews\ntools: Read, Grep, Bash\n---\nReview.\n"
    )
    (agents / "listed.md").write_text(
        "---\nname: listed\ntools: [Read, Edit]\nmodel: sonnet\n---\nX\n"
    )
    (agents / "broken.md").write_text("---\nname: [unclosed\n---\nbody\n")
    loaded = load_agents_dir(agents)
    assert "broken" not in loaded  # skipped with a warning, not a crash
    assert loaded["reviewer"].tools == ["Read", "Grep", "Bash"]
    assert loaded["listed"].tools == ["Read", "Edit"] and loaded["listed"].model == "sonnet"
    # the frontmatter display name resolves as well as the file stem
    assert resolve_agent("Code Reviewer", tmp_path).source.endswith("reviewer.md")  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("owner", "expected"),
    [
        ("Rust Developer", "rust-developer.md"),
        ("`rust-developer`", "rust-developer.md"),
        ("Feature Tester (Rust)", "feature-tester-rust.md"),
        ("`feature-tester-rust`", "feature-tester-rust.md"),
        ("Feature Tester", "feature-tester-rust.md"),
        ("Rust Designer", "rust-designer.md"),
        ("`general-purpose`", "builtin:general-purpose"),
        ("`Bash`", "builtin:bash"),
        ("`Explore`", "builtin:explore"),
        ("`Plan`", "builtin:plan"),
    ],
)
def test_owner_resolution(corpus_repo: Path, owner: str, expected: str) -> None:
    definition = resolve_agent(owner, corpus_repo)
    assert definition is not None
    assert definition.source.endswith(expected)
    assert definition.warning is None
    assert definition.prompt


def test_read_only_builtins(corpus_repo: Path) -> None:
    assert resolve_agent("Explore", corpus_repo).read_only  # type: ignore[union-attr]
    assert resolve_agent("Plan", corpus_repo).read_only  # type: ignore[union-attr]
    assert not resolve_agent("general-purpose", corpus_repo).read_only  # type: ignore[union-attr]


def test_every_builtin_type_has_a_role_prompt_and_nothing_else_does() -> None:
    """The names of the built-in types are `plan_parser.owners.BUILTIN_AGENTS`; the prompts
    follow them, and each type a plan may name resolves to its own prompt."""
    from plan_parser.owners import BUILTIN_AGENTS, BUILTIN_TYPES, READ_ONLY_TYPES
    from tasks.agent.definitions import BUILTIN_PROMPTS, builtin_agent

    assert sorted(BUILTIN_PROMPTS) == sorted(BUILTIN_AGENTS)
    assert set(BUILTIN_TYPES.values()) == set(BUILTIN_AGENTS)
    assert READ_ONLY_TYPES.issubset(BUILTIN_AGENTS)
    assert {name for name in BUILTIN_AGENTS if builtin_agent(name).read_only} == READ_ONLY_TYPES


@pytest.mark.parametrize("owner", ["human", "self", "None (orchestrator)", "**self**"])
def test_non_agent_owners(corpus_repo: Path, owner: str) -> None:
    assert resolve_agent(owner, corpus_repo) is None


def test_unknown_owner_is_refused_by_validation_and_falls_back_on_direct_calls(
    corpus_repo: Path,
) -> None:
    # A run never gets here: validation refuses the plan (a typo must not spend money on the
    # wrong agent). A direct runtime call still falls back to general-purpose, with a warning.
    text = (
        "# P\n\n## Phases\n\n### Phase 1: A\n\n**Principal Owner:** Schema Architect\n\n"
        "**Acceptance Criteria:**\n- [ ] done\n"
    )
    [error] = parse_text(text, "p.md", agents=known_agent_names(corpus_repo)).errors
    assert error.code == "E-OWNER-UNKNOWN" and error.line == 7 and error.field == "owner"
    definition = resolve_agent("Schema Architect", corpus_repo)
    assert definition is not None and definition.name == "general-purpose"
    assert definition.warning and "Schema Architect" in definition.warning
    assert owner_kind("Schema Architect", corpus_repo) is OwnerKind.UNKNOWN


def corpus_owners(plans_dir: Path) -> list[tuple[str, str]]:
    owners = []
    for path in sorted(plans_dir.rglob("*.md")):
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            for pattern in OWNER_LINES:
                match = pattern.search(line)
                if match:
                    owners.append((path.name, match.group("owner").strip()))
    return owners


def test_every_corpus_owner_resolves(corpus_repo: Path, shared_dir: Path) -> None:
    owners = corpus_owners(shared_dir / "corpus" / "plans")
    assert len(owners) > 100
    agents = load_agents(corpus_repo)
    names = known_agent_names(corpus_repo, agents=agents)
    kinds: Counter[str] = Counter()
    targets: Counter[str] = Counter()
    for _plan, owner in owners:
        kind = owner_kind(owner, agents=agents)
        definition = resolve_agent(owner, corpus_repo, agents=agents)
        # Validation (plan_parser, given the runtime's names) agrees with the runtime.
        assert resolve_owner(normalise_owner(owner), names).kind is kind, owner
        kinds[kind.value] += 1
        if kind in (OwnerKind.HUMAN, OwnerKind.ORCHESTRATOR):
            assert definition is None, owner
        else:
            assert definition is not None and definition.prompt, owner
            assert (definition.warning is not None) == (kind is OwnerKind.UNKNOWN), owner
            targets[definition.name] += 1
    print(
        f"\ncorpus owners: {len(owners)}; per kind: {dict(kinds)}; per definition: {dict(targets)}"
    )
    for kind in ("agent_file", "builtin", "orchestrator", "unknown"):
        assert kinds[kind] > 0, kind
    assert targets["rust-developer"] > 0 and targets["feature-tester-rust"] > 0
