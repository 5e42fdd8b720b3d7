"""Worktrees and the integration branch on real git repositories (no cargo, no Prefect)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tasks import worktree
from tasks.shell import run

PLAN = "honest"


def git(repo: Path, *args: str) -> str:
    result = run(["git", *args], cwd=repo, timeout_s=60)
    assert result.ok, f"git {' '.join(args)}: {result.output}"
    return result.output.strip()


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name, value in (("NAME", "t"), ("EMAIL", "t@localhost")):
        monkeypatch.setenv(f"GIT_AUTHOR_{name}", value)
        monkeypatch.setenv(f"GIT_COMMITTER_{name}", value)
    root = tmp_path / "repo"
    (root / "src").mkdir(parents=True)
    (root / "src/lib.rs").write_text("//! Crate.\n\npub fn add() {}\n")
    (root / "Cargo.lock").write_text("# lock v1\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "base")
    return root


def phase_with(
    repo: Path, phase_id: str, edits: dict[str, str]
) -> tuple[worktree.PhaseWorkspace, str]:
    workspace = worktree.open_phase(repo, PLAN, phase_id)
    for path, text in edits.items():
        target = workspace.path / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    return workspace, worktree.commit_work(workspace, f"phase {phase_id}\n", exclude=[])


def land(repo: Path, workspace: worktree.PhaseWorkspace, commit: str, **kwargs: object):
    result = worktree.replay(workspace, commit, git(repo, "rev-parse", "HEAD"), **kwargs)  # type: ignore[arg-type]
    if result.status != "conflict" and result.status != "nothing":
        worktree.land(repo, result.commit)
    return result


def test_worktrees_live_in_the_git_directory_on_their_own_branches(repo: Path) -> None:
    assert worktree.check_out_integration(repo, PLAN) == "plan-executor/honest"
    workspace = worktree.open_phase(repo, PLAN, "1")
    assert workspace.path.is_relative_to(repo / ".git")
    assert git(workspace.path, "symbolic-ref", "--short", "HEAD") == "plan-executor/honest--phase-1"
    assert workspace.base == git(repo, "rev-parse", "HEAD")
    assert git(repo, "status", "--porcelain") == ""  # nothing shows in the user's checkout


def test_two_phases_appending_mod_lines_are_joined(repo: Path) -> None:
    worktree.check_out_integration(repo, PLAN)
    base = "//! Crate.\n\npub fn add() {}\n"
    one, first = phase_with(
        repo, "1", {"src/lib.rs": base + "pub mod alpha;\n", "src/alpha.rs": "\n"}
    )
    two, second = phase_with(
        repo, "2", {"src/lib.rs": base + "pub mod beta;\n", "src/beta.rs": "\n"}
    )
    formatted: list[Path] = []

    assert land(repo, one, first).status == "fast-forward"
    result = land(repo, two, second, after_merge=lambda path, locks: formatted.append(path))

    assert result.status == "combined" and result.combined == ["src/lib.rs"]
    assert (repo / "src/lib.rs").read_text() == base + "pub mod alpha;\npub mod beta;\n"
    assert formatted == [two.path]
    assert git(repo, "log", "--format=%s", "-2").splitlines() == ["phase 2", "phase 1"]


def test_a_real_conflict_is_reported_and_the_phase_keeps_its_work(repo: Path) -> None:
    worktree.check_out_integration(repo, PLAN)
    one, first = phase_with(repo, "1", {"src/lib.rs": "//! Crate.\n\npub fn sum() {}\n"})
    two, second = phase_with(repo, "2", {"src/lib.rs": "//! Crate.\n\npub fn plus() {}\n"})
    land(repo, one, first)

    result = land(repo, two, second)

    assert result.status == "conflict" and result.conflicts == ["src/lib.rs"]
    assert worktree.conclude(two, second, result).status == "conflict"  # markers still there
    worktree.abandon(two, second)
    assert git(two.path, "rev-parse", "HEAD") == second
    assert "plus" in git(repo, "show", f"{two.branch}:src/lib.rs")
    assert "sum" in (repo / "src/lib.rs").read_text()


def test_an_owner_resolving_the_conflict_lands(repo: Path) -> None:
    worktree.check_out_integration(repo, PLAN)
    one, first = phase_with(repo, "1", {"src/lib.rs": "//! Crate.\n\npub fn sum() {}\n"})
    two, second = phase_with(repo, "2", {"src/lib.rs": "//! Crate.\n\npub fn plus() {}\n"})
    land(repo, one, first)
    result = land(repo, two, second)

    (two.path / "src/lib.rs").write_text("//! Crate.\n\npub fn sum() {}\npub fn plus() {}\n")
    resolved = worktree.conclude(two, second, result)
    worktree.land(repo, resolved.commit)

    assert resolved.status == "replayed"
    assert (repo / "src/lib.rs").read_text().count("pub fn") == 2


def test_lock_files_are_taken_from_the_branch_for_the_tool_to_rewrite(repo: Path) -> None:
    worktree.check_out_integration(repo, PLAN)
    one, first = phase_with(repo, "1", {"Cargo.lock": "# lock v1\n[a]\nx = 1\n"})
    two, second = phase_with(repo, "2", {"Cargo.lock": "# lock v1\n[a]\nx = 2\n"})
    land(repo, one, first)
    rewritten: list[list[str]] = []

    def regenerate(path: Path, locks: list[str]) -> None:
        rewritten.append(locks)
        (path / "Cargo.lock").write_text("# lock v1\n[a]\nx = 3\n")

    result = land(repo, two, second, after_merge=regenerate)

    assert rewritten == [["Cargo.lock"]]
    assert result.combined == ["Cargo.lock (regenerated)"]
    assert (repo / "Cargo.lock").read_text().endswith("x = 3\n")


def test_a_blocked_phase_is_taken_up_again_from_its_branch_and_base(repo: Path) -> None:
    worktree.check_out_integration(repo, PLAN)
    workspace, commit = phase_with(repo, "1", {"src/alpha.rs": "half\n"})
    worktree.remove_worktrees(repo, PLAN)
    # Meanwhile another phase landed: the rerun still judges against its own base.
    other, other_commit = phase_with(repo, "2", {"src/beta.rs": "b\n"})
    land(repo, other, other_commit)

    again = worktree.open_phase(repo, PLAN, "1")

    assert again.reused and again.base == workspace.base
    assert (again.path / "src/alpha.rs").read_text() == "half\n"
    assert git(again.path, "rev-parse", "HEAD") == commit


def test_commits_leave_out_the_run_owned_files(repo: Path) -> None:
    worktree.check_out_integration(repo, PLAN)
    workspace, commit = phase_with(
        repo, "1",
        {"src/alpha.rs": "a\n", ".ai/logs/x.md": "log\n", "target/debug/x": "bin\n", "plan.md": "p\n"},
    )  # fmt: skip
    worktree.commit_work(workspace, "again\n", exclude=["plan.md"])
    tracked = git(repo, "show", "--name-only", "--format=", workspace.branch).splitlines()
    assert "src/alpha.rs" in tracked
    assert not {"plan.md", ".ai/logs/x.md", "target/debug/x"} & set(tracked)
    assert os.path.exists(workspace.path / ".ai/logs/x.md")


def test_on_current_branch_uses_the_branch_checked_out(repo: Path) -> None:
    assert worktree.check_out_integration(repo, PLAN, current=True) == "main"
    git(repo, "checkout", "-q", "--detach")
    with pytest.raises(worktree.WorktreeError):
        worktree.check_out_integration(repo, PLAN, current=True)
