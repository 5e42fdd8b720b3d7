"""What the working tree holds: git state (through `tasks.shell`) and a static test inventory.

The inventory lists test functions (with their `#[ignore]` state in Rust, skip / xfail in Python,
`tasks.gates.python_tests`) and lint suppressions per file, read from the sources themselves. Comparing two inventories tells which tests a phase deleted or
ignored and which suppressions it added, whatever subset of the tests its blast radius ran.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from pathlib import Path

from pydantic import BaseModel, Field

from tasks import shell
from tasks.gates.python_tests import PytestNaming, python_suppressions, python_tests, read_naming
from tasks.shell import CommandResult

GIT_TIMEOUT_S = 120
# Files the run itself writes (its logs; cargo's build output when `target/` is not ignored, the
# gates build too): never the user's changes, never a phase's scope.
RUN_OWNED_PREFIXES = (".ai/logs/", "target/")
# Python's byte-code caches: written by any test or build run (the gates' own, an agent's
# `pytest`), never a change anyone made, wherever they sit.
RUN_OWNED_DIRS = ("__pycache__",)
LOCKFILES = {"Cargo.lock", "package-lock.json", "pnpm-lock.yaml", "yarn.lock", "uv.lock"}
DELETED = "<deleted>"

_TEST_ATTR = re.compile(r"^#\[\s*(?:\w+::)*(?:test|rstest|test_case|proptest)\b")
_IGNORE_ATTR = re.compile(r"^#\[\s*ignore\b|^#\[\s*cfg_attr\s*\(.*\bignore\b")
_SUPPRESSION = re.compile(
    r"#!?\[\s*(?:allow|expect)\s*\(|#!?\[\s*cfg_attr\s*\(.*\b(?:allow|expect)\s*\("
)
_FN = re.compile(
    r"^(?:pub(?:\([^)]*\))?\s+)?(?:const\s+)?(?:async\s+)?(?:unsafe\s+)?(?:extern\s+\"[^\"]*\"\s+)?fn\s+(\w+)"
)


def git(repo: Path, *args: str, env: dict[str, str] | None = None) -> CommandResult:
    return shell.run(["git", *args], cwd=repo, timeout_s=GIT_TIMEOUT_S, env=env)


def show(repo: Path, spec: str) -> str | None:
    """The whole content of ``spec`` (`REV:path`, `:STAGE:path`), or None when there is none."""
    result = shell.run(["git", "show", spec], cwd=repo, timeout_s=GIT_TIMEOUT_S, output_cap=None)
    return result.output if result.ok else None


def head(repo: Path) -> str:
    result = git(repo, "rev-parse", "--verify", "--quiet", "HEAD")
    return result.output.strip() if result.ok else ""


def _split_z(output: str) -> list[str]:
    return [item for item in output.split("\0") if item]


def porcelain_status(repo: Path) -> list[tuple[str, str]]:
    """(two-letter status, path) for every changed or untracked file; renames give both paths."""
    result = git(repo, "status", "--porcelain=v1", "-z", "--untracked-files=all")
    if not result.ok:
        raise RuntimeError(f"git status failed in {repo}: {result.tail()}")
    items = _split_z(result.output)
    entries: list[tuple[str, str]] = []
    index = 0
    while index < len(items):
        item = items[index]
        code, path = item[:2], item[3:]
        entries.append((code, path))
        if code[0] in "RC":  # the rename's source path follows as its own item
            index += 1
            if index < len(items):
                entries.append((code, items[index]))
        index += 1
    return entries


def plan_lock_file(plan_file: str) -> str:
    """The sibling lock file `PlanFileWriter` keeps beside a plan (`dir/.<name>.lock`)."""
    folder, _, name = plan_file.rpartition("/")
    return f"{folder}/.{name}.lock" if folder else f".{name}.lock"


def plan_run_lock_file(plan_file: str) -> str:
    """The run lock `tasks.run_lock` holds beside a plan for a whole run (`dir/.<name>.run.lock`)."""
    folder, _, name = plan_file.rpartition("/")
    return f"{folder}/.{name}.run.lock" if folder else f".{name}.run.lock"


_PLAN_LOCK_NAME = re.compile(r"^\..+\.md\.(?:run\.)?lock$")


def is_run_owned(path: str, plan_file: str | None = None) -> bool:
    if plan_file is not None and path in (
        plan_file,
        plan_lock_file(plan_file),
        plan_run_lock_file(plan_file),
    ):
        return True
    # Any plan's lock files: a killed run of another plan leaves its own behind.
    if _PLAN_LOCK_NAME.match(path.rpartition("/")[2]):
        return True
    return path.startswith(RUN_OWNED_PREFIXES) or any(
        part in RUN_OWNED_DIRS for part in path.split("/")[:-1]
    )


def mirror_only(repo: Path, path: str) -> bool:
    """Whether the tracked Markdown file ``path`` differs from HEAD only by plan-executor's
    execution state (checkpoint section, status line, Implementation Summary): the mirror of
    another plan's run, not a change the user made. Committed checkpoints compare the same way.
    """
    from plan_parser.writer import remove_execution_state

    if not path.endswith(".md"):
        return False
    committed = show(repo, f"HEAD:{path}")
    target = repo / path
    if committed is None or not target.is_file():
        return False
    try:
        text = target.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    return text != committed and remove_execution_state(text) == remove_execution_state(committed)


def file_digest(repo: Path, path: str) -> str:
    target = repo / path
    if not target.is_file():
        return DELETED
    return hashlib.sha256(target.read_bytes()).hexdigest()


def changed_since(repo: Path, base: str) -> dict[str, str]:
    """Path → `A`/`M`/`D` for everything that differs from commit ``base``: commits made since,
    staged and unstaged edits, and untracked files."""
    changes: dict[str, str] = {}
    if base:
        diff = git(repo, "diff", "--name-status", "--no-renames", "-z", base, "--")
        items = _split_z(diff.output)
        for status, path in zip(items[::2], items[1::2], strict=False):
            changes[path] = status[0]
    else:  # no commit yet: every tracked file is new
        for path in _split_z(git(repo, "ls-files", "-z").output):
            changes[path] = "A"
    untracked = git(repo, "ls-files", "--others", "--exclude-standard", "-z")
    for path in _split_z(untracked.output):
        changes[path] = "A"
    return changes


def repo_files(repo: Path, pattern: str) -> list[str]:
    """Tracked and untracked (not ignored) files matching a git pathspec glob."""
    result = git(
        repo, "ls-files", "--cached", "--others", "--exclude-standard", "-z", "--", pattern
    )
    return sorted({p for p in _split_z(result.output) if (repo / p).is_file()})


class TestInventory(BaseModel):
    """Test functions and lint suppressions in the sources, Rust and Python alike."""

    __test__ = False  # not a pytest test class

    tests: dict[str, bool] = Field(default_factory=dict)
    """Rust: `file::fn` (with `#n` for repeats in one file) → whether it is `#[ignore]`d.
    Python: `file::[Class::]fn[case id]` → whether it is skipped or an expected failure."""
    suppressions: dict[str, int] = Field(default_factory=dict)
    """`file: #[allow(...)]` or `file: # noqa: E501` → how many times that suppression
    appears in the file."""

    def test_fn_names(self) -> set[str]:
        return {bare_test_name(key) for key in self.tests}


RustInventory = TestInventory
"""The name this model had when only Rust was read (snapshots and callers still use it)."""


def bare_test_name(key: str) -> str:
    """The function a test key names: `a.rs::adds#2` → `adds`, `t.py::T::mul[2-3]` → `mul`
    (a parametrised test whose cases changed is still the same test)."""
    return key.split("::")[-1].split("#")[0].split("[")[0]


def _normalise_attr(line: str) -> str:
    return re.sub(r"\s+", " ", line.strip())


def _leading_attribute(line: str) -> tuple[str, str]:
    """`#[test] fn a() {}` → (`#[test]`, `fn a() {}`); an unclosed attribute takes the line."""
    depth = 0
    for index, char in enumerate(line):
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
            if depth == 0:
                return line[: index + 1], line[index + 1 :].strip()
    return line, ""


def scan_rust_file(path: str, text: str, inventory: RustInventory) -> None:
    pending: list[str] = []
    seen: Counter[str] = Counter()
    for raw in text.splitlines():
        line = raw.strip()
        if (found := _SUPPRESSION.search(line)) and not line.startswith("//"):
            key = f"{path}: {_normalise_attr(_leading_attribute(line[found.start() :])[0])}"
            inventory.suppressions[key] = inventory.suppressions.get(key, 0) + 1
        while line.startswith(("#[", "#![")):
            attr, line = _leading_attribute(line)
            pending.append(attr)
        if not line and pending:
            continue
        if not line or line.startswith("//"):
            continue
        match = _FN.match(line)
        if match and any(_TEST_ATTR.match(attr) for attr in pending):
            name = f"{path}::{match.group(1)}"
            seen[name] += 1
            if seen[name] > 1:
                name = f"{name}#{seen[name]}"
            inventory.tests[name] = any(_IGNORE_ATTR.match(attr) for attr in pending)
        pending = []


def rust_inventory(repo: Path) -> TestInventory:
    inventory = TestInventory()
    for path in repo_files(repo, "*.rs"):
        text = (repo / path).read_text(encoding="utf-8", errors="replace")
        scan_rust_file(path, text, inventory)
    return inventory


def scan_python_file(
    path: str, text: str, inventory: TestInventory, naming: PytestNaming | None = None
) -> None:
    """Add the pytest tests (when ``path`` is a test file under ``naming``; always when no
    naming is given) and the suppression comments of one Python file."""
    if naming is None or naming.is_test_file(path):
        inventory.tests.update(python_tests(path, text, naming))
    for key, count in python_suppressions(path, text).items():
        inventory.suppressions[key] = inventory.suppressions.get(key, 0) + count


def scan_file(path: str, text: str, inventory: TestInventory) -> None:
    """One file named by the plan (`tests/test_ops.py has 3+ tests`), whatever its name."""
    if path.endswith(".py"):
        scan_python_file(path, text, inventory)
    else:
        scan_rust_file(path, text, inventory)


def source_inventory(repo: Path) -> TestInventory:
    """Rust and Python tests and suppressions of the working tree (tracked and untracked files
    that are not ignored)."""
    inventory = rust_inventory(repo)
    naming = read_naming(repo)
    for path in repo_files(repo, "*.py"):
        if is_run_owned(path):
            continue
        text = (repo / path).read_text(encoding="utf-8", errors="replace")
        scan_python_file(path, text, inventory, naming)
    return inventory
