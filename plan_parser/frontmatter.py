"""YAML frontmatter, cut off by line position before the Markdown parser sees the body.

Read with `BaseLoader`, so `15:09:38` stays a string instead of YAML 1.1's base-60 integer and
dates stay text. Invalid YAML whose lines are still `key:` lines and their indented continuations
(7 of 69 corpus blocks: unquoted multi-line values) falls back to a loose scan of those keys, a
warning. A block that is not YAML at all is an error with its line (`problem`): a line that is
neither a key nor a continuation (usually Markdown swallowed because the closing `---` is missing),
a list or scalar instead of a mapping, or an opening `---` followed by keys and never closed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import yaml

try:
    _Loader: type = yaml.CBaseLoader
except AttributeError:  # pragma: no cover - PyYAML without libyaml
    _Loader = yaml.BaseLoader

_TOP_KEY = re.compile(r"^([A-Za-z_][\w-]*)\s*:(.*)$")


@dataclass
class Frontmatter:
    raw: str | None = None
    data: dict[str, object] = field(default_factory=dict)
    valid: bool = True
    error: str | None = None
    end_line: int = 0
    """1-based line of the closing `---` (0 without frontmatter): the body starts after it."""
    key_lines: dict[str, int] = field(default_factory=dict)
    error_line: int = 1
    """File line where the YAML error was found (1 when unknown)."""
    problem: str | None = None
    """Set when the block is not frontmatter at all (an error, not a warning): why."""
    problem_code: str = "E-FM-NOT-YAML"


# Column-0 lines the loose scan tolerates besides `key:` lines: list items and `#comments`
# without a space. `# Title` could be a YAML comment, but in a block that already failed to load
# it is far more likely a Markdown heading of a swallowed plan: it is reported, not tolerated.
_COMMENT_OR_ITEM = re.compile(r"^(?:#(?!#{0,5}\s+\S)|- |-$)")


def split(lines: list[str]) -> Frontmatter:
    """Find a frontmatter block in `lines` (without line endings) and read it leniently."""
    if not lines or lines[0].rstrip() != "---":
        return Frontmatter()
    for index in range(1, len(lines)):
        if lines[index].rstrip() in ("---", "..."):
            block = lines[1:index]
            break
    else:
        return _unterminated(lines)
    raw = "\n".join(block)
    key_lines = {}
    for offset, line in enumerate(block):
        match = _TOP_KEY.match(line)
        if match and match.group(1) not in key_lines:
            key_lines[match.group(1)] = offset + 2
    result = Frontmatter(raw=raw, end_line=index + 1, key_lines=key_lines)
    try:
        loaded = yaml.load(raw, Loader=_Loader) if raw.strip() else {}
    except yaml.YAMLError as exc:
        result.valid = False
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            result.error_line = int(mark.line) + 2  # the block starts on file line 2
        problem = getattr(exc, "problem", None) or exc.__class__.__name__
        result.error = f"{problem} at line {result.error_line}" if mark else str(problem)
        result.data = dict(loose_scan(block))
        stray = _first_stray_line(block)
        if stray is not None:
            result.error_line = stray + 2
            result.problem = (
                f"frontmatter (lines 1-{index + 1}) is not YAML: line {stray + 2} is neither a "
                f"`key:` line nor an indented continuation ({block[stray].strip()[:60]!r}); "
                "is the closing `---` missing?"
            )
        return result
    if isinstance(loaded, dict):
        result.data = {str(key): value for key, value in loaded.items()}
    elif loaded is not None:
        result.valid = False
        what = "a list" if isinstance(loaded, list) else f"a {type(loaded).__name__}"
        result.error = f"frontmatter is {what}, not a mapping"
        result.error_line = 2
        result.problem_code = "E-FM-NOT-MAPPING"
        result.problem = (
            f"frontmatter (lines 1-{index + 1}) is {what}, not a mapping of `key: value` lines"
        )
    return result


def _unterminated(lines: list[str]) -> Frontmatter:
    """An opening `---` followed by a `key:` line and never closed: frontmatter that swallows
    the whole plan. A `---` followed by anything else is a Markdown rule, not frontmatter."""
    if len(lines) < 2 or not _TOP_KEY.match(lines[1]):
        return Frontmatter()
    return Frontmatter(
        valid=False,
        error="never closed",
        error_line=1,
        problem="frontmatter opened at line 1 is never closed: add a `---` line after its keys",
        problem_code="E-FM-UNTERMINATED",
    )


def _first_stray_line(block: list[str]) -> int | None:
    """Index of the first line that the loose key scan cannot place (None when all fit)."""
    for offset, line in enumerate(block):
        if not line.strip() or line.startswith((" ", "\t")):
            continue
        if _TOP_KEY.match(line) or _COMMENT_OR_ITEM.match(line):
            continue
        return offset
    return None


def loose_scan(block: list[str]) -> dict[str, str]:
    """Top-level `key: value` lines, each with its indented continuation lines, as raw text."""
    data: dict[str, str] = {}
    current: str | None = None
    for line in block:
        match = _TOP_KEY.match(line)
        if match:
            current = match.group(1)
            data[current] = match.group(2).strip()
        elif current is not None and (line.startswith((" ", "\t")) or not line.strip()):
            data[current] = (data[current] + "\n" + line.strip()).strip()
    return {key: _unquote(value) for key, value in data.items()}


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value
