"""Final validation: full suite, doc tests, quality checks, regressions against the baseline."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tasks.gates.cargo_output import TestRun
from tasks.gates.final import run_final_validation
from tasks.gates.ledger import PhaseStatus, Verdict
from tasks.gates.verdict import decide
from tests.gates.helpers import blocked_by, edit


def test_final_validation_passes_then_reports_a_regression(
    repo_factory: Callable[[str], Path], single_baseline: TestRun
) -> None:
    repo = repo_factory("single")
    ledger = run_final_validation(repo, baseline=single_baseline)
    by_check = {e.check: e for e in ledger.entries}
    assert [e.check for e in ledger.entries] == [
        "full test suite",
        "doc tests",
        "regressions vs baseline",
        "lint",
        "fmt",
        "build",
    ]
    assert decide(ledger).status is PhaseStatus.COMPLETE, [e.line() for e in ledger.entries]
    assert by_check["doc tests"].command == "cargo test --doc"
    assert by_check["doc tests"].evidence.startswith("2 passed, 0 failed")

    edit(repo, "src/lib.rs", "    a * b\n", "    a * b + 1\n")
    verdict = decide(run_final_validation(repo, baseline=single_baseline))
    entry = blocked_by(verdict, "regressions vs baseline", "single::tests::multiplies")
    assert "single(doc)::src/lib.rs - mul" in entry.evidence
    blocked_by(verdict, "full test suite", "failing")
    blocked_by(verdict, "doc tests", "failing: single(doc)::src/lib.rs - mul")


def test_workspace_final_validation_without_baseline(repo_factory: Callable[[str], Path]) -> None:
    repo = repo_factory("workspace")
    ledger = run_final_validation(repo, baseline=None)
    by_check = {e.check: e for e in ledger.entries}
    assert by_check["full test suite"].evidence.startswith("6 passed, 0 failed, 0 ignored")
    assert by_check["doc tests"].evidence.startswith("2 passed")
    regressions = by_check["regressions vs baseline"]
    assert (regressions.verdict, regressions.required) == (Verdict.NOT_RUN, False)
    assert decide(ledger).status is PhaseStatus.COMPLETE
