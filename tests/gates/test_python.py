"""Python repositories verified as well as Rust ones (issue 22): pytest's results from its JUnit
XML report, a static pytest inventory for the integrity gates, pytest/ruff defaults and no cargo
command, on the fixture package `tests/fixtures/pypkg` (src layout) with the real gates (in the
sandbox when bubblewrap is usable, as a run has them)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from plan_parser.model import FileAction
from tasks import shell
from tasks.gates.cargo_output import FAILED, IGNORED, OK, TestRun
from tasks.gates.config import load_committed_gate_config, load_gate_config
from tasks.gates.criteria import evaluate_criterion
from tasks.gates.final import run_final_validation
from tasks.gates.ledger import Ledger, LedgerEntry, VerdictStatus
from tasks.gates.phase_gates import run_phase_gates, snapshot
from tasks.gates.preflight import baseline_tests
from tasks.gates.pytest_output import parse_junit, parse_summary
from tasks.gates.python_tests import python_suppressions, python_tests
from tasks.gates.repo_state import source_inventory
from tasks.gates.verdict import decide
from tests.gates.helpers import blocked_by, edit, make_package, phase

INIT = "src/ops/__init__.py"
TESTS = "tests/test_ops.py"
MUL = '\n\ndef mul(a: int, b: int) -> int:\n    """Multiplies two numbers."""\n    return a * b\n'
MUL_TESTS = (
    "\n\ndef test_mul() -> None:\n    assert mul(6, 7) == 42\n"
    "\n\ndef test_mul_by_zero() -> None:\n    assert mul(5, 0) == 0\n"
)
ADD_TEST = "def test_add() -> None:\n    assert add(2, 2) == 4\n"
# Plugins of this environment the sample does not use (a second of start-up each).
NO_PLUGINS = [f"-pno:{name}" for name in ("cacheprovider", "hypothesispytest", "anyio", "timeout")]
FILES = [(INIT, FileAction.MODIFY), (TESTS, FileAction.MODIFY)]
CRITERION = "`pytest -q -k mul` runs 2+ tests"
BODY = "Add `mul(a, b)` to `src/ops/__init__.py` and its tests to `tests/test_ops.py`."


@pytest.fixture
def commands(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[list[str]]]:
    """The argument vector of every process started through `tasks.shell` (the sandbox's too)
    while the test runs."""
    seen: list[list[str]] = []
    real = subprocess.Popen

    def recording(argv: list[str], *args: object, **kwargs: object) -> subprocess.Popen:
        seen.append([str(a) for a in argv])
        return real(argv, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(shell.subprocess, "Popen", recording)
    yield seen


def no_cargo(commands: list[list[str]]) -> bool:
    # The sandbox's argv names toolchain paths (`~/.cargo`); a cargo command is a program of its
    # own or the start of the sandbox's `bash -c` string.
    return not any(
        Path(a).name == "cargo" or a.startswith("cargo ") for argv in commands for a in argv
    )


def add_mul(repo: Path, *, tests: bool = True) -> None:
    (repo / INIT).write_text((repo / INIT).read_text() + MUL)
    if tests:
        edit(repo, TESTS, "from ops import add\n", "from ops import add, mul\n")
        (repo / TESTS).write_text((repo / TESTS).read_text() + MUL_TESTS)


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> tuple[LedgerEntry, TestRun]:
    """Pre-flight's baseline of a pristine copy of the package; test keys do not depend on the
    checkout path, so every copy shares it."""
    repo = make_package(tmp_path_factory.mktemp("baseline") / "pkg")
    entry, run = baseline_tests(repo, load_committed_gate_config(repo))
    assert run is not None
    return entry, run


def gates(
    repo: Path,
    baseline: TestRun,
    edits: Callable[[Path], None],
    *,
    criteria: list[str] | None = None,
    blast: str = "pytest -q -k mul",
    body: str = BODY,
) -> Ledger:
    """The phase's start, ``edits`` (the agent's work), then the phase's gates."""
    start = snapshot(repo, baseline=baseline)
    edits(repo)
    return run_phase_gates(
        repo,
        phase(
            FILES, [CRITERION] if criteria is None else criteria, blast_commands=[blast], body=body
        ),
        start=start,
        baseline=baseline,
        config=load_committed_gate_config(repo),
        scope_policy="siblings",
    )


# --- configuration -------------------------------------------------------------------------------


def test_a_python_package_gets_pytest_and_ruff_never_cargo(tmp_path: Path) -> None:
    repo = make_package(tmp_path / "pkg")
    for config in (load_gate_config(repo), load_committed_gate_config(repo)):
        assert config.test == ["pytest", "-q"]
        assert config.test_filter == ["pytest", "-q", "-k"]
        assert config.lint == ["ruff", "check", "."]
        assert config.fmt == ["ruff", "format", "--check", "."]
        assert config.build == ["python", "-m", "compileall", "-q", "src"]
        assert config.doc_test == []
        assert config.source.startswith("python default")
        assert "cargo" not in config.tools()
    # No `src/`: nothing obvious to compile. Neither manifest: no command at all.
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "pyproject.toml").write_text('[project]\nname = "flat"\n')
    assert load_gate_config(flat).build == []
    (flat / "pyproject.toml").unlink()
    bare = load_gate_config(flat)
    assert (bare.test, bare.build, bare.lint, bare.fmt, bare.doc_test) == ([], [], [], [], [])


def test_the_repository_overrides_the_python_defaults(tmp_path: Path) -> None:
    repo = make_package(
        tmp_path / "pkg",
        {".ai/plan-executor.toml": 'test = "python -m pytest -x"\ndoc_test = "pytest --doctest-modules src"\n'},
    )  # fmt: skip
    config = load_committed_gate_config(repo)
    assert config.test == ["python", "-m", "pytest", "-x"]
    assert config.doc_test == ["pytest", "--doctest-modules", "src"]
    assert config.source == "python default + .ai/plan-executor.toml (at HEAD)"


# --- results and inventory -------------------------------------------------------------------------

REPORT = """<?xml version="1.0" encoding="utf-8"?><testsuites name="pytest tests">
<testsuite name="pytest" errors="1" failures="2" skipped="2" tests="8">
<testcase classname="tests.test_ops" name="test_add" time="0.001" />
<testcase classname="tests.test_ops" name="test_fail" time="0.001"><failure message="x"/></testcase>
<testcase classname="tests.test_ops" name="test_skip" time="0"><skipped type="pytest.skip" message="x"/></testcase>
<testcase classname="tests.test_ops" name="test_xf" time="0"><skipped type="pytest.xfail" message=""/></testcase>
<testcase classname="tests.test_ops" name="test_err" time="0"><error message="on setup"/></testcase>
<testcase classname="tests.test_ops" name="test_p[1-2]" time="0" />
<testcase classname="tests.test_ops.TestOps" name="test_m" time="0" />
<testcase classname="tests.test_ops.TestOps" name="test_m" time="0"><error message="on teardown"/></testcase>
<testcase classname="" name="tests.test_ops" time="0"><error message="collection failure"/></testcase>
</testsuite></testsuites>"""


def test_a_junit_report_becomes_a_test_run_keyed_by_node_id(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_ops.py").write_text("")
    run = parse_junit(REPORT, tmp_path)
    assert run is not None and run.runner == "pytest"
    assert run.results == {
        "tests/test_ops.py::test_add": OK,
        "tests/test_ops.py::test_fail": FAILED,
        "tests/test_ops.py::test_skip": IGNORED,
        "tests/test_ops.py::test_xf": IGNORED,
        "tests/test_ops.py::test_err": FAILED,
        "tests/test_ops.py::test_p[1-2]": OK,
        # a teardown error is reported on a second entry for the same test: it failed
        "tests/test_ops.py::TestOps::test_m": FAILED,
        "tests/test_ops.py": FAILED,  # a collection error, named by its file
    }
    assert (run.passed, run.failed, run.ignored, run.xfailed, run.errors) == (2, 4, 2, 1, 3)
    assert run.counts() == "2 passed, 1 failed, 1 skipped, 1 xfailed, 3 errors"
    assert parse_junit("not xml") is None
    # Without a report, pytest's summary line still gives the counts.
    summary = parse_summary("..\n==== 2 passed, 1 skipped, 1 error in 0.12s ====\n")
    assert summary is not None and (summary.passed, summary.failed, summary.ignored) == (2, 1, 1)


SAMPLE = """
import pytest
import unittest

pytestmark = [pytest.mark.filterwarnings("ignore")]


def test_plain():
    pass


@pytest.mark.skip(reason="later")
def test_skipped():
    pass


@pytest.mark.skipif(True, reason="never")
def test_skipif():
    pass


@pytest.mark.xfail
def test_xfail():
    assert 0


def test_skips_itself():
    pytest.skip("not today")


@pytest.mark.parametrize("a,b", [(1, "x"), (2.5, None), ((1, 2), [3]), (-1, True)])
def test_cases(a, b):
    pass


@pytest.mark.parametrize("n", [pytest.param(1, id="one"), pytest.param(2, marks=pytest.mark.skip)])
@pytest.mark.parametrize("m", ["p", "q"], ids=["P", "Q"])
def test_stacked(n, m):
    pass


@pytest.mark.parametrize("n", [])
def test_empty(n):
    pass


class TestOps:
    def test_method(self):
        pass

    def helper(self):
        pass

    class TestNested:
        def test_inner(self):
            pass


@pytest.mark.skip
class TestSkipped:
    def test_all(self):
        pass


class NotATest:
    def test_ignored(self):
        pass


class TestWithInit:
    def __init__(self):
        pass

    def test_never(self):
        pass


class Legacy(unittest.TestCase):
    def test_legacy(self):
        self.skipTest("old")


def helper_not_a_test():
    pass
"""


def test_the_static_inventory_names_what_pytest_collects(tmp_path: Path) -> None:
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    found = python_tests("test_sample.py", SAMPLE)
    collected = shell.run(
        ["pytest", "--collect-only", "-q", *NO_PLUGINS, "test_sample.py"],
        cwd=tmp_path,
        timeout_s=120,
    )
    ids = {line for line in collected.output.splitlines() if line.startswith("test_sample.py::")}
    assert ids, collected.output
    assert set(found) == ids, collected.output
    skipped = {key.split("::", 1)[1] for key, is_skipped in found.items() if is_skipped}
    assert skipped == {
        "test_skipped",
        "test_skipif",
        "test_xfail",
        "test_skips_itself",
        "test_stacked[P-2]",
        "test_stacked[Q-2]",
        "test_empty[NOTSET]",
        "TestSkipped::test_all",
        "Legacy::test_legacy",
    }
    assert python_suppressions("a.py", 'import os  # noqa: F401\ns = "# noqa"\n') == {
        "a.py: # noqa: F401": 1
    }


# --- gates on the fixture package ----------------------------------------------------------------


def test_baseline_counts_the_pytest_suite(
    tmp_path: Path, baseline: tuple[LedgerEntry, TestRun]
) -> None:
    entry, run = baseline
    assert entry.verdict.value == "pass", entry.evidence
    assert entry.evidence.startswith("3 passed, 0 failed, 0 skipped (3 tests recorded)")
    assert run.names() == [
        "tests/test_ops.py::test_add",
        "tests/test_ops.py::test_add_cases[0-0-0]",
        "tests/test_ops.py::test_add_cases[1-2-3]",
    ]
    repo = make_package(tmp_path / "pkg")
    assert source_inventory(repo).tests == {key: False for key in run.names()}
    # A criterion counting the tests of a Python file reads them the same way.
    [entry] = evaluate_criterion(
        repo, 1, "File `tests/test_ops.py` exists with 3+ tests",
        count_tests=lambda _argv: (None, "unused"), allowed_programs={"pytest"},
    )  # fmt: skip
    assert entry.verdict.value == "pass" and "3 test functions (wanted 3+)" in entry.evidence


def test_a_package_without_tests_yet_has_a_baseline_of_zero(tmp_path: Path) -> None:
    repo = make_package(tmp_path / "pkg")
    (repo / TESTS).unlink()  # pytest exits 5: it collected nothing, which is no failure
    entry, run = baseline_tests(repo, load_committed_gate_config(repo))
    assert entry.verdict.value == "pass", entry.evidence
    assert entry.evidence.startswith("0 passed, 0 failed, 0 skipped (0 tests recorded)")
    assert run is not None and run.exit_code == 5


def test_an_honest_phase_adding_mul_and_two_tests_is_complete(
    tmp_path: Path, baseline: tuple[LedgerEntry, TestRun], commands: list[list[str]]
) -> None:
    repo = make_package(tmp_path / "pkg")

    ledger = gates(repo, baseline[1], add_mul)

    verdict = decide(ledger)
    lines = "\n".join(entry.line() for entry in ledger.entries)
    assert verdict.status is VerdictStatus.COMPLETE, lines
    by_check = {entry.check: entry for entry in ledger.entries}
    blast = by_check["blast-radius: pytest -q -k mul"]
    assert blast.evidence.startswith("2 passed, 0 failed, 0 skipped\n"), blast.evidence
    criterion = next(e for e in ledger.entries if e.check.startswith("criterion 1"))
    assert "2 tests ran (2 passed, 0 failed, 0 skipped); wanted 2+ passing" in criterion.evidence
    assert "new: tests/test_ops.py::test_mul, tests/test_ops.py::test_mul_by_zero" in (
        by_check["integrity: new tests"].evidence
    )
    assert by_check["regressions vs baseline"].verdict.value == "pass"
    assert {by_check[c].verdict.value for c in ("build", "lint", "fmt")} == {"pass"}
    assert no_cargo(commands), [a for a in commands if "cargo" in " ".join(a)]
    # The gates' own byte-code caches are nobody's change.
    assert list(repo.rglob("__pycache__"))
    assert by_check["scope: outside declared files"].verdict.value == "pass"


def break_add(repo: Path) -> None:
    add_mul(repo)
    edit(repo, INIT, "    return a + b\n", "    return a + b + 1\n")


def test_a_phase_breaking_add_without_the_tests_it_asks_for_is_blocked(
    tmp_path: Path, baseline: tuple[LedgerEntry, TestRun]
) -> None:
    repo = make_package(tmp_path / "pkg")

    def sloppy(r: Path) -> None:
        add_mul(r, tests=False)
        edit(r, INIT, "    return a + b\n", "    return a + b + 1\n")

    ledger = gates(
        repo, baseline[1], sloppy, criteria=["`pytest -q -k nothing_matches` runs 1+ tests"],
        blast="pytest -q", body=BODY + " with its unit tests",
    )  # fmt: skip

    verdict = decide(ledger)
    blocked_by(verdict, "integrity: new tests", "added no test function")
    blocked_by(verdict, "regressions vs baseline", "failing now: tests/test_ops.py::test_add, ")
    # pytest's exit 5 (nothing collected) is a scoped run that matched no test, said as such.
    blocked_by(verdict, "run for criteria: pytest -q -k nothing_matches", "0 tests ran: the blast")
    blocked_by(verdict, "criterion 1", "0 tests ran (0 passed, 0 failed, 0 skipped)")


def test_a_phase_deleting_a_failing_test_to_go_green_is_blocked(
    tmp_path: Path, baseline: tuple[LedgerEntry, TestRun]
) -> None:
    repo = make_package(tmp_path / "pkg")

    def liar(r: Path) -> None:
        break_add(r)
        edit(r, TESTS, ADD_TEST, "")  # `test_add` would fail now
        edit(r, TESTS, "(1, 2, 3), (0, 0, 0)", "(1, 2, 4)")  # one case "fixed", one dropped

    ledger = gates(repo, baseline[1], liar)

    verdict = decide(ledger)
    entry = blocked_by(verdict, "integrity: deleted tests")
    assert entry.evidence == "tests deleted: tests/test_ops.py::test_add", entry.evidence
    # A parametrised test whose cases changed is not deleted; the two new `mul` tests make up for the count: the deleted test is still named.


def test_a_phase_skipping_failing_tests_to_go_green_is_blocked(
    tmp_path: Path, baseline: tuple[LedgerEntry, TestRun]
) -> None:
    repo = make_package(tmp_path / "pkg")

    def liar(r: Path) -> None:
        break_add(r)
        edit(r, TESTS, ADD_TEST, '@pytest.mark.skip(reason="later")\n' + ADD_TEST)
        edit(r, TESTS, "@pytest.mark.parametrize", "@pytest.mark.xfail\n@pytest.mark.parametrize")

    ledger = gates(repo, baseline[1], liar)

    blocked_by(
        decide(ledger),
        "integrity: newly ignored tests",
        "newly skipped or xfailed tests: tests/test_ops.py::test_add, "
        "tests/test_ops.py::test_add_cases[0-0-0], tests/test_ops.py::test_add_cases[1-2-3]",
    )


def test_final_validation_runs_no_cargo_and_no_doc_tests_unless_configured(
    tmp_path: Path, baseline: tuple[LedgerEntry, TestRun], commands: list[list[str]]
) -> None:
    repo = make_package(tmp_path / "pkg")

    ledger = run_final_validation(repo, baseline=baseline[1])

    by_check = {entry.check: entry for entry in ledger.entries}
    assert by_check["full test suite"].evidence.startswith("3 passed, 0 failed, 0 skipped")
    assert by_check["doc tests"].verdict.value == "not_run"
    assert "no doc tests command" in by_check["doc tests"].evidence
    assert not ledger.failing(), "\n".join(e.line() for e in ledger.entries)
    assert no_cargo(commands)
