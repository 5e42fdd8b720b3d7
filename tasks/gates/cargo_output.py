"""Test runner output → per-test results and counts.

Understands libtest's output as printed by `cargo test` (single crate, workspace, integration
tests, doc tests; also when wrapped by `just`) and `cargo nextest run`.

Test names are keyed by their test binary so that equal names in different crates stay apart
and the same test has the same key in every run, whatever the checkout path:

* unit tests of a library: `<crate>::<test path>` (`single::math::tests::square_of_three`)
* unit tests of a binary: `bin/<name>::<test path>`
* integration tests: `<test target>::<test name>` (`integration::doubles_from_outside`)
* doc tests: `<crate>(doc)::<file> - <item>`; the `(line N)` suffix is dropped because it moves
  whenever code above the example changes.
"""

from __future__ import annotations

import re
from collections import Counter

from pydantic import BaseModel, Field

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_RUNNING = re.compile(r"^\s*Running (?:unittests )?(\S+) \((?:.*[/\\])?([^/\\)]+?)(?:\.exe)?\)\s*$")
_DOC_TESTS = re.compile(r"^\s*Doc-tests (\S+)\s*$")
_TEST_LINE = re.compile(r"^test (.+?) \.\.\. (ok|FAILED|ignored(?:, .*)?)\s*$")
_RESULT = re.compile(
    r"^test result: (?:ok|FAILED)\. (\d+) passed; (\d+) failed; (\d+) ignored; "
    r"(\d+) measured; (\d+) filtered out"
)
_DOC_LINE_SUFFIX = re.compile(r"\s*\(line \d+\)$")
_HASH_SUFFIX = re.compile(r"-[0-9a-f]{16}$")
# nextest: `        PASS [   0.004s] (1/3) alpha tests::adds` (the `(i/n)` counter is newer).
_NEXTEST_LINE = re.compile(
    r"^\s*(PASS|FAIL|SKIP|SIGSEGV|SIGABRT|TIMEOUT|LEAK)\s+\[\s*[\d.]+s\]\s+(?:\(\s*\d+/\d+\)\s+)?(\S+)\s+(\S.*?)\s*$"
)
_NEXTEST_SUMMARY = re.compile(
    r"^\s*Summary \[.*?\]\s+(\d+) tests? run: (\d+) passed(?:.*?(\d+) failed)?(?:.*?(\d+) skipped)?"
)

OK = "ok"
FAILED = "FAILED"
IGNORED = "ignored"
PYTEST_NO_TESTS = 5
"""pytest's exit status when it collected no test (an empty suite, a `-k` matching nothing)."""


class TestRun(BaseModel):
    """One test command's outcome."""

    __test__ = False  # not a pytest test class

    passed: int = 0
    failed: int = 0
    ignored: int = 0
    filtered_out: int = 0
    results: dict[str, str] = Field(default_factory=dict)
    """Test key → `ok` | `FAILED` | `ignored`."""
    summaries: int = 0
    """How many result summaries (one per test binary) were seen; 0 means nothing ran, e.g.
    because the code did not compile."""
    command: str | None = None
    exit_code: int | None = None
    duration_s: float | None = None
    runner: str = "cargo"
    """Whose output this is: `cargo` (libtest, nextest) or `pytest`."""
    xfailed: int = 0
    """pytest: expected failures, counted among ``ignored`` (they did not pass)."""
    errors: int = 0
    """pytest: errors (setup, teardown, collection), counted among ``failed``."""

    @property
    def total(self) -> int:
        """Tests that ran (passed + failed); ignored tests did not run."""
        return self.passed + self.failed

    def collected_nothing(self) -> bool:
        """pytest found no test to run (exit 5): 0 tests, as cargo says with exit 0."""
        return self.runner == "pytest" and self.exit_code == PYTEST_NO_TESTS and self.total == 0

    def counts(self) -> str:
        """The counts in the runner's own words: `2 passed, 0 failed, 1 ignored` for cargo,
        `2 passed, 0 failed, 1 skipped, 1 xfailed, 1 error` for pytest."""
        if self.runner != "pytest":
            return f"{self.passed} passed, {self.failed} failed, {self.ignored} ignored"
        text = (
            f"{self.passed} passed, {self.failed - self.errors} failed, "
            f"{self.ignored - self.xfailed} skipped"
        )
        if self.xfailed:
            text += f", {self.xfailed} xfailed"
        if self.errors:
            text += f", {self.errors} error{'s' if self.errors > 1 else ''}"
        return text

    def names(self, status: str | None = None) -> list[str]:
        return sorted(k for k, v in self.results.items() if status is None or v == status)


def _binary_label(source: str, artifact: str) -> str:
    stem = _HASH_SUFFIX.sub("", artifact)
    if source.endswith("src/main.rs") or "/src/bin/" in f"/{source}":
        return f"bin/{stem}"
    return stem


def _nextest_binary(binary_id: str) -> str:
    # `alpha` (lib), `alpha::integration` (test target), `alpha::bin/alpha` (binary).
    label = binary_id.split("::", 1)[1] if "::" in binary_id else binary_id
    return label.replace("-", "_") if "/" not in label else label


def _store(results: dict[str, str], seen: Counter[str], key: str, status: str) -> None:
    seen[key] += 1
    if seen[key] > 1:
        key = f"{key}#{seen[key]}"
    results[key] = status


def parse_test_output(output: str) -> TestRun:
    """Parse cargo test / cargo nextest output (ANSI colours tolerated) into a :class:`TestRun`."""
    results: dict[str, str] = {}
    seen: Counter[str] = Counter()
    binary = "?"
    summary = Counter[str]()
    summaries = 0
    nextest_summary: tuple[int, int, int] | None = None
    for raw in output.splitlines():
        line = _ANSI.sub("", raw).rstrip("\r")
        if match := _RUNNING.match(line):
            binary = _binary_label(match.group(1), match.group(2))
            continue
        if match := _DOC_TESTS.match(line):
            binary = f"{match.group(1).replace('-', '_')}(doc)"
            continue
        if match := _TEST_LINE.match(line):
            name, status = match.group(1), match.group(2)
            if binary.endswith("(doc)"):
                name = _DOC_LINE_SUFFIX.sub("", name)
            status = IGNORED if status.startswith("ignored") else status
            _store(results, seen, f"{binary}::{name}", status)
            continue
        if match := _RESULT.match(line):
            summaries += 1
            passed, failed, ignored, _measured, filtered = (int(g) for g in match.groups())
            summary.update(passed=passed, failed=failed, ignored=ignored, filtered=filtered)
            continue
        if match := _NEXTEST_LINE.match(line):
            kind, binary_id, name = match.groups()
            status = {"PASS": OK, "SKIP": IGNORED}.get(kind, FAILED)
            _store(results, seen, f"{_nextest_binary(binary_id)}::{name}", status)
            continue
        if match := _NEXTEST_SUMMARY.match(line):
            _run, ran_ok, ran_failed, skipped = match.groups()
            nextest_summary = (int(ran_ok), int(ran_failed or 0), int(skipped or 0))
    statuses = Counter(results.values())
    if nextest_summary is not None:
        passed, failed, ignored = nextest_summary
        summaries = max(summaries, 1)
    elif summaries:
        passed, failed, ignored = summary["passed"], summary["failed"], summary["ignored"]
    else:
        passed, failed, ignored = statuses[OK], statuses[FAILED], statuses[IGNORED]
    return TestRun(
        passed=passed,
        failed=failed,
        ignored=ignored,
        filtered_out=summary["filtered"],
        results=results,
        summaries=summaries,
    )
