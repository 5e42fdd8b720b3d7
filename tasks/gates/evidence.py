"""Running one gate command and turning what it left behind into a ledger entry."""

from __future__ import annotations

import os
import shlex
from collections.abc import Sequence
from pathlib import Path

from tasks import shell
from tasks.gates.config import GateConfig
from tasks.gates.ledger import LedgerEntry, Verdict
from tasks.secrets import scrub_known
from tasks.shell import CommandResult

PASS_TAIL_LINES = 4
FAIL_TAIL_LINES = 25


def render(argv: Sequence[str]) -> str:
    return shlex.join(list(argv))


def log_path(log_dir: Path | str, result: CommandResult) -> Path:
    return Path(log_dir) / f"{result.output_sha256[:16]}.log"


def _execute(argv: Sequence[str], repo: Path, config: GateConfig, cap: int | None) -> CommandResult:
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
                writable_paths=[Path(target_dir)] if target_dir else [],
                extra_env={"CARGO_TARGET_DIR": target_dir} if target_dir else {},
            ),
        )
        if sandbox.sandboxed:
            result = sandbox.run(shlex.join(list(argv)), timeout_s=config.timeout_s, output_cap=cap)
            return result.model_copy(update={"argv": list(argv)})
    env = None
    if config.target_dir:
        env = {**os.environ, "PATH": shell.search_path(), "CARGO_TARGET_DIR": config.target_dir}
    return shell.run(list(argv), cwd=repo, env=env, timeout_s=config.timeout_s, output_cap=cap)


def run_gate(argv: Sequence[str], repo: Path, config: GateConfig) -> CommandResult:
    """Run a gate command (an argument vector, never a shell string) in the repository; with
    ``config.log_dir`` the full output is saved there, named by its digest."""
    if not config.log_dir:
        return _execute(argv, repo, config, shell.DEFAULT_OUTPUT_CAP)
    result = _execute(argv, repo, config, None)
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


def simple_gate(check: str, argv: Sequence[str], repo: Path, config: GateConfig) -> LedgerEntry:
    """build / clippy / fmt: pass on exit 0, fail otherwise."""
    return command_entry(check, run_gate(argv, repo, config), log_dir=config.log_dir)


def not_run(
    check: str, why: str, *, command: str | None = None, required: bool = False
) -> LedgerEntry:
    return LedgerEntry(
        check=check, command=command, verdict=Verdict.NOT_RUN, evidence=why, required=required
    )
