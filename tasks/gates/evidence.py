"""Running one gate command and turning what it left behind into a ledger entry."""

from __future__ import annotations

import os
import shlex
import tempfile
from collections.abc import Sequence
from pathlib import Path

from tasks import shell
from tasks.gates.cargo_output import TestRun, parse_test_output
from tasks.gates.config import GateConfig
from tasks.gates.fmt_output import fmt_failure_summary, strip_ansi
from tasks.gates.ledger import LedgerEntry, Verdict
from tasks.gates.pytest_output import REPORT_NAME, parse_summary, read_report, report_env
from tasks.secrets import scrub_known
from tasks.shell import CommandResult

PASS_TAIL_LINES = 4
FAIL_TAIL_LINES = 25


def render(argv: Sequence[str]) -> str:
    return shlex.join(list(argv))


def log_path(log_dir: Path | str, result: CommandResult) -> Path:
    return Path(log_dir) / f"{result.output_sha256[:16]}.log"


def _execute(
    argv: Sequence[str],
    repo: Path,
    config: GateConfig,
    cap: int | None,
    extra_env: dict[str, str],
    writable: Sequence[Path],
) -> CommandResult:
    """One gate command, in the agents' sandbox when configured and available.

    The ledger shows the command as the gate meant it (``argv``), not the bubblewrap wrapping.
    """
    if config.sandbox:
        from tasks.agent.sandbox import Sandbox, SandboxSettings

        target_dir = config.target_dir or os.environ.get("CARGO_TARGET_DIR")
        if target_dir:  # bubblewrap cannot bind a directory cargo has not made yet
            Path(target_dir).mkdir(parents=True, exist_ok=True)
        sandbox = Sandbox(
            repo,
            SandboxSettings(
                network=config.sandbox_network,
                writable_paths=([Path(target_dir)] if target_dir else []) + list(writable),
                extra_env=({"CARGO_TARGET_DIR": target_dir} if target_dir else {}) | extra_env,
            ),
        )
        if sandbox.sandboxed:
            result = sandbox.run(shlex.join(list(argv)), timeout_s=config.timeout_s, output_cap=cap)
            return result.model_copy(update={"argv": list(argv)})
    extra = dict(extra_env)
    if config.target_dir:
        extra["CARGO_TARGET_DIR"] = config.target_dir
    env = {**os.environ, "PATH": shell.search_path(), **extra} if extra else None
    return shell.run(list(argv), cwd=repo, env=env, timeout_s=config.timeout_s, output_cap=cap)


def run_gate(
    argv: Sequence[str],
    repo: Path,
    config: GateConfig,
    *,
    extra_env: dict[str, str] | None = None,
    writable: Sequence[Path] = (),
) -> CommandResult:
    """Run a gate command (an argument vector, never a shell string) in the repository; with
    ``config.log_dir`` the full output is saved there, named by its digest. ``extra_env`` and
    ``writable`` (host directories the command may write) reach it in the sandbox too."""
    if not config.log_dir:
        return _execute(argv, repo, config, shell.DEFAULT_OUTPUT_CAP, extra_env or {}, writable)
    result = _execute(argv, repo, config, None, extra_env or {}, writable)
    target = log_path(config.log_dir, result)
    target.parent.mkdir(parents=True, exist_ok=True)
    # The digest names the raw output; the file, which stays in the repository, is scrubbed.
    target.write_text(
        scrub_known(
            f"$ {render(result.argv)}  (cwd {result.cwd}, exit {result.exit_code})\n{result.output}"
        )
    )
    # Keep the in-memory copy (and what reaches prompts and reports) capped as usual.
    if result.output_chars > shell.DEFAULT_OUTPUT_CAP:
        half = shell.DEFAULT_OUTPUT_CAP // 2
        cut = result.output_chars - 2 * half
        output = (
            result.output[:half]
            + shell.CUT_NOTE.format(cut=cut, total=result.output_chars)
            + result.output[-half:]
        )
        result = result.model_copy(update={"output": output, "truncated": True})
    return result


def parse_test_results(output: str, report: Path, repo: Path) -> TestRun:
    """What a test command left: pytest's JUnit XML report when it wrote one, else cargo's
    output, else pytest's summary line (counts without per-test results)."""
    junit = read_report(report, repo)
    if junit is not None:
        return junit
    cargo = parse_test_output(output)
    if cargo.summaries or cargo.results:
        return cargo
    return parse_summary(output) or cargo


def run_test_command(
    argv: Sequence[str], repo: Path, config: GateConfig
) -> tuple[CommandResult, TestRun]:
    """Run a test command and parse its results, whichever runner it is.

    Any pytest it starts writes a JUnit XML report into a fresh host directory that only this
    command may write (bound into the sandbox, whose own /tmp is private): nothing lands in the
    working tree, and no file left there can pose as the report."""
    with tempfile.TemporaryDirectory(prefix="pe-test-report-") as folder:
        report = Path(folder) / REPORT_NAME
        result = run_gate(argv, repo, config, extra_env=report_env(report), writable=[Path(folder)])
        run = parse_test_results(result.output, report, repo)
    return result, run.model_copy(
        update={
            "command": render(argv),
            "exit_code": result.exit_code,
            "duration_s": result.duration_s,
        }
    )


def output_evidence(
    result: CommandResult, summary: str, *, failed: bool, log_dir: Path | str | None = None
) -> str:
    tail = result.tail(FAIL_TAIL_LINES if failed else PASS_TAIL_LINES)
    timeout = " (killed: timeout)" if result.timed_out else ""
    saved = ""
    if log_dir and log_path(log_dir, result).is_file():
        saved = f", saved as {log_path(log_dir, result)}"
    return (
        f"{summary}{timeout}\n--- output tail ---\n{tail}\n"
        f"--- sha256 {result.output_sha256} of {result.output_chars} chars of output{saved}"
    )


def command_entry(
    check: str,
    result: CommandResult,
    *,
    verdict: Verdict | None = None,
    summary: str = "",
    required: bool = True,
    log_dir: Path | str | None = None,
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
        evidence=output_evidence(result, summary, failed=verdict is Verdict.FAIL, log_dir=log_dir),
        required=required,
    )


NO_COMMAND = (
    "no {check} command for this repository (none detected; set `{key}` in "
    "`.ai/plan-executor.toml` or `[tool.plan-executor]`)"
)


def no_command(check: str, key: str, *, required: bool = False) -> LedgerEntry:
    """The entry for a gate the repository has no command for (a Python package without a
    `src/` to compile, no doc tests): recorded, never a pass."""
    return not_run(check, NO_COMMAND.format(check=check, key=key), required=required)


def simple_gate(check: str, argv: Sequence[str], repo: Path, config: GateConfig) -> LedgerEntry:
    """build / clippy / fmt: pass on exit 0, fail otherwise; not run when there is no command."""
    if not argv:
        return no_command(check, check)
    result = run_gate(argv, repo, config)
    if check == "fmt" and not result.ok:
        # the diff itself, not `exit 1` over a header and an unchanged context line
        result = result.model_copy(update={"output": strip_ansi(result.output)})
        summary = fmt_failure_summary(result.output, repo, result.exit_code)
        return command_entry(check, result, summary=summary, log_dir=config.log_dir)
    return command_entry(check, result, log_dir=config.log_dir)


def not_run(
    check: str, why: str, *, command: str | None = None, required: bool = False
) -> LedgerEntry:
    return LedgerEntry(
        check=check, command=command, verdict=Verdict.NOT_RUN, evidence=why, required=required
    )
