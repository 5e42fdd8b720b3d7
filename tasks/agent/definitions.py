"""Agent definitions: `.claude/agents/*.md` of the target repository, plus our built-in roles.

Claude Code's format: YAML frontmatter (`name`, `description`, `model`, `tools`) and a Markdown
body that is the role prompt. Phase owners resolve to a definition like this:

- an agent file stem (`rust-developer`) or a display name (`Rust Developer`,
  `Feature Tester (Rust)` → `feature-tester-rust.md`), also matched against frontmatter `name`;
- a built-in type (`general-purpose`, `Bash`, `Explore`, `Plan`) → a role prompt of ours;
- `human` → None: a person does the work; the flow pauses for them, no agent is called;
- `self` / `None (orchestrator)` → None: plan-executor runs only the gates, no agent is called;
- anything else → `general-purpose`, with `warning` set. Only direct calls get there: plan
  validation refuses such owners before a run (E-OWNER-UNKNOWN, names from
  :func:`known_agent_names`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import frontmatter
import yaml
from pydantic import BaseModel

from plan_parser.model import OwnerKind
from plan_parser.owners import (
    GENERAL_PURPOSE,
    READ_ONLY_TYPES,
    clean_owner_text,
    normalise_owner,
    slug,
)

log = logging.getLogger(__name__)

AGENTS_DIR = Path(".claude/agents")


class AgentDefinition(BaseModel):
    name: str
    description: str
    model: str | None
    tools: list[str] | None
    """Claude Code tool names from the frontmatter (`Read, Edit, Bash`); None exposes all of ours."""
    prompt: str
    """The role prompt (the file body): the system prompt of the call."""
    source: str
    """The file it came from, or `builtin:<type>`."""
    read_only: bool = False
    """Built-in explore/plan roles: the editor only views, the repository is mounted read-only."""
    runtime: str | None = None
    """Frontmatter `runtime:` (`anthropic` or `claude-code`): this agent's runtime whatever the
    run chose (:func:`tasks.agent.runtimes.pick_runtime`); None: the run's."""
    warning: str | None = None
    """Set when the owner was unknown and this definition is the general-purpose fallback."""


_COMMON = (
    "You work inside one repository with two tools: `str_replace_based_edit_tool` (view, "
    "create, str_replace, insert; paths are relative to the repository root) and `bash` "
    "(each command runs on its own in a sandbox at the repository root)."
)

BUILTIN_PROMPTS: dict[str, tuple[str, str]] = {
    GENERAL_PURPOSE: (
        "General-purpose agent for multi-step coding tasks",
        "You are a careful senior software engineer. Do the task you are given completely: read "
        "the relevant code first, make focused changes, run the project's build and tests, and "
        "fix what you broke. Do not stop at a plan; change the files. " + _COMMON,
    ),
    "bash": (
        "Command execution specialist",
        "You are a command-line specialist. Accomplish the task by running shell commands; "
        "prefer small, inspectable steps and report exact commands and their outcomes. " + _COMMON,
    ),
    "explore": (
        "Read-only codebase exploration",
        "You explore a codebase to answer questions. You do not modify files: the repository is "
        "mounted read-only. Search, read and report findings with file paths and line numbers. "
        + _COMMON,
    ),
    "plan": (
        "Read-only software architect that designs implementation plans",
        "You are a software architect. Study the code and design a step-by-step implementation "
        "approach with the files to change, risks and tests. You do not modify files: the "
        "repository is mounted read-only. " + _COMMON,
    ),
}
"""The description and role prompt of each built-in type (`plan_parser.owners.BUILTIN_AGENTS`,
the one list of their names; tests/agent/test_definitions.py checks both agree); whether it only
reads is `plan_parser.owners.READ_ONLY_TYPES`."""


def builtin_agent(kind: str) -> AgentDefinition:
    description, prompt = BUILTIN_PROMPTS[kind]
    return AgentDefinition(
        name=kind,
        description=description,
        model=None,
        tools=None,
        prompt=prompt,
        source=f"builtin:{kind}",
        read_only=kind in READ_ONLY_TYPES,
    )


def _tools_field(value: object) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list):
        return [str(part).strip() for part in value if str(part).strip()]
    return None


def load_agent_file(path: Path) -> AgentDefinition:
    post = frontmatter.load(str(path))
    meta = post.metadata
    name = str(meta.get("name") or path.stem)
    model = meta.get("model")
    runtime = meta.get("runtime")
    if runtime is not None:
        from tasks.agent.runtimes import check_runtime_name

        runtime = check_runtime_name(str(runtime), where=f"{path}: frontmatter field 'runtime'")
    return AgentDefinition(
        name=name,
        description=str(meta.get("description") or ""),
        model=str(model) if model else None,
        tools=_tools_field(meta.get("tools")),
        prompt=post.content.strip(),
        source=str(path),
        runtime=runtime,
    )


def load_agents_dir(directory: Path) -> dict[str, AgentDefinition]:
    """Definitions keyed by file stem; unreadable files are logged and skipped."""
    agents: dict[str, AgentDefinition] = {}
    if not directory.is_dir():
        return agents
    for path in sorted(directory.glob("*.md")):
        try:
            agents[path.stem] = load_agent_file(path)
        except (OSError, UnicodeDecodeError, yaml.YAMLError, ValueError) as exc:
            log.warning("skipping agent definition %s: %s", path, exc)
    return agents


def load_agents(repo: Path) -> dict[str, AgentDefinition]:
    return load_agents_dir(Path(repo) / AGENTS_DIR)


def known_agent_names(repo: Path, *, agents: dict[str, AgentDefinition] | None = None) -> set[str]:
    """The agent names `resolve_agent` finds a definition for (file stems and slugs of
    frontmatter names, lower-cased): what plan validation accepts as owners."""
    known = agents if agents is not None else load_agents(repo)
    names = {stem.lower() for stem in known}
    names.update(slug(definition.name) for definition in known.values() if slug(definition.name))
    return names


WRITE_TOOLS = frozenset(
    {"write", "edit", "multiedit", "notebookedit", "bash", "str_replace_based_edit_tool"}
)
"""Claude Code tool names (and ours) with which an agent can change files."""


def can_write(definition: AgentDefinition) -> bool:
    """Whether the agent can change files: not a read-only role, and its `tools:` (when given)
    include one that writes."""
    if definition.read_only:
        return False
    if definition.tools is None:
        return True
    names = {tool.strip().lower().split("(")[0] for tool in definition.tools}
    return bool(names & WRITE_TOOLS)


def read_only_agent_names(
    repo: Path, *, agents: dict[str, AgentDefinition] | None = None
) -> set[str]:
    """Names (as in :func:`known_agent_names`) of the repository's agents that cannot write."""
    known = agents if agents is not None else load_agents(repo)
    names: set[str] = set()
    for stem, definition in known.items():
        if not can_write(definition):
            names.add(stem.lower())
            if slug(definition.name):
                names.add(slug(definition.name))
    return names


def _find(
    agent_id: str | None, text: str, agents: dict[str, AgentDefinition]
) -> AgentDefinition | None:
    candidates = [c for c in (agent_id, slug(text), text.lower()) if c]
    for key in candidates:
        if key in agents:
            return agents[key]
    by_name = {slug(d.name): d for d in agents.values()}
    for key in candidates:
        if slug(key) in by_name:
            return by_name[slug(key)]
    return None


def owner_kind(
    owner_raw: str, repo: Path | None = None, *, agents: dict[str, AgentDefinition] | None = None
) -> OwnerKind:
    """How an owner resolves against a repository's definitions (for reports and validation)."""
    owner = normalise_owner(owner_raw)
    if owner.kind is not OwnerKind.AGENT_FILE:
        return owner.kind
    known = agents if agents is not None else (load_agents(repo) if repo else {})
    return OwnerKind.AGENT_FILE if _find(owner.agent, owner.raw, known) else OwnerKind.UNKNOWN


def resolve_agent(
    owner_raw: str, repo: Path, *, agents: dict[str, AgentDefinition] | None = None
) -> AgentDefinition | None:
    """The definition for a phase owner; None when the owner is not an agent call.

    ``agents`` overrides the definitions loaded from ``repo/.claude/agents``.
    """
    owner = normalise_owner(owner_raw)
    if owner.kind in (OwnerKind.HUMAN, OwnerKind.ORCHESTRATOR):
        return None
    if owner.kind is OwnerKind.BUILTIN and owner.agent in BUILTIN_PROMPTS:
        return builtin_agent(owner.agent)
    known = agents if agents is not None else load_agents(repo)
    found = _find(owner.agent, owner.raw, known)
    if found is not None:
        return found
    text = clean_owner_text(owner_raw)
    if not text:
        text = "(empty)"
    fallback = builtin_agent(GENERAL_PURPOSE)
    fallback.warning = (
        f"owner {text!r} has no definition in {AGENTS_DIR}/ and is not a built-in type; "
        "using general-purpose"
    )
    log.warning(fallback.warning)
    return fallback
