"""Git for distributed runs: a worker's cached clone, the branches that travel through the remote.

A distributed run (``distribute=True``) starts each phase as a run of the `execute-phase`
deployment, on whichever worker of the pool claims it, possibly on another machine. The remote
repository is the only thing the parent and the workers share:

- the parent pushes the integration tip a phase starts from to ``plan-executor/<plan>`` on the
  remote (the phase's *base*; a plan-executor branch, never the user's);
- a worker keeps one clone per repository URL in its own cache (``$PLAN_EXECUTOR_CLONES``, else
  ``~/.cache/plan-executor/clones/<hash of the URL>``), fetches, and opens the phase's worktree
  there from the base, exactly as a local run opens it in the user's checkout;
- the worker pushes the phase branch ``plan-executor/<plan>--phase-<id>`` (the verified commit,
  or the unfinished work) back; the parent fetches it and lands it as a local run lands a phase.

Credentials never travel in a URL, an argument or a parameter: a token for an HTTPS remote is
read on the machine that needs it (the ``PLAN_EXECUTOR_GIT_TOKEN`` environment variable, else the
Prefect Secret block :data:`GIT_TOKEN_BLOCK`) and handed to git as an HTTP header through git's
``GIT_CONFIG_*`` environment, which git does not print.

All git commands go through :mod:`tasks.shell` (via ``repo_state.git``).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from tasks import shell, worktree
from tasks.gates.repo_state import git, head
from tasks.worktree import PhaseWorkspace, WorktreeError

CLONES_ENV = "PLAN_EXECUTOR_CLONES"
GIT_TOKEN_ENV = "PLAN_EXECUTOR_GIT_TOKEN"
GIT_TOKEN_BLOCK = "plan-executor-git-token"
"""A Prefect Secret block holding a token for HTTPS clone URLs (optional)."""
REMOTE = "origin"
FETCH_TIMEOUT_S = 600.0

_log = logging.getLogger(__name__)


# -- URLs and credentials --------------------------------------------------------------------


def redact_url(url: str) -> str:
    """``url`` without a user or password (for logs, parameters and reports)."""
    parts = urlsplit(url)
    if not parts.scheme or "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def has_credentials(url: str) -> bool:
    parts = urlsplit(url)
    return bool(parts.scheme) and "@" in parts.netloc and bool(parts.password or parts.username)


def git_token() -> str | None:
    """The token for HTTPS remotes on this machine: its environment, else the Secret block."""
    value = os.environ.get(GIT_TOKEN_ENV, "").strip()
    if value:
        return value
    try:
        from prefect.blocks.system import Secret

        block = Secret.load(GIT_TOKEN_BLOCK, _sync=True)  # type: ignore[call-arg]  # async_dispatch pops _sync; prefect's typing omits it
    except Exception:  # no block, or no API in reach: a public or SSH remote needs none
        return None
    assert isinstance(block, Secret)  # with _sync=True: the block itself, not a coroutine
    secret = block.get()
    return str(secret) if secret else None


def auth_env(url: str, token: str | None = None) -> dict[str, str]:
    """The environment for git commands that talk to ``url``: the token as an HTTP header
    (never in the URL, the argv or `.git/config`), and no prompt for a password ever."""
    env = dict(os.environ)
    env["GIT_TERMINAL_PROMPT"] = "0"
    if urlsplit(url).scheme not in ("http", "https"):
        return env  # a path or SSH: the machine's own access, no token to look up
    token = token if token is not None else git_token()
    if token:
        basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
        count = int(env.get("GIT_CONFIG_COUNT", "0") or 0)
        env["GIT_CONFIG_COUNT"] = str(count + 1)
        env[f"GIT_CONFIG_KEY_{count}"] = "http.extraHeader"
        env[f"GIT_CONFIG_VALUE_{count}"] = f"Authorization: Basic {basic}"
    return env


def _remote_git(repo: Path, url: str, *args: str) -> shell.CommandResult:
    return shell.run(["git", *args], cwd=repo, env=auth_env(url), timeout_s=FETCH_TIMEOUT_S)


# -- the parent's side -------------------------------------------------------------------------


def remote_url(repo: Path, remote: str = REMOTE) -> str:
    """The clone URL the workers use: the repository's ``origin``, without credentials."""
    result = git(repo, "remote", "get-url", remote)
    url = result.output.strip()
    if not result.ok or not url:
        raise WorktreeError(
            f"{repo} has no remote {remote!r}: a distributed run needs a remote that every "
            "worker can clone (git remote add origin <url>)"
        )
    if has_credentials(url):
        raise WorktreeError(
            f"the remote {remote!r} of {repo} has credentials in its URL; remove them "
            f"(git remote set-url {remote} {redact_url(url)}) and give the workers a token "
            f"through {GIT_TOKEN_ENV} or the Secret block {GIT_TOKEN_BLOCK!r}"
        )
    return url


def publish_base(repo: Path, plan_name: str, url: str) -> str:
    """Push the checked-out integration tip to ``plan-executor/<plan>`` on the remote; returns
    the commit (the base the next phase starts from)."""
    base = head(repo)
    if not base:
        raise WorktreeError(f"{repo} has no commit to start phases from")
    ref = f"refs/heads/{worktree.integration_branch(plan_name)}"
    pushed = _remote_git(repo, url, "push", "-q", "--force", REMOTE, f"{base}:{ref}")
    if not pushed.ok:
        raise WorktreeError(
            f"push of the integration tip to {redact_url(url)} failed: {pushed.tail(6)}"
        )
    return base


def committed_at(repo: Path, commit: str, path: str) -> bool:
    return git(repo, "cat-file", "-e", f"{commit}:{path}").exit_code == 0


def fetch_phase(
    repo: Path, plan_name: str, phase_id: str, base: str, url: str
) -> PhaseWorkspace | None:
    """Bring a worker's phase branch into ``repo`` and open the phase's worktree on it, its
    base the commit the worker started from (as if the phase had run here); None when the
    worker pushed no branch. Call with the run's integration lock held."""
    branch = worktree.phase_branch(plan_name, phase_id)
    path = worktree.worktrees_root(repo, plan_name) / worktree.slug(phase_id)
    # A worktree left on the branch (an earlier local run) would make git refuse the fetch.
    worktree._discard_worktree(repo, path)
    fetched = _remote_git(
        repo, url, "fetch", "-q", "--force", REMOTE, f"+refs/heads/{branch}:refs/heads/{branch}"
    )
    if not fetched.ok:
        if "couldn't find remote ref" in fetched.output:
            return None
        raise WorktreeError(f"fetch of {branch} from {redact_url(url)} failed: {fetched.tail(6)}")
    _set_base(repo, plan_name, phase_id, base)
    return worktree.open_phase(repo, plan_name, phase_id)


def _set_base(repo: Path, plan_name: str, phase_id: str, base: str) -> None:
    result = git(repo, "update-ref", worktree._base_ref(plan_name, phase_id), base)
    if not result.ok:
        raise WorktreeError(f"cannot record the base of phase {phase_id}: {result.tail(4)}")


# -- the worker's side -------------------------------------------------------------------------


def clones_root() -> Path:
    """Where this worker keeps its clones: ``$PLAN_EXECUTOR_CLONES``, else
    ``~/.cache/plan-executor/clones`` (outside the plan-executor home, which sandboxes hide)."""
    configured = os.environ.get(CLONES_ENV, "").strip()
    if configured:
        return Path(configured).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME", "").strip() or str(Path.home() / ".cache")
    return Path(cache) / "plan-executor" / "clones"


def clone_dir(url: str, root: Path | None = None) -> Path:
    """One clone per repository URL (credentials never part of the name)."""
    digest = hashlib.sha256(redact_url(url).encode()).hexdigest()[:16]
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(urlsplit(redact_url(url)).path).name)
    name = name.removesuffix(".git") or "repo"
    return (root or clones_root()) / f"{name}-{digest}"


@contextlib.contextmanager
def clone_lock(clone: Path) -> Iterator[None]:
    """One git operation on a clone's shared state at a time, across this worker's flow-run
    processes (each run is its own process: an asyncio lock would not do)."""
    clone.parent.mkdir(parents=True, exist_ok=True)
    with open(clone.with_name(clone.name + ".lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _ok(repo: Path, *args: str) -> str:
    result = git(repo, *args)
    if not result.ok:
        raise WorktreeError(f"git {' '.join(args)} failed in {repo}: {result.tail(6)}")
    return result.output.strip()


def update_clone(url: str, clone: Path) -> bool:
    """Clone ``url`` into ``clone`` or fetch into the existing clone; True when it was cloned.
    Call with :func:`clone_lock` held."""
    cloned = False
    clone.parent.mkdir(parents=True, exist_ok=True)
    if not (clone / ".git").is_dir():
        if clone.exists():
            import shutil

            shutil.rmtree(clone)
        result = shell.run(
            ["git", "clone", "-q", "--no-checkout", url, str(clone)],
            cwd=clone.parent,
            env=auth_env(url),
            timeout_s=FETCH_TIMEOUT_S,
        )
        if not result.ok:
            raise WorktreeError(f"clone of {redact_url(url)} failed: {result.tail(6)}")
        cloned = True
    else:
        _ok(clone, "remote", "set-url", REMOTE, url)
    fetched = _remote_git(
        clone,
        url,
        "fetch",
        "-q",
        "--prune",
        "--force",
        REMOTE,
        "+refs/heads/*:refs/remotes/origin/*",
    )
    if not fetched.ok:
        raise WorktreeError(f"fetch from {redact_url(url)} failed: {fetched.tail(6)}")
    return cloned


def prepare_phase(clone: Path, plan_name: str, phase_id: str, base: str) -> str:
    """Set the clone up so that opening the phase's worktree starts it from ``base``.

    A branch the remote holds for the phase is taken up when it is exactly one commit of work
    on ``base`` (an earlier attempt's unfinished work, pushed): the rerun goes on from it.
    Anything else local (a stale worktree or branch of another run) is discarded. Returns
    `continued` or `fresh`. Call with :func:`clone_lock` held.
    """
    if git(clone, "cat-file", "-e", f"{base}^{{commit}}").exit_code != 0:
        raise WorktreeError(f"the base {base[:12]} is not on the remote (was it pushed?)")
    branch = worktree.phase_branch(plan_name, phase_id)
    path = worktree.worktrees_root(clone, plan_name) / worktree.slug(phase_id)
    worktree._discard_worktree(clone, path)
    base_ref = worktree._base_ref(plan_name, phase_id)
    remote_tip = git(clone, "rev-parse", "--verify", "--quiet", f"refs/remotes/origin/{branch}")
    tip = remote_tip.output.strip() if remote_tip.ok else ""
    parent = git(clone, "rev-parse", "--verify", "--quiet", f"{tip}^") if tip else None
    if tip and tip != base and parent is not None and parent.output.strip() == base:
        _ok(clone, "update-ref", f"refs/heads/{branch}", tip)
        _ok(clone, "update-ref", base_ref, base)
        return "continued"
    git(clone, "update-ref", "-d", f"refs/heads/{branch}")
    git(clone, "update-ref", "-d", base_ref)
    return "fresh"


def pin_head(clone: Path, base: str) -> None:
    """Detach the clone's own checkout at ``base``: a new phase worktree starts from HEAD."""
    _ok(clone, "checkout", "-q", "--detach", "--force", base)


def push_phase(clone: Path, plan_name: str, phase_id: str, url: str) -> str | None:
    """Push the phase branch to the remote; returns its tip, None when there is no branch."""
    branch = worktree.phase_branch(plan_name, phase_id)
    tip = worktree.branch_tip(clone, branch)
    if tip is None:
        return None
    pushed = _remote_git(
        clone, url, "push", "-q", "--force", REMOTE, f"refs/heads/{branch}:refs/heads/{branch}"
    )
    if not pushed.ok:
        raise WorktreeError(f"push of {branch} to {redact_url(url)} failed: {pushed.tail(6)}")
    return tip
