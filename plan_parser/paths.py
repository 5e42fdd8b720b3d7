"""A path as text relative to a repository: the one place that decides what "inside" means.

Two questions, two functions. :func:`repo_relative` asks where a file really is: both paths are
resolved (symlinks followed, a relative path taken from the current directory), so a plan named
through a symlinked checkout is still inside it. :func:`lexical_relative` asks where a path is as
written and never touches the filesystem: a symlink inside the repository stays where it is
listed, wherever it points, and a name that is not a path (`builtin:plan`) stays outside.
Both answer POSIX text (`src/lib.rs`, `.` for the repository itself) or None for a path outside.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["lexical_relative", "repo_relative"]


def repo_relative(repo: Path | str, path: Path | str) -> str | None:
    """``path`` relative to ``repo``, both resolved; None when it lies outside."""
    try:
        return Path(path).resolve().relative_to(Path(repo).resolve()).as_posix()
    except ValueError:
        return None


def lexical_relative(repo: Path | str, path: Path | str) -> str | None:
    """``path`` relative to ``repo`` as both are written (no symlink followed, nothing read);
    None when it is not under ``repo``. `..` is not undone either (`repo/../x` is `../x`):
    callers pass paths that have none (resolved ones, or ones built below the repository)."""
    try:
        return Path(path).relative_to(repo).as_posix()
    except ValueError:
        return None
