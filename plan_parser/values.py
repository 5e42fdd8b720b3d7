"""Field values as written, normalised: phase headings, dependency lists, blast radius, files."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from plan_parser.gate_commands import DEFAULT_GATE_PROGRAMS
from plan_parser.ids import ID_PATTERN, id_sort_key
from plan_parser.model import FileAction, FileRef

# --- phase headings ---------------------------------------------------------------------------

PHASE_HEADING = re.compile(
    r"^(?P<pre>[^\w(*]{0,16})\*{0,3}Phase\s+(?P<id>" + ID_PATTERN + r")(?![\w+])(?!\.\d)\*{0,3}"
    r"\s*(?P<qual>\([^)]*\))?\s*(?:(?P<sep>[:.\-\u2014\u2013])\s*(?P<name>.*))?$",
    re.IGNORECASE,
)

_SKIP_MARKER = re.compile(
    r"\b(optional|future|deferred|do not execute|requires user (approval|clarification|input))\b",
    re.IGNORECASE,
)
_MARKER_PAREN = re.compile(
    r"^(optional\b.*|future\b.*|deferred\b.*|.*\bdo not execute\b.*|requires user\b.*"
    r"|parallel\b.*|new|revised|updated|(low|medium|high) complexity|wave \d+|prerequisite|stub)$",
    re.IGNORECASE,
)
_STATUS_SUFFIX = re.compile(
    r"\s*(?:\u2705|\u23f8\ufe0f?|\u26a1|\u274c|\U0001f6a7|\u23f3)\s*[A-Z][A-Z ]*\s*$"
)
_CAPS_MARKERS = {"PARALLEL", "FUTURE", "OPTIONAL", "NEW", "REVISED", "DEFERRED"}
_EMOJI_ONLY = re.compile(r"\s*(?:\u2705|\u23f8\ufe0f?|\u26a1|\u274c|\U0001f6a7|\u23f3)\s*$")


@dataclass
class PhaseHeading:
    id: str
    title: str
    markers: list[str]
    optional: bool
    completed: bool = False


_DONE_MARKER = re.compile(r"^\u2705\s*(?:(?:complete|completed|done|finished)\s*)?$", re.IGNORECASE)


def marks_complete(markers: list[str]) -> bool:
    """`✅ COMPLETE` (or a lone ✅) says a person finished the phase; `✅ PARTIAL COMPLETE` not."""
    return any(_DONE_MARKER.match(marker.strip()) for marker in markers)


def parse_phase_heading(text: str) -> PhaseHeading | None:
    """A phase heading (`Phase 2.5: Name (NEW)`), or None when the text is not one.

    The id must be followed by a separator, a parenthesised qualifier or the end of the text, so
    `Phase 1 Internal Parallelization` (a sub-heading about phase 1) is not a phase.
    """
    text = text.strip()
    if text.startswith("**") and text.endswith("**") and len(text) > 4:
        text = text[2:-2].strip()  # a heading written entirely in bold
    match = PHASE_HEADING.match(text)
    if match is None:
        return None
    name = (match.group("name") or "").strip()
    markers: list[str] = []
    qualifier = match.group("qual")
    if qualifier:
        markers.append(qualifier.strip("() "))
    title, found = clean_title(name)
    markers.extend(found)
    optional = any(_SKIP_MARKER.search(marker) for marker in markers)
    return PhaseHeading(match.group("id"), title, markers, optional, marks_complete(markers))


def _paren_groups(text: str) -> list[tuple[int, int]]:
    """Spans of top-level `(...)` groups."""
    spans = []
    depth = 0
    start = 0
    for index, char in enumerate(text):
        if char == "(":
            if depth == 0:
                start = index
            depth += 1
        elif char == ")" and depth:
            depth -= 1
            if depth == 0:
                spans.append((start, index + 1))
    return spans


def clean_title(name: str) -> tuple[str, list[str]]:
    """Remove known markers from a phase name; returns the title and the markers removed."""
    markers: list[str] = []
    title = name
    for _ in range(3):  # bounded, and only the tail is searched: headings can be huge
        tail_start = max(0, len(title) - 80)
        status = _STATUS_SUFFIX.search(title, tail_start)
        if status is None:
            break
        markers.append(status.group(0).strip())
        title = title[: status.start()]
    for start, end in reversed(_paren_groups(title)):
        inner = title[start + 1 : end - 1].strip()
        if _MARKER_PAREN.match(inner):
            markers.append(inner)
            title = title[:start] + title[end:]
    words = title.split()
    while words and (words[-1] in _CAPS_MARKERS or _EMOJI_ONLY.fullmatch(words[-1])):
        markers.append(words.pop())
    title = " ".join(words)
    title = _EMOJI_ONLY.sub("", title).strip(" -\u2014\u2013:")
    return title, markers


# --- dependencies -----------------------------------------------------------------------------

_NONE_FORM = re.compile(r"^(none|n/a|na|nothing|no dependencies|-|\u2014|\u2013)(?![\w/])", re.I)
_ALL_PREVIOUS = re.compile(
    r"\ball (the )?(previous|prior|preceding|earlier|other|above) phases\b"
    r"|\ball phases\b|\bafter (each|every|all) (\w+ )?phases?\b",
    re.IGNORECASE,
)
_REF = re.compile(
    r"(?<![\w.])(?:P(?=\d))?(?P<lo>" + ID_PATTERN + r")(?![\w])(?!\.\d)"
    r"(?:\s*(?:-|\u2013|\u2014|\.\.|to|through)\s*(?:phases?\s*|P(?=\d))?(?P<hi>"
    + ID_PATTERN
    + r")(?![\w])(?!\.\d))?",
    re.IGNORECASE,
)
_MENTIONS_PHASE = re.compile(r"\bphases?\b|\bP\d", re.IGNORECASE)
_ONLY_IDS = re.compile(
    r"^\s*" + ID_PATTERN + r"(\s*(,|&|\+|\band\b|-|\u2013)\s*" + ID_PATTERN + r")*[\s,]*$",
    re.IGNORECASE,
)


@dataclass
class Dependencies:
    ids: list[str] = field(default_factory=list)
    soft_ids: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    """Referenced ids that no phase defines (and no lettered children expand)."""
    parents: list[str] = field(default_factory=list)
    """Parent ids (`5`) expanded to their lettered children (`5a`, `5b`)."""
    form: str = "absent"
    note: str | None = None


def strip_parens(text: str) -> str:
    for start, end in reversed(_paren_groups(text)):
        text = text[:start] + " " + text[end:]
    return text


def _strip_markup(text: str) -> str:
    return " ".join(text.replace("**", "").replace("`", "").split())


def parse_dependencies(
    raw: str, defined: Sequence[str], position: int | None = None
) -> Dependencies:
    """Resolve a dependency value against the defined phase ids (document order).

    `position` is the index of the phase in `defined`, used for `all previous phases`.
    """
    text = _strip_markup(raw)
    result = Dependencies()
    if not text:
        result.form = "none"
        return result
    none = _NONE_FORM.match(text)
    if none:
        result.form = "none"
        result.note = text[none.end() :].strip(" -:()\u2014\u2013") or None
        return result
    if _ALL_PREVIOUS.search(strip_parens(text)) or (
        _ALL_PREVIOUS.search(text) and not _REF.search(strip_parens(text))
    ):
        result.form = "all_previous"
        result.ids = list(defined[:position]) if position is not None else []
        return result
    for number, clause in enumerate(text.split(";")):
        bare = strip_parens(clause)
        if not _MENTIONS_PHASE.search(bare) and not _ONLY_IDS.match(bare):
            continue
        target = result.ids if number == 0 else result.soft_ids
        for match in _REF.finditer(bare):
            if match.group("hi"):
                result.form = "range"
                _add_all(target, _expand_range(match.group("lo"), match.group("hi"), defined))
            else:
                _add_all(target, _resolve(match.group("lo"), defined, result))
    if result.form == "absent":
        result.form = "list" if len(result.ids) > 1 else ("single" if result.ids else "prose")
    note_spans = _paren_groups(text)
    if note_spans:
        result.note = "; ".join(text[s + 1 : e - 1].strip() for s, e in note_spans)
    return result


def _add_all(target: list[str], ids: list[str]) -> None:
    for phase_id in ids:
        if phase_id not in target:
            target.append(phase_id)


def _find(phase_id: str, defined: Sequence[str]) -> str | None:
    wanted = phase_id.lower()
    for candidate in defined:
        if candidate.lower() == wanted:
            return candidate
    return None


def _resolve(phase_id: str, defined: Sequence[str], result: Dependencies) -> list[str]:
    found = _find(phase_id, defined)
    if found is not None:
        return [found]
    if phase_id.isdigit():
        children = [d for d in defined if re.fullmatch(re.escape(phase_id) + r"[A-Za-z]", d)]
        if children:
            result.parents.append(phase_id)
            return children
    result.unknown.append(phase_id)
    return [phase_id]


def _expand_range(low: str, high: str, defined: Sequence[str]) -> list[str]:
    low_key, high_key = id_sort_key(low), id_sort_key(high)
    if low_key > high_key:
        low_key, high_key = high_key, low_key
    inside = [d for d in defined if low_key <= id_sort_key(d) <= high_key]
    if not inside:
        return [low, high]
    return inside


# --- blast radius -----------------------------------------------------------------------------

_BACKTICKED = re.compile(r"`([^`]+)`")


def _strip_trailing_note(text: str) -> str:
    """`cargo test (note)` → `cargo test`: drop one balanced parenthetical at the end."""
    stripped = text.rstrip()
    if not stripped.endswith(")"):
        return text
    groups = _paren_groups(stripped)
    if groups and groups[-1][1] == len(stripped):
        return stripped[: groups[-1][0]].rstrip()
    return text


@dataclass
class BlastRadius:
    text: str
    commands: list[str]
    runnable: bool
    full_suite: bool = False
    prose: str | None = None
    """What the value says beyond its commands (`manual testing with -v flag`): not run."""


_CONNECTORS = re.compile(r"^[\s+&,;:/-]*(?:and|plus|then|also)?[\s+&,;:/-]*|[\s+&,;:/-]+$", re.I)


def is_command_span(span: str, *, alone: bool = True) -> bool:
    """Whether a backticked span of a blast radius is a command: never a flag (`-v`) or a test
    filter (`audio::`: the gates append a lone filter to the test command); a single word
    (`list`, `src/lib.rs`) only when it is an allowed gate program or no longer command stands
    beside it (`alone`: then the repository's rule decides, e.g. `true`)."""
    words = span.split()
    if not words or words[0].startswith("-") or (len(words) == 1 and "::" in words[0]):
        return False
    return len(words) > 1 or words[0] in DEFAULT_GATE_PROGRAMS or alone


def parse_blast_radius(raw: str) -> BlastRadius:
    """`cargo test -p x` (note) → text `cargo test -p x`, one command; prose stays text, and
    prose beside a command is kept apart as not run."""
    value = " ".join(raw.replace("**", "").split())
    if value in ('""', "''", "``"):
        return BlastRadius("", [], True, full_suite=True)
    spans = [" ".join(c.split()) for c in _BACKTICKED.findall(value)]
    alone = not any(len(span.split()) > 1 and is_command_span(span) for span in spans)
    commands = [span for span in spans if is_command_span(span, alone=alone)]
    without_note = _strip_trailing_note(value)
    text = " ".join(without_note.replace("`", "").split())
    prose = None
    if commands:
        # A trailing parenthetical is the author's note on the command, not a further check.
        rest = _BACKTICKED.sub(
            lambda m: "" if " ".join(m.group(1).split()) in commands else m.group(0),
            _strip_trailing_note(value),
        )
        prose = _CONNECTORS.sub("", " ".join(rest.split())).strip() or None
    return BlastRadius(text, commands, bool(commands), prose=prose)


# --- files ------------------------------------------------------------------------------------

_LINE_SUFFIX = re.compile(r":(\d+)(?:-(\d+))?$")
_PATH_CHARS = re.compile(r"^[\w./~*{}-]+$")
_EXTENSION = re.compile(r"\.\w{1,8}$")


def _pathlike(token: str) -> bool:
    return bool(_PATH_CHARS.match(token)) and ("/" in token or bool(_EXTENSION.search(token)))


def file_action(label_key: str) -> FileAction:
    if "create" in label_key and "modify" not in label_key:
        return FileAction.CREATE
    if "delete" in label_key or "remove" in label_key:
        return FileAction.DELETE
    if "modify" in label_key and "create" not in label_key or "update" in label_key:
        return FileAction.MODIFY
    return FileAction.UNSPECIFIED


def parse_file_item(text: str, action: FileAction, line: int | None) -> FileRef | None:
    """One files-list item: the first backticked token is the path; the rest describes it."""
    match = _BACKTICKED.search(text)
    if match:
        path = match.group(1).strip()
        rest = (text[: match.start()] + text[match.end() :]).strip()
    else:
        first, _, rest = text.strip().partition(" ")
        if not _pathlike(first.strip(",;")):
            return None
        path = first.strip(",;")
    path = _LINE_SUFFIX.sub("", path)
    if not path or " " in path and not path.startswith(("/", "~")):
        return None
    description = rest.strip().lstrip("-\u2014\u2013:").strip()
    if re.search(r"\(new\)", description, re.IGNORECASE):
        action = FileAction.CREATE
    is_glob = any(char in path for char in "*?[")
    return FileRef(path=path, action=action, description=description, line=line, is_glob=is_glob)


def split_inline_list(value: str) -> list[str]:
    """`a, b (x, y), c` → `a`, `b (x, y)`, `c`: commas outside parentheses and backticks."""
    parts: list[str] = []
    depth = 0
    in_code = False
    current = ""
    for char in value:
        if char == "`":
            in_code = not in_code
        elif char == "(" and not in_code:
            depth += 1
        elif char == ")" and not in_code and depth:
            depth -= 1
        if char == "," and depth == 0 and not in_code:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [part.strip() for part in parts if part.strip()]


_PLACEHOLDER = re.compile(r"^(none|n/a|na|-|\u2014|tbd)$", re.IGNORECASE)


def parse_skills(value: str) -> list[str]:
    skills = []
    for part in split_inline_list(value.replace("`", "").replace("**", "")):
        name = strip_parens(part).strip()
        if name and not _PLACEHOLDER.match(name):
            skills.append(name)
    return skills


def is_placeholder(value: str) -> bool:
    return bool(_PLACEHOLDER.match(value.strip().strip("`*").strip()))
