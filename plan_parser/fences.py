"""Fence sanity pass: find code fences that an author nested and CommonMark pairs differently.

A ```` ```markdown ```` example holding its own ```` ```rust ```` block is closed early by the
inner fence under CommonMark, which can hide a real phase heading in a stray code block (seen in
real plans: a whole phase heading swallowed). A stack pairing (a fence with an info string always opens; a bare fence closes the
innermost open one) recovers what the author meant. When the two pairings disagree and the stack
pairing is balanced, the outer fences are lengthened so CommonMark pairs them the same way. Only
fence lines change, so line numbers stay valid.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<run>`{3,}|~{3,})(?P<info>.*)$")


@dataclass
class FenceReport:
    lines: list[str]
    """The (possibly repaired) lines."""
    repaired_lines: list[int] = field(default_factory=list)
    """1-based lines whose fence was lengthened."""
    unterminated_line: int | None = None
    """1-based line of a fence CommonMark leaves open to the end of the file (after repair)."""
    disagreement: bool = False


@dataclass
class _Fence:
    index: int
    char: str
    length: int
    has_info: bool


def _fences(lines: list[str]) -> list[_Fence]:
    found = []
    for index, line in enumerate(lines):
        if "`" not in line and "~" not in line:
            continue
        match = _FENCE.match(line)
        if match is None:
            continue
        run = match.group("run")
        info = match.group("info").strip()
        if run[0] == "`" and "`" in info:
            continue  # inline code such as ```x``` is not a fence
        found.append(_Fence(index, run[0], len(run), bool(info)))
    return found


def _commonmark_pairs(fences: list[_Fence]) -> tuple[set[tuple[int, int]], int | None]:
    pairs: set[tuple[int, int]] = set()
    open_fence: _Fence | None = None
    for fence in fences:
        if open_fence is None:
            open_fence = fence
        elif (
            fence.char == open_fence.char
            and fence.length >= open_fence.length
            and not fence.has_info
        ):
            pairs.add((open_fence.index, fence.index))
            open_fence = None
    return pairs, (open_fence.index if open_fence else None)


def _stack_pairs(fences: list[_Fence]) -> tuple[list[tuple[_Fence, _Fence, int]], bool]:
    """Pairs `(open, close, depth)`; the flag says whether every fence found a partner."""
    stack: list[_Fence] = []
    pairs: list[tuple[_Fence, _Fence, int]] = []
    for fence in fences:
        if fence.has_info or not stack:
            stack.append(fence)
        else:
            opener = stack.pop()
            pairs.append((opener, fence, len(stack)))
    return pairs, not stack


def check(lines: list[str]) -> FenceReport:
    fences = _fences(lines)
    report = FenceReport(lines=lines)
    if not fences:
        return report
    cm_pairs, cm_open = _commonmark_pairs(fences)
    stack_pairs, balanced = _stack_pairs(fences)
    stack_set = {(opener.index, closer.index) for opener, closer, _ in stack_pairs}
    if stack_set == cm_pairs and cm_open is None:
        return report
    report.disagreement = True
    if not balanced or not any(depth > 0 for _, _, depth in stack_pairs):
        report.unterminated_line = cm_open + 1 if cm_open is not None else None
        return report
    repaired = list(lines)
    # Innermost pairs come first in `stack_pairs` (they close first), so each outer pair can
    # be made longer than everything it contains.
    needed: dict[int, int] = {}
    for opener, closer, _ in stack_pairs:
        inner = [
            needed.get(o.index, o.length)
            for o, c, _ in stack_pairs
            if opener.index < o.index and c.index < closer.index
        ]
        length = max([opener.length, closer.length, *(n + 1 for n in inner)])
        needed[opener.index] = length
        if length > opener.length or length > closer.length or inner:
            for fence in (opener, closer):
                if length != fence.length:
                    repaired[fence.index] = _relength(lines[fence.index], length)
                    report.repaired_lines.append(fence.index + 1)
    report.lines = repaired
    report.repaired_lines.sort()
    _, still_open = _commonmark_pairs(_fences(repaired))
    report.unterminated_line = still_open + 1 if still_open is not None else None
    return report


def _relength(line: str, length: int) -> str:
    match = _FENCE.match(line)
    assert match is not None
    char = match.group("run")[0]
    return f"{match.group('indent')}{char * length}{match.group('info')}"
