"""The phase verdict: decided from the ledger alone, never from an agent's words."""

from __future__ import annotations

from tasks.gates.ledger import Ledger, LedgerEntry, PhaseVerdict, Verdict, VerdictStatus


def blocks(entry: LedgerEntry) -> bool:
    """A required entry blocks unless it passed or only warns.

    NOT_RUN is never a pass: a required check that did not run blocks. NEEDS_JUDGEMENT is not a
    failure until a verifier judges it (the judged entry then carries PASS or FAIL).
    """
    if not entry.required:
        return False
    return entry.verdict in (Verdict.FAIL, Verdict.NOT_RUN)


def decide(ledger: Ledger) -> PhaseVerdict:
    failing = [entry for entry in ledger.entries if blocks(entry)]
    pending = [
        entry
        for entry in ledger.entries
        if entry.verdict is Verdict.NEEDS_JUDGEMENT and not entry.judged
    ]
    status = VerdictStatus.BLOCKED if failing else VerdictStatus.COMPLETE
    return PhaseVerdict(status=status, failing=failing, needs_judgement=pending)


def explain(verdict: PhaseVerdict) -> str:
    """The verdict as text: the deciding ledger lines first, then what awaits judgement."""
    lines = [verdict.status.value.upper()]
    lines += [f"  blocking: {entry.line()}" for entry in verdict.failing]
    lines += [
        f"  needs judgement: {entry.check}: {entry.evidence}" for entry in verdict.needs_judgement
    ]
    return "\n".join(lines)
