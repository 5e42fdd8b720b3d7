"""Helpers for the gate tests: fixture repositories and hand-built phases."""

from __future__ import annotations

import shutil
from pathlib import Path

from plan_parser.model import Criterion, FileAction, FileRef, Phase, PhaseType
from tasks import shell
from tasks.gates.ledger import LedgerEntry, PhaseVerdict, VerdictStatus

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
CRATES = FIXTURES / "crates"
CARGO_OUTPUT = FIXTURES / "cargo-output"


def git(repo: Path, *args: str) -> str:
    result = shell.run(["git", *args], cwd=repo, timeout_s=60)
    assert result.ok, f"git {' '.join(args)} failed: {result.output}"
    return result.output


def make_repo(crate: str, dest: Path) -> Path:
    """A copy of fixture crate ``crate`` at ``dest``, as a git repository with one commit."""
    # Fresh mtimes (shutil.copy, not copy2): the session shares one cargo target dir, and cargo
    # names a workspace member's artifacts by its path relative to the workspace root, so every
    # copy of a crate maps to the same artifacts. With the fixture's old mtimes a copy would look
    # older than a build of another, edited copy and cargo would reuse that stale build.
    shutil.copytree(CRATES / crate, dest, copy_function=shutil.copy)
    git(dest, "init", "-q", "-b", "main")
    git(dest, "config", "user.email", "gates@example.invalid")
    git(dest, "config", "user.name", "gate tests")
    git(dest, "config", "commit.gpgsign", "false")
    git(dest, "add", "-A")
    git(dest, "commit", "-q", "-m", "fixture")
    return dest


def phase(
    files: list[tuple[str, FileAction]] | None = None,
    criteria: list[str] | None = None,
    *,
    blast: str | None = None,
    blast_commands: list[str] | None = None,
    type: PhaseType = PhaseType.IMPLEMENTATION,
    body: str = "",
    extra: dict[str, str] | None = None,
) -> Phase:
    return Phase(
        id="1",
        title="fixture phase",
        heading_raw="## Phase 1: fixture phase",
        line=1,
        end_line=10,
        files=[FileRef(path=p, action=a) for p, a in (files or [])],
        acceptance_criteria=[Criterion(text=c) for c in (criteria or [])],
        blast_radius=blast,
        blast_commands=list(blast_commands or []),
        blast_runnable=bool(blast_commands),
        type=type,
        body=body,
        extra_fields=dict(extra or {}),
    )


def blocked_by(verdict: PhaseVerdict, check: str, evidence: str = "") -> LedgerEntry:
    """The failing entry whose check starts with ``check`` (and whose evidence contains
    ``evidence``); fails the test when the phase is not BLOCKED by such a line."""
    assert verdict.status is VerdictStatus.BLOCKED, "expected BLOCKED, got COMPLETE"
    for entry in verdict.failing:
        if entry.check.startswith(check) and evidence in entry.evidence:
            return entry
    lines = "\n".join(e.line() for e in verdict.failing)
    raise AssertionError(f"no failing entry {check!r} with {evidence!r}; failing:\n{lines}")


def edit(repo: Path, path: str, old: str, new: str) -> None:
    target = repo / path
    text = target.read_text()
    assert old in text, f"{old!r} not in {path}"
    target.write_text(text.replace(old, new, 1))


PYPKG = FIXTURES / "pypkg"


def make_package(dest: Path, extra: dict[str, str] | None = None) -> Path:
    """A copy of the fixture Python package (src layout, pytest) at ``dest``, with ``extra``
    files, as a git repository with one commit."""
    shutil.copytree(
        PYPKG, dest, ignore=shutil.ignore_patterns("__pycache__", ".*_cache"), dirs_exist_ok=True
    )
    for relative, text in (extra or {}).items():
        (dest / relative).parent.mkdir(parents=True, exist_ok=True)
        (dest / relative).write_text(text)
    git(dest, "init", "-q", "-b", "main")
    git(dest, "config", "user.email", "gates@example.invalid")
    git(dest, "config", "user.name", "gate tests")
    git(dest, "config", "commit.gpgsign", "false")
    git(dest, "add", "-A")
    git(dest, "commit", "-q", "-m", "fixture")
    return dest
