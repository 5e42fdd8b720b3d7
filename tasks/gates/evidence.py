"""Running one gate command and turning what it left behind into a ledger entry."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path

from tasks import shell
from tasks.gates.ledger import LedgerEntry, Verdict
from tasks.shell import CommandResult

PASS_TAIL_LINES = 4
FAIL_TAIL_LINES = 25


def render(argv: Sequence[str]) -> str:
    return shlex.join(list(argv))


def run_gate(argv: Sequence[str], repo: Path, timeout_s: float) -> CommandResult:
    """Run a gate command (an argument vector, never a shell string) in the repository."""
    return shell.run(list(argv), cwd=repo, timeout_s=timeout_s)


def output_evidence(result: CommandResult, summary: str, *, failed: bool) -> str:
    tail = result.tail(FAIL_TAIL_LINES if failed else PASS_TAIL_LINES)
    timeout = " (killed: timeout)" if result.timed_out else ""
    return (
        f"{summary}{timeout}\n--- output tail ---\n{tail}\n"
        f"--- sha256 {result.output_sha256} of {result.output_chars} chars of output"
    )


def command_entry(
    check: str,
    result: CommandResult,
    *,
    verdict: Verdict | None = None,
    summary: str = "",
    required: bool = True,
) -> LedgerEntry:
    """A ledger entry for a finished command; the verdict defaults to its exit status."""
    if verdict is None:
        verdict = Verdict.PASS if result.ok else Verdict.FAIL
    if not summary:
        summary = "exit 0" if result.ok else f"exit {result.exit_code}"
    return LedgerEntry(
        check=check,
        command=render(result.argv),
        exit_code=result.exit_code,
        duration_s=result.duration_s,
        verdict=verdict,
        evidence=output_evidence(result, summary, failed=verdict is Verdict.FAIL),
        required=required,
    )


def simple_gate(check: str, argv: Sequence[str], repo: Path, timeout_s: float) -> LedgerEntry:
    """build / clippy / fmt: pass on exit 0, fail otherwise."""
    return command_entry(check, run_gate(argv, repo, timeout_s))


def not_run(
    check: str, why: str, *, command: str | None = None, required: bool = False
) -> LedgerEntry:
    return LedgerEntry(
        check=check, command=command, verdict=Verdict.NOT_RUN, evidence=why, required=required
    )
