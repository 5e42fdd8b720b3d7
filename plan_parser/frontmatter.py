"""YAML frontmatter, cut off by line position before the Markdown parser sees the body.

Read with `BaseLoader`, so `15:09:38` stays a string instead of YAML 1.1's base-60 integer and
dates stay text. Invalid YAML (7 of 69 corpus blocks) falls back to a loose scan of top-level
`key:` lines; it never fails the parse.
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


def split(lines: list[str]) -> Frontmatter:
    """Find a frontmatter block in `lines` (without line endings) and read it leniently."""
    if not lines or lines[0].rstrip() != "---":
        return Frontmatter()
    for index in range(1, len(lines)):
        if lines[index].rstrip() in ("---", "..."):
            block = lines[1:index]
            break
    else:
        return Frontmatter()
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
        return result
    if isinstance(loaded, dict):
        result.data = {str(key): value for key, value in loaded.items()}
    elif loaded is not None:
        result.valid = False
        result.error = f"frontmatter is a {type(loaded).__name__}, not a mapping"
    return result


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
