"""Test helpers for the plan-file writer (independent of the plan parser on purpose)."""

from __future__ import annotations

import re
from pathlib import Path

PHASE_HEADING_RE = re.compile(r"^#{2,3} Phase (\d+[A-Za-z]?(?:\.\d+)?)\b", re.MULTILINE)
FIXED_IDS = ["0", "2.5", "7a", "1A"]


def phase_ids(text: str) -> list[str]:
    """Ids from `## Phase N` / `### Phase N` headings (a simple scan, only to get test ids)."""
    ids: list[str] = []
    for found in PHASE_HEADING_RE.findall(text):
        if found not in ids:
            ids.append(found)
    return ids or list(FIXED_IDS)


def corpus_plans(shared_dir: Path) -> list[Path]:
    plans = sorted((shared_dir / "corpus" / "plans").glob("*.md"))
    assert len(plans) >= 60, f"expected the corpus in {shared_dir}, found {len(plans)} plans"
    return plans
