"""The verifier gives its verdicts with the `record_verdict` tool (issue 23): the real SDK and
tool loop against the stand-in Messages API, then the flow's own judging of what was recorded.

The phase's criteria 3 and 5 are prose (no mechanical check decides them), so the verifier
judges exactly those two; before the tool, its free text was parsed and `VERDICT 3: PASS`
(the plan's number) blocked a phase that `VERDICT 1: PASS` (its place in the list) completed.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pydantic
import pytest

from cli.demo import PhaseScript, ScriptedAgents
from plan_parser import parse_text
from tasks.agent.loop import run_agent
from tasks.agent.result import AgentResult
from tasks.agent.roles import verifier_task
from tasks.agent.sandbox import Sandbox, SandboxSettings
from tasks.agent.tools import VERDICT_NAME, tools_for
from tasks.gates.criteria import evaluate_criterion
from tasks.gates.judgements import judgements, verifier_criteria, with_judgements
from tasks.gates.ledger import Ledger, LedgerEntry, Verdict, VerdictStatus
from tasks.gates.verdict import decide
from tests.agent.conftest import API_KEY, client_for, make_request
from tests.fakes import (
    StandinMessagesAPI,
    bash_command,
    editor_create,
    editor_str_replace,
    editor_view,
    record_verdict,
    text_turn,
    tool_turn,
)

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap not installed")

PLAN = """# Multiplication

**Created:** 2026-02-01

## Phases

### Phase 1: Multiply

**Principal Owner:** Rust Developer
**Dependencies:** None
**Blast Radius:** `cargo test`

**Files to modify:**
- `src/lib.rs` - `mul(a, b)` and its tests

**Acceptance Criteria:**
- [ ] `src/lib.rs` exists
- [ ] `cargo test` passes
- [ ] Tests for mul pass
- [ ] `mul` has a doc comment
- [ ] `mul` is described in plain words
"""
LIB = "/// Multiplies.\npub fn mul(a: i64, b: i64) -> i64 {\n    a * b\n}\n"
PLAN_OBJ = parse_text(PLAN, "2026-02-01.mul.md")
PHASE = PLAN_OBJ.phase("1")
JUDGED = ("3", "5")


def pending(repo: Path) -> list[LedgerEntry]:
    """The gates' entries for the prose criteria, named as the gates name them."""
    entries: list[LedgerEntry] = []
    for number in map(int, JUDGED):
        text = PHASE.acceptance_criteria[number - 1].text
        entries += evaluate_criterion(
            repo, number, text, count_tests=lambda _: (None, "no run"), allowed_programs=set()
        )
    assert [e.verdict for e in entries] == [Verdict.NEEDS_JUDGEMENT] * 2
    return entries


@pytest.fixture
def lib(repo: Path) -> Path:
    (repo / "src" / "lib.rs").write_text(LIB)
    return repo


def verify(
    fake: StandinMessagesAPI, repo: Path, **overrides: Any
) -> tuple[AgentResult, Ledger, list[LedgerEntry]]:
    """One verifier call as the phase flow makes it, and the ledger its verdicts give."""
    waiting = pending(repo)
    criteria = verifier_criteria(PHASE, waiting)
    request = make_request(
        repo,
        task=verifier_task(PLAN_OBJ, PHASE, criteria),
        read_only=True,
        role_suffix="verifier",
        verdict_criteria=[c.id for c in criteria],
        **overrides,
    )
    result = run_agent(request, client=client_for(fake))
    judged = judgements(waiting, result, repo, "1")
    build = LedgerEntry(check="build", verdict=Verdict.PASS)
    return result, with_judgements(Ledger(entries=[build, *waiting]), judged), judged


def tool_results(fake: StandinMessagesAPI, index: int) -> list[dict[str, Any]]:
    """The tool results sent with work request ``index`` (0-based)."""
    body = [r for r in fake.message_requests if not r.is_summary_request][index].body
    last_user = [m for m in body["messages"] if m["role"] == "user"][-1]
    return [b for b in last_user["content"] if b.get("type") == "tool_result"]


def status(ledger: Ledger) -> VerdictStatus:
    return decide(ledger).status


PROSE = {
    "renumbered": "VERDICT 1: PASS src/lib.rs:2 tests pass\nVERDICT 2: PASS src/lib.rs:1 said",
    "plan numbers": "VERDICT 3: PASS src/lib.rs:2 tests pass\nVERDICT 5: PASS src/lib.rs:1 said",
    "markdown": "| criterion | verdict |\n|---|---|\n| 3 | **PASS** |\n| 5 | Pass |",
    "contrary": "VERDICT 3: FAIL src/lib.rs:2 no\nVERDICT 5: FAIL src/lib.rs:1 no",
}


@pytest.mark.parametrize("prose", PROSE.values(), ids=PROSE.keys())
@pytest.mark.parametrize("recorded", ["PASS", "FAIL"])
def test_the_prose_never_decides_whatever_its_numbering(
    standin, lib: Path, prose: str, recorded: str
) -> None:
    fake = standin(
        [
            tool_turn(
                record_verdict("3", recorded, "src/lib.rs", 2, "mul multiplies"),
                record_verdict("5", recorded, "src/lib.rs", 1, "the doc comment says so"),
                text=prose,
            ),
            text_turn(prose),
        ],
        summary_text=prose,
    )
    result, ledger, judged = verify(fake, lib)

    assert result.ok, result.error
    assert [(v.criterion, v.verdict) for v in result.verdicts] == [("3", recorded), ("5", recorded)]
    wanted = VerdictStatus.COMPLETE if recorded == "PASS" else VerdictStatus.BLOCKED
    assert status(ledger) is wanted
    assert [e.check for e in judged] == ["criterion 3", "criterion 5"]
    assert judged[0].line().startswith(f"[{recorded.lower()}] criterion 3 (judged): src/lib.rs:2")
    assert len(fake.message_requests) == 3  # two turns and the summary: nothing asked again


def test_the_tool_offers_exactly_the_judged_criteria_by_their_plan_numbers(
    standin, lib: Path
) -> None:
    fake = standin([text_turn("I will look."), text_turn("Still looking.")])
    verify(fake, lib)

    first = fake.message_requests[0].body
    tool = next(t for t in first["tools"] if t["name"] == VERDICT_NAME)
    assert tool["input_schema"]["properties"]["criterion"]["enum"] == ["3", "5"]
    task = first["messages"][0]["content"][0]["text"]
    for number in JUDGED:
        text = PHASE.acceptance_criteria[int(number) - 1].text
        assert task.count(text) == 1 and f"- criterion {number}: {text}" in task


def test_verdicts_across_several_turns_and_the_last_one_wins(standin, lib: Path) -> None:
    fake = standin(
        [
            tool_turn(record_verdict("3", "FAIL", "src/lib.rs", 1, "not sure yet")),
            tool_turn(editor_view("src/lib.rs")),
            tool_turn(
                record_verdict("3", "PASS", "src/lib.rs", 2, "mul is there"),
                record_verdict(5, "PASS", "src/lib.rs", 1, "documented"),
            ),
            text_turn("Both criteria are met."),
        ]
    )
    result, ledger, _ = verify(fake, lib)

    assert [(v.criterion, v.verdict, v.line) for v in result.verdicts] == [
        ("3", "PASS", 2),
        ("5", "PASS", 1),
    ]
    assert status(ledger) is VerdictStatus.COMPLETE
    first, replaced = tool_results(fake, 1)[0], tool_results(fake, 3)[0]
    assert "Still to record: criterion 5" in first["content"]
    assert "replacing the earlier verdict" in replaced["content"]
    assert "Every criterion has a verdict" in tool_results(fake, 3)[1]["content"]
    assert result.turns == 4 and result.verdicts_missing == []


def test_an_unknown_criterion_or_verdict_is_refused_and_can_be_corrected(
    standin, lib: Path
) -> None:
    fake = standin(
        [
            tool_turn(
                record_verdict("1", "PASS", "src/lib.rs", 2, "its place in the list"),
                record_verdict("3", "**PASS**", "src/lib.rs", 2, "markdown"),
                record_verdict("5", "PASS", "src/lib.rs", 1, "documented"),
            ),
            tool_turn(record_verdict("criterion 3", "pass", "src/lib.rs", 2, "mul is there")),
            text_turn("Done."),
        ]
    )
    result, ledger, _ = verify(fake, lib)

    refused = tool_results(fake, 1)
    assert [bool(r.get("is_error")) for r in refused] == [True, True, False]
    assert "unknown criterion '1'" in refused[0]["content"] and "3, 5" in refused[0]["content"]
    assert "PASS or FAIL" in refused[1]["content"]
    assert not tool_results(fake, 2)[0].get("is_error")
    assert [(v.criterion, v.verdict) for v in result.verdicts] == [("3", "PASS"), ("5", "PASS")]
    assert status(ledger) is VerdictStatus.COMPLETE


@pytest.mark.parametrize("answer", ["records it", "prose again"])
def test_a_missing_verdict_is_asked_for_once_then_fails(standin, lib: Path, answer: str) -> None:
    follow_up = (
        tool_turn(record_verdict("3", "PASS", "src/lib.rs", 2, "mul is there"))
        if answer == "records it"
        else text_turn("As I said: VERDICT 3: PASS src/lib.rs:2 mul is there.")
    )
    fake = standin(
        [
            tool_turn(record_verdict("5", "PASS", "src/lib.rs", 1, "documented")),
            text_turn("VERDICT 3: PASS src/lib.rs:2 mul is there"),
            follow_up,
            text_turn("Recorded."),
        ]
    )
    result, ledger, judged = verify(fake, lib)

    work = [r for r in fake.message_requests if not r.is_summary_request]
    asked = [r for r in work if "No verdict is recorded for" in str(r.body["messages"][-1])]
    assert len(asked) == 1
    reminder = asked[0].body["messages"][-1]["content"][-1]["text"]
    assert "criterion 3" in reminder and "criterion 5" not in reminder
    if answer == "records it":
        assert status(ledger) is VerdictStatus.COMPLETE and result.verdicts_missing == []
        assert len(work) == 4
        return
    assert len(work) == 3  # asked once, never twice
    assert result.ok and result.verdicts_missing == ["3"]
    assert status(ledger) is VerdictStatus.BLOCKED
    assert judged[0].line() == "[fail] criterion 3 (judged): no verdict recorded"
    assert [e.verdict for e in ledger.failing()] == [Verdict.FAIL]


def test_a_citation_of_a_missing_file_or_line_fails(standin, lib: Path, outside: Path) -> None:
    fake = standin(
        [
            tool_turn(
                record_verdict("3", "PASS", "src/missing.rs", 1, "the tests are there"),
                record_verdict("5", "PASS", str(outside / "secret.txt"), 1, "outside"),
            ),
            tool_turn(record_verdict("5", "PASS", "src/lib.rs", 99, "beyond the end")),
            text_turn("Done."),
        ]
    )
    result, ledger, judged = verify(fake, lib)

    warned = tool_results(fake, 1) + tool_results(fake, 2)
    assert all(r.get("is_error") for r in warned)
    assert "cited file src/missing.rs does not exist" in warned[0]["content"]
    assert "does not exist" in warned[1]["content"]  # outside the repository: not a citation
    assert "cited line 99 is outside src/lib.rs (4 lines)" in warned[2]["content"]
    assert [v.verdict for v in result.verdicts] == ["PASS", "PASS"]  # recorded, but worthless
    assert status(ledger) is VerdictStatus.BLOCKED
    assert [e.verdict for e in judged] == [Verdict.FAIL, Verdict.FAIL]
    assert judged[0].evidence.endswith("[cited file src/missing.rs does not exist]")
    assert "cited line 99 is outside" in judged[1].evidence


def test_a_verifier_that_tries_to_write_is_refused(standin, lib: Path) -> None:
    fake = standin(
        [
            tool_turn(
                editor_create("src/new.rs", "pub fn cheat() {}\n"),
                editor_str_replace("src/lib.rs", "a * b", "a + b"),
                bash_command("touch made.txt; echo changed > src/lib.rs"),
                record_verdict("3", "PASS", "src/lib.rs", 2, "mul is there"),
                record_verdict("5", "PASS", "src/lib.rs", 1, "documented"),
            ),
            text_turn("Done."),
        ]
    )
    result, ledger, _ = verify(fake, lib)

    results = tool_results(fake, 1)
    assert [bool(r.get("is_error")) for r in results] == [True, True, True, False, False]
    assert "read-only" in results[0]["content"] and "read-only" in results[1]["content"]
    assert "Read-only file system" in results[2]["content"]
    assert (lib / "src" / "lib.rs").read_text() == LIB and result.files_touched == []
    assert not (lib / "src" / "new.rs").exists() and not (lib / "made.txt").exists()
    assert status(ledger) is VerdictStatus.COMPLETE


def test_a_known_secret_in_a_verdict_never_reaches_the_ledger(standin, lib: Path) -> None:
    fake = standin(
        [
            tool_turn(
                record_verdict("3", "PASS", "src/lib.rs", 2, f"the key {API_KEY} works"),
                record_verdict("5", "PASS", "src/lib.rs", 1, "documented"),
            ),
            text_turn("Done."),
        ]
    )
    result, ledger, _ = verify(fake, lib)
    assert API_KEY not in result.model_dump_json() and API_KEY not in str(ledger)
    assert "[redacted]" in result.verdicts[0].reason


def test_only_read_only_verifier_calls_get_the_tool(standin, lib: Path) -> None:
    with pytest.raises(pydantic.ValidationError, match="read-only"):
        make_request(lib, verdict_criteria=["3"])
    sandbox = Sandbox(lib, SandboxSettings())
    with pytest.raises(ValueError, match="read-only"):
        tools_for(
            None, repo=lib, sandbox=sandbox, read_only=False, timeout_s=5, verdict_criteria=["3"]
        )
    # An owner's call has no such tool: a verdict it tries to record is an unknown tool.
    fake = standin(
        [tool_turn(record_verdict("3", "PASS", "src/lib.rs", 1, "trust me")), text_turn("done")]
    )
    result = run_agent(make_request(lib), client=client_for(fake))
    assert result.verdicts == []
    assert VERDICT_NAME not in {t["name"] for t in fake.message_requests[0].body["tools"]}
    assert "unknown tool 'record_verdict'" in tool_results(fake, 1)[0]["content"]


@pytest.mark.parametrize(
    ("verdict", "wanted", "evidence"),
    [
        ("PASS", VerdictStatus.COMPLETE, "src/lib.rs:2 the code there meets it"),
        ("FAIL", VerdictStatus.BLOCKED, "src/lib.rs:2 it does not meet it"),
        ("none", VerdictStatus.BLOCKED, "no verdict recorded"),
    ],
)
def test_scripted_agents_record_their_verdicts_with_the_tool(
    lib: Path, verdict: str, wanted: VerdictStatus, evidence: str
) -> None:
    """The flow tests' scripted verifier (cli/demo.py), whatever its prose says."""
    script = PhaseScript(cite="src/lib.rs:2", verdict=verdict, verifier_prose=PROSE["renumbered"])
    with StandinMessagesAPI(responder=ScriptedAgents({"1": script}), auto_summary=False) as fake:
        _, ledger, judged = verify(fake, lib)
        requests = fake.message_requests
    assert status(ledger) is wanted
    assert [e.evidence for e in judged] == [evidence, evidence]
    asked_again = any("No verdict is recorded" in str(r.body["messages"][-1]) for r in requests)
    assert asked_again is (verdict == "none")
