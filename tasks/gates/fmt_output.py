"""What a failed format check says, in a few lines: where the code is not formatted and the
changed lines themselves.

`cargo fmt --check` prints one hunk per place: `Diff in /abs/path/src/lib.rs:14:` and a unified
diff body whose context lines start with a space and whose changes start with `-` / `+` (coloured
with ANSI escapes when it thinks it has a terminal). The ledger's first lines used to show the
header and an unchanged context line; the summary keeps only the header (as a path relative to
the repository) and the `-` / `+` lines. `ruff format --check` prints `Would reformat: PATH`
lines, kept as they are.
"""

from __future__ import annotations

import re
from pathlib import Path

MAX_DIFF_LINES = 12
"""Changed lines kept in the summary; the ledger's output tail and saved log keep the rest."""
MAX_LINE_CHARS = 160

_ANSI = re.compile(r"\x1b(?:\[[0-9;?]*[A-Za-z]|\([A-Za-z0-9]|[=>])")
_CARGO_HUNK = re.compile(r"^Diff in (?P<path>.+?)(?::(?P<line>\d+):| at line (?P<at>\d+):)\s*$")
_RUFF_FILE = re.compile(r"^Would reformat: (?P<path>.+?)\s*$")


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


def _without_repo_prefix(path: str, repo: Path | None) -> str:
    """A path printed by the formatter, shortened by the repository's prefix as text (either
    spelling of the repository: the tool may print the resolved one). Not `plan_parser.paths`:
    this is text from another tool's output, cut as printed, never normalised or resolved."""
    if repo is None:
        return path
    for base in {str(repo), str(repo.resolve())}:
        prefix = base.rstrip("/") + "/"
        if path.startswith(prefix):
            return path[len(prefix) :]
    return path


def _clip(line: str) -> str:
    return line if len(line) <= MAX_LINE_CHARS else line[: MAX_LINE_CHARS - 1] + "…"


def fmt_failure_summary(output: str, repo: Path | None = None, exit_code: int | None = 1) -> str:
    """The evidence summary of a failed format check (several lines), or "" when the output is
    not one this module knows (the caller keeps its plain `exit N`)."""
    places: list[str] = []
    changed: list[str] = []
    for raw in strip_ansi(output).splitlines():
        line = raw.rstrip()
        hunk = _CARGO_HUNK.match(line)
        if hunk:
            place = f"{_without_repo_prefix(hunk['path'], repo)}:{hunk['line'] or hunk['at']}"
            places.append(place)
            if len(places) > 1:  # the first place is on the summary's first line
                changed.append(f"{place}:")
            continue
        ruff = _RUFF_FILE.match(line)
        if ruff:
            places.append(_without_repo_prefix(ruff["path"], repo))
            continue
        if places and line[:1] in ("-", "+") and not line.startswith(("---", "+++")):
            changed.append(_clip(line))
    if not places:
        return ""
    head = f"exit {exit_code}; not formatted: {places[0]}"
    if len(places) > 1:
        head += f" and {len(places) - 1} more place(s)"
    kept = changed[:MAX_DIFF_LINES]
    if len(changed) > len(kept):
        kept.append(f"… {len(changed) - len(kept)} more line(s) in the output tail")
    return "\n".join([head, *kept])
