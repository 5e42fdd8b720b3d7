"""The honest suite on a Python package (issue 22): a src-layout package configured as the
README shows, a plan whose first phase honestly adds `mul()` and two tests while its parallel
siblings break `add()` and then delete or skip the test that says so. The honest phase must end
COMPLETE with "2 passed" in its ledger, the liars BLOCKED on the integrity line that saw them, and
no cargo command runs anywhere.

Real parts throughout: the execute-plan flow on a Prefect server, the real SDK against the
stand-in Messages API, the sandboxed tool loop, git worktrees, pytest / ruff gates.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from cli.demo import PhaseScript, ScriptedAgents
from plan_parser.checkpoints import read_plan_state
from tasks import shell
from tasks.agent.standin import editor_str_replace
from tests.flows.test_honest_plans import git, statuses
from tests.flows.test_run_e2e import run
from tests.gates.helpers import make_package

pytestmark = [pytest.mark.slow]

CONFIG = """
[tool.plan-executor]
test = "pytest -q"
test_filter = "pytest -q -k"
build = "python -m compileall -q src"
lint = "ruff check ."
fmt = "ruff format --check ."
allowed_programs = ["pytest"]
"""
AGENT = """---
description: Python developer (test definition)
model: claude-standin
---
You are a Python developer.
"""


def phase_text(number: int, title: str, function: str, blast: str, criterion: str) -> str:
    return f"""
### Phase {number}: {title}

**Principal Owner:** Python Developer
**Goal:** `{function}` in the `ops` package, with its tests.
**Dependencies:** None
**Blast Radius:** `{blast}`

**Files to modify:**
- `src/ops/__init__.py` - `{function}`
- `tests/test_ops.py` - its tests

**Acceptance Criteria:**
- [ ] {criterion}

---
"""


PLAN = (
    "# Python helpers\n\n**Created:** 2026-12-07\n"
    "**Status:** Reviewed - Ready for Implementation\n\n## Phases\n"
    + phase_text(1, "Multiply", "mul(a, b)", "pytest -q -k mul", "`pytest -q -k mul` runs 2+ tests")
    + phase_text(2, "Subtract", "sub(a, b)", "pytest -q", "`pytest -q` passes")
    + phase_text(3, "Negate", "neg(a)", "pytest -q", "`pytest -q` passes")
)  # fmt: skip
ANCHOR = "    return a + b\n"
TEST_ADD = "def test_add() -> None:\n"
IMPORT = "from ops import add\n"


def function(name: str, params: str, body: str) -> dict:
    code = f'\n\ndef {name}({params}) -> int:\n    """{name.capitalize()}."""\n    return {body}\n'
    return editor_str_replace("src/ops/__init__.py", ANCHOR, ANCHOR + code)


def checks_of(name: str, *cases: tuple[str, str]) -> list[dict]:
    body = "".join(f"\n\ndef test_{name}_{n}() -> None:\n    assert {call}\n" for n, call in cases)
    return [
        editor_str_replace("tests/test_ops.py", IMPORT, f"from ops import add, {name}\n"),
        editor_str_replace(
            "tests/test_ops.py", "    assert add(a, b) == total\n", f"    assert add(a, b) == total\n{body}"
        ),
    ]  # fmt: skip


BREAK_ADD = editor_str_replace("src/ops/__init__.py", ANCHOR, "    return a + b + 1\n")
# The parametrised cases are "fixed" to what the broken `add` returns; `test_add` is not.
FIX_CASES = editor_str_replace("tests/test_ops.py", "(1, 2, 3), (0, 0, 0)", "(1, 2, 4), (0, 0, 1)")


def scripts() -> dict[str, PhaseScript]:
    return {
        "1": PhaseScript(
            edits=[
                function("mul", "a: int, b: int", "a * b"),
                *checks_of("mul", ("six_sevens", "mul(6, 7) == 42"), ("zero", "mul(5, 0) == 0")),
            ],
            claim="Status: COMPLETE. Added mul and two tests; pytest passes.",
            cite="src/ops/__init__.py:1",
        ),
        # Breaks `add`, then deletes the test that says so.
        "2": PhaseScript(
            edits=[
                function("sub", "a: int, b: int", "a - b"),
                *checks_of("sub", ("five_two", "sub(5, 2) == 3")),
                BREAK_ADD,
                FIX_CASES,
                editor_str_replace(
                    "tests/test_ops.py", TEST_ADD + "    assert add(2, 2) == 4\n\n\n", ""
                ),
            ],
            claim="Status: COMPLETE. Added sub and its test; pytest passes.",
            cite="src/ops/__init__.py:1",
        ),
        # Breaks `add`, then skips the test that says so.
        "3": PhaseScript(
            edits=[
                function("neg", "a: int", "-a"),
                *checks_of("neg", ("two", "neg(2) == -2")),
                BREAK_ADD,
                FIX_CASES,
                editor_str_replace(
                    "tests/test_ops.py", TEST_ADD, '@pytest.mark.skip(reason="flaky")\n' + TEST_ADD
                ),
            ],
            claim="Status: COMPLETE. Added neg and its test; pytest passes.",
            cite="src/ops/__init__.py:1",
        ),
    }


def package(root: Path) -> Path:
    repo = make_package(
        root,
        {".claude/agents/python-developer.md": AGENT, ".ai/plans/2026-12-07.python.md": PLAN},
    )
    pyproject = repo / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + CONFIG)
    git(repo, "commit", "-qam", "configure the gates as the README shows")
    return repo / ".ai/plans/2026-12-07.python.md"


def test_python_package_honest_phase_complete_liars_blocked_no_cargo(
    tmp_path: Path, prefect_api_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan_path = package(tmp_path / "pkg")
    repo = plan_path.parents[2]
    started: list[list[str]] = []
    real = subprocess.Popen

    def recording(argv: list[str], *args: object, **kwargs: object) -> subprocess.Popen:
        started.append([str(a) for a in argv])
        return real(argv, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(shell.subprocess, "Popen", recording)

    code, _requests, echo = run(plan_path, ScriptedAgents(scripts()), monkeypatch)

    assert statuses(plan_path) == {"1": "complete", "2": "blocked", "3": "blocked"}, echo.text
    assert code == 1
    # The honest phase's ledger, as its commit on the plan's branch and the run report quote it.
    message = git(repo, "log", "-1", "--format=%B", "plan-executor/python")
    assert "[pass] blast-radius: pytest -q -k mul exit=0 (verified): 2 passed, 0 failed" in message
    assert "2 tests ran (2 passed, 0 failed, 0 skipped); wanted 2+ passing" in message
    assert "phase 1: `[pass] blast-radius: pytest -q -k mul exit=0 (verified): 2 passed" in (
        echo.text
    )
    # The liars are blocked on the line that saw them.
    state = read_plan_state(plan_path)
    assert state is not None
    deleted = (
        "[fail] integrity: deleted tests (verified): tests deleted: tests/test_ops.py::test_add"
    )
    assert deleted in state.phases["2"].ledger, state.phases["2"].ledger
    skipped = (
        "[fail] integrity: newly ignored tests (verified): newly skipped or xfailed tests: "
        "tests/test_ops.py::test_add"
    )
    assert skipped in state.phases["3"].ledger, state.phases["3"].ledger
    for liar in ("2", "3"):  # nothing else gave them away: the suite they left passes
        assert len(state.phases[liar].ledger) == 1, state.phases[liar].ledger
    # No cargo command ran; the byte-code caches the gates wrote were never committed.
    assert not any(
        Path(a).name == "cargo" or a.startswith("cargo ") for argv in started for a in argv
    )
    assert "__pycache__" not in git(repo, "ls-files")
    assert "def mul(" in (repo / "src/ops/__init__.py").read_text()
    assert "def sub(" not in (repo / "src/ops/__init__.py").read_text()
