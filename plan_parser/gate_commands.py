"""Whether a phase's blast radius is something the gates can run, decided before a run starts.

The gates (`tasks/gates/phase_gates.py`) run each backticked blast-radius command split on `&&`,
grep segments as grep checks, and refuse programs outside the repository's allowed list, pipes
and redirections: plan text is never handed to a shell. A refused command means the phase runs
without the regression tests its author asked for, so validation refuses it up front. The
repository's own rule (its `allowed_programs` / `allowed_subcommands` configuration) is passed in
as a :data:`CommandCheck`; without one, :func:`default_check` applies the default programs.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass

CommandCheck = Callable[[list[str]], str | None]
"""argv → why plan text may not run it, or None when it may (GateConfig.refusal's shape)."""

# Must equal tasks.gates.config.DEFAULT_ALLOWED_PROGRAMS (a test holds them together; this
# package cannot import tasks).
DEFAULT_GATE_PROGRAMS = (
    "cargo",
    "cargo-nextest",
    "just",
    "make",
    "npm",
    "pnpm",
    "yarn",
    "pytest",
    "go",
)
GREP_PROGRAMS = frozenset({"grep", "egrep", "fgrep", "rg"})
SHELL_OPERATORS = frozenset({"|", "||", ";", "&", ">", ">>", "<", "<<", "(", ")"})

# An explicit "no regression tests" (the corpus writes "Manual testing only", "Documentation
# only - ...", "None - documentation only"): recorded as not run, a warning.
_EXPLICIT_NONE = re.compile(
    r"^(?:none|n/?a|not applicable|nothing|manual(?:ly)?(?:\s+(?:testing|tests?|verification))?"
    r"|documentation|docs?|no\s+(?:automated\s+|code\s+|regression\s+|unit\s+)?tests?)\b",
    re.IGNORECASE,
)
# A bare test filter such as `audio::` or `link::detection` (the gates append it to the scoped
# test command).
_BARE_FILTER = re.compile(r"^[A-Za-z_][\w]*::(?:[\w:]*)$")


def default_check(argv: list[str]) -> str | None:
    """The default rule: the program must be one the gates may start."""
    if not argv:
        return "empty command"
    program = argv[0]
    if "=" in program or program not in DEFAULT_GATE_PROGRAMS:
        allowed = ", ".join(sorted(DEFAULT_GATE_PROGRAMS))
        return f"`{program}` is not an allowed gate program (allowed: {allowed})"
    return None


@dataclass(frozen=True)
class BlastProblem:
    code: str
    message: str
    error: bool


def explicitly_none(text: str) -> bool:
    return bool(_EXPLICIT_NONE.match(text.strip()))


def _segments(command: str) -> list[list[str]] | str:
    try:
        lexer = shlex.shlex(command, posix=True, punctuation_chars=";&|<>()")
        lexer.whitespace_split = True
        tokens = list(lexer)
    except ValueError as exc:
        return f"cannot split `{command}`: {exc}"
    segments: list[list[str]] = [[]]
    for token in tokens:
        if token == "&&":
            segments.append([])
        else:
            segments[-1].append(token)
    return [segment for segment in segments if segment]


def command_problem(command: str, check: CommandCheck) -> str | None:
    """Why the gates would not run one backticked command (None when they would)."""
    segments = _segments(command)
    if isinstance(segments, str):
        return segments
    if not segments:
        return "empty command"
    for argv in segments:
        if argv[0] in GREP_PROGRAMS:
            continue
        operators = SHELL_OPERATORS & set(argv)
        if operators:
            shown = " ".join(sorted(operators))
            return (
                f"`{command}` uses shell operators ({shown}); plan text is never given to a shell"
            )
        refusal = check(argv)
        if refusal is not None:
            return refusal
    return None


_HOW = (
    "write the test command in backticks (e.g. `cargo test -p my-crate`), or 'None', "
    "'Manual testing only' or 'Documentation only' when the phase has no regression tests"
)


def blast_problem(
    text: str, commands: list[str], full_suite: bool, check: CommandCheck | None = None
) -> BlastProblem | None:
    """What is wrong with a blast radius as parsed (None when the gates can run it)."""
    if full_suite:
        return None
    if commands:
        for command in commands:
            why = command_problem(command, check or default_check)
            if why is not None:
                return BlastProblem(
                    "E-BLAST-COMMAND",
                    f"blast radius command `{command}` would not run: {why}",
                    error=True,
                )
        return None
    if explicitly_none(text):
        return BlastProblem(
            "W-BLAST-NONRUNNABLE",
            f"blast radius '{text}' names no command: no regression tests",
            error=False,
        )
    if _BARE_FILTER.match(text):
        return None
    return BlastProblem(
        "E-BLAST-NOT-COMMAND",
        f"blast radius '{text[:120]}' is not a command: {_HOW}",
        error=True,
    )
