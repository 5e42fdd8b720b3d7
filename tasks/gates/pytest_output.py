"""pytest's results → per-test results and counts, in the same :class:`TestRun` as cargo's.

The source is pytest's own machine-readable report: the gates ask every test command for a JUnit
XML file through `PYTEST_ADDOPTS=--junitxml=<file>` (:func:`report_env`), so `pytest -q`,
`python -m pytest` and a `just test` recipe that calls pytest all write one, into a directory
only that command may write. Without a report (pytest was not the runner, or its `junitxml`
plugin is disabled) the final summary line still gives the counts (:func:`parse_summary`), with
no per-test results.

Test keys are pytest's node ids where the module is found in the repository
(`tests/test_ops.py::TestOps::test_mul[2-3]`), else the report's `classname::name`: the same
test has the same key in every run, whatever the checkout path.
"""

from __future__ import annotations

import re
import shlex
import xml.etree.ElementTree as ElementTree
from collections import Counter
from pathlib import Path

from tasks.gates.cargo_output import FAILED, IGNORED, OK, TestRun

REPORT_NAME = "pytest-report.xml"
RUNNER = "pytest"
XFAIL_TYPE = "pytest.xfail"

# `==== 2 passed, 1 skipped in 0.12s ====` (or the bare `-q` form); only the counts are read.
_SUMMARY = re.compile(
    r"^=*\s*((?:\d+ (?:passed|failed|skipped|xfailed|xpassed|errors?|deselected|warnings?)"
    r"(?:, )?)+|no tests ran)\s+in\s+[\d.]+s\b.*$"
)
_SUMMARY_ITEM = re.compile(r"(\d+) (passed|failed|skipped|xfailed|xpassed|errors?)\b")
_STATUS_RANK = {OK: 0, IGNORED: 1, FAILED: 2}


def report_env(report: Path) -> dict[str, str]:
    """The environment that makes any pytest run write its JUnit XML report to ``report``.

    It replaces a `PYTEST_ADDOPTS` of the host: gate commands run the same sandboxed or not."""
    return {"PYTEST_ADDOPTS": shlex.quote(f"--junitxml={report}")}


def _node_id(classname: str, name: str, root: Path | None) -> str:
    """`tests.test_ops.TestOps` + `test_mul` → `tests/test_ops.py::TestOps::test_mul` when
    `tests/test_ops.py` is in ``root``; `classname::name` otherwise."""
    if not classname:  # a collection error names the module itself, dotted
        module = name.replace(".", "/") + ".py"
        return module if root is not None and (root / module).is_file() else name
    parts = classname.split(".")
    if root is not None:
        for cut in range(len(parts), 0, -1):
            module = "/".join(parts[:cut]) + ".py"
            if (root / module).is_file():
                return "::".join([module, *parts[cut:], name])
    return f"{classname}::{name}"


def _status(case: ElementTree.Element) -> tuple[str, str]:
    """(TestRun status, pytest's word for it) of one `<testcase>`."""
    if case.find("error") is not None:
        return FAILED, "error"
    if case.find("failure") is not None:
        return FAILED, "failed"
    skipped = case.find("skipped")
    if skipped is not None:
        return IGNORED, "xfailed" if skipped.get("type") == XFAIL_TYPE else "skipped"
    return OK, "passed"


def parse_junit(text: str, root: Path | None = None) -> TestRun | None:
    """A JUnit XML report as pytest writes it; None when ``text`` is not one."""
    try:
        tree = ElementTree.fromstring(text)
    except ElementTree.ParseError:
        return None
    suites = [tree] if tree.tag == "testsuite" else tree.findall("testsuite")
    if tree.tag not in ("testsuite", "testsuites"):
        return None
    results: dict[str, str] = {}
    words: dict[str, str] = {}
    for suite in suites:
        for case in suite.iter("testcase"):
            key = _node_id(case.get("classname", ""), case.get("name", "?"), root)
            status, word = _status(case)
            # A teardown error is reported on the test that passed: the worse outcome counts.
            if key in results and _STATUS_RANK[results[key]] >= _STATUS_RANK[status]:
                continue
            results[key], words[key] = status, word
    counted = Counter(words.values())
    return TestRun(
        passed=counted["passed"],
        failed=counted["failed"] + counted["error"],
        ignored=counted["skipped"] + counted["xfailed"],
        xfailed=counted["xfailed"],
        errors=counted["error"],
        results=results,
        summaries=len(suites),
        runner=RUNNER,
    )


def read_report(report: Path, root: Path | None = None) -> TestRun | None:
    """The report pytest left at ``report``, parsed; None when it wrote none."""
    if not report.is_file():
        return None
    return parse_junit(report.read_text(encoding="utf-8", errors="replace"), root)


def parse_summary(output: str) -> TestRun | None:
    """The counts of pytest's final summary line (the last one printed); None without one."""
    found: TestRun | None = None
    for line in output.splitlines():
        match = _SUMMARY.match(line.strip())
        if not match:
            continue
        counted = Counter[str]()
        for number, word in _SUMMARY_ITEM.findall(match.group(1)):
            counted[word.rstrip("s") if word.startswith("error") else word] += int(number)
        found = TestRun(
            passed=counted["passed"] + counted["xpassed"],
            failed=counted["failed"] + counted["error"],
            ignored=counted["skipped"] + counted["xfailed"],
            xfailed=counted["xfailed"],
            errors=counted["error"],
            summaries=1,
            runner=RUNNER,
        )
    return found
