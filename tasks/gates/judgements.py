"""The verifier's part of the ledger: what it is asked, and what its recorded verdicts become.

The gates leave the acceptance criteria no check can decide as `needs_judgement` entries. A
read-only verifier agent is asked about each such criterion once (:func:`verifier_criteria`),
records its verdicts with the `record_verdict` tool, and :func:`judgements` turns them into
judged entries that :func:`with_judgements` puts in place of the awaiting ones. The agent call
itself is the phase flow's (`flows/phase.py` `_judge`); nothing here imports Prefect. The only
reads are of the files a verdict cites.
"""

from __future__ import annotations

import re
from pathlib import Path

from plan_parser.model import Phase
from tasks.agent.result import AgentResult, RecordedVerdict
from tasks.agent.roles import VerifierCriterion
from tasks.agent.tools import citation_problem
from tasks.gates.ledger import Ledger, LedgerEntry, Verdict

NO_VERDICT = "no verdict recorded"
"""The evidence of a judged FAIL for a criterion the verifier recorded nothing about."""

EVIDENCE_CHARS = 500
"""Characters of a judged entry's evidence kept (the citation and the verifier's reason)."""

_CRITERION_CHECK = re.compile(r"^criterion (?P<number>\d+)\b")


def criterion_id(entry: LedgerEntry) -> str:
    """`3` for `criterion 3` and `criterion 3: <text>`: the number the checkpoint shows; any
    other check is its own id."""
    match = _CRITERION_CHECK.match(entry.check)
    return match["number"] if match else entry.check


def criterion_number(entry: LedgerEntry) -> int | None:
    """3 for `criterion 3` and `criterion 3: <text>`; None for a check of no criterion."""
    match = _CRITERION_CHECK.match(entry.check)
    return int(match["number"]) if match else None


def verifier_criteria(phase: Phase, pending: list[LedgerEntry]) -> list[VerifierCriterion]:
    """Each pending criterion once (a criterion may leave several entries undecided), with the
    plan's own text."""
    criteria: dict[str, VerifierCriterion] = {}
    for entry in pending:
        cid = criterion_id(entry)
        if cid in criteria:
            continue
        text = entry.evidence
        if cid.isdigit() and 1 <= int(cid) <= len(phase.acceptance_criteria):
            text = phase.acceptance_criteria[int(cid) - 1].text
        note = entry.evidence if entry.evidence.strip() != text.strip() else ""
        criteria[cid] = VerifierCriterion(id=cid, text=text, note=note)
    return list(criteria.values())


def judgements(
    pending: list[LedgerEntry], result: AgentResult, repo: Path, phase_id: str
) -> list[LedgerEntry]:
    """The judged entries of a verifier call: what it recorded, and why a criterion has none."""
    missing = NO_VERDICT + (f" (the verifier call ended: {result.error})" if result.error else "")
    return judged_entries(pending, result.verdicts, repo, phase_id, missing=missing)


def judged_entries(
    pending: list[LedgerEntry],
    verdicts: list[RecordedVerdict],
    repo: Path,
    phase_id: str,
    *,
    missing: str = NO_VERDICT,
) -> list[LedgerEntry]:
    """The verifier's recorded verdicts as judged ledger entries, one per pending entry.

    A PASS counts only with a citation of an existing file and a line inside it; a criterion
    without a recorded verdict, or with a wrong citation, is a FAIL. A criterion recorded twice
    keeps its last verdict.
    """
    by_id = {verdict.criterion: verdict for verdict in verdicts}
    judged: list[LedgerEntry] = []
    for entry in pending:
        recorded = by_id.get(criterion_id(entry))
        if recorded is None:
            verdict, evidence = Verdict.FAIL, missing
        else:
            problem = citation_problem(repo, recorded.path, recorded.line)
            passed = recorded.verdict == "PASS" and not problem
            verdict = Verdict.PASS if passed else Verdict.FAIL
            evidence = f"{recorded.path}:{recorded.line} {recorded.reason}"
            evidence += f" [{problem}]" if problem else ""
        judged.append(
            entry.model_copy(
                update={
                    "verdict": verdict,
                    "judged": True,
                    "evidence": evidence[:EVIDENCE_CHARS],
                    "phase_id": entry.phase_id or phase_id,
                }
            )
        )
    return judged


def with_judgements(ledger: Ledger, judged: list[LedgerEntry]) -> Ledger:
    """The ledger with each awaiting entry replaced by its judgement (in order: one criterion
    may leave several entries with the same check).

    Only entries still awaiting judgement are replaced: a check a machine decided keeps its
    verdict whatever the verifier says. A judgement with no awaiting entry left is appended.
    """
    waiting: dict[str, list[LedgerEntry]] = {}
    for entry in judged:
        waiting.setdefault(entry.check, []).append(entry)
    entries = []
    for entry in ledger.entries:
        queue = waiting.get(entry.check)
        if entry.verdict is Verdict.NEEDS_JUDGEMENT and not entry.judged and queue:
            entry = queue.pop(0)
        entries.append(entry)
    entries.extend(entry for queue in waiting.values() for entry in queue)
    return Ledger(entries=entries)
