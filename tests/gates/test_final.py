"""Final validation: full suite, doc tests, quality checks, regressions against the baseline."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

from tasks.gates.cargo_output import TestRun
from tasks.gates.config import load_gate_config
from tasks.gates.final import run_final_validation
from tasks.gates.ledger import Verdict, VerdictStatus
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
    assert decide(ledger).status is VerdictStatus.COMPLETE, [e.line() for e in ledger.entries]
    assert by_check["doc tests"].command == "cargo test --doc"
    assert by_check["doc tests"].evidence.startswith("2 passed, 0 failed")

    edit(repo, "src/lib.rs", "    a * b\n", "    a * b + 1\n")
    verdict = decide(run_final_validation(repo, baseline=single_baseline))
    entry = blocked_by(verdict, "regressions vs baseline", "single::tests::multiplies")
    assert "single(doc)::src/lib.rs - mul" in entry.evidence
    blocked_by(verdict, "full test suite", "failing")
    blocked_by(verdict, "doc tests", "failing: single(doc)::src/lib.rs - mul")


def test_workspace_final_validation_without_baseline_saving_full_output(
    repo_factory: Callable[[str], Path], tmp_path: Path
) -> None:
    repo = repo_factory("workspace")
    config = load_gate_config(repo).model_copy(update={"log_dir": str(tmp_path / "logs")})
    ledger = run_final_validation(repo, baseline=None, config=config)
    by_check = {e.check: e for e in ledger.entries}
    saved = by_check["full test suite"].evidence.rsplit("saved as ", 1)[1]
    text = Path(saved).read_text()
    assert text.startswith(f"$ cargo test  (cwd {repo}, exit 0)\n")
    assert "test tests::it_works ... ok" in text
    assert (
        hashlib.sha256(text.split("\n", 1)[1].encode()).hexdigest()
        in by_check["full test suite"].evidence
    )
    assert by_check["full test suite"].evidence.startswith("6 passed, 0 failed, 0 ignored")
    assert by_check["doc tests"].evidence.startswith("2 passed")
    regressions = by_check["regressions vs baseline"]
    assert (regressions.verdict, regressions.required) == (Verdict.NOT_RUN, False)
    assert decide(ledger).status is VerdictStatus.COMPLETE
