"""Phase owners as written in plans, normalised to an agent reference.

Plans name owners as display names (`Rust Developer`, `Feature Tester (Rust)`), agent file stems
(`feature-tester-rust`), Claude Code built-in types (`general-purpose`, `Bash`, `Explore`, `Plan`)
or non-agents (`human`, `self`, `None (orchestrator)`). Which names have a definition file is only
known with a repository; :func:`normalise_owner` works from the text alone.
"""

from __future__ import annotations

import re

from plan_parser.model import Owner, OwnerKind

BUILTIN_TYPES = {
    "general-purpose": "general-purpose",
    "general purpose": "general-purpose",
    "bash": "bash",
    "explore": "explore",
    "plan": "plan",
}

HUMAN_NAMES = {"human", "user", "manual", "the user"}
ORCHESTRATOR_NAMES = {"self", "orchestrator", "none (orchestrator)", "plan executor", "none"}

# Display names and loose aliases whose agent file name is not their slug.
ALIASES = {
    "feature tester": "feature-tester-rust",
    "feature-tester": "feature-tester-rust",
    "feature tester (rust)": "feature-tester-rust",
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


def normalise_owner(raw: str) -> Owner:
    text = clean_owner_text(raw)
    key = text.lower()
    if key in HUMAN_NAMES:
        return Owner(raw=text, kind=OwnerKind.HUMAN)
    if key in ORCHESTRATOR_NAMES or key.startswith("none (orchestrator"):
        return Owner(raw=text, kind=OwnerKind.ORCHESTRATOR)
    if key in BUILTIN_TYPES:
        return Owner(raw=text, kind=OwnerKind.BUILTIN, agent=BUILTIN_TYPES[key])
    agent = ALIASES.get(key, slug(text))
    # Without a repository we cannot tell a real agent file from an unknown name; the agent
    # runtime and `validate --repo` resolve AGENT_FILE owners against `.claude/agents/`.
    return Owner(raw=text, kind=OwnerKind.AGENT_FILE, agent=agent or None)


def resolve_owner(owner: Owner, agent_stems: set[str]) -> Owner:
    """Check an AGENT_FILE owner against the definitions present in a repository."""
    if owner.kind is not OwnerKind.AGENT_FILE:
        return owner
    if owner.agent in agent_stems:
        return owner
    return owner.model_copy(update={"kind": OwnerKind.UNKNOWN})
