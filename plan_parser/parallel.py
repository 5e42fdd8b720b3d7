"""What a plan says about phases that must not run at the same time.

Two sources: a phase's own parallel flag (`| **Parallelizable** | No |`, `**Parallel:** No`),
and prose anywhere in the plan ("phases touching `format.rs` CANNOT run in parallel", "Phase 4
and Phase 6 must not run concurrently"). Dependency fields alone would put such phases in one
wave; the author's word is the only record that they collide (a shared file, a shared resource).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from markdown_it.token import Token

from plan_parser.ids import ID_PATTERN
from plan_parser.model import Diagnostic, Phase, SerialNote, Severity, diagnostic

_NO_FLAG = re.compile(r"^\W*(no|false|never|sequential(ly)?|serial)\b", re.IGNORECASE)

_NEGATION = (
    r"(?:cannot|can\s*not|can't|must\s+not|mustn't|should\s+not|shouldn't|may\s+not"
    r"|must\s+never|never|do\s+not|don't|not\s+(?:be\s+)?(?:run|executed?|scheduled))"
)
# Between the negation and "in parallel" may stand the phases ("Do not run Phase 3 and Phase 4
# in parallel"), but no clause that turns the sentence around ("Phase 3 cannot start before 2,
# but 4 and 5 can run in parallel").
_GAP = r"(?:(?!\b(?:but|while|whereas|however|although|can|may|could|until|then|once|after|before)\b)[^.;:!?]){0,80}?"
_FORBIDS = re.compile(
    r"\b"
    + _NEGATION
    + r"\b"
    + _GAP
    + r"\b(?:in\s+parallel|concurrently|simultaneously|at\s+the\s+same\s+time)\b"
    r"|\bnot\s+parallel(?:izable|isable)?\b",
    re.IGNORECASE,
)
_PHASE_LIST = re.compile(
    r"(?:\bphases?\s+|\bP(?=\d))(?P<ids>" + ID_PATTERN + r"(?:\s*(?:,|&|/|\band\b|\bor\b)\s*"
    r"(?:phase\s+|P(?=\d))?" + ID_PATTERN + r")*)(?![\w])",
    re.IGNORECASE,
)
_ID = re.compile(r"(?<![\w.])" + ID_PATTERN + r"(?![\w])")
_BACKTICKED = re.compile(r"`([^`\s]+)`")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z*`])|\n\s*\n")


def forbids_parallel(hint: str | None) -> bool:
    """`No`, `No (foundation for all other phases)`, `Sequential`: the phase runs alone."""
    return bool(hint) and bool(_NO_FLAG.match(hint or ""))


@dataclass(frozen=True)
class _Sentence:
    text: str
    line: int


def _sentences(tokens: list[Token]) -> list[_Sentence]:
    """Sentences of paragraphs, list items and table cells (never code: fences are not inline)."""
    found: list[_Sentence] = []
    for token in tokens:
        if token.type != "inline" or not token.content:
            continue
        line = token.map[0] + 1 if token.map else 0
        for part in _SENTENCE_END.split(token.content):
            if part.strip():
                found.append(_Sentence(" ".join(part.split()), line))
    return found


def _named_ids(text: str, defined: dict[str, str]) -> list[str]:
    ids: list[str] = []
    for match in _PHASE_LIST.finditer(text):
        for raw in _ID.findall(match.group("ids")):
            phase_id = defined.get(raw.lower())
            if phase_id is not None and phase_id not in ids:
                ids.append(phase_id)
    return ids


def _touching(paths: list[str], phases: list[Phase]) -> list[str]:
    """Phases that declare or mention one of `paths` (a file name matches its full path)."""
    found = []
    for phase in phases:
        declared = {ref.path for ref in phase.files} | {
            ref.path.rsplit("/", 1)[-1] for ref in phase.files
        }
        if any(path in declared or path in phase.body for path in paths):
            found.append(phase.id)
    return found


def _enclosing(line: int, phases: list[Phase]) -> Phase | None:
    return next((p for p in phases if p.line <= line <= p.end_line), None)


def read_serial_notes(
    tokens: list[Token], phases: list[Phase]
) -> tuple[list[SerialNote], list[Diagnostic]]:
    """Prose that forbids running named phases together: honoured when it names at least two
    phases (directly, or as the phases that touch a named file), else a warning with its line."""
    defined = {phase.id.lower(): phase.id for phase in phases}
    notes: list[SerialNote] = []
    out: list[Diagnostic] = []
    for sentence in _sentences(tokens):
        if not _FORBIDS.search(sentence.text):
            continue
        ids = _named_ids(sentence.text, defined)
        paths = [p for p in _BACKTICKED.findall(sentence.text) if "." in p or "/" in p]
        if paths:
            ids += [pid for pid in _touching(paths, phases) if pid not in ids]
        home = _enclosing(sentence.line, phases)
        if home is not None and ids and home.id not in ids:
            ids.insert(0, home.id)  # "this phase cannot run in parallel with Phase 3"
        if len(ids) >= 2:
            notes.append(SerialNote(text=sentence.text[:200], line=sentence.line, phase_ids=ids))
            out.append(
                diagnostic(
                    "I-SERIAL-NOTE",
                    Severity.INFO,
                    f"'{sentence.text[:120]}': Phases {', '.join(ids)} never share a wave",
                    sentence.line,
                )
            )
        elif ids or paths:
            out.append(
                diagnostic(
                    "W-SERIAL-NOTE",
                    Severity.WARNING,
                    f"'{sentence.text[:120]}' says some work must not run in parallel, but "
                    "fewer than two phases could be identified: not enforced; add dependencies "
                    "or mark those phases `Parallel: No`",
                    sentence.line,
                )
            )
    return notes, out
