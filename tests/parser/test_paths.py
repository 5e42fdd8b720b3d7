"""Repository-relative paths (`plan_parser/paths.py`): resolved, or as written."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from plan_parser.paths import lexical_relative, repo_relative


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "src").mkdir(parents=True)
    (root / "src" / "lib.rs").write_text("")
    (tmp_path / "outside.rs").write_text("")
    return root


def test_inside_and_outside(repo: Path) -> None:
    for relative in (repo_relative, lexical_relative):
        assert relative(repo, repo / "src" / "lib.rs") == "src/lib.rs"
        assert relative(str(repo), str(repo / "src")) == "src"
        assert relative(repo, repo) == "."
        assert relative(repo, repo.parent / "outside.rs") is None
        assert relative(repo, repo / "missing" / "new.rs") == "missing/new.rs"  # need not exist


def test_resolved_follows_symlinks_and_lexical_does_not(repo: Path, tmp_path: Path) -> None:
    linked_repo = tmp_path / "linked"
    linked_repo.symlink_to(repo)
    (repo / "escape.rs").symlink_to(tmp_path / "outside.rs")

    # The same file through a symlinked checkout is inside the repository ...
    assert repo_relative(repo, linked_repo / "src" / "lib.rs") == "src/lib.rs"
    assert repo_relative(linked_repo, repo / "src" / "lib.rs") == "src/lib.rs"
    assert lexical_relative(repo, linked_repo / "src" / "lib.rs") is None
    # ... and a link inside it that points out is where it points, or where it is listed.
    assert repo_relative(repo, repo / "escape.rs") is None
    assert lexical_relative(repo, repo / "escape.rs") == "escape.rs"
    # `..` is only undone by resolving.
    assert repo_relative(repo, repo / "src" / ".." / "src" / "lib.rs") == "src/lib.rs"
    assert lexical_relative(repo, repo / ".." / "outside.rs") == "../outside.rs"


def test_a_relative_path_is_taken_from_the_current_directory_only_when_resolved(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(repo / "src")
    assert repo_relative(repo, "lib.rs") == "src/lib.rs"
    assert repo_relative(repo.resolve(), Path(os.curdir)) == "src"
    assert lexical_relative(repo, "lib.rs") is None
    assert lexical_relative(repo, "builtin:plan") is None  # not a path at all
