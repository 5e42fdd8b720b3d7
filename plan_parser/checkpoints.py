"""Execution checkpoints kept in the plan file: the models, and reading them back.

The plan file is the resume state that survives everything. It holds an
`## Execution Checkpoints` section with ONE fenced ```yaml block: a list with one mapping per
phase keyed `phase_<id>` (`status`, `completed_at`, `artifacts`, `error`, …). What plan-executor
changed elsewhere in the file (the status line as it was, where the section was put) is recorded
on one HTML comment line right after the block, `<!-- plan-executor: {...} -->` (invisible where
the Markdown is rendered, and not in the way of a person reading the phases), so that
:meth:`plan_parser.writer.PlanFileWriter.clear_execution_state` can give the file back byte for
byte. Files written by older versions carry that record as the block's first list item,
`plan_executor:`; they are still read (and rewritten in the new shape at the next write).

This module works on raw text lines, not on a Markdown parser: the section must be found and
replaced exactly, and a hand-written section as a bare `- phase_1:` list is not a fenced block
(a Markdown parser folds its indented `key: value` lines into one list paragraph). The scanning is
small and careful: frontmatter between leading `---` lines is skipped, and headings inside ``` /
~~~ fences are ignored.

Values are read with YAML's BaseLoader (every scalar stays a string: no `15:09:38` turned into an
integer, no `2025-12-19` into a date) and converted here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import BaseModel, Field, model_validator

from plan_parser.errors import PlanExecutorError
from plan_parser.model import id_key
from plan_parser.vocabulary import PHASE_STATUSES, PhaseStatus, utc_stamp

__all__ = [
    "ExecutionState",
    "PhaseCheckpoint",
    "PhaseStatusName",
    "PlanFileError",
    "read_execution_state",
    "read_plan_state",
    "utc_now",
]

# The status names are defined in plan_parser.vocabulary; the old names stay importable here.
PhaseStatusName = PhaseStatus

CHECKPOINTS_HEADING = "## Execution Checkpoints"
SUMMARY_HEADING = "## Implementation Summary"
RECORD_KEY = "plan_executor"
"""The record's list item in files written by older versions (still read)."""
RECORD_COMMENT_PREFIX = "<!-- plan-executor: "
RECORD_COMMENT_SUFFIX = " -->"
PHASE_KEY_PREFIX = "phase_"

# Fields of PhaseCheckpoint as they are spelled in the YAML (phase_id is the key, extra is flat).
_SCALAR_FIELDS = (
    "started_at",
    "completed_at",
    "failed_at",
    "error",
    "last_successful_step",
    "phase_hash",
    "flow_run_id",
)
_LIST_FIELDS = ("artifacts", "ledger")
KNOWN_FIELDS: frozenset[str] = frozenset(
    {"phase_id", "status", "tokens", "cost_usd", "extra", *_SCALAR_FIELDS, *_LIST_FIELDS}
)

# Status words seen in hand-written checkpoints and orchestrator reports, mapped to ours.
_STATUS_SYNONYMS: dict[str, str] = {
    "in_progress": "running",
    "in-progress": "running",
    "in progress": "running",
    "started": "running",
    "completed": "complete",
    "done": "complete",
    "success": "complete",
    "succeeded": "complete",
    "passed": "complete",
    "failure": "failed",
    "error": "failed",
    "partial": "failed",
    "timed_out": "timeout",
    "timed-out": "timeout",
    "skip": "skipped",
    "over_budget": "budget",
    "over-budget": "budget",
    "todo": "pending",
    "not_started": "pending",
}


class PlanFileError(PlanExecutorError):
    """A plan file cannot be read (missing, not UTF-8) or written; the message names file and line."""


class PhaseCheckpoint(BaseModel):
    """One phase's entry in `## Execution Checkpoints`."""

    phase_id: str = Field(min_length=1)
    status: PhaseStatusName
    started_at: str | None = None
    """ISO-8601 UTC, e.g. `2025-12-19T14:30:00Z` (see :func:`utc_now`)."""
    completed_at: str | None = None
    failed_at: str | None = None
    error: str | None = None
    last_successful_step: str | None = None
    artifacts: list[str] = Field(default_factory=list)
    phase_hash: str | None = None
    flow_run_id: str | None = None
    tokens: dict[str, int] | None = None
    """Tokens the phase's agent calls used, by kind (input, output, cache_creation_input,
    cache_read_input), from the API's own usage fields."""
    cost_usd: float | None = None
    """What those tokens cost in USD (the run's price table; cache reads and writes apart)."""
    ledger: list[str] = Field(default_factory=list)
    """The failing ledger lines (gate verdicts) that explain the status."""
    extra: dict[str, str] = Field(default_factory=dict)
    """Fields this model does not know (hand-written entries), kept and written back flat."""

    @model_validator(mode="after")
    def _extra_does_not_shadow_fields(self) -> PhaseCheckpoint:
        clashes = sorted(KNOWN_FIELDS.intersection(self.extra))
        if clashes:
            raise ValueError(f"extra keys clash with checkpoint fields: {clashes}")
        return self


class ExecutionState(BaseModel):
    """Everything the checkpoint section says."""

    phases: dict[str, PhaseCheckpoint] = Field(default_factory=dict)
    """Keyed by the phase id as written (`7a`, `2.5`, `1A`), in file order."""
    status_before: str | None = None
    """The plan status before plan-executor first touched it; None when it had none (or when
    plan-executor never set the status)."""
    written_by_executor: bool = False
    """True when the section carries plan-executor's own record (False for a hand-written one)."""
    has_summary: bool = False
    """True when plan-executor wrote an `## Implementation Summary` after the section."""
    problems: list[str] = Field(default_factory=list)
    """What could not be read, as `line N: message` (lenient reading: the rest is still here)."""

    def get(self, phase_id: str) -> PhaseCheckpoint | None:
        """The entry for `phase_id`: exact spelling first, then case-insensitively (`1a` = `1A`)."""
        if phase_id in self.phases:
            return self.phases[phase_id]
        wanted = id_key(phase_id)
        for key, checkpoint in self.phases.items():
            if id_key(key) == wanted:
                return checkpoint
        return None


def utc_now() -> str:
    """Now as the ISO-8601 UTC string the checkpoints use (kept for importers of this name)."""
    return utc_stamp()


# --------------------------------------------------------------------------------------------
# Line scanning
# --------------------------------------------------------------------------------------------

_LINE_RE = re.compile(r"[^\r\n]*(?:\r\n|\n|\r)|[^\r\n]+\Z")
_FENCE_OPEN_RE = re.compile(r"^[ \t]*(`{3,}|~{3,})(.*)$")
_FENCE_CLOSE_RE = re.compile(r"^[ \t]*(`{3,}|~{3,})[ \t]*$")
_ATX_RE = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?[ \t]*$")
_CHECKPOINTS_TITLE_RE = re.compile(r"^execution\s+checkpoints$", re.IGNORECASE)
_PHASE_KEY_RE = re.compile(r"^phase[_\- ]?(.+)$", re.IGNORECASE | re.DOTALL)


def split_lines(text: str) -> list[str]:
    """Lines with their endings (`\\n`, `\\r\\n` or a lone `\\r`); `"".join()` gives `text` back.

    Not `str.splitlines`: that also splits on form feeds and U+2028, which Markdown does not.
    """
    return _LINE_RE.findall(text)


def strip_eol(line: str) -> str:
    return line.rstrip("\r\n")


def line_ending(lines: list[str]) -> str:
    """The file's line ending, taken from its first line (LF for a one-line file)."""
    for line in lines:
        if line.endswith("\r\n"):
            return "\r\n"
        if line.endswith("\n"):
            return "\n"
        if line.endswith("\r"):
            return "\r"
    return "\n"


def is_blank(line: str) -> bool:
    return strip_eol(line).strip() == ""


def frontmatter_end(lines: list[str]) -> int | None:
    """Index of the closing `---` / `...` of a leading frontmatter block, or None."""
    if not lines or strip_eol(lines[0]).lstrip("\ufeff").rstrip() != "---":
        return None
    for index in range(1, len(lines)):
        if strip_eol(lines[index]).rstrip() in ("---", "..."):
            return index
    return None


def body_start(lines: list[str]) -> int:
    end = frontmatter_end(lines)
    return 0 if end is None else end + 1


@dataclass(frozen=True)
class Heading:
    index: int
    level: int
    text: str


def _may_be_fence(line: str) -> bool:
    """Cheap pre-check: only a line whose first non-blank character is ` or ~ can be a fence."""
    return line.lstrip(" \t")[:1] in ("`", "~")


@dataclass(frozen=True)
class FencedBlock:
    opening: int
    close: int | None
    """None when the fence is never closed."""
    info: str
    fence: str
    """The opening fence characters (e.g. ```` ``` ```` or `~~~~`)."""


def _scan(lines: list[str], start: int, stop: int) -> tuple[list[int], list[FencedBlock]]:
    """Lines outside fenced blocks, and the blocks (CommonMark pairing: a fence closes on a line of
    the same character at least as long; the opening may be indented, as in list items)."""
    outside: list[int] = []
    blocks: list[FencedBlock] = []
    fence: str | None = None
    opened = 0
    info = ""
    for index in range(start, stop):
        if not _may_be_fence(lines[index]):
            if fence is None:
                outside.append(index)
            continue
        text = strip_eol(lines[index])
        if fence is not None:
            close = _FENCE_CLOSE_RE.match(text)
            if close and close.group(1)[0] == fence[0] and len(close.group(1)) >= len(fence):
                blocks.append(FencedBlock(opened, index, info, fence))
                fence = None
            continue
        opening = _FENCE_OPEN_RE.match(text)
        if opening and not (opening.group(1)[0] == "`" and "`" in opening.group(2)):
            fence, opened, info = opening.group(1), index, opening.group(2).strip()
            continue
        outside.append(index)
    if fence is not None:
        blocks.append(FencedBlock(opened, None, info, fence))
    return outside, blocks


def scan_fences(
    lines: list[str], start: int, stop: int | None = None
) -> tuple[list[int], str | None]:
    """Indices of lines in [start, stop) outside (and not delimiting) fenced blocks, and the fence
    still open at `stop` (None when all are closed)."""
    stop = len(lines) if stop is None else stop
    outside, blocks = _scan(lines, start, stop)
    unclosed = blocks[-1] if blocks and blocks[-1].close is None else None
    if unclosed is None:
        return outside, None
    return outside, unclosed.fence


def fenced_blocks(lines: list[str], start: int) -> list[FencedBlock]:
    return _scan(lines, start, len(lines))[1]


def iter_outside_fences(lines: list[str], start: int, stop: int | None = None) -> Iterator[int]:
    """Lazily, the indices :func:`scan_fences` returns (callers often stop at the first hit)."""
    stop = len(lines) if stop is None else stop
    fence: str | None = None
    for index in range(start, stop):
        if not _may_be_fence(lines[index]):
            if fence is None:
                yield index
            continue
        text = strip_eol(lines[index])
        if fence is not None:
            close = _FENCE_CLOSE_RE.match(text)
            if close and close.group(1)[0] == fence[0] and len(close.group(1)) >= len(fence):
                fence = None
            continue
        opening = _FENCE_OPEN_RE.match(text)
        if opening and not (opening.group(1)[0] == "`" and "`" in opening.group(2)):
            fence = opening.group(1)
            continue
        yield index


def headings(lines: list[str], start: int, stop: int | None = None) -> Iterator[Heading]:
    """ATX headings outside fences (setext headings are not used by plans and are ignored)."""
    for index in iter_outside_fences(lines, start, stop):
        match = _ATX_RE.match(strip_eol(lines[index]))
        if match:
            text = re.sub(r"[ \t]+#+$", "", match.group(2) or "").strip()
            if re.fullmatch(r"#+", text):
                text = ""
            yield Heading(index, len(match.group(1)), text)


def section_end(lines: list[str], start: int) -> int:
    """End (exclusive) of the section whose H1/H2 heading is at `start`: the next H1/H2 or EOF."""
    for heading in headings(lines, start + 1):
        if heading.level <= 2:
            return heading.index
    return len(lines)


def first_h2(lines: list[str]) -> int:
    """Index of the first H2 outside frontmatter and fences (len(lines) when there is none)."""
    for heading in headings(lines, body_start(lines)):
        if heading.level == 2:
            return heading.index
    return len(lines)


# --------------------------------------------------------------------------------------------
# Finding the section
# --------------------------------------------------------------------------------------------


@dataclass
class SectionLocation:
    """Where the checkpoint section sits (line indices into `split_lines(text)`)."""

    start: int
    """The `## Execution Checkpoints` heading line."""
    end: int
    """Exclusive end of everything that belongs to the section (our summary included)."""
    ours: bool
    """plan-executor's own block (heading, blank, ```yaml ... ```) with its record."""
    yaml_text: str
    yaml_first_line: int
    """1-based file line of the first YAML line (for messages)."""
    fence_close: int | None = None
    """Index of our block's closing fence (ours only)."""
    tail_start: int | None = None
    """Index of the first line after our block and its record comment (ours only)."""
    record: dict[str, str] = field(default_factory=dict)
    entries: dict[str, PhaseCheckpoint] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def _is_checkpoints_heading(line: str) -> bool:
    match = _ATX_RE.match(strip_eol(line))
    if not match or len(match.group(1)) != 2:
        return False
    text = re.sub(r"[ \t]+#+$", "", match.group(2) or "").strip()
    return bool(_CHECKPOINTS_TITLE_RE.match(text))


def _our_block_at(lines: list[str], start: int) -> int | None:
    """If plan-executor's block starts at `start`, the index of its closing fence."""
    if start + 3 >= len(lines) or strip_eol(lines[start]) != CHECKPOINTS_HEADING:
        return None
    if not is_blank(lines[start + 1]) or strip_eol(lines[start + 2]) != "```yaml":
        return None
    has_record = False
    for index in range(start + 3, len(lines)):
        text = strip_eol(lines[index])
        if text == "```":
            followed = index + 1 < len(lines) and record_comment(lines[index + 1]) is not None
            return index if has_record or followed else None
        if text in (f"- {RECORD_KEY}:", f'- "{RECORD_KEY}":'):
            has_record = True
    return None


_RECORD_COMMENT_RE = re.compile(
    re.escape(RECORD_COMMENT_PREFIX) + r"(\{.*\})" + re.escape(RECORD_COMMENT_SUFFIX)
)


def record_comment(line: str) -> dict[str, str] | None:
    """The record on plan-executor's comment line (None when the line is not one)."""
    match = _RECORD_COMMENT_RE.fullmatch(strip_eol(line))
    if match is None:
        return None
    try:
        data = json.loads(match.group(1))
    except ValueError:
        return None
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        return None
    return {str(key): value for key, value in data.items()}


def render_record_comment(record: dict[str, str]) -> str:
    """The record as one comment line (no line ending). JSON with every non-ASCII character
    and every `-`, `<` and `>` escaped: the line can never contain `--` or `-->`, which would
    end the comment early, nor a line break. All values are strings, so `-` occurs only inside
    strings, where `\\u002d` means the same."""
    data = json.dumps(record, ensure_ascii=True, separators=(",", ":"))
    data = data.replace("-", "\\u002d").replace("<", "\\u003c").replace(">", "\\u003e")
    return f"{RECORD_COMMENT_PREFIX}{data}{RECORD_COMMENT_SUFFIX}"


_RawEntries = dict[str, tuple[object, int]]  # phase id -> (YAML value, 1-based line)


def locate_section(lines: list[str]) -> SectionLocation | None:
    """Find the checkpoint section and read it (None when the file has none).

    plan-executor's own block first (by its exact shape), then a hand-written
    `## Execution Checkpoints` heading outside code, then a ```yaml fence that opens with that
    heading (a checkpoint example copied literally).
    """
    body = body_start(lines)
    found = _our_section(lines, body)
    if found is None:
        start = next(
            (
                heading.index
                for heading in headings(lines, body)
                if heading.level == 2 and _CHECKPOINTS_TITLE_RE.match(heading.text)
            ),
            None,
        )
        if start is not None:
            found = _read_foreign_section(lines, start)
        elif (fenced := _seed_fenced_block(lines, body)) is not None:
            found = _read_seed_fenced_section(lines, *fenced)
    if found is None:
        return None
    location, raw = found
    for phase_id, (value, line) in raw.items():
        checkpoint = _checkpoint_from(phase_id, value, line, location.problems)
        if checkpoint is not None:
            location.entries[phase_id] = checkpoint
    return location


def _our_section(lines: list[str], body: int) -> tuple[SectionLocation, _RawEntries] | None:
    """plan-executor's block, unless it sits in a closed code block (an example in the plan).

    Found by shape rather than by a fence-aware heading scan: appended after a code block left
    open at the end of a plan, our block is inside that block for CommonMark, and a fence line
    in our summary would otherwise pair with it and move the section boundaries.
    """
    for index in range(body, len(lines)):
        if not lines[index].startswith(CHECKPOINTS_HEADING):
            continue
        close = _our_block_at(lines, index)
        if close is None:
            continue
        location, raw = _read_our_section(lines, index, close)
        if not _in_closed_fence(lines, body, index, location.end):
            return location, raw
    return None


def _in_closed_fence(lines: list[str], body: int, start: int, end: int) -> bool:
    """Whether line `start` is inside a fenced block that closes after [start, end) (ours)."""
    _, fence = scan_fences(lines, body, start)
    if fence is None:
        return False
    for index in range(end, len(lines)):
        close = _FENCE_CLOSE_RE.match(strip_eol(lines[index]))
        if close and close.group(1)[0] == fence[0] and len(close.group(1)) >= len(fence):
            return True
    return False


def _seed_fenced_block(lines: list[str], start: int) -> tuple[int, int] | None:
    """(opening, closing) fence lines of a checkpoint example copied literally: a ```yaml block
    whose first line is the `## Execution Checkpoints` heading (a YAML comment there)."""
    for block in fenced_blocks(lines, start):
        if block.close is None or not block.info.lower().startswith("yaml"):
            continue
        first = block.opening + 1
        while first < block.close and is_blank(lines[first]):
            first += 1
        if first < block.close and _is_checkpoints_heading(lines[first]):
            return block.opening, block.close
    return None


def _read_seed_fenced_section(
    lines: list[str], opening: int, close: int
) -> tuple[SectionLocation, _RawEntries]:
    location = SectionLocation(
        start=opening,
        end=close + 1,
        ours=False,
        yaml_text="".join(lines[opening + 1 : close]),
        yaml_first_line=opening + 2,
    )
    return location, _parse_yaml(location)


def _read_our_section(
    lines: list[str], start: int, close: int
) -> tuple[SectionLocation, _RawEntries]:
    yaml_text = "".join(lines[start + 3 : close])
    location = SectionLocation(
        start=start,
        end=len(lines),
        ours=True,
        yaml_text=yaml_text,
        yaml_first_line=start + 4,
        fence_close=close,
    )
    raw = _parse_yaml(location)
    tail_start = close + 1
    if close + 1 < len(lines) and (record := record_comment(lines[close + 1])) is not None:
        location.record = record  # the current shape; an old `plan_executor` item is superseded
        tail_start = close + 2
    location.tail_start = tail_start
    tail_lines = location.record.get("tail_lines", "")
    if tail_lines.isdigit():  # what follows the record that is ours, counted when it was written
        location.end = min(tail_start + int(tail_lines), len(lines))
        return location, raw
    end = len(lines)
    skip_summary = location.record.get("summary") == "true"
    for heading in headings(lines, tail_start):
        if heading.level > 2:
            continue
        if skip_summary and heading.index == tail_start + 1 and heading.text == SUMMARY_HEADING[3:]:
            skip_summary = False
            continue
        end = heading.index
        break
    location.end = end
    return location, raw


def _read_foreign_section(lines: list[str], start: int) -> tuple[SectionLocation, _RawEntries]:
    """A section plan-executor did not write: a fenced yaml block, or a bare `- phase_1:` list."""
    end = section_end(lines, start)
    first = start + 1
    content = lines[first:end]
    for offset, line in enumerate(content):
        opening = _FENCE_OPEN_RE.match(strip_eol(line))
        if opening:
            fence = opening.group(1)
            inner: list[str] = []
            for line2 in content[offset + 1 :]:
                close = _FENCE_CLOSE_RE.match(strip_eol(line2))
                if close and close.group(1)[0] == fence[0] and len(close.group(1)) >= len(fence):
                    break
                inner.append(line2)
            content = inner
            first = first + offset + 1
            break
    location = SectionLocation(
        start=start,
        end=end,
        ours=False,
        yaml_text="".join(content),
        yaml_first_line=first + 1,
    )
    return location, _parse_yaml(location)


# --------------------------------------------------------------------------------------------
# YAML content
# --------------------------------------------------------------------------------------------

_Items = list[tuple[str, object, int]]  # (key, value, 1-based line)


# libyaml when present: the pure-Python loader costs ~20 ms per read of a 40-phase section.
_STRING_LOADER = getattr(yaml, "CBaseLoader", yaml.BaseLoader)


def _load(text: str) -> object:
    return yaml.load(text, Loader=_STRING_LOADER)  # noqa: S506  (BaseLoader builds strings only)


def _parse_yaml(location: SectionLocation) -> _RawEntries:
    """Fill `record`, return the raw entries; on a YAML error, read item by item what parses."""
    text = location.yaml_text
    if not text.strip():
        return {}
    try:
        items = _top_items(_load(text), location.yaml_first_line, location)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = location.yaml_first_line + (mark.line if mark is not None else 0)
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        location.problems.append(
            f"line {line}: the checkpoint section is not valid YAML ({problem}); "
            "reading it entry by entry"
        )
        items = _items_one_by_one(text, location)
    return _sort_items(items, location)


def _top_items(data: object, line: int, location: SectionLocation) -> _Items:
    items: _Items = []
    if data is None or data == "":
        return items
    mappings = data if isinstance(data, list) else [data]
    for mapping in mappings:
        if isinstance(mapping, dict):
            items.extend((str(key), value, line) for key, value in mapping.items())
        else:
            location.problems.append(
                f"line {line}: checkpoint item is not a `phase_<id>:` mapping: {mapping!r:.80}"
            )
    return items


def _items_one_by_one(text: str, location: SectionLocation) -> _Items:
    """Split at top-level list items / keys and parse each chunk alone."""
    lines = split_lines(text)
    starts = [
        index
        for index, line in enumerate(lines)
        if line[:1] not in ("", " ", "\t", "#", "\r", "\n")
    ]
    items: _Items = []
    for number, chunk_start in enumerate(starts):
        chunk_end = starts[number + 1] if number + 1 < len(starts) else len(lines)
        line = location.yaml_first_line + chunk_start
        try:
            data = _load("".join(lines[chunk_start:chunk_end]))
        except yaml.YAMLError as error:
            problem = getattr(error, "problem", None) or str(error).splitlines()[0]
            location.problems.append(
                f"line {line}: unreadable checkpoint entry skipped ({problem})"
            )
            continue
        items.extend(_top_items(data, line, location))
    return items


def _sort_items(items: _Items, location: SectionLocation) -> _RawEntries:
    raw: _RawEntries = {}
    for key, value, line in items:
        if key == RECORD_KEY:
            if isinstance(value, dict):
                location.record = {str(k): _as_text(v) for k, v in value.items()}
            continue
        match = _PHASE_KEY_RE.match(key)
        if not match or not match.group(1):
            location.problems.append(f"line {line}: `{key}` is not a `phase_<id>` key; ignored")
            continue
        phase_id = (
            key[len(PHASE_KEY_PREFIX) :] if key.startswith(PHASE_KEY_PREFIX) else match.group(1)
        )
        if phase_id in raw:
            location.problems.append(f"line {line}: phase {phase_id} appears twice; the last wins")
        raw[phase_id] = (value, line)
    return raw


def _as_text(value: object) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _as_list(value: object) -> list[str]:
    if isinstance(value, list):
        return [_as_text(item) for item in value]
    if value is None or value == "":
        return []
    return [_as_text(value)]


def _checkpoint_from(
    phase_id: str, value: object, line: int, problems: list[str]
) -> PhaseCheckpoint | None:
    if not isinstance(value, dict):
        problems.append(f"line {line}: phase {phase_id} has no fields; read as pending")
        value = {}
    fields: dict[str, object] = {"phase_id": phase_id}
    extra: dict[str, str] = {}
    status_raw = _as_text(value.get("status", "")).strip()
    status = status_raw.lower()
    status = _STATUS_SYNONYMS.get(status, status)
    if status not in PHASE_STATUSES:
        problems.append(
            f"line {line}: phase {phase_id} has unknown status {status_raw!r}; read as pending"
        )
        if status_raw:
            extra["status_raw"] = status_raw
        status = "pending"
    fields["status"] = status
    for key, item in value.items():
        name = str(key)
        if name == "status":
            continue
        if name in _SCALAR_FIELDS:
            fields[name] = _as_text(item)
        elif name in _LIST_FIELDS:
            fields[name] = _as_list(item)
        elif name == "tokens":
            fields["tokens"] = _tokens_from(phase_id, item, line, problems)
        elif name == "cost_usd":
            fields["cost_usd"] = _cost_from(phase_id, item, line, problems)
        elif name in KNOWN_FIELDS:  # phase_id / extra written as keys: keep as extra text
            extra[f"{name}_"] = _as_text(item)
        else:
            extra[name] = _as_text(item)
    fields["extra"] = extra
    try:
        return PhaseCheckpoint.model_validate(fields)
    except ValueError as error:
        problems.append(f"line {line}: phase {phase_id} unreadable ({error}); skipped")
        return None


def _cost_from(phase_id: str, value: object, line: int, problems: list[str]) -> float | None:
    try:
        return float(_as_text(value).strip().removeprefix("$"))
    except ValueError:
        problems.append(f"line {line}: phase {phase_id} cost_usd is not a number; ignored")
        return None


def _tokens_from(phase_id: str, value: object, line: int, problems: list[str]) -> dict[str, int]:
    tokens: dict[str, int] = {}
    if not isinstance(value, dict):
        problems.append(f"line {line}: phase {phase_id} tokens is not a mapping; ignored")
        return tokens
    for key, count in value.items():
        try:
            tokens[str(key)] = int(_as_text(count))
        except ValueError:
            problems.append(f"line {line}: phase {phase_id} tokens.{key} is not an integer")
    return tokens


# --------------------------------------------------------------------------------------------
# Public reading API
# --------------------------------------------------------------------------------------------


def state_from_location(location: SectionLocation) -> ExecutionState:
    record = location.record
    return ExecutionState(
        phases=dict(location.entries),
        status_before=record.get("status_before"),
        written_by_executor=location.ours,
        has_summary=location.ours and record.get("summary") == "true",
        problems=list(location.problems),
    )


def read_execution_state(text: str) -> ExecutionState | None:
    """The checkpoint section of a plan's text; None when there is none.

    Lenient: broken YAML or odd entries are reported in `problems` and the rest is returned.
    """
    location = locate_section(split_lines(text))
    if location is None:
        return None
    return state_from_location(location)


def decode_plan(data: bytes, path: Path, error: type[PlanFileError] = PlanFileError) -> str:
    """The file's text, or `error` naming the file and the line of the first bad byte."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as problem:
        before = data[: problem.start]
        line = before.count(b"\n") + 1
        column = problem.start - (before.rfind(b"\n") + 1) + 1
        bad = data[problem.start : problem.start + 1].hex()
        raise error(
            f"{path}:{line}:{column}: not valid UTF-8 (byte 0x{bad}); the plan file was not changed"
        ) from None


def read_bytes(path: Path, error: type[PlanFileError] = PlanFileError) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise error(f"{path}: plan file not found") from None
    except IsADirectoryError:
        raise error(f"{path}: is a directory, not a plan file") from None
    except OSError as problem:
        raise error(f"{path}: cannot read plan file ({problem.strerror})") from None


def read_plan_state(path: Path) -> ExecutionState | None:
    """:func:`read_execution_state` of a plan file (PlanFileError when missing or not UTF-8)."""
    return read_execution_state(decode_plan(read_bytes(path), path))
