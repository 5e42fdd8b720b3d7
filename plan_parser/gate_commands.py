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
from collections.abc import Callable, Collection
from dataclasses import dataclass

CommandCheck = Callable[[list[str]], str | None]
"""argv → why plan text may not run it, or None when it may (GateConfig.refusal's shape)."""

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
"""Programs a plan's blast-radius command may start with, unless the repository's gate
configuration says otherwise (`GateConfig.allowed_programs` defaults to these). Anything else
(prose, pipes, `&& grep`) is recorded as not run, never passed: plan text is never handed to a
shell. The one list: the gates (`tasks.gates.config`) and the parser both read it."""
GREP_PROGRAMS = frozenset({"grep", "egrep", "fgrep", "rg"})
"""Programs a blast-radius segment or a criterion may name to be run as a grep check."""
SHELL_OPERATORS = frozenset({"|", "||", ";", "&", ">", ">>", "<", "<<", "(", ")"})
"""Tokens that would need a shell, in one `&&`-separated segment (:func:`split_segments` has
already taken the `&&` out)."""

EXPLICIT_NO_TESTS = re.compile(
    r"^(?:none|n/?a|not applicable|nothing|manual(?:ly)?(?:\s+(?:testing|tests?|verification))?"
    r"|documentation|docs?|no\s+(?:automated\s+|code\s+|regression\s+|unit\s+)?tests?)\b",
    re.IGNORECASE,
)
"""An explicit "no regression tests" (the corpus writes "Manual testing only", "Documentation
only - ...", "None - documentation only"): recorded as not run, a warning at validation, and at
gate time never a test filter (`cargo test None` would select nothing and fail the phase)."""
NAMED_TEST_PATH = re.compile(r"^[A-Za-z_][\w]*::(?:[\w:]*)$")
"""A blast radius that validation accepts without a command: a test path such as `audio::` or
`link::detection`. The `::` is what tells it from a prose word ("Minimal", "Tests"), which a plan
author should have written as a command; the gates then run it as an
:data:`APPENDABLE_TEST_FILTER`, which every text matching this also is."""
APPENDABLE_TEST_FILTER = re.compile(r"^[\w:]+$")
"""A blast radius without a command that the gates, at gate time, append as one argument to the
scoped test command (`GateConfig.test_filter`: `cargo test audio::`, `pytest -q -k halve`).
A different question from :data:`NAMED_TEST_PATH`'s, so a looser pattern: any one word without
a space or a shell character is a safe single argument, whether or not validation would have
taken it for a test path (a phase built by hand, or a plan run despite its diagnostics)."""


def program_refusal(argv: list[str], allowed_programs: Collection[str]) -> str | None:
    """Why ``argv`` does not start with one of ``allowed_programs`` (None when it does); an
    assignment (`FOO=1 cargo test`) is never a program."""
    if not argv:
        return "empty command"
    program = argv[0]
    if "=" in program or program not in allowed_programs:
        allowed = ", ".join(sorted(allowed_programs))
        return f"`{program}` is not an allowed gate program (allowed: {allowed})"
    return None


def default_check(argv: list[str]) -> str | None:
    """The default rule: the program must be one the gates may start."""
    return program_refusal(argv, DEFAULT_GATE_PROGRAMS)


@dataclass(frozen=True)
class BlastProblem:
    code: str
    message: str
    error: bool


def explicitly_none(text: str) -> bool:
    return bool(EXPLICIT_NO_TESTS.match(text.strip()))


def shell_words(command: str) -> list[str]:
    """``command`` split like a POSIX shell would, with `;&|<>()` runs as their own tokens (`&&`,
    `|`, `>>`) so that :data:`SHELL_OPERATORS` finds them; ValueError on an unclosed quote."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars=";&|<>()")
    lexer.whitespace_split = True
    return list(lexer)


def split_segments(command: str) -> list[list[str]] | str:
    """`cargo test a && grep x f` → [[cargo, test, a], [grep, x, f]]; a string says why not.
    Nothing is ever given to a shell: each segment runs as an argument vector, or not at all."""
    try:
        tokens = shell_words(command)
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
    segments = split_segments(command)
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
    if NAMED_TEST_PATH.match(text):
        return None
    return BlastProblem(
        "E-BLAST-NOT-COMMAND",
        f"blast radius '{text[:120]}' is not a command: {_HOW}",
        error=True,
    )
