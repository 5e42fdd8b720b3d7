"""The evidence ledger: every check plan-executor runs becomes one entry. Agents never write here."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from pydantic import BaseModel, Field


class Verdict(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    WARN = "warn"
    NOT_RUN = "not_run"
    """Recorded but not executed (prose blast radius, a design phase's tests): never a pass."""
    NEEDS_JUDGEMENT = "needs_judgement"
    """A criterion no mechanical check can decide; a verifier agent judges it later."""


class LedgerEntry(BaseModel):
    check: str
    """What was checked, e.g. `file-exists src/lib.rs`, `blast-radius`, `clippy`, `criterion 3`."""
    command: str | None = None
    exit_code: int | None = None
    duration_s: float = 0.0
    verdict: Verdict
    evidence: str = ""
    """Counts, file lines, the tail of the output, the digest of the full output."""
    required: bool = True
    """A failing required entry blocks the phase; a failing optional one is a warning."""
    phase_id: str | None = None
    judged: bool = False
    """True when the verdict came from a verifier agent's judgement, not from a mechanical check."""

    def line(self) -> str:
        code = "" if self.exit_code is None else f" exit={self.exit_code}"
        if self.judged:
            how = "judged"
        elif self.verdict is Verdict.NEEDS_JUDGEMENT:
            how = "awaiting judgement"
        else:
            how = "verified"
        return f"[{self.verdict.value}] {self.check}{code} ({how}): {self.evidence}".strip()


class Ledger(BaseModel):
    entries: list[LedgerEntry] = Field(default_factory=list)

    def add(self, entry: LedgerEntry) -> LedgerEntry:
        self.entries.append(entry)
        return entry

    def extend(self, entries: Iterable[LedgerEntry]) -> None:
        self.entries.extend(entries)

    def failing(self) -> list[LedgerEntry]:
        return [e for e in self.entries if e.required and e.verdict is Verdict.FAIL]


class VerdictStatus(StrEnum):
    """What the evidence decides for a phase: complete, or blocked by a failing required check.

    Not the checkpoint status (`plan_parser.vocabulary.PhaseStatus`, eight names the mirror
    records): the run maps this verdict onto one of those."""

    COMPLETE = "complete"
    BLOCKED = "blocked"


class PhaseVerdict(BaseModel):
    status: VerdictStatus
    failing: list[LedgerEntry] = Field(default_factory=list)
    needs_judgement: list[LedgerEntry] = Field(default_factory=list)
