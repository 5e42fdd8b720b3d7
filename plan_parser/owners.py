"""Phase owners as written in plans, normalised to an agent reference.

Plans name owners as display names (`Rust Developer`, `Feature Tester (Rust)`), agent file stems
(`feature-tester-rust`), Claude Code built-in types (`general-purpose`, `Bash`, `Explore`, `Plan`)
or non-agents (`human`, `self`, `None (orchestrator)`). Which names have a definition file is only
known with a repository; :func:`normalise_owner` works from the text alone.
"""

from __future__ import annotations

import re

from plan_parser.model import Owner, OwnerKind

GENERAL_PURPOSE = "general-purpose"
"""The built-in agent that runs a phase without an owner, the verifier, and (when the run allows
it) an owner that names no agent."""

BUILTIN_AGENTS = (GENERAL_PURPOSE, "bash", "explore", "plan")
"""The built-in agent types (Claude Code's, lower case); `tasks.agent.definitions` gives each
its role prompt."""

BUILTIN_TYPES = {
    **{name: name for name in BUILTIN_AGENTS},
    "general purpose": GENERAL_PURPOSE,
}
"""Owner text (lower case) that names a built-in type → the type."""

READ_ONLY_TYPES = frozenset({"plan", "explore"})
"""Built-in types that only read (Claude Code's Plan and Explore agents)."""

HUMAN_NAMES = {"human", "user", "manual", "the user"}
ORCHESTRATOR_NAMES = {"self", "orchestrator", "none (orchestrator)", "plan executor", "none"}

FEATURE_TESTER = "feature-tester-rust"
"""The agent file of the feature tester, the one agent a phase calls besides its owner."""

# Display names and loose aliases whose agent file name is not their slug.
ALIASES = {
    "feature tester": FEATURE_TESTER,
    "feature-tester": FEATURE_TESTER,
    "feature tester (rust)": FEATURE_TESTER,
    "rust developer": "rust-developer",
    "rust designer": "rust-designer",
}


def clean_owner_text(raw: str) -> str:
    """The owner text without backticks, emphasis and surrounding whitespace."""
    text = raw.replace("`", "").replace("**", "").replace("*", "")
    return re.sub(r"\s+", " ", text).strip()


def slug(name: str) -> str:
    """`Feature Tester (Rust)` → `feature-tester-rust`: how a display name maps to a file stem."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _known(key: str, text: str) -> Owner | None:
    if key in HUMAN_NAMES:
        return Owner(raw=text, kind=OwnerKind.HUMAN)
    if key in ORCHESTRATOR_NAMES or key.startswith("none (orchestrator"):
        return Owner(raw=text, kind=OwnerKind.ORCHESTRATOR)
    if key in BUILTIN_TYPES:
        return Owner(raw=text, kind=OwnerKind.BUILTIN, agent=BUILTIN_TYPES[key])
    if key in ALIASES:
        return Owner(raw=text, kind=OwnerKind.AGENT_FILE, agent=ALIASES[key])
    return None


_NOTE = re.compile(r"\s*\([^()]*\)")
_SEPARATOR = re.compile(r"\s*(?:[,+&/;]|\band\b|\bwith\b|\bthen\b)\s*", re.IGNORECASE)


def normalise_owner(raw: str) -> Owner:
    """Resolve owner text to a kind and agent id; `raw` keeps the text as written.

    Beyond exact names and aliases, a trailing note (`rust-developer (tests too)`) and a second
    name (`rust-developer + feature-tester-rust`: the first is the principal owner) are ignored
    for the agent id."""
    text = clean_owner_text(raw)
    key = text.lower()
    found = _known(key, text)
    if found is not None:
        return found
    principal = _SEPARATOR.split(_NOTE.sub("", key).strip(), maxsplit=1)[0].strip()
    found = _known(principal, text) if principal else None
    if found is not None:
        return found
    agent = slug(principal or text)
    # Without a repository we cannot tell a real agent file from an unknown name; the agent
    # runtime and `validate --repo` resolve AGENT_FILE owners against `.claude/agents/`.
    return Owner(raw=text, kind=OwnerKind.AGENT_FILE, agent=agent or None)


def resolve_owner(owner: Owner, agents: set[str]) -> Owner:
    """Check an AGENT_FILE owner against the agent names a repository defines (lower-cased file
    stems and slugs of frontmatter names), trying what the agent runtime tries: the agent id,
    the slug of the text as written, the text itself."""
    if owner.kind is not OwnerKind.AGENT_FILE:
        return owner
    candidates = {c for c in (owner.agent, slug(owner.raw), owner.raw.lower()) if c}
    if candidates & agents or {slug(c) for c in candidates} & agents:
        return owner
    return owner.model_copy(update={"kind": OwnerKind.UNKNOWN})
