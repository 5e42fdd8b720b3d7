"""A git worktree per phase, and the run's integration branch the verified phases land on.

Parallel phases never see each other's unfinished work: each phase's agents, gates and verifier
work in its own worktree, on the branch ``plan-executor/<plan>--phase-<id>``, created from the
integration branch as it stood when the phase started (it then holds every phase the phase
depends on: waves start after the wave before has ended). The worktrees live in the repository's
git directory (``.git/plan-executor-worktrees/<plan>/<phase>``): never inside the tracked tree,
and not in the plan-executor home, which every sandbox hides.

The integration branch (``plan-executor/<plan>``, or the current branch when asked) is checked
out in the user's checkout for the whole run. A phase that passes its gates is squashed into one
commit, replayed onto the branch's tip in its worktree (a fast-forward when nothing landed since
it started), and the checkout is fast-forwarded to it. Pure additions on both sides of a conflict
(two `mod` lines, two dependency lines) are combined; anything else is a real conflict that the
caller may give to the phase's owner agent.

All git commands go through :mod:`tasks.shell` (via ``repo_state.git``).
"""

from __future__ import annotations

import contextlib
import difflib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath

from pydantic import BaseModel

from plan_parser.errors import PlanExecutorError
from tasks import shell
from tasks.gates.repo_state import LOCKFILES, git, head, show

WORKTREES_DIR = "plan-executor-worktrees"
BRANCH_PREFIX = "plan-executor/"
START_FILE = "plan-executor-start.json"
IDENTITY = {"name": "plan-executor", "email": "plan-executor@localhost"}
EXCLUDED_FROM_COMMITS = (".ai/logs", "target", "__pycache__", "*/__pycache__/*")
"""Run-owned paths never committed (the details logs, cargo's output in a worktree, Python's
byte-code caches that any test run writes; pathspec `*` crosses `/`)."""
CONFLICT_MARKER = re.compile(r"^(<{7}|>{7})( |$)", re.M)


class WorktreeError(PlanExecutorError, RuntimeError):
    """A git operation on the run's branches or worktrees failed."""


class PhaseWorkspace(BaseModel):
    """Where one phase works, and the commit its changes are judged against."""

    path: Path
    plan: str
    """The plan's name (its file name without date and suffix)."""
    branch: str
    base: str
    """The integration commit the phase started from (kept across reruns of the phase)."""
    reused: bool = False
    """A worktree or branch left by an earlier attempt (a killed or blocked run) was taken up."""


class Integration(BaseModel):
    """How a verified phase landed on the integration branch."""

    status: str
    """`fast-forward`, `replayed` (onto siblings' work), `combined` (pure additions on both
    sides were joined), `conflict` (files in ``conflicts``), `nothing` (no change to land)."""
    commit: str = ""
    conflicts: list[str] = []
    combined: list[str] = []


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.") or "plan"


def integration_branch(plan_name: str) -> str:
    return f"{BRANCH_PREFIX}{slug(plan_name)}"


def phase_branch(plan_name: str, phase_id: str) -> str:
    return f"{BRANCH_PREFIX}{slug(plan_name)}--phase-{slug(phase_id)}"


def _ok(repo: Path, *args: str) -> str:
    result = git(repo, *args)
    if not result.ok:
        raise WorktreeError(f"git {' '.join(args)} failed in {repo}: {result.tail(8)}")
    return result.output.strip()


def _git_env(repo: Path) -> dict[str, str]:
    """The repository's own identity when it has one, else plan-executor's."""
    env = dict(os.environ)
    if not git(repo, "config", "user.email").output.strip():
        env.update(GIT_AUTHOR_NAME=IDENTITY["name"], GIT_AUTHOR_EMAIL=IDENTITY["email"])
        env.update(GIT_COMMITTER_NAME=IDENTITY["name"], GIT_COMMITTER_EMAIL=IDENTITY["email"])
    return env


def common_dir(repo: Path) -> Path:
    return Path(_ok(repo, "rev-parse", "--path-format=absolute", "--git-common-dir"))


def worktrees_root(repo: Path, plan_name: str) -> Path:
    return common_dir(repo) / WORKTREES_DIR / slug(plan_name)


def current_branch(repo: Path) -> str | None:
    result = git(repo, "symbolic-ref", "--quiet", "--short", "HEAD")
    return result.output.strip() if result.ok else None


def branch_tip(repo: Path, branch: str) -> str | None:
    result = git(repo, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}^{{commit}}")
    return result.output.strip() if result.ok else None


def exists_on(repo: Path, branch: str, path: str) -> bool:
    """Whether ``path`` (repository-relative) is in the tree of ``branch``."""
    return (
        git(repo, "cat-file", "-e", f"refs/heads/{branch}:{path.removeprefix('./')}").exit_code == 0
    )


def is_ancestor(repo: Path, older: str, newer: str) -> bool:
    return git(repo, "merge-base", "--is-ancestor", older, newer).exit_code == 0


# -- the integration branch ------------------------------------------------------------------


def check_out_integration(repo: Path, plan_name: str, *, current: bool = False) -> str:
    """Check out the run's integration branch in ``repo`` and return its name.

    ``current``: the current branch is the integration branch (the commits land on it).
    Otherwise ``plan-executor/<plan>``: created from HEAD, or, left by an earlier run, checked
    out again (moved to HEAD first when HEAD already contains it) so a rerun continues on it.
    """
    here = current_branch(repo)
    if current:
        if here is None:
            raise WorktreeError("HEAD is detached: there is no current branch to put commits on")
        return here
    branch = integration_branch(plan_name)
    if here == branch:
        return branch
    tip = branch_tip(repo, branch)
    if tip is None:
        _ok(repo, "checkout", "-q", "-b", branch)
        return branch
    now = head(repo)
    if now and tip != now and is_ancestor(repo, tip, now):
        _ok(repo, "branch", "-f", branch, now)
    _ok(repo, "checkout", "-q", branch)
    return branch


# -- a phase's worktree ----------------------------------------------------------------------


def _base_ref(plan_name: str, phase_id: str) -> str:
    return f"refs/plan-executor/{slug(plan_name)}/phase-{slug(phase_id)}/base"


def _is_worktree(path: Path) -> bool:
    if not (path / ".git").is_file():
        return False
    result = git(path, "rev-parse", "--show-toplevel")
    return result.ok and Path(result.output.strip()).resolve() == path.resolve()


def open_phase(repo: Path, plan_name: str, phase_id: str) -> PhaseWorkspace:
    """The phase's worktree: the one an earlier attempt left (its base kept), or a new one from
    the integration branch's current tip (the checked-out HEAD of ``repo``).

    A run killed at any point of this leaves something the next call takes up: the base is
    written before the worktree is made, and a worktree without a base is based where its branch
    meets HEAD (it was killed before committing anything).
    """
    path = worktrees_root(repo, plan_name) / slug(phase_id)
    branch = phase_branch(plan_name, phase_id)
    base_ref = _base_ref(plan_name, phase_id)
    stored = git(repo, "rev-parse", "--verify", "--quiet", base_ref)
    base = stored.output.strip() if stored.ok else ""
    tip = branch_tip(repo, branch)
    if tip and _is_worktree(path):
        if not base:
            base = _ok(repo, "merge-base", tip, "HEAD")
            _ok(repo, "update-ref", base_ref, base)
        return PhaseWorkspace(path=path, plan=plan_name, branch=branch, base=base, reused=True)
    _discard_worktree(repo, path)
    if tip and base and is_ancestor(repo, base, tip):
        _ok(repo, "worktree", "add", "-q", "--force", str(path), branch)
        return PhaseWorkspace(path=path, plan=plan_name, branch=branch, base=base, reused=True)
    base = head(repo)
    if not base:
        raise WorktreeError(f"{repo} has no commit to start phase worktrees from")
    _ok(repo, "update-ref", base_ref, base)
    _ok(repo, "worktree", "add", "-q", "--force", "-B", branch, str(path), base)
    return PhaseWorkspace(path=path, plan=plan_name, branch=branch, base=base)


def _discard_worktree(repo: Path, path: Path) -> None:
    """Whatever a killed run left at ``path`` that is not a usable worktree."""
    git(repo, "worktree", "remove", "--force", "--force", str(path))
    git(repo, "worktree", "prune")
    if path.exists():
        shutil.rmtree(path, ignore_errors=True)
    path.parent.mkdir(parents=True, exist_ok=True)


def seed_target(workspace: PhaseWorkspace, warm: Path) -> bool:
    """Give a new worktree its own cargo target directory, copied from the run's warm one.

    Own: parallel worktrees of one crate must not share a target (cargo would call a phase's
    crate fresh from its sibling's build). Copied with timestamps: dependencies stay fresh, the
    worktree's own crates (checked out now, newer than their builds) are rebuilt from its files.
    """
    own = workspace.path / "target"
    if own.exists() or not warm.is_dir():
        return False
    copied = shell.run(
        ["cp", "-a", "--reflink=auto", str(warm), str(own)], cwd=workspace.path, timeout_s=600
    )
    if not copied.ok:  # a partial copy is only a slower build, never a wrong one
        shutil.rmtree(own, ignore_errors=True)
    return copied.ok


def mark_landed(repo: Path, workspace: PhaseWorkspace, commit: str) -> None:
    """The phase's work now sits on the integration branch as ``commit``: from here on its base
    is the commit it was replayed onto, so a run killed before the checkpoint said `complete`
    judges the same change again (and lands nothing twice)."""
    parent = git(repo, "rev-parse", "--verify", "--quiet", f"{commit}^")
    if parent.ok:
        _ok(
            repo,
            "update-ref",
            _base_ref(workspace.plan, _phase_of(workspace)),
            parent.output.strip(),
        )


def _phase_of(workspace: PhaseWorkspace) -> str:
    return workspace.branch.rsplit("--phase-", 1)[-1]


@contextlib.contextmanager
def checkout_at(repo: Path, commit: str) -> Iterator[Path]:
    """A throwaway detached worktree at ``commit`` (to read the tree as it was there)."""
    with tempfile.TemporaryDirectory(prefix="plan-executor-base-", dir=common_dir(repo)) as tmp:
        path = Path(tmp) / "tree"
        _ok(repo, "worktree", "add", "-q", "--detach", str(path), commit)
        try:
            yield path
        finally:
            git(repo, "worktree", "remove", "--force", "--force", str(path))
            git(repo, "worktree", "prune")


def start_file(workspace: PhaseWorkspace) -> Path:
    """Where the phase's starting snapshot is kept: the worktree's own git directory."""
    git_dir = _ok(workspace.path, "rev-parse", "--path-format=absolute", "--git-dir")
    return Path(git_dir) / START_FILE


def load_start(workspace: PhaseWorkspace) -> dict[str, object] | None:
    path = start_file(workspace)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("head") == workspace.base else None


def save_start(workspace: PhaseWorkspace, snapshot: dict[str, object]) -> None:
    path = start_file(workspace)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(snapshot), encoding="utf-8")
    temporary.replace(path)


def _stage_all(path: Path, exclude: list[str]) -> None:
    """Stage every change but the run-owned paths, which keep the committed version.

    Not `git add -A -- . ':(exclude)target'`: git 2.39 exits 1 when an excluded path exists
    and is ignored (an ignored `target/`), which failed every phase."""
    _ok(path, "add", "-A", "--", ".")
    _ok(path, "reset", "-q", "HEAD", "--", *EXCLUDED_FROM_COMMITS, *exclude)


def commit_work(workspace: PhaseWorkspace, message: str, *, exclude: list[str]) -> str:
    """Everything the phase changed since its base as ONE commit on its branch (earlier
    attempts' commits are folded in); returns the branch's tip (the base when nothing changed).
    ``exclude``: repository-relative paths never committed (the plan file and its locks)."""
    path = workspace.path
    # The index goes back to the base too: a file an earlier commit held but that is excluded
    # now must not ride along.
    _ok(path, "reset", "-q", workspace.base)
    _stage_all(path, exclude)
    staged = git(path, "diff", "--cached", "--quiet")
    if staged.exit_code == 0:
        return workspace.base
    env = _git_env(path)
    result = git(path, "commit", "-q", "--no-verify", "-m", message, env=env)
    if not result.ok:
        raise WorktreeError(f"commit of phase work failed in {path}: {result.tail(8)}")
    return head(path)


# -- integration -------------------------------------------------------------------------------


def _pure_additions(base: str, side: str) -> bool:
    """Every line of ``base`` survives in ``side``, in order: ``side`` only added lines."""
    matcher = difflib.SequenceMatcher(None, base.splitlines(), side.splitlines(), autojunk=False)
    return all(tag in ("equal", "insert") for tag, *_ in matcher.get_opcodes())


def _stage(path: Path, stage: int, file: str) -> str | None:
    return show(path, f":{stage}:{file}")


def _union(path: Path, file: str) -> bool:
    """Join a conflicted file whose two sides both only added lines; False when they did not.

    git's three-way merge calls two additions at one place a conflict (two `mod` lines appended
    to `lib.rs`); `git merge-file --union` keeps both, which is right only for pure additions.
    """
    base, ours, theirs = (_stage(path, n, file) for n in (1, 2, 3))
    if base is None or ours is None or theirs is None:
        return False
    if not (_pure_additions(base, ours) and _pure_additions(base, theirs)):
        return False
    with tempfile.TemporaryDirectory(prefix="plan-executor-union-") as scratch:
        sides = []
        for name, text in (("ours", ours), ("base", base), ("theirs", theirs)):
            side = Path(scratch) / name
            side.write_text(text, encoding="utf-8")
            sides.append(str(side))
        merged = shell.run(
            ["git", "merge-file", "-p", "--union", *sides], cwd=path, output_cap=None
        )
    if merged.exit_code < 0 or merged.timed_out:
        return False
    (path / file).write_text(merged.output, encoding="utf-8")
    _ok(path, "add", "--", file)
    return True


def conflicted_files(path: Path) -> list[str]:
    listed = git(path, "diff", "--name-only", "--diff-filter=U")
    return sorted(line for line in listed.output.splitlines() if line.strip())


def files_with_markers(path: Path, files: list[str]) -> list[str]:
    left: list[str] = []
    for file in files:
        try:
            text = (path / file).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        if CONFLICT_MARKER.search(text):
            left.append(file)
    return left


def replay(
    workspace: PhaseWorkspace,
    phase_commit: str,
    tip: str,
    after_merge: Callable[[Path, list[str]], None] | None = None,
) -> Integration:
    """Put the phase's one commit on top of ``tip`` in its worktree.

    Fast-forward when the phase started from ``tip``; else cherry-pick, joining pure additions
    (then ``after_merge`` runs the formatter and rewrites the lock files named to it). A real conflict leaves the
    worktree mid-cherry-pick with markers in the files (see :func:`conclude`).
    """
    path = workspace.path
    if phase_commit == workspace.base:
        return Integration(status="nothing", commit=tip)
    if is_ancestor(path, tip, phase_commit):
        return Integration(status="fast-forward", commit=phase_commit)
    _ok(path, "reset", "-q", "--hard", tip)
    picked = git(path, "cherry-pick", "--no-commit", phase_commit, env=_git_env(path))
    conflicts = conflicted_files(path) if not picked.ok else []
    if not picked.ok and not conflicts:
        raise WorktreeError(f"cherry-pick failed in {path}: {picked.tail(8)}")
    # A lock file is the tool's to write: take the branch's and let the tool add this phase's
    # entries again (joined text would hold duplicate keys).
    locks = [file for file in conflicts if PurePosixPath(file).name in LOCKFILES]
    for file in locks:
        _ok(path, "checkout", "--ours", "--", file)
    combined = [file for file in conflicts if file not in locks and _union(path, file)]
    left = [file for file in conflicts if file not in combined and file not in locks]
    if left:
        return Integration(status="conflict", conflicts=left, combined=combined)
    if (combined or locks) and after_merge is not None:
        after_merge(path, locks)
    combined += [f"{file} (regenerated)" for file in locks]
    commit = _commit_replayed(path, phase_commit)
    if commit == tip:
        return Integration(status="nothing", commit=tip)
    status = "combined" if combined else "replayed"
    return Integration(status=status, commit=commit, combined=combined)


def _commit_replayed(path: Path, phase_commit: str, *, amend: bool = False) -> str:
    """Commit what the worktree holds (the phase's message); the tip when nothing is left."""
    _stage_all(path, [])
    if not amend and git(path, "diff", "--cached", "--quiet").exit_code == 0:
        git(path, "cherry-pick", "--quit")  # everything was already on the branch
        return head(path)
    how = ["--amend", "--no-edit"] if amend else ["-C", phase_commit]
    result = git(path, "commit", "-q", "--no-verify", *how, env=_git_env(path))
    if not result.ok:
        raise WorktreeError(f"commit of the replayed phase failed in {path}: {result.tail(8)}")
    git(path, "cherry-pick", "--quit")
    return head(path)


def conclude(workspace: PhaseWorkspace, phase_commit: str, before: Integration) -> Integration:
    """After the owner agent worked on an integration problem in the worktree: commit its
    resolution, or say which files still hold conflict markers."""
    if before.status == "conflict":
        left = files_with_markers(workspace.path, before.conflicts)
        if left:
            return Integration(status="conflict", conflicts=left)
        commit = _commit_replayed(workspace.path, phase_commit)
        return Integration(status="replayed", commit=commit, combined=before.combined)
    commit = _commit_replayed(workspace.path, phase_commit, amend=True)
    return before.model_copy(update={"commit": commit})


def abandon(workspace: PhaseWorkspace, phase_commit: str) -> None:
    """Back to the phase's own commit: its branch keeps its work, for the report and reruns."""
    git(workspace.path, "cherry-pick", "--abort")
    _ok(workspace.path, "reset", "-q", "--hard", phase_commit)


def land(repo: Path, commit: str) -> None:
    """Fast-forward the checked-out integration branch in ``repo`` to ``commit``."""
    _drop_untracked_lock_files(repo, commit)
    _ok(repo, "merge", "-q", "--ff-only", commit)


def _drop_untracked_lock_files(repo: Path, commit: str) -> None:
    """Untracked lock files in the checkout that ``commit`` adds: cargo wrote them there (the
    run's pre-flight builds in the checkout of a repository that does not commit its
    `Cargo.lock`), and git refuses to fast-forward over untracked files. The commit's copy is
    what cargo makes of the same manifests after the phase, so it replaces them."""
    untracked = git(repo, "ls-files", "--others", "--exclude-standard", "-z")
    for path in (item for item in untracked.output.split("\0") if item):
        if PurePosixPath(path).name not in LOCKFILES:
            continue
        if git(repo, "cat-file", "-e", f"{commit}:{path}").exit_code == 0:
            (repo / path).unlink(missing_ok=True)


def remove_worktrees(repo: Path, plan_name: str) -> list[str]:
    """Remove the run's worktrees (their branches stay); returns the paths removed."""
    root = worktrees_root(repo, plan_name)
    removed: list[str] = []
    if root.is_dir():
        for path in sorted(root.iterdir()):
            if git(repo, "worktree", "remove", "--force", str(path)).ok:
                removed.append(str(path))
    git(repo, "worktree", "prune")
    return removed


# -- the nightly run's starting point --------------------------------------------------------


class StartPoint(BaseModel):
    """Where a nightly run began: every plan of the night starts from here, and the checkout is
    brought back here between plans and at the end (plans never stack on each other's
    unreviewed work; each plan's work stays on its own `plan-executor/<plan>` branch)."""

    branch: str | None
    """The branch checked out when the night began (None: HEAD was detached)."""
    commit: str
    dirty: list[str] = []
    """Paths already uncommitted when the night began: the user's, never touched here."""

    def describe(self) -> str:
        return f"branch {self.branch}" if self.branch else f"detached HEAD {self.commit[:12]}"


def start_point(repo: Path) -> StartPoint:
    from tasks.gates.repo_state import porcelain_status

    return StartPoint(
        branch=current_branch(repo),
        commit=head(repo),
        dirty=sorted({path for _code, path in porcelain_status(repo)}),
    )


def _discard_run_lock_files(repo: Path, start: StartPoint) -> list[str]:
    """Lock files (`Cargo.lock`, …) that changed since the night began: cargo wrote them for
    the plan before (its gates, its final validation), not the user. Back to the commit's."""
    from tasks.gates.repo_state import porcelain_status

    discarded: list[str] = []
    for code, path in porcelain_status(repo):
        if PurePosixPath(path).name not in LOCKFILES or path in start.dirty:
            continue
        if code == "??":
            (repo / path).unlink(missing_ok=True)
        else:
            git(repo, "reset", "-q", "--", path)
            if git(repo, "cat-file", "-e", f"HEAD:{path}").exit_code == 0:
                _ok(repo, "checkout", "-q", "HEAD", "--", path)
            else:
                (repo / path).unlink(missing_ok=True)
        discarded.append(path)
    return discarded


def return_to_start(repo: Path, start: StartPoint) -> list[str]:
    """Check the night's starting point out again; returns the lock files put back.

    Other plans' checkpoint mirrors (uncommitted, identical on every branch since runs never
    commit plan files) come along unchanged: they are the plans' resume state. Raises
    WorktreeError when git refuses (someone's uncommitted change in the way).
    """
    discarded = _discard_run_lock_files(repo, start)
    if start.branch is not None:
        if current_branch(repo) != start.branch:
            _ok(repo, "checkout", "-q", start.branch)
    elif head(repo) != start.commit or current_branch(repo) is not None:
        _ok(repo, "checkout", "-q", "--detach", start.commit)
    discarded += [p for p in _discard_run_lock_files(repo, start) if p not in discarded]
    return discarded
