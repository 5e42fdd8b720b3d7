"""Is a plan's work already in the repository? Evidence from git and the plan's own text.

The nightly run asks this for every plan it would run, before any agent call: a plan whose work
is already committed must not be executed again (planner-made plans say `status: "done"` about
their *planning*, and most name their files only in prose, so "declared files exist" cannot
tell). The evidence, gathered against the commit the night starts from:

- decisive: a file the plan says to create exists; every phase still to do is marked done (✅
  heading, all criteria `[x]`); an execution log is about the plan; checkpoints written by
  another tool say every phase is complete; more files it names were *added* by commits after
  the plan's own first commit than it names files (with a directory) that do not exist;
- supporting: files it names that existed already and were *changed* by commits after the plan
  was added (a monorepo's `Cargo.toml` changes for many reasons), phases marked done. They
  decide together: two or more changed files that are at least half of the named files that
  exist and more than the named files that do not, or changed files and a phase marked done.

Counting the named files that do not exist keeps a ready plan that builds on another plan's
newer files running: the files it is about to create are still missing.

Phases whose plan-executor checkpoint says `complete` are left out: their work is expected to
exist (a resumed plan is judged on what it still has to do). Git runs through
:mod:`tasks.shell` (`repo_state.git`); the text is read by :mod:`plan_parser.completion`.
"""

from __future__ import annotations

import functools
from pathlib import Path, PurePosixPath

from pydantic import BaseModel, Field

from plan_parser.checkpoints import ExecutionState
from plan_parser.completion import created_paths, marked_done, named_paths
from plan_parser.model import Plan, id_key
from tasks.gates.repo_state import git

SHOWN = 6
"""Paths quoted per kind of evidence in the report (the count is always given)."""


class RepoSnapshot(BaseModel):
    """The files of the commit the night starts from, read once for every plan."""

    repo: Path
    head: str
    files: set[str] = Field(default_factory=set)
    by_name: dict[str, list[str]] = Field(default_factory=dict)

    def resolve(self, named: str) -> str | None:
        """The committed file a plan means by ``named``: the path itself, or else the one file
        whose path ends with it (plans in a monorepo often name `src/db/mod.rs` of a crate)."""
        if named in self.files:
            return named
        if "/" not in named:
            return None  # `mod.rs` alone could be any of dozens
        matches = [
            path
            for path in self.by_name.get(PurePosixPath(named).name, [])
            if path.endswith("/" + named)
        ]
        return matches[0] if len(matches) == 1 else None


def snapshot(repo: Path) -> RepoSnapshot:
    """HEAD's files (an empty snapshot in a repository without commits)."""
    head = git(repo, "rev-parse", "--verify", "--quiet", "HEAD").output.strip()
    if not head:
        return RepoSnapshot(repo=repo, head="")
    listing = git(repo, "ls-tree", "-r", "-z", "--name-only", "--full-tree", head)
    files = {item for item in listing.output.split("\0") if item}
    by_name: dict[str, list[str]] = {}
    for path in sorted(files):
        by_name.setdefault(PurePosixPath(path).name, []).append(path)
    return RepoSnapshot(repo=repo, head=head, files=files, by_name=by_name)


def plan_added_in(repo: Path, plan_file: str) -> str | None:
    """The first commit that added ``plan_file`` (None when it was never committed)."""
    result = git(repo, "log", "--diff-filter=A", "--format=%H", "--", plan_file)
    commits = result.output.split() if result.ok else []
    return commits[-1] if commits else None


@functools.lru_cache(maxsize=256)
def changes_after(repo: Path, commit: str, head: str) -> dict[str, frozenset[str]]:
    """Path → the kinds of change (`A`, `M`, `D`) commits after ``commit`` up to ``head`` made."""
    result = git(
        repo,
        "-c",
        "core.quotepath=off",
        "log",
        "--no-renames",
        "--name-status",
        "--format=",
        f"{commit}..{head}",
    )
    changes: dict[str, set[str]] = {}
    for line in result.output.splitlines():
        status, _, path = line.partition("\t")
        if path and status:
            changes.setdefault(path, set()).add(status[0])
    return {path: frozenset(kinds) for path, kinds in changes.items()}


class ImplementationEvidence(BaseModel):
    """What says a plan's remaining work is already done; :attr:`looks_implemented` decides."""

    plan_added_in: str | None = None
    checked_phases: list[str] = Field(default_factory=list)
    created_exist: list[str] = Field(default_factory=list)
    added_since: list[str] = Field(default_factory=list)
    changed_since: list[str] = Field(default_factory=list)
    named_existing: int = 0
    named_missing: list[str] = Field(default_factory=list)
    """Paths with a directory that the plan names and HEAD does not have (work still to do, or
    a name the implementation did not keep)."""
    marked_done: dict[str, str] = Field(default_factory=dict)
    execution_logs: list[str] = Field(default_factory=list)
    foreign_checkpoints: str | None = None

    @property
    def all_marked_done(self) -> bool:
        return bool(self.checked_phases) and set(self.marked_done) == set(self.checked_phases)

    @property
    def looks_implemented(self) -> bool:
        if (
            self.created_exist
            or self.all_marked_done
            or self.execution_logs
            or self.foreign_checkpoints
        ):
            return True
        missing = len(self.named_missing)
        if len(self.added_since) > missing:
            return True
        changed = len(self.changed_since)
        if changed >= 2 and 2 * changed >= self.named_existing and changed > missing:
            return True
        return changed >= 1 and bool(self.marked_done)

    def lines(self) -> list[str]:
        """The evidence as sentences for the report (empty when there is none)."""
        since = (
            f" after the plan was added ({self.plan_added_in[:8]})" if self.plan_added_in else ""
        )
        out: list[str] = []
        if self.created_exist:
            out.append(f"files it creates exist: {_listing(self.created_exist)}")
        if self.added_since:
            out.append(f"files it names were added{since}: {_listing(self.added_since)}")
        if self.changed_since:
            out.append(
                f"files it names were changed{since}: {_listing(self.changed_since)}"
                f" ({len(self.changed_since)} of {self.named_existing} named files that exist)"
            )
        if self.marked_done:
            which = "every phase" if self.all_marked_done else "phases"
            marks = "; ".join(f"{pid}: {why}" for pid, why in self.marked_done.items())
            out.append(f"{which} marked done: {marks}")
        if self.execution_logs:
            out.append(f"execution log: {_listing(self.execution_logs)}")
        if self.foreign_checkpoints:
            out.append(self.foreign_checkpoints)
        if out and self.named_missing:
            out.append(f"files it names that do not exist: {_listing(self.named_missing)}")
        return out


def _listing(paths: list[str]) -> str:
    shown = ", ".join(f"`{p}`" for p in paths[:SHOWN])
    return shown + (f" (+{len(paths) - SHOWN} more)" if len(paths) > SHOWN else "")


def _unfinished(plan: Plan, previous: ExecutionState | None) -> list[str]:
    """The phases still to do: all, less those plan-executor's checkpoints say are complete."""
    done: set[str] = set()
    if previous is not None and previous.written_by_executor:
        done = {id_key(pid) for pid, cp in previous.phases.items() if cp.status == "complete"}
    return [phase.id for phase in plan.phases if id_key(phase.id) not in done]


def _foreign_checkpoints(previous: ExecutionState | None, phase_ids: list[str]) -> str | None:
    """Checkpoints another executor wrote (a `- phase_N:` list) that call every phase complete."""
    if previous is None or previous.written_by_executor or not previous.phases:
        return None
    complete = [pid for pid in phase_ids if (cp := previous.get(pid)) and cp.status == "complete"]
    if phase_ids and len(complete) == len(phase_ids):
        return f"`## Execution Checkpoints` (not plan-executor's) say all {len(complete)} phases are complete"
    return None


def implementation_evidence(
    plan: Plan,
    plan_file: str,
    repo_files: RepoSnapshot,
    *,
    previous: ExecutionState | None = None,
    execution_logs: list[str] | None = None,
) -> ImplementationEvidence:
    """The evidence that ``plan`` (at ``plan_file``, relative to the repository) is done."""
    phase_ids = _unfinished(plan, previous)
    evidence = ImplementationEvidence(
        checked_phases=phase_ids,
        execution_logs=list(execution_logs or []),
        foreign_checkpoints=_foreign_checkpoints(previous, phase_ids),
    )
    phases = [plan.phase(pid) for pid in phase_ids]
    for phase in phases:
        why = marked_done(phase)
        if why:
            evidence.marked_done[phase.id] = why
    named: dict[str, str] = {}  # committed path → as the plan wrote it
    created: set[str] = set()
    missing: list[str] = []
    for phase in phases:
        for path in created_paths(phase):
            if path in repo_files.files:
                created.add(path)
        for written in named_paths(phase):
            found = repo_files.resolve(written)
            if found is not None and found != plan_file:
                named.setdefault(found, written)
            elif found is None and "/" in written and written not in missing:
                missing.append(written)
    evidence.created_exist = sorted(created)
    evidence.named_missing = missing
    evidence.named_existing = len(named)
    added = plan_added_in(repo_files.repo, plan_file) if repo_files.head else None
    evidence.plan_added_in = added
    if added:
        changes = changes_after(repo_files.repo, added, repo_files.head)
        for path in sorted(named):
            kinds = changes.get(path, frozenset())
            if "A" in kinds:
                evidence.added_since.append(path)
            elif "M" in kinds:
                evidence.changed_since.append(path)
    evidence.added_since = [p for p in evidence.added_since if p not in created]
    return evidence
