"""Issue #15: a failing pre-flight says which command failed and shows the end of its output,
in the message the CLI prints, the report and the execution log all use."""

from __future__ import annotations

from flows.report import RunReport, final_report
from tasks.gates.evidence import command_entry
from tasks.gates.ledger import Ledger
from tasks.gates.preflight import _message, output_tail
from tasks.shell import CommandResult

OUTPUT = "\n".join(
    ["   Compiling demo v0.1.0"] * 30 + ["error[E0425]: cannot find value `x` in this scope"]
)


def _failed_build() -> Ledger:
    result = CommandResult(
        argv=["cargo", "build"],
        cwd="/repo",
        exit_code=101,
        duration_s=1.0,
        output=OUTPUT,
        output_chars=len(OUTPUT),
        output_sha256="0" * 64,
    )
    ledger = Ledger()
    ledger.add(command_entry("build", result))
    return ledger


def test_message_names_the_command_and_shows_the_output_tail() -> None:
    message = _message(_failed_build())
    assert "- build: exit 101 (`cargo build`) → fix the build" in message
    assert "error[E0425]: cannot find value `x` in this scope" in message
    assert len(output_tail(_failed_build().entries[0].evidence)) == 15


def test_report_shows_the_tail() -> None:
    report = RunReport(
        plan_path="p.md",
        repo="/repo",
        status="pre-flight failed",
        preflight_ok=False,
        preflight_message=_message(_failed_build()),
    )
    text = final_report(report)
    assert "**Pre-flight failed:**" in text and "error[E0425]" in text
