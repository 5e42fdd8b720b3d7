"""What Claude Code shows an agent about a repository before it starts: memory files and skills.

Claude Code loads `CLAUDE.md` (and `AGENTS.md`) from the repository root, and those of the
directories it works in, into the conversation, and lists the repository's skills
(`.claude/skills/<name>/SKILL.md`, with `name` / `description` frontmatter) so the model can
read a skill when it needs one. Our agents get the same, split by what changes:

- the root memory files and the skills index are the same for every phase and every turn, so
  they go into the system prompt, where the prompt cache serves them across phases;
- the memory files of the directories between the root and the phase's files, and the bodies of
  the skills the phase requires, belong to one phase: they go into its task (the first user
  message), which stays byte-identical for every turn of that call.

Everything is read in a fixed order and capped, so the same repository always gives the same
bytes.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import frontmatter
import yaml
from pydantic import BaseModel

MEMORY_NAMES = ("CLAUDE.md", "AGENTS.md")
SKILLS_DIR = Path(".claude/skills")
MAX_FILE_CHARS = 20_000
"""Per memory file or skill body: a larger one is cut, and the agent is told where to read on."""
MAX_SKILL_BODIES_CHARS = 60_000


class MemoryFile(BaseModel):
    path: str
    """Relative to the repository root (POSIX)."""
    text: str


class Skill(BaseModel):
    name: str
    description: str
    path: str
    """`.claude/skills/<dir>/SKILL.md`, relative to the repository root."""


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def _capped(text: str, path: str, limit: int = MAX_FILE_CHARS) -> str:
    if len(text) <= limit:
        return text.rstrip()
    return f"{text[:limit].rstrip()}\n\n[... cut at {limit} characters; read `{path}` for the rest]"


def _memory_in(repo: Path, directory: PurePosixPath) -> list[MemoryFile]:
    found = []
    for name in MEMORY_NAMES:
        relative = directory / name
        text = _read(repo / relative) if (repo / relative).is_file() else None
        if text and text.strip():
            found.append(MemoryFile(path=str(relative), text=_capped(text, str(relative))))
    return found


def root_memory(repo: Path) -> list[MemoryFile]:
    return _memory_in(repo, PurePosixPath("."))


def nested_memory(repo: Path, files: list[str]) -> list[MemoryFile]:
    """Memory files of the directories between the root (excluded) and each file's directory,
    outermost first, each directory once."""
    directories: list[PurePosixPath] = []
    for file in files:
        parts = PurePosixPath(file.lstrip("/")).parent.parts
        for depth in range(1, len(parts) + 1):
            directory = PurePosixPath(*parts[:depth])
            if ".." not in directory.parts and directory not in directories:
                directories.append(directory)
    return [memory for directory in directories for memory in _memory_in(repo, directory)]


def _skill_of(repo: Path, path: Path) -> Skill | None:
    relative = str(path.relative_to(repo))
    try:
        meta = frontmatter.load(str(path)).metadata
    except (OSError, UnicodeDecodeError, yaml.YAMLError, ValueError):
        meta = {}
    name = str(meta.get("name") or path.parent.name)
    description = " ".join(str(meta.get("description") or "").split())
    return Skill(name=name, description=description, path=relative)


def skills(repo: Path) -> list[Skill]:
    """The repository's skills, by directory name."""
    folder = repo / SKILLS_DIR
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.glob("*/SKILL.md")):
        skill = _skill_of(repo, path)
        if skill is not None:
            found.append(skill)
    return found


def find_skill(name: str, available: list[Skill]) -> Skill | None:
    """A skill by its frontmatter name or directory name, case-insensitively."""
    wanted = name.strip().lower()
    for skill in available:
        if wanted in (skill.name.lower(), PurePosixPath(skill.path).parent.name.lower()):
            return skill
    return None


def missing_skills(repo: Path, names: list[str]) -> list[str]:
    available = skills(repo)
    return [name for name in names if find_skill(name, available) is None]


REPOSITORY_HEADING = "## Repository memory and skills"


def repository_context(repo: Path) -> str:
    """The system-prompt section: root memory files and the skills index (same for every phase)."""
    memory = root_memory(repo)
    available = skills(repo)
    if not memory and not available:
        return ""
    parts = [REPOSITORY_HEADING]
    for item in memory:
        parts.append(f"### `{item.path}` (project instructions: follow them)\n\n{item.text}")
    if available:
        index = "\n".join(
            f"- `{s.name}`: {s.description or '(no description)'} (`{s.path}`)" for s in available
        )
        parts.append(
            "### Skills of this repository\n\n"
            "Read a skill's SKILL.md with the editor when its description fits your work; the "
            f"skills this phase requires are in the task.\n\n{index}"
        )
    return "\n\n".join(parts)


def phase_context(repo: Path, files: list[str], required: list[str]) -> str:
    """The task section: memory files nearer the phase's files and the required skills' text."""
    parts = []
    for item in nested_memory(repo, files):
        parts.append(f"### `{item.path}` (instructions for this directory)\n\n{item.text}")
    available = skills(repo)
    budget = MAX_SKILL_BODIES_CHARS
    for name in required:
        skill = find_skill(name, available)
        if skill is None or budget <= 0:
            continue
        body = _read(repo / skill.path) or ""
        text = _capped(body, skill.path, min(MAX_FILE_CHARS, budget))
        budget -= len(text)
        parts.append(f"### Skill `{skill.name}` (`{skill.path}`)\n\n{text}")
    if not parts:
        return ""
    return "## Directory instructions and required skills\n\n" + "\n\n".join(parts)
