"""Which agents a phase calls and what the verifier is asked: shared by the phase subflow
(`flows/phase.py`) and the dry run's forecast (`tasks/dry_run.py`), without Prefect."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel

from plan_parser.model import Phase, Plan
from plan_parser.owners import FEATURE_TESTER, GENERAL_PURPOSE
from tasks.agent.tools import VERDICT_NAME

TESTER_AGENT = FEATURE_TESTER
"""The feature tester a phase may assign besides its owner (`Secondary: Feature Tester`)."""

VERIFIER_AGENT = GENERAL_PURPOSE
"""The agent that judges the criteria no check decides (read-only whatever its definition)."""
VERIFIER_MAX_TURNS = 20
"""The verifier's turns at most (the run's own cap when that is lower): it reads and records."""


def agent_owner(phase: Phase) -> str:
    """The owner text an agent call of the phase resolves (a phase without one: general-purpose)."""
    return phase.owner.raw if phase.owner else GENERAL_PURPOSE


def agent_roles(phase: Phase, repo: Path) -> list[tuple[str, str]]:
    """The owner, then the feature tester when the plan assigns one besides the owner."""
    roles = [("owner", agent_owner(phase))]
    owner_agent = phase.owner.agent if phase.owner else None
    if owner_agent != TESTER_AGENT and assigns_tester(phase):
        roles.append(("tester", TESTER_AGENT))
    return roles


def assigns_tester(phase: Phase) -> bool:
    for key, value in phase.extra_fields.items():
        if re.search(r"test|support|secondary|also", key, re.I) and re.search(
            r"feature[- ]tester", value, re.I
        ):
            return True
    return False


class VerifierCriterion(BaseModel):
    """One criterion the verifier judges, named as the ledger and the report name it."""

    id: str
    """The plan's own number (`3` for the ledger's `criterion 3`), or the check itself."""
    text: str
    note: str = ""
    """What the gates found when they tried (e.g. `no test ran in this phase`), if anything."""


def verifier_task(plan: Plan, phase: Phase, criteria: list[VerifierCriterion]) -> str:
    listed = "\n".join(
        f"- criterion {c.id}: {c.text}"
        + (f"\n  (the gates could not decide: {c.note})" if c.note else "")
        for c in criteria
    )
    return (
        f"You are the read-only VERIFIER for phase {phase.id} ({phase.title}) of the plan "
        f"'{plan.title}'. You cannot change files. Read the code and decide each acceptance "
        "criterion below. The filesystem is the source of truth; ignore anyone's claims.\n\n"
        f"Criteria to judge:\n{listed}\n\n"
        f"Record each verdict by calling the `{VERDICT_NAME}` tool once per criterion: "
        '`criterion` is its number above ("criterion 3" is "3"), `verdict` PASS or FAIL, '
        "`path` and `line` the file and line that prove it, `reason` one sentence. Only "
        "recorded verdicts count: your text is not read for them. A PASS without a citation of "
        "an existing file and a line inside it counts as FAIL, and so does a criterion without a "
        "recorded verdict. Recording a criterion again replaces its verdict.\n\n"
        f"The phase as planned (for context; its criteria to judge are the ones above):\n\n"
        f"{_context_body(phase, criteria)}"
    )


def _context_body(phase: Phase, criteria: list[VerifierCriterion]) -> str:
    """The phase's text without the lines of the criteria to judge: each is shown once, by
    its number, so the verifier never sees the same criterion under two names."""
    lines = phase.body.splitlines()
    judged = {int(c.id) for c in criteria if c.id.isdigit()}
    drop: set[int] = set()
    for number, criterion in enumerate(phase.acceptance_criteria, 1):
        if number not in judged or criterion.line is None:
            continue
        index = criterion.line - phase.line
        if 0 <= index < len(lines) and criterion.text in lines[index]:
            drop.add(index)
    return "\n".join(line for index, line in enumerate(lines) if index not in drop)
