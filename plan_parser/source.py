"""From bytes on disk to text lines, with every problem reported instead of raised."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from plan_parser.model import Diagnostic, Severity

MAX_BYTES = 1024 * 1024
"""Plans are at most tens of kilobytes (the corpus maximum is 60 KB); a file beyond this is
refused rather than parsed, so a stray log or dump cannot stall a run."""

_BINARY_PROBE = 8192
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")


@dataclass
class Source:
    text: str
    """Decoded text with line endings normalised to `\\n` (what the Markdown parser sees)."""
    raw_lines: list[str]
    """The decoded lines with their original endings: slices of these are exact source text."""
    diagnostics: list[Diagnostic] = field(default_factory=list)
    readable: bool = True
    """False when the content was refused (binary, too large, unreadable): nothing to parse."""


def _error(code: str, message: str, line: int = 1) -> Diagnostic:
    return Diagnostic(code=code, severity=Severity.ERROR, message=message, line=line)


def _line_of_offset(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def split_lines(text: str) -> list[str]:
    return _LINE.findall(text)


def too_large(size: int) -> Source:
    message = (
        f"file is {size:,} bytes, more than the {MAX_BYTES:,}-byte limit for a plan; not parsed"
    )
    return Source("", [], [_error("E-TOO-LARGE", message)], readable=False)


def decode(data: bytes) -> Source:
    """Bytes to a :class:`Source`; empty, binary, oversized and non-UTF-8 input become errors."""
    if len(data) > MAX_BYTES:
        return too_large(len(data))
    nul = data.find(b"\x00", 0, _BINARY_PROBE)
    if nul >= 0:
        message = f"binary content (NUL byte at offset {nul}); not a Markdown plan"
        line = _line_of_offset(data, nul)
        return Source("", [], [_error("E-BINARY", message, line)], readable=False)
    diagnostics: list[Diagnostic] = []
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = _line_of_offset(data, exc.start)
        diagnostics.append(
            _error(
                "E-ENCODING",
                f"invalid UTF-8 at byte offset {exc.start}; undecodable bytes replaced",
                line,
            )
        )
        text = data.decode("utf-8", errors="replace")
    if text.startswith("\ufeff"):
        text = text[1:]
    if not text.strip():
        diagnostics.append(_error("E-EMPTY", "the file is empty"))
    raw_lines = split_lines(text)
    normalised = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "\ufffd")
    return Source(normalised, raw_lines, diagnostics)


def read(path: Path) -> Source:
    try:
        if not path.is_file():
            what = "a directory" if path.is_dir() else "not a regular file"
            if not path.exists():
                what = "no such file"
            return Source("", [], [_error("E-UNREADABLE", f"cannot read: {what}")], readable=False)
        with path.open("rb") as handle:
            data = handle.read(MAX_BYTES + 1)  # bounded: a file may grow while we read it
            if len(data) > MAX_BYTES:
                size = max(path.stat().st_size, len(data))
                return too_large(size)  # refused without reading the rest
    except OSError as exc:
        reason = exc.strerror or exc.__class__.__name__
        return Source("", [], [_error("E-UNREADABLE", f"cannot read: {reason}")], readable=False)
    return decode(data)
