"""Final validation after the last wave: the whole suite, doc tests and quality checks, and
the failures that are new since the pre-flight baseline."""

from __future__ import annotations

from pathlib import Path

from tasks.gates.cargo_output import FAILED, OK, TestRun
from tasks.gates.config import GateConfig, load_committed_gate_config
from tasks.gates.evidence import (
    command_entry,
    no_command,
    not_run,
    render,
    run_test_command,
    simple_gate,
)
from tasks.gates.ledger import Ledger, LedgerEntry, Verdict

NO_LIBRARY = "no library targets found"


def _test_entry(
    check: str, argv: list[str], repo: Path, config: GateConfig, key: str
) -> tuple[LedgerEntry, TestRun]:
    if not argv:
        # The whole suite is required evidence; doc tests only where configured or detected.
        return no_command(check, key, required=key == "test"), TestRun()
    result, run = run_test_command(argv, repo, config)
    counts = run.counts()
    if check == "doc tests" and not result.ok and NO_LIBRARY in result.output:
        return not_run(check, "no library target: no doc tests to run", command=render(argv)), run
    if (result.ok or run.collected_nothing()) and run.failed == 0:
        entry = command_entry(
            check, result, verdict=Verdict.PASS, summary=counts, log_dir=config.log_dir
        )
        return entry, run
    failing = ", ".join(run.names(FAILED)) or "no test result (did it build?)"
    return command_entry(
        check,
        result,
        verdict=Verdict.FAIL,
        summary=f"{counts}; failing: {failing}",
        log_dir=config.log_dir,
    ), run


def _regressions(runs: list[TestRun], baseline: TestRun | None) -> LedgerEntry:
    if baseline is None:
        return not_run("regressions vs baseline", "no baseline test run to compare with")
    now: dict[str, str] = {}
    for run in runs:
        now.update(run.results)
    new_failures = sorted(
        n for n, status in now.items() if status == FAILED and baseline.results.get(n) != FAILED
    )
    regressions = [n for n in new_failures if baseline.results.get(n) == OK]
    missing = sorted(n for n, status in baseline.results.items() if status == OK and n not in now)
    evidence = (
        f"baseline {baseline.passed} passed / {baseline.failed} failed; now "
        f"{sum(r.passed for r in runs)} passed / {sum(r.failed for r in runs)} failed"
    )
    if new_failures:
        evidence += f"; regressions (passed in the baseline): {', '.join(regressions) or 'none'}"
        evidence += f"; new failures: {', '.join(new_failures)}"
    if missing:
        evidence += f"; baseline tests no longer reported: {', '.join(missing[:20])}"
    return LedgerEntry(
        check="regressions vs baseline",
        verdict=Verdict.FAIL if new_failures else Verdict.PASS,
        evidence=evidence,
    )


def run_final_validation(
    repo: Path, *, baseline: TestRun | None, config: GateConfig | None = None
) -> Ledger:
    repo = Path(repo)
    config = config or load_committed_gate_config(repo)
    ledger = Ledger()
    suite_entry, suite = _test_entry("full test suite", list(config.test), repo, config, "test")
    doc_entry, doc = _test_entry("doc tests", list(config.doc_test), repo, config, "doc_test")
    ledger.extend([suite_entry, doc_entry])
    ledger.add(_regressions([suite, doc], baseline))
    ledger.add(simple_gate("lint", config.lint, repo, config))
    ledger.add(simple_gate("fmt", config.fmt, repo, config))
    ledger.add(simple_gate("build", config.build, repo, config))
    return ledger
