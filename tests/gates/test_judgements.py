"""The verifier's part of the ledger without an agent: which criteria it is asked, what its
recorded verdicts become, and how they enter the ledger (`tasks/gates/judgements.py`)."""

from __future__ import annotations

from pathlib import Path

from plan_parser import parse_text
from tasks.agent.result import AgentResult, FailureKind, RecordedVerdict
from tasks.gates.judgements import (
    EVIDENCE_CHARS,
    NO_VERDICT,
    criterion_id,
    criterion_number,
    judged_entries,
    judgements,
    verifier_criteria,
    with_judgements,
)
from tasks.gates.ledger import Ledger, LedgerEntry, Verdict, VerdictStatus
from tasks.gates.verdict import decide

PLAN = """# Shouting

**Created:** 2026-02-01

## Phases

### Phase 1: Shout

**Principal Owner:** Rust Developer
**Dependencies:** None

**Acceptance Criteria:**
- [ ] `src/shout.rs` exists
- [ ] `shout` upper-cases its input
- [ ] The README explains shouting
"""
PHASE = parse_text(PLAN, "2026-02-01.shout.md").phase("1")


def awaiting(check: str, evidence: str = "prose criterion", **fields: object) -> LedgerEntry:
    return LedgerEntry(check=check, verdict=Verdict.NEEDS_JUDGEMENT, evidence=evidence, **fields)  # type: ignore[arg-type]


def recorded(
    criterion: str, verdict: str, path: str = "src/shout.rs", line: int = 1
) -> RecordedVerdict:
    return RecordedVerdict(
        criterion=criterion, verdict=verdict, path=path, line=line, reason="read it"
    )  # type: ignore[arg-type]


def repo_with_source(tmp_path: Path) -> Path:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "shout.rs").write_text("pub fn shout(s: &str) -> String {\n}\n")
    return tmp_path


def test_a_criterion_check_names_its_plan_number_and_other_checks_name_themselves() -> None:
    assert criterion_id(awaiting("criterion 3")) == "3"
    assert criterion_id(awaiting("criterion 12: `rg shout` finds it")) == "12"
    assert criterion_number(awaiting("criterion 12: `rg shout` finds it")) == 12
    for check in ("build", "criterion", "criterion 2x", "a criterion 2", "Criterion 2"):
        assert criterion_id(awaiting(check)) == check
        assert criterion_number(awaiting(check)) is None


def test_the_verifier_is_asked_each_criterion_once_with_the_plans_own_text() -> None:
    pending = [
        awaiting("criterion 3", evidence="no test ran in this phase"),
        awaiting("criterion 2", evidence=PHASE.acceptance_criteria[1].text),
        awaiting("criterion 3: README", evidence="a second entry of criterion 3"),
        awaiting("criterion 9", evidence="a criterion the plan does not have"),
        awaiting("wiring", evidence="is `shout` called?"),
    ]
    criteria = verifier_criteria(PHASE, pending)
    assert [(c.id, c.text, c.note) for c in criteria] == [
        ("3", "The README explains shouting", "no test ran in this phase"),
        ("2", "`shout` upper-cases its input", ""),  # the evidence is the text: no note
        ("9", "a criterion the plan does not have", ""),
        ("wiring", "is `shout` called?", ""),
    ]


def test_a_pass_with_a_real_citation_passes_and_a_recorded_fail_fails(tmp_path: Path) -> None:
    repo = repo_with_source(tmp_path)
    pending = [awaiting("criterion 2"), awaiting("criterion 3")]
    judged = judged_entries(
        pending, [recorded("2", "PASS", line=2), recorded("3", "FAIL")], repo, "1"
    )
    assert [(e.check, e.verdict, e.judged) for e in judged] == [
        ("criterion 2", Verdict.PASS, True),
        ("criterion 3", Verdict.FAIL, True),
    ]
    assert [e.evidence for e in judged] == ["src/shout.rs:2 read it", "src/shout.rs:1 read it"]


def test_a_pass_without_a_line_of_an_existing_file_is_a_fail(tmp_path: Path) -> None:
    repo = repo_with_source(tmp_path)
    pending = [awaiting("criterion 1"), awaiting("criterion 2"), awaiting("criterion 3")]
    verdicts = [
        recorded("1", "PASS", path="src/missing.rs"),
        recorded("2", "PASS", line=3),  # the file has two lines
        recorded("3", "PASS", path="../outside.rs"),
    ]
    (tmp_path.parent / "outside.rs").write_text("fn outside() {}\n")
    judged = judged_entries(pending, verdicts, repo, "1")
    assert [e.verdict for e in judged] == [Verdict.FAIL] * 3
    assert (
        judged[0].evidence == "src/missing.rs:1 read it [cited file src/missing.rs does not exist]"
    )
    assert judged[1].evidence.endswith("[cited line 3 is outside src/shout.rs (2 lines)]")
    assert "[cited file ../outside.rs does not exist]" in judged[2].evidence


def test_a_criterion_without_a_verdict_fails_and_says_why(tmp_path: Path) -> None:
    pending = [awaiting("criterion 2"), awaiting("criterion 3")]
    judged = judged_entries(pending, [recorded("2", "FAIL")], tmp_path, "1")
    assert (judged[1].verdict, judged[1].evidence) == (Verdict.FAIL, NO_VERDICT)

    ended = AgentResult(
        agent="general-purpose",
        model="m",
        summary="",
        failure=FailureKind.AGENT,
        error="turn cap reached",
    )
    [missing] = judgements([awaiting("criterion 3")], ended, tmp_path, "1")
    assert missing.verdict is Verdict.FAIL
    assert missing.evidence == f"{NO_VERDICT} (the verifier call ended: turn cap reached)"
    quiet = AgentResult(agent="general-purpose", model="m", summary="")
    assert judgements([awaiting("criterion 3")], quiet, tmp_path, "1")[0].evidence == NO_VERDICT


def test_the_last_verdict_counts_and_evidence_is_capped(tmp_path: Path) -> None:
    repo = repo_with_source(tmp_path)
    long_reason = RecordedVerdict(
        criterion="2", verdict="PASS", path="src/shout.rs", line=1, reason="x" * 2000
    )
    judged = judged_entries(
        [awaiting("criterion 2")], [recorded("2", "FAIL"), long_reason], repo, "1"
    )
    assert judged[0].verdict is Verdict.PASS
    assert len(judged[0].evidence) == EVIDENCE_CHARS


def test_a_judged_entry_keeps_its_own_phase_and_else_takes_the_phases(tmp_path: Path) -> None:
    pending = [awaiting("criterion 2", phase_id="7"), awaiting("criterion 3")]
    judged = judged_entries(pending, [], tmp_path, "1")
    assert [e.phase_id for e in judged] == ["7", "1"]


def test_a_judged_pass_never_overrides_a_mechanical_failure(tmp_path: Path) -> None:
    """Criterion 2 has a failed mechanical check and a part only a verifier can judge: the
    judged PASS replaces the awaiting part only, and the phase stays blocked."""
    repo = repo_with_source(tmp_path)
    failed = LedgerEntry(check="criterion 2", verdict=Verdict.FAIL, evidence="exit 101")
    pending = awaiting("criterion 2")
    ledger = Ledger(entries=[failed, pending, LedgerEntry(check="build", verdict=Verdict.PASS)])
    assert decide(ledger).needs_judgement == [pending]

    judged = judged_entries([pending], [recorded("2", "PASS")], repo, "1")
    merged = with_judgements(ledger, judged)
    assert [(e.check, e.verdict, e.judged) for e in merged.entries] == [
        ("criterion 2", Verdict.FAIL, False),
        ("criterion 2", Verdict.PASS, True),
        ("build", Verdict.PASS, False),
    ]
    verdict = decide(merged)
    assert verdict.status is VerdictStatus.BLOCKED and verdict.failing == [failed]
    assert verdict.needs_judgement == []


def test_judgements_replace_awaiting_entries_in_order_and_nothing_judged_before(
    tmp_path: Path,
) -> None:
    earlier = awaiting("criterion 3").model_copy(
        update={"verdict": Verdict.PASS, "judged": True, "evidence": "judged before"}
    )
    first, second = awaiting("criterion 3", evidence="a"), awaiting("criterion 3", evidence="b")
    ledger = Ledger(entries=[earlier, first, second])
    judged = [
        first.model_copy(update={"verdict": Verdict.FAIL, "judged": True, "evidence": "1"}),
        second.model_copy(update={"verdict": Verdict.PASS, "judged": True, "evidence": "2"}),
        awaiting("criterion 4").model_copy(
            update={"verdict": Verdict.PASS, "judged": True, "evidence": "no place for it"}
        ),
    ]
    merged = with_judgements(ledger, judged)
    assert [(e.check, e.evidence) for e in merged.entries] == [
        ("criterion 3", "judged before"),
        ("criterion 3", "1"),
        ("criterion 3", "2"),
        ("criterion 4", "no place for it"),  # a judgement with nothing awaiting is kept
    ]
    assert ledger.entries == [earlier, first, second]  # the ledger given is not changed
    assert decide(merged).status is VerdictStatus.BLOCKED


def test_a_ledger_without_judgements_is_unchanged() -> None:
    ledger = Ledger(
        entries=[awaiting("criterion 1"), LedgerEntry(check="build", verdict=Verdict.PASS)]
    )
    assert with_judgements(ledger, []).entries == ledger.entries
