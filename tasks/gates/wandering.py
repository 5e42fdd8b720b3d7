"""Gates against lying and wandering agents (one reports COMPLETE without doing the work, or
does something else), beyond the scope contract and the test-suite integrity entries of
`phase_gates`:

- **new tests**: a phase that asks for tests (its text names them, a declared file is a test
  file, or a tester owns it) must leave more test functions than it found;
- **gate configuration**: the files that decide what the gates and CI check (workflows,
  `justfile`, `clippy.toml`, `rustfmt.toml`, `.cargo/config.toml`, `[lints]` in a Cargo.toml,
  `pytest.ini`, `ruff.toml`, `[tool.pytest]` / `[tool.ruff]` in a pyproject.toml,
  `.ai/plan-executor.toml`, `[tool.plan-executor]`, the agents' own definitions, ...) must be
  as they were when the phase started, unless the phase declares that file.

An agent that loosens the checks it is judged by can make any gate pass; these entries make
that visible and blocking.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
import tomllib
from pathlib import Path, PurePosixPath

from plan_parser.model import Phase, PhaseType
from tasks.gates.evidence import not_run
from tasks.gates.ledger import LedgerEntry, Verdict
from tasks.gates.repo_state import TestInventory, git

ABSENT = "<absent>"

# Whole files that configure the gates, CI or the agents (matched on the repository-relative
# path; `*` does not cross `/` except where `**` is written).
GATE_CONFIG_FILES = (
    ".github/workflows/**",
    ".gitlab-ci.yml",
    ".ci/**",
    ".circleci/**",
    "justfile",
    "Justfile",
    ".justfile",
    "**/clippy.toml",
    "**/.clippy.toml",
    "**/rustfmt.toml",
    "**/.rustfmt.toml",
    ".cargo/config.toml",
    ".cargo/config",
    "rust-toolchain",
    "rust-toolchain.toml",
    "deny.toml",
    ".pre-commit-config.yaml",
    "pytest.ini",
    "tox.ini",
    "**/ruff.toml",
    "**/.ruff.toml",
    ".ai/plan-executor.toml",
    ".claude/agents/**",
    ".claude/settings.json",
    ".claude/settings.local.json",
)
# Sections of shared manifests that configure the gates: `file name → dotted table paths`.
GATE_CONFIG_SECTIONS: dict[str, tuple[str, ...]] = {
    "Cargo.toml": ("lints", "workspace.lints"),
    "pyproject.toml": ("tool.plan-executor", "tool.pytest", "tool.ruff"),
}

_CODE_SPAN = re.compile(r"`[^`\n]*`")
# A test file itself, not test support (`tests/common/mod.rs`, `tests/fixtures/...`).
_TEST_FILE = re.compile(
    r"(?:^|/)tests/[^/]+\.rs$|(?:^|/)test_[^/]+\.py$|_tests?\.(?:rs|py|go)$|\.(?:test|spec)\.\w+$"
)
# The plan asks for tests in so many words: "its unit test", "with tests", "add integration
# tests for the parser", "#[test]". "`cargo test` passes" (a code span), "existing tests still
# pass", "all tests for X pass" and "runs 8+ tests covering X" (a count criterion decides that
# one) are not asks.
_ASKS_FOR_TESTS = re.compile(
    r"\b(?:unit|integration|property|proptest|regression|snapshot|new|add|adds|added|adding|"
    r"write|writes|writing|written|with|its|their|own|more|extra|plus)"
    r"(?:\s+(?!(?:0|no|zero)\b)[\w'-]+){0,2}?\s+tests?\b"
    # "test dependencies", "integration test harness": tooling, not tests.
    r"(?!\s+(?:dependenc|harness|fixture|helper|util|data\b|crate|framework|infrastructure|runner|"
    r"target|command|script|binar|config))"
    r"|#\[test\]",
    re.I,
)
# "no new tests", "all existing unit tests still pass": not an ask.
_NEGATED = re.compile(
    r"\b(?:no|not|without|nor|existing|current|old|other|remaining|previous)\s+(?:\S+\s+){0,2}$",
    re.I,
)


# --- new tests ----------------------------------------------------------------------------------


def asks_for_tests(phase: Phase, text: str) -> str | None:
    """Why the phase must add tests (a quote or the reason), or None when it does not ask."""
    owner = (phase.owner.agent or phase.owner.raw) if phase.owner else ""
    if owner and "tester" in owner.lower():
        return f"owned by a tester ({owner})"
    for ref in phase.files:
        if ref.action.value != "delete" and _TEST_FILE.search(ref.path.strip("`")):
            return f"declares the test file {ref.path}"
    prose = _CODE_SPAN.sub(" ", text)
    for match in _ASKS_FOR_TESTS.finditer(prose):
        if not _NEGATED.search(prose[max(0, match.start() - 30) : match.start()]):
            return f"the plan says '{match.group(0).strip()}'"
    return None


def new_tests_entry(
    phase: Phase, text: str, before: TestInventory, now: TestInventory, *, has_tests: bool
) -> LedgerEntry:
    """A phase that asks for tests must show new (not ignored) test functions."""
    check = "integrity: new tests"
    if phase.type is not PhaseType.IMPLEMENTATION:
        return not_run(check, f"{phase.type.value} phase: new tests are not required")
    reason = asks_for_tests(phase, text)
    if reason is None:
        return LedgerEntry(
            check=check, verdict=Verdict.PASS, evidence="the phase does not ask for new tests"
        )
    if not has_tests:
        return not_run(
            check,
            f"the phase asks for tests ({reason}), but only Rust and Python tests are counted",
        )
    added = sorted(
        key for key, ignored in now.tests.items() if key not in before.tests and not ignored
    )
    counts = f"test functions: {len(before.tests)} at the start, {len(now.tests)} now"
    if added:
        shown = ", ".join(added[:10]) + (f" (+{len(added) - 10} more)" if len(added) > 10 else "")
        return LedgerEntry(
            check=check,
            verdict=Verdict.PASS,
            evidence=f"the phase asks for tests ({reason}); new: {shown}",
        )
    return LedgerEntry(
        check=check,
        verdict=Verdict.FAIL,
        evidence=f"the phase asks for tests ({reason}) but added no test function ({counts})",
    )


# --- gate configuration ---------------------------------------------------------------------


def is_gate_config_file(path: str) -> bool:
    return any(_glob(path, pattern) for pattern in GATE_CONFIG_FILES)


def _glob(path: str, pattern: str) -> bool:
    if pattern.startswith("**/"):
        return PurePosixPath(path).name == pattern[3:]
    if pattern.endswith("/**"):
        return path.startswith(pattern[:-2])
    return fnmatch.fnmatchcase(path, pattern) and path.count("/") == pattern.count("/")


def _all_files(repo: Path) -> list[str]:
    result = git(repo, "ls-files", "--cached", "--others", "--exclude-standard", "-z")
    return [p for p in result.output.split("\0") if p]


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _section(data: dict[str, object], dotted: str) -> object | None:
    node: object = data
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def gate_config_digests(repo: Path) -> dict[str, str]:
    """`path` or `path [section]` → sha256 of what configures the gates, for every such file
    and manifest section present now."""
    repo = Path(repo)
    digests: dict[str, str] = {}
    for path in _all_files(repo):
        target = repo / path
        if not target.is_file():
            continue
        name = PurePosixPath(path).name
        if is_gate_config_file(path):
            digests[path] = _digest(target.read_bytes())
        elif name in GATE_CONFIG_SECTIONS:
            try:
                data = tomllib.loads(target.read_text(encoding="utf-8"))
            except (tomllib.TOMLDecodeError, UnicodeDecodeError):
                # Unreadable: its sections cannot be compared; the build gate reports the file.
                digests[f"{path} [unreadable]"] = _digest(target.read_bytes())
                continue
            for dotted in GATE_CONFIG_SECTIONS[name]:
                value = _section(data, dotted)
                if value is not None:
                    text = json.dumps(value, sort_keys=True, default=str)
                    digests[f"{path} [{dotted}]"] = _digest(text.encode())
    return digests


def changed_gate_config(before: dict[str, str], now: dict[str, str]) -> dict[str, str]:
    """Key → `added` / `changed` / `removed`."""
    changed: dict[str, str] = {}
    for key in sorted(set(before) | set(now)):
        old, new = before.get(key, ABSENT), now.get(key, ABSENT)
        if old != new:
            changed[key] = "added" if old == ABSENT else "removed" if new == ABSENT else "changed"
    return changed


def _file_of(key: str) -> str:
    return key.split(" [", 1)[0]


def gate_config_entry(
    changed: dict[str, str],
    *,
    declared: list[str],
    by_others: list[str],
    text: str,
    baseline_known: bool,
) -> LedgerEntry:
    """Changes to the gate configuration since the phase started block it, unless the phase
    declares that file (and, for a manifest section, names the section); a file another phase
    of the plan declares is a warning (parallel phases share the tree)."""
    check = "integrity: gate configuration"
    if not baseline_known:
        return not_run(check, "no gate-configuration snapshot from the phase's start")
    if not changed:
        return LedgerEntry(
            check=check, verdict=Verdict.PASS, evidence="no change to CI or gate configuration"
        )
    unasked, asked, sibling = [], [], []
    for key, how in changed.items():
        shown = f"{key} ({how})"
        path = _file_of(key)
        section = key[len(path) :].strip(" []")
        names_section = not section or section.split(".")[-1] in text
        if path in declared and names_section:
            asked.append(shown)
        elif path in by_others and names_section:
            sibling.append(shown)
        else:
            unasked.append(shown)
    if unasked:
        evidence = "changed without the plan asking: " + ", ".join(unasked)
        verdict = Verdict.FAIL
    elif sibling:
        evidence = "changed; another phase of the plan declares it: " + ", ".join(sibling)
        verdict = Verdict.WARN
    else:
        evidence = "changed as the phase declares: " + ", ".join(asked)
        verdict = Verdict.PASS
    if asked and verdict is not Verdict.PASS:
        evidence += "; declared by this phase: " + ", ".join(asked)
    return LedgerEntry(check=check, verdict=verdict, evidence=evidence)
