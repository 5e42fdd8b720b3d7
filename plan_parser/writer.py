"""The plan-file writer: the only code in the project that writes a plan file.

Each public method is one locked read-modify-write:

1. an exclusive `fcntl.flock` on a sibling lock file `.<name>.lock` (serialises threads and
   processes; the kernel drops it when a holder dies, even by SIGKILL);
2. read the current bytes (strict UTF-8: a file that is not UTF-8 is never rewritten);
3. compute the new text (pure functions below: `apply_*`, `remove_execution_state`);
4. write a temporary file `.<name>.XXXXXXXX.tmp` in the same folder, flush, fsync, `os.replace`
   it over the plan, fsync the folder. A crash before the rename leaves the old file intact; a
   stray temporary file is never the plan and is removed by the next write.

Every byte outside the replaced parts stays identical: line endings, a missing final newline,
frontmatter quoting. What plan-executor changes besides its own section (the status line, where
the section went) is recorded on a comment line after the section's block, so
:meth:`PlanFileWriter.clear_execution_state` gives back the original file byte for byte.

Layout written at the end of the file (or in place of a hand-written checkpoint section)::

    <one blank line>
    ## Execution Checkpoints
    <blank>
    ```yaml
    - phase_1:
        status: complete
        completed_at: 2025-12-19T14:30:00Z
    - "phase_2.5":
        status: failed
        error: "Type error in parser.rs:42"
    ```
    <!-- plan-executor: {"placement":"appended",...,"tail_lines":"5"} -->
    <blank>
    ## Implementation Summary
    <blank>
    ...markdown...

The record (JSON, one line; rendered Markdown hides it) holds `placement` (appended /
replaced), the `separator` added before the heading or the hand-written `section_before`, the
status as it was (`status_where`, `status_before`, `status_text_before`, blank lines added around
an added status line), whether a summary follows, and `tail_lines`: how many lines after the
record are ours. Files written by older versions keep the record as the block's first list item
(`- plan_executor:`); they are read as before and get the comment at their next write.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

import yaml

from plan_parser.checkpoints import (
    CHECKPOINTS_HEADING,
    PHASE_KEY_PREFIX,
    SUMMARY_HEADING,
    ExecutionState,
    PhaseCheckpoint,
    PlanFileError,
    SectionLocation,
    body_start,
    decode_plan,
    first_h2,
    frontmatter_end,
    headings,
    is_blank,
    iter_outside_fences,
    line_ending,
    locate_section,
    read_bytes,
    render_record_comment,
    scan_fences,
    split_lines,
    state_from_location,
    strip_eol,
)
from plan_parser.model import id_key

__all__ = [
    "PlanFileWriter",
    "PlanWriteError",
    "apply_phases",
    "apply_status",
    "apply_summary",
    "remove_execution_state",
]


class PlanWriteError(PlanFileError):
    """The plan file cannot be changed; the message names the file (and the line when there is one).
    The file is left untouched."""


# --------------------------------------------------------------------------------------------
# YAML rendering (our own, so that every value is on one line and reads back exactly)
# --------------------------------------------------------------------------------------------

_BARE_VALUE_RE = re.compile(r"[A-Za-z0-9_./][A-Za-z0-9_./+\-:]*")
_BARE_KEY_RE = re.compile(r"[A-Za-z0-9_]+")
_LONG_KEY = 200  # YAML implicit keys must stay under 1024 characters; longer use `? key`
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}

_Node = str | list[str] | dict[str, str]


def _printable(char: str) -> bool:
    """Characters PyYAML's reader takes raw inside a double-quoted scalar without folding."""
    code = ord(char)
    if 0x20 <= code <= 0x7E:
        return True
    if code in (0x2028, 0x2029, 0xFEFF):
        return False
    return 0xA0 <= code <= 0xD7FF or 0xE000 <= code <= 0xFFFD or 0x10000 <= code <= 0x10FFFF


def yaml_quote(value: str) -> str:
    """A double-quoted YAML scalar on one line: newlines, controls and odd code points escaped."""
    out = ['"']
    for char in value:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif _printable(char):
            out.append(char)
        elif ord(char) <= 0xFF:
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(f"\\u{ord(char):04x}")
    out.append('"')
    return "".join(out)


def yaml_scalar(value: str) -> str:
    if _BARE_VALUE_RE.fullmatch(value) and not value.endswith(":"):
        return value
    return yaml_quote(value)


def yaml_key(key: str) -> str:
    return key if _BARE_KEY_RE.fullmatch(key) else yaml_quote(key)


def _emit(key: str, node: _Node, indent: int, out: list[str]) -> None:
    pad = " " * indent
    rendered = yaml_key(key)
    long_key = len(rendered) > _LONG_KEY
    if isinstance(node, str):
        value = yaml_scalar(node)
        out.extend(
            [f"{pad}? {rendered}", f"{pad}: {value}"] if long_key else [f"{pad}{rendered}: {value}"]
        )
        return
    if not node:
        empty = "[]" if isinstance(node, list) else "{}"
        out.extend(
            [f"{pad}? {rendered}", f"{pad}: {empty}"] if long_key else [f"{pad}{rendered}: {empty}"]
        )
        return
    out.extend([f"{pad}? {rendered}", f"{pad}:"] if long_key else [f"{pad}{rendered}:"])
    if isinstance(node, list):
        out.extend(f"{pad}  - {yaml_scalar(item)}" for item in node)
    else:
        for sub_key, sub_value in node.items():
            _emit(sub_key, sub_value, indent + 2, out)


def _emit_item(key: str, fields: list[tuple[str, _Node]], out: list[str]) -> None:
    rendered = yaml_key(key)
    if len(rendered) > _LONG_KEY:
        out.extend([f"- ? {rendered}", "  :"])
    else:
        out.append(f"- {rendered}:")
    for name, node in fields:
        _emit(name, node, 4, out)


def _checkpoint_fields(checkpoint: PhaseCheckpoint) -> list[tuple[str, _Node]]:
    fields: list[tuple[str, _Node]] = [("status", checkpoint.status)]
    for name in ("started_at", "completed_at", "failed_at", "error", "last_successful_step"):
        value = getattr(checkpoint, name)
        if value is not None:
            fields.append((name, value))
    if checkpoint.artifacts:
        fields.append(("artifacts", list(checkpoint.artifacts)))
    for name in ("phase_hash", "flow_run_id"):
        value = getattr(checkpoint, name)
        if value is not None:
            fields.append((name, value))
    if checkpoint.tokens is not None:
        fields.append(("tokens", {key: str(count) for key, count in checkpoint.tokens.items()}))
    if checkpoint.cost_usd is not None:
        fields.append(("cost_usd", f"{checkpoint.cost_usd:.4f}"))
    if checkpoint.ledger:
        fields.append(("ledger", list(checkpoint.ledger)))
    fields.extend(checkpoint.extra.items())
    return fields


_RECORD_ORDER = (
    "placement",
    "separator",
    "section_before",
    "status_where",
    "status_before",
    "status_text_before",
    "status_blank_before",
    "status_blank_after",
    "summary",
    "tail_lines",
)


def render_block(phases: Mapping[str, PhaseCheckpoint], record: Mapping[str, str], eol: str) -> str:
    """Heading, blank line, the fenced YAML block of the phases and the record's comment line,
    each line ending in `eol`. The block holds only what a person reads: the phases."""
    out = [CHECKPOINTS_HEADING, "", "```yaml"]
    for phase_id, checkpoint in phases.items():
        _emit_item(PHASE_KEY_PREFIX + phase_id, _checkpoint_fields(checkpoint), out)
    out.append("```")
    ordered = [key for key in _RECORD_ORDER if key in record]
    ordered += sorted(key for key in record if key not in _RECORD_ORDER)
    out.append(render_record_comment({key: record[key] for key in ordered}))
    return "".join(line + eol for line in out)


# --------------------------------------------------------------------------------------------
# The section
# --------------------------------------------------------------------------------------------


class _Doc:
    """A plan's text with its checkpoint section read."""

    def __init__(self, text: str) -> None:
        self.lines = split_lines(text)
        self.eol = line_ending(self.lines)
        self.location: SectionLocation | None = locate_section(self.lines)
        self.phases: dict[str, PhaseCheckpoint] = {}
        self.record: dict[str, str] = {}
        if self.location is not None:
            self.phases = dict(self.location.entries)
            if self.location.ours:
                self.record = dict(self.location.record)

    @property
    def text(self) -> str:
        return "".join(self.lines)

    def existing_tail(self) -> str:
        """Everything of ours after the closing fence (our summary), kept verbatim."""
        location = self.location
        if location is None or not location.ours or location.tail_start is None:
            return ""
        return "".join(self.lines[location.tail_start : location.end])

    def write(self, tail: str | None = None) -> str:
        """The text with our section (re)written from `phases` and `record`.

        `tail` is what follows the record's comment line (None: keep ours, or nothing for a new
        section).
        """
        location = self.location
        lines = self.lines
        if location is not None and location.ours:
            start, end = location.start, location.end
            head = "".join(lines[:start])
            tail = self.existing_tail() if tail is None else tail
        elif location is not None:
            # A hand-written section: replace it where it is, keeping it for clear_execution_state.
            start, end = location.start, location.end
            head = "".join(lines[:start])
            self.record = {
                "placement": "replaced",
                "section_before": "".join(lines[start:end]),
                **self._status_record_only(),
            }
            tail = self.eol if tail is None and self.needs_gap(end) else (tail or "")
        else:
            text = self.text
            eol = _eol_between(text, "#", self.eol)
            if text == "":
                separator = ""
            elif text.endswith(("\n", "\r")):
                separator = eol
            else:
                separator = eol + eol
            self.record = {
                "placement": "appended",
                "separator": separator,
                **self._status_record_only(),
            }
            start = end = len(lines)
            head = text + separator
            tail = tail or ""
        rest = "".join(lines[end:])
        # Counted so that the end of what is ours is known exactly when the file is read again.
        self.record["tail_lines"] = str(len(split_lines(tail)))
        ours = render_block(self.phases, self.record, self.eol) + tail
        if ours.endswith("\r") and rest.startswith("\n"):
            ours += "\n"  # a lone CR before an LF line would fuse the two lines
        return head + ours + rest

    def _status_record_only(self) -> dict[str, str]:
        return {key: value for key, value in self.record.items() if key.startswith("status_")}

    def needs_gap(self, index: int) -> bool:
        """Whether text at `index` needs a blank line before it (it is not one itself)."""
        return index < len(self.lines) and not is_blank(self.lines[index])


def _eol_between(before: str, after: str, eol: str) -> str:
    """The line ending for lines inserted between `before` and `after`: `eol`, unless it would
    fuse with a neighbouring lone CR (`\r` + `\n`) into one ending and merge two lines."""
    if (before.endswith("\r") and eol.startswith("\n")) or (eol == "\r" and after.startswith("\n")):
        return "\r\n"
    return eol


def _summary_body(markdown: str, eol: str) -> str:
    """The caller's markdown made safe to sit inside our section: H1/H2 demoted to H3 (readers
    would take them for sections of the plan), an unclosed fence closed, and `---` / `...` lines
    (which could close an unterminated frontmatter block at the top) written as `***` / `\\...`."""
    lines = [strip_eol(line) for line in split_lines(markdown.replace("\r\n", "\n"))]
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    for index in iter_outside_fences(lines, 0):
        lines[index] = re.sub(r"^( {0,3})#{1,2}(?=[ \t]|$)", r"\1###", lines[index])
    for index, line in enumerate(lines):
        if line.rstrip() == "---":
            lines[index] = "***"
        elif line.rstrip() == "...":
            lines[index] = "\\..."
    _, open_fence = scan_fences(lines, 0)
    if open_fence is not None:
        lines.append(open_fence)
    return "".join(line + eol for line in lines)


def _summary_tail(markdown: str, eol: str, followed: bool) -> str:
    body = _summary_body(markdown, eol)
    tail = eol + SUMMARY_HEADING + eol + (eol + body if body else "")
    return tail + (eol if followed else "")


# --------------------------------------------------------------------------------------------
# The status line
# --------------------------------------------------------------------------------------------

_BODY_STATUS_RE = re.compile(r"^( {0,3}\*\*Status(?::\*\*|\*\*:)[ \t]*)(.*)$")
_FM_STATUS_RE = re.compile(r"^status[ \t]*:([ \t]*)(.*)$")
_YAML_WORDS = {"true", "false", "yes", "no", "on", "off", "null", "y", "n", "~"}
_SAFE_BARE_STATUS_RE = re.compile(r"[A-Za-z][A-Za-z0-9_.\-/]*(?: [A-Za-z0-9_.\-/]+)*")


def _body_status_line(lines: list[str]) -> int | None:
    for index in iter_outside_fences(lines, body_start(lines), first_h2(lines)):
        if _BODY_STATUS_RE.match(strip_eol(lines[index])):
            return index
    return None


def _frontmatter_status(lines: list[str]) -> tuple[int, int] | None:
    """[first, stop) lines of the top-level `status:` entry in the frontmatter (with any indented
    continuation lines of a block or multi-line value)."""
    close = frontmatter_end(lines)
    if close is None:
        return None
    for index in range(1, close):
        if _FM_STATUS_RE.match(strip_eol(lines[index])):
            stop = index + 1
            probe = stop
            while probe < close:
                if lines[probe][:1] in (" ", "\t"):
                    stop = probe = probe + 1
                elif is_blank(lines[probe]):
                    probe += 1
                else:
                    break
            return index, stop
    return None


def _quoted_token_end(rest: str) -> int:
    """Length of the quoted scalar at the start of `rest` (0 when it is not closed)."""
    quote = rest[0]
    index = 1
    while index < len(rest):
        char = rest[index]
        if quote == '"' and char == "\\":
            index += 2
            continue
        if char == quote:
            if quote == "'" and rest[index + 1 : index + 2] == "'":
                index += 2
                continue
            return index + 1
        index += 1
    return 0


def _frontmatter_line(old_region: list[str], status: str) -> str:
    """`status: <new>` in the quoting style of the old value, keeping a trailing comment."""
    first = strip_eol(old_region[0])
    eol = old_region[-1][len(strip_eol(old_region[-1])) :]
    match = _FM_STATUS_RE.match(first)
    assert match is not None
    head = first[: match.start(1)]
    space = match.group(1) or " "
    rest = match.group(2)
    suffix = ""
    if len(old_region) == 1 and rest[:1] in ('"', "'") and _quoted_token_end(rest):
        end = _quoted_token_end(rest)
        suffix = rest[end:]
        if rest[0] == "'":
            return f"{head}{space}'{status.replace(chr(39), chr(39) * 2)}'{suffix}{eol}"
        return f"{head}{space}{yaml_quote(status)}{suffix}{eol}"
    bare = len(old_region) == 1 and rest and rest[0] not in "|>&*!%@`[{'\"#"
    if bare:
        comment = re.search(r"[ \t]+#.*$", rest)
        suffix = comment.group(0) if comment else ""
        if _SAFE_BARE_STATUS_RE.fullmatch(status) and status.lower() not in _YAML_WORDS:
            return f"{head}{space}{status}{suffix}{eol}"
    return f"{head}{space}{yaml_quote(status)}{suffix}{eol}"


def _frontmatter_value(region: list[str]) -> str:
    try:
        data = yaml.load("".join(region), Loader=yaml.BaseLoader)  # noqa: S506
    except yaml.YAMLError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("status"), str):
        return str(data["status"]).strip()
    match = _FM_STATUS_RE.match(strip_eol(region[0]))
    return match.group(2).strip().strip("\"'") if match else ""


def _set_status_lines(doc: _Doc, status: str) -> None:
    """Change (or add) the status in `doc.lines`, recording the original in `doc.record`."""
    lines = doc.lines
    eol = doc.eol
    record = doc.record
    where = record.get("status_where")
    if where == "body":
        index = _body_status_line(lines)
        if index is not None:
            lines[index] = _body_line(lines[index], status, eol)
            return
    elif where == "frontmatter":
        region = _frontmatter_status(lines)
        if region is not None:
            lines[region[0] : region[1]] = [_frontmatter_line(lines[region[0] : region[1]], status)]
            return
    for key in [key for key in record if key.startswith("status_")]:
        del record[key]  # our status line is gone (edited by hand): start afresh
    index = _body_status_line(lines)
    if index is not None:
        match = _BODY_STATUS_RE.match(strip_eol(lines[index]))
        assert match is not None
        record.update(status_where="body", status_before=match.group(2).strip())
        record.update(status_text_before=lines[index])
        lines[index] = _body_line(lines[index], status, eol)
        return
    region = _frontmatter_status(lines)
    if region is not None:
        old = lines[region[0] : region[1]]
        record.update(status_where="frontmatter", status_before=_frontmatter_value(old))
        record.update(status_text_before="".join(old))
        lines[region[0] : region[1]] = [_frontmatter_line(old, status)]
        return
    close = frontmatter_end(lines)
    if close is not None:
        record.update(status_where="frontmatter", status_text_before="")
        eol = _eol_between(lines[close - 1], lines[close], eol)
        lines.insert(close, f"status: {yaml_quote(status)}{eol}")
        return
    _insert_body_status(doc, status)


def _body_line(old: str, status: str, eol: str) -> str:
    match = _BODY_STATUS_RE.match(strip_eol(old))
    assert match is not None
    prefix = match.group(1)
    if not prefix.endswith((" ", "\t")):
        prefix += " "
    ending = old[len(strip_eol(old)) :] or eol
    return f"{prefix}{status}{ending}"


def _insert_body_status(doc: _Doc, status: str) -> None:
    """A plan with no status anywhere: add `**Status:**` below the title (or at the top)."""
    lines = doc.lines
    eol = doc.eol
    start = body_start(lines)
    stop = first_h2(lines)
    title = next((h.index for h in headings(lines, start, stop) if h.level == 1), None)
    blank_before = 0
    if title is None:
        at = start
    elif title + 1 < len(lines) and is_blank(lines[title + 1]):
        at = title + 2
    else:
        at = title + 1
        blank_before = 1
    blank_after = 1 if at < len(lines) and not is_blank(lines[at]) else 0
    eol = _eol_between(lines[at - 1] if at > 0 else "", lines[at] if at < len(lines) else "", eol)
    new_line = f"**Status:** {status}{eol}"
    lines[at:at] = [eol] * blank_before + [new_line] + [eol] * blank_after
    doc.record.update(
        status_where="body",
        status_text_before="",
        status_blank_before=str(blank_before),
        status_blank_after=str(blank_after),
    )


def _restore_status_lines(doc: _Doc) -> None:
    record = doc.record
    lines = doc.lines
    where = record.get("status_where")
    original = split_lines(record.get("status_text_before", ""))
    if where == "body":
        index = _body_status_line(lines)
        if index is None:
            return
        before = int(record.get("status_blank_before", "0") or 0)
        after = int(record.get("status_blank_after", "0") or 0)
        first = (
            index - before
            if index - before >= 0 and all(map(is_blank, lines[index - before : index]))
            else index
        )
        stop = index + 1 + after
        if not all(map(is_blank, lines[index + 1 : stop])) or stop > len(lines):
            stop = index + 1
        lines[first:stop] = original
    elif where == "frontmatter":
        region = _frontmatter_status(lines)
        if region is not None:
            lines[region[0] : region[1]] = original


# --------------------------------------------------------------------------------------------
# Pure text transformations (one per public write)
# --------------------------------------------------------------------------------------------


def _reread(doc: _Doc) -> _Doc:
    """`doc`'s edited lines read afresh (to find the section again), keeping its phases and record."""
    fresh = _Doc(doc.text)
    fresh.phases = doc.phases
    fresh.record = doc.record
    return fresh


def apply_phases(text: str, checkpoints: Iterable[PhaseCheckpoint]) -> str:
    """The text with these phases' entries replaced (or added); the other entries are kept."""
    batch = list(checkpoints)
    if not batch:
        return text
    doc = _Doc(text)
    for checkpoint in batch:
        _put(doc.phases, checkpoint)
    return doc.write()


def _put(phases: dict[str, PhaseCheckpoint], checkpoint: PhaseCheckpoint) -> None:
    wanted = id_key(checkpoint.phase_id)
    for key in [key for key in phases if key != checkpoint.phase_id and id_key(key) == wanted]:
        del phases[key]  # same phase spelled differently (`1a` / `1A`): one entry per phase
    phases[checkpoint.phase_id] = checkpoint


def apply_status(text: str, status: str) -> str:
    """The text with the plan status set (a status is one line: line breaks become spaces)."""
    status = status.replace("\r\n", " ").replace("\r", " ").replace("\n", " ").strip()
    placed = _Doc(_Doc(text).write())  # the section first: a line added below then has an EOL
    _set_status_lines(placed, status)
    return _reread(placed).write()


def apply_summary(text: str, markdown: str) -> str:
    """The text with plan-executor's `## Implementation Summary` written after its section."""
    doc = _Doc(text)
    if doc.location is None or not doc.location.ours:
        doc = _Doc(doc.write())
    assert doc.location is not None
    doc.record["summary"] = "true"
    return doc.write(tail=_summary_tail(markdown, doc.eol, doc.needs_gap(doc.location.end)))


def remove_execution_state(text: str) -> str:
    """The text without plan-executor's section and summary, with the status restored."""
    doc = _Doc(text)
    if doc.location is None or not doc.location.ours:
        return text
    record = dict(doc.record)
    _restore_status_lines(doc)
    doc = _Doc(doc.text)
    location = doc.location
    if location is None or not location.ours:
        return doc.text
    lines = doc.lines
    head = "".join(lines[: location.start])
    rest = "".join(lines[location.end :])
    if record.get("placement") == "replaced":
        return head + record.get("section_before", "") + rest
    separator = record.get("separator", "")
    if separator and head.endswith(separator):
        head = head[: len(head) - len(separator)]
    return head + rest


# --------------------------------------------------------------------------------------------
# The writer
# --------------------------------------------------------------------------------------------


_OPEN_LOCK_FDS: set[int] = set()
"""Lock-file descriptors this process has open (held or waiting)."""


def _close_inherited_lock_fds() -> None:
    """In a child made by fork(), close the lock descriptors copied from the parent: the child
    would otherwise keep the parent's flock alive after the parent released it, and dead-lock
    the next writer (the child itself included)."""
    for fd in list(_OPEN_LOCK_FDS):
        with contextlib.suppress(OSError):
            os.close(fd)
    _OPEN_LOCK_FDS.clear()


os.register_at_fork(after_in_child=_close_inherited_lock_fds)


def same_file(fd: int, path: Path) -> bool:
    """Whether the open descriptor ``fd`` is still the file at ``path`` (same device and inode):
    a lock file replaced or removed after it was opened is no longer the lock."""
    try:
        on_disk = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (on_disk.st_dev, on_disk.st_ino) == (held.st_dev, held.st_ino)


def _release(fd: int) -> None:
    _OPEN_LOCK_FDS.discard(fd)
    os.close(fd)  # closing the descriptor releases the lock


class PlanFileWriter:
    """Writes plan-executor's state into one plan file; safe across threads and processes."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    # public writes ---------------------------------------------------------------------------

    def set_phase(self, checkpoint: PhaseCheckpoint) -> None:
        """Replace (or add) this phase's entry; the others are kept."""
        self.set_phases([checkpoint])

    def set_phases(self, checkpoints: Iterable[PhaseCheckpoint]) -> None:
        batch = list(checkpoints)
        self._transaction(lambda text: apply_phases(text, batch))

    def update_phase(self, phase_id: str, changes: Mapping[str, object]) -> PhaseCheckpoint:
        """Merge `changes` into the phase's current entry (a pending one when it has none) under
        the lock, and return the entry written."""
        written: list[PhaseCheckpoint] = []

        def edit(text: str) -> str:
            doc = _Doc(text)
            current = doc.location and state_from_location(doc.location).get(phase_id)
            base = current or PhaseCheckpoint(phase_id=phase_id, status="pending")
            merged = PhaseCheckpoint.model_validate(
                {**base.model_dump(), **changes, "phase_id": base.phase_id}
            )
            written.append(merged)
            return apply_phases(text, [merged])

        self._transaction(edit)
        return written[0]

    def set_status(self, status: str) -> None:
        """Set the body `**Status:**` line (or the frontmatter `status:` of plans without one).
        The status as it was is remembered for :meth:`clear_execution_state`."""
        self._transaction(lambda text: apply_status(text, status))

    def set_summary(self, markdown: str) -> None:
        """Write (or replace) plan-executor's `## Implementation Summary` after the checkpoints.
        An Implementation Summary written by a person elsewhere in the file is never touched."""
        self._transaction(lambda text: apply_summary(text, markdown))

    def clear_execution_state(self) -> None:
        """Remove plan-executor's section and summary and restore the status line: the file is
        byte-identical to what it was before plan-executor first wrote to it."""
        self._transaction(remove_execution_state)

    # reading -----------------------------------------------------------------------------------

    def read_state(self) -> ExecutionState | None:
        location = locate_section(split_lines(self._read_text(self._target())))
        return None if location is None else state_from_location(location)

    # machinery -------------------------------------------------------------------------------

    def _target(self) -> Path:
        target = Path(os.path.realpath(self.path))
        if not target.exists():
            raise PlanWriteError(f"{self.path}: plan file not found; nothing was written")
        if not target.is_file():
            raise PlanWriteError(f"{self.path}: not a regular file; nothing was written")
        return target

    def _read_text(self, target: Path) -> str:
        return decode_plan(read_bytes(target, PlanWriteError), self.path, PlanWriteError)

    def _transaction(self, edit: Callable[[str], str]) -> None:
        target = self._target()
        with self._locked(target):
            data = read_bytes(target, PlanWriteError)
            text = decode_plan(data, self.path, PlanWriteError)
            new_text = edit(text)
            if new_text == text:
                return
            self._remove_stray_temporaries(target)
            self._replace(target, new_text.encode("utf-8"))

    def remove_lock_file(self) -> None:
        """Delete the sibling `.<name>.lock` (e.g. when a run is done with the plan), safely: it is
        unlinked while holding the lock, and writers waiting on the old file notice and retry."""
        target = Path(os.path.realpath(self.path))
        lock_path = target.with_name(f".{target.name}.lock")
        if not lock_path.exists():
            return
        with self._locked(target), contextlib.suppress(FileNotFoundError):
            os.unlink(lock_path)

    @contextlib.contextmanager
    def _locked(self, target: Path) -> Iterator[None]:
        lock_path = target.with_name(f".{target.name}.lock")
        while True:
            try:
                fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError as problem:
                raise PlanWriteError(
                    f"{self.path}: cannot open lock file {lock_path} ({problem.strerror}); "
                    "nothing was written"
                ) from None
            _OPEN_LOCK_FDS.add(fd)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                if same_file(fd, lock_path):
                    break
            except BaseException:
                _release(fd)
                raise
            _release(fd)  # the lock file was removed while we waited: lock the new one
        try:
            yield
        finally:
            _release(fd)

    def _remove_stray_temporaries(self, target: Path) -> None:
        """Temporaries of a writer that died before its rename (we hold the lock: none is live)."""
        pattern = re.compile(rf"\.{re.escape(target.name)}\.[a-z0-9_]{{8}}\.tmp")
        with contextlib.suppress(OSError):
            for name in os.listdir(target.parent):
                if pattern.fullmatch(name):
                    with contextlib.suppress(OSError):
                        os.unlink(target.parent / name)

    def _replace(self, target: Path, data: bytes) -> None:
        try:
            mode = stat.S_IMODE(os.stat(target).st_mode)
            fd, temporary = tempfile.mkstemp(
                dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"
            )
        except OSError as problem:
            raise PlanWriteError(
                f"{self.path}: cannot write ({problem.strerror}); file unchanged"
            ) from None
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fchmod(handle.fileno(), mode)
                os.fsync(handle.fileno())
            os.replace(temporary, target)
        except BaseException as problem:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            if isinstance(problem, OSError):
                raise PlanWriteError(
                    f"{self.path}: cannot write ({problem.strerror or problem}); file unchanged"
                ) from problem
            raise
        self._fsync_folder(target.parent)

    @staticmethod
    def _fsync_folder(folder: Path) -> None:
        with contextlib.suppress(OSError):
            fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
