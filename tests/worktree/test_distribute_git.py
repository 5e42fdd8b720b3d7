"""The git side of distributed runs on real repositories, without Prefect: URLs and credentials,
a worker's clone cache, a phase branch going to the remote and back into the parent's repo."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from tasks import distribute, worktree
from tasks.concurrency import repo_limit_name
from tasks.shell import run

ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@localhost",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@localhost",
}


def git(repo: Path, *args: str) -> str:
    result = run(["git", *args], cwd=repo, env=ENV, timeout_s=60)
    assert result.ok, result.output
    return result.output.strip()


@pytest.fixture
def parent(tmp_path: Path) -> tuple[Path, Path]:
    """A repository with a bare remote as origin, on its integration branch."""
    remote = tmp_path / "remote.git"
    repo = tmp_path / "repo"
    repo.mkdir()
    git(tmp_path, "init", "-q", "--bare", str(remote))
    git(repo, "init", "-q", "-b", "main")
    (repo / "a.txt").write_text("a\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "first")
    git(repo, "remote", "add", "origin", str(remote))
    git(repo, "push", "-q", "origin", "main")
    worktree.check_out_integration(repo, "plan")
    return repo, remote


def test_urls_lose_their_credentials_and_tokens_travel_as_a_header():
    url = "https://user:s3cret@git.example.com/team/repo.git"
    assert distribute.redact_url(url) == "https://git.example.com/team/repo.git"
    assert distribute.has_credentials(url)
    assert not distribute.has_credentials("https://git.example.com/team/repo.git")
    assert distribute.redact_url("/srv/git/repo.git") == "/srv/git/repo.git"
    env = distribute.auth_env("https://git.example.com/team/repo.git", token="tok-123")
    keys = {env[k]: env[k.replace("KEY", "VALUE")] for k in env if k.startswith("GIT_CONFIG_KEY_")}
    header = keys["http.extraHeader"]
    assert base64.b64decode(header.split()[-1]).decode() == "x-access-token:tok-123"
    assert env["GIT_TERMINAL_PROMPT"] == "0"
    assert "GIT_CONFIG_KEY_0" not in distribute.auth_env("/srv/git/repo.git", token="tok-123")
    # One clone and one limit per repository, whatever credentials a URL carried.
    assert distribute.clone_dir(url, Path("/c")) == distribute.clone_dir(
        "https://git.example.com/team/repo.git", Path("/c")
    )
    assert distribute.clone_dir(url, Path("/c")).name.startswith("repo-")
    assert repo_limit_name(url) == repo_limit_name("https://git.example.com/team/repo.git")
    assert repo_limit_name(url).startswith("plan-executor-repo-repo-")
    assert "s3cret" not in repo_limit_name(url) + str(distribute.clone_dir(url, Path("/c")))


def test_a_remote_with_credentials_in_its_url_is_refused(parent: tuple[Path, Path]):
    repo, remote = parent
    assert distribute.remote_url(repo) == str(remote)
    git(repo, "remote", "set-url", "origin", "https://me:pw@example.com/r.git")
    with pytest.raises(worktree.WorktreeError, match="credentials in its URL"):
        distribute.remote_url(repo)
    git(repo, "remote", "remove", "origin")
    with pytest.raises(worktree.WorktreeError, match="no remote 'origin'"):
        distribute.remote_url(repo)


def test_a_phase_goes_from_a_worker_clone_to_the_parent_and_a_rerun_continues_its_work(
    parent: tuple[Path, Path], tmp_path: Path
):
    repo, remote = parent
    url = str(remote)
    base = distribute.publish_base(repo, "plan", url)
    assert git(remote, "rev-parse", "refs/heads/plan-executor/plan") == base

    clone = distribute.clone_dir(url, tmp_path / "clones")
    with distribute.clone_lock(clone):
        assert distribute.update_clone(url, clone) is True
        assert distribute.prepare_phase(clone, "plan", "1", base) == "fresh"
        distribute.pin_head(clone, base)
        workspace = worktree.open_phase(clone, "plan", "1")
    assert workspace.base == base and not workspace.reused
    (workspace.path / "b.txt").write_text("b\n")
    worktree.commit_work(workspace, "phase 1 (unfinished)", exclude=[])
    tip = distribute.push_phase(clone, "plan", "1", url)
    assert tip and git(remote, "rev-parse", f"refs/heads/{workspace.branch}") == tip

    # Another worker's rerun of the phase goes on from the pushed work.
    other = distribute.clone_dir(url, tmp_path / "other-clones")
    with distribute.clone_lock(other):
        distribute.update_clone(url, other)
        assert distribute.prepare_phase(other, "plan", "1", base) == "continued"
        distribute.pin_head(other, base)
        again = worktree.open_phase(other, "plan", "1")
    assert again.reused and again.base == base
    assert (again.path / "b.txt").read_text() == "b\n"
    # The same clone again: fetched, not cloned; work on another base starts fresh.
    with distribute.clone_lock(other):
        assert distribute.update_clone(url, other) is False
        (repo / "c.txt").write_text("c\n")
        git(repo, "add", "-A")
        git(repo, "commit", "-qm", "second")
        newer = distribute.publish_base(repo, "plan", url)
        distribute.update_clone(url, other)
        assert distribute.prepare_phase(other, "plan", "1", newer) == "fresh"

    # The parent brings the branch back and opens it from the base the worker used.
    landing = distribute.fetch_phase(repo, "plan", "1", base, url)
    assert landing is not None and landing.reused and landing.base == base
    assert (landing.path / "b.txt").read_text() == "b\n"
    assert distribute.fetch_phase(repo, "plan", "9", base, url) is None


def test_a_base_the_remote_does_not_have_is_a_clear_error(
    parent: tuple[Path, Path], tmp_path: Path
):
    repo, remote = parent
    clone = distribute.clone_dir(str(remote), tmp_path / "clones")
    distribute.update_clone(str(remote), clone)
    with pytest.raises(worktree.WorktreeError, match="not on the remote"):
        distribute.prepare_phase(clone, "plan", "1", "0" * 40)
