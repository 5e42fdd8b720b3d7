"""Phase ids as authors write them: `0`, `7`, `2.5`, `7a`, `1A`.

Ids are kept as written and compared case-insensitively; their order comes from
:func:`id_sort_key`, never from string comparison (`10` sorts after `9`, `2.5` between 2 and 3).
"""

from __future__ import annotations

import re

ID_PATTERN = r"\d+(?:\.\d+)?[A-Za-z]?"
_ID_PARTS = re.compile(r"^(\d+)(?:\.(\d+))?([A-Za-z]?)$")


def id_sort_key(phase_id: str) -> tuple[int, int, str, str]:
    """`(major, minor, letter, text)`; ids that do not follow the grammar sort last by text."""
    text = phase_id.strip()
    match = _ID_PARTS.match(text)
    if match is None:
        return (1 << 30, 0, "", text.lower())
    major, minor, letter = match.groups()
    return (int(major), int(minor or 0), letter.lower(), "")


def id_key(phase_id: str) -> str:
    """Ids compare case-insensitively and without surrounding blanks: ` 1A` is `1a`."""
    return phase_id.strip().lower()


def same_id(left: str, right: str) -> bool:
    return id_key(left) == id_key(right)
