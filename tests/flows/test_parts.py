"""The flow's pure parts without a Prefect server: the mirror on a real plan file, resume rules,
the verifier's judgements, plan status and the reports."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from cli.demo import demo_plan
from flows.context import PhaseOutcome
from flows.report import RunReport, final_report, implementation_summary, plan_status, table_rows
from plan_parser import parse_plan, parse_text
from plan_parser.checkpoints import ExecutionState, PhaseCheckpoint, read_plan_state
from tasks.agent.result import RecordedVerdict
from tasks.agent.roles import verifier_task
from tasks.gates.judgements import judged_entries, verifier_criteria, with_judgements
from tasks.gates.ledger import Ledger, LedgerEntry, Verdict
from tasks.mirror import PlanMirror
from tasks.plan_input import detect_skills
from tasks.resume import resumable_phases


def write_plan(tmp_path: Path, text: str | None = None) -> Path:
    plan = tmp_path / ".ai" / "plans" / "2026-11-24.demo-sums.md"
    plan.parent.mkdir(parents=True)
    plan.write_text(text or demo_plan(created="2026-11-24"), encoding="utf-8")
    return plan


def test_mirror_writes_each_transition_and_leaves_the_rest_of_the_file(tmp_path: Path) -> None:
    plan_path = write_plan(tmp_path)
    original = plan_path.read_text()
    mirror = PlanMirror(plan_path, tmp_path, plan_title="Demo")
    seen: list[tuple[str, str]] = []
    mirror.listeners.append(lambda cp: seen.append((cp.phase_id, cp.status)))

    async def scenario() -> None:
        await mirror.initialise(
            [PhaseCheckpoint(phase_id=pid, status="pending") for pid in ("1", "2", "3")], "## run"
        )
        await asyncio.gather(mirror.transition("1", "running"), mirror.transition("2", "running"))
        await mirror.update("1", flow_run_id="0000-run")
        await mirror.transition(
            "1", "complete", artifacts=["tests/alpha.rs"], tokens={"input": 5, "output": 7}
        )
        await mirror.transition(
            "2", "blocked", error="gates failed", ledger=["[fail] file tests/beta.rs (verified)"]
        )
        await mirror.transition("3", "skipped", error="depends on phase 2")
        await mirror.set_status("Partially Implemented (1/3 phases complete)")
        await mirror.close()

    asyncio.run(scenario())

    state = read_plan_state(plan_path)
    assert state is not None
    one, two, three = (state.phases[pid] for pid in ("1", "2", "3"))
    assert (one.status, one.flow_run_id, one.artifacts, one.tokens) == (
        "complete",
        "0000-run",
        ["tests/alpha.rs"],
        {"input": 5, "output": 7},
    )
    assert one.started_at and one.completed_at and not one.failed_at
    assert (two.status, two.error, two.ledger) == (
        "blocked",
        "gates failed",
        ["[fail] file tests/beta.rs (verified)"],
    )
    assert two.failed_at and not two.completed_at
    assert three.status == "skipped"
    assert not three.failed_at and not three.completed_at  # it never ran: nothing failed
    text = plan_path.read_text()
    assert "plan_executor" not in text  # the machine record is a comment, not a YAML item
    assert text.startswith(original.split("**Status:**")[0])
    assert parse_plan(plan_path).status == "Partially Implemented (1/3 phases complete)"
    assert [p.body_hash for p in parse_plan(plan_path).phases] == [
        p.body_hash for p in parse_plan(write_plan(tmp_path / "copy")).phases
    ]
    assert ("2", "blocked") in seen and seen.index(("1", "running")) < seen.index(("1", "complete"))
    log = mirror.log_path.read_text()
    assert "Phase 2 Blocked" in log and "Failing check: [fail] file tests/beta.rs" in log
    assert not plan_path.with_name(f".{plan_path.name}.lock").exists()


def test_resume_takes_only_complete_unchanged_phases_whose_files_exist(tmp_path: Path) -> None:
    plan = parse_plan(write_plan(tmp_path))
    hashes = {p.id: p.body_hash for p in plan.phases}
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "alpha.rs").write_text("// alpha\n")
    previous = ExecutionState(
        phases={
            "1": PhaseCheckpoint(phase_id="1", status="complete", phase_hash=hashes["1"]),
            "2": PhaseCheckpoint(phase_id="2", status="complete", phase_hash=hashes["2"]),
            "3": PhaseCheckpoint(phase_id="3", status="failed", phase_hash=hashes["3"]),
        }
    )
    resumed = resumable_phases(plan, previous, tmp_path, ["1", "2", "3"])
    assert list(resumed) == ["1"]  # 2: tests/beta.rs is missing; 3: failed

    changed = previous.model_copy(deep=True)
    changed.phases["1"].phase_hash = "0" * 16
    assert resumable_phases(plan, changed, tmp_path, ["1", "2", "3"]) == {}
    assert resumable_phases(plan, None, tmp_path, ["1"]) == {}


def entry(check: str) -> LedgerEntry:
    return LedgerEntry(check=check, verdict=Verdict.NEEDS_JUDGEMENT, evidence="prose criterion")


def recorded(criterion: str, verdict: str, path: str, line: int) -> RecordedVerdict:
    return RecordedVerdict(
        criterion=criterion, verdict=verdict, path=path, line=line, reason="looked"
    )  # type: ignore[arg-type]


def test_verifier_verdicts_need_a_real_citation(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "lib.rs").write_text("pub fn a() {}\npub fn b() {}\n")
    pending = [entry(f"criterion {n}") for n in range(1, 5)]
    verdicts = [
        recorded("1", "PASS", "src/lib.rs", 2),
        recorded("2", "PASS", "src/missing.rs", 1),
        recorded("3", "PASS", "src/lib.rs", 99),
    ]
    judged = judged_entries(pending, verdicts, tmp_path, "1")
    assert [e.verdict for e in judged] == [Verdict.PASS] + [Verdict.FAIL] * 3
    assert all(e.judged and e.phase_id == "1" for e in judged)
    assert judged[0].evidence == "src/lib.rs:2 looked"
    assert "does not exist" in judged[1].evidence
    assert "outside" in judged[2].evidence
    assert judged[3].evidence == "no verdict recorded"
    failing = judged_entries(
        [entry("criterion 1")], [recorded("1", "FAIL", "src/lib.rs", 1)], tmp_path, "1"
    )
    assert failing[0].verdict is Verdict.FAIL


def test_a_criterion_is_judged_by_its_plan_number_whatever_its_place(tmp_path: Path) -> None:
    """The verifier judges `criterion 3` as "3": the number the ledger and checkpoint show,
    never its place among the judged criteria; its last verdict counts."""
    (tmp_path / "lib.rs").write_text("fn mul() {}\n")
    pending = [entry("criterion 3"), entry("criterion 5: `rg mul` finds it")]
    verdicts = [
        recorded("1", "PASS", "lib.rs", 1),  # its place in the list: no such criterion here
        recorded("3", "FAIL", "lib.rs", 1),
        recorded("3", "PASS", "lib.rs", 1),
        recorded("5", "PASS", "lib.rs", 1),
    ]
    judged = judged_entries(pending, verdicts, tmp_path, "2")
    assert [(e.check, e.verdict) for e in judged] == [
        ("criterion 3", Verdict.PASS),
        ("criterion 5: `rg mul` finds it", Verdict.PASS),
    ]


def test_the_verifier_task_names_each_criterion_once_by_its_plan_number() -> None:
    plan = parse_text(demo_plan(created="2026-11-24"), "2026-11-24.demo-sums.md")
    phase = plan.phase("3")
    pending = [
        LedgerEntry(check="criterion 3", verdict=Verdict.NEEDS_JUDGEMENT, evidence=text)
        for text in [phase.acceptance_criteria[2].text]
    ]
    pending.append(pending[0].model_copy())  # two undecided entries of one criterion
    criteria = verifier_criteria(phase, pending)
    assert [c.id for c in criteria] == ["3"]
    task = verifier_task(plan, phase, criteria)
    text = phase.acceptance_criteria[2].text
    assert task.count(text) == 1 and f"- criterion 3: {text}" in task
    assert "record_verdict" in task and "VERDICT <number>" not in task
    assert phase.acceptance_criteria[0].text in task  # the rest of the phase stays as context
    assert not re.search(r"^\s*1\.\s", task, re.M)  # no numbering of its own


def test_judgements_replace_each_awaiting_entry_once() -> None:
    first = LedgerEntry(check="criterion 2: x", verdict=Verdict.NEEDS_JUDGEMENT, evidence="a")
    second = first.model_copy(update={"evidence": "b"})
    other = LedgerEntry(check="build", verdict=Verdict.PASS)
    ledger = Ledger(entries=[first, other, second])
    judged = [
        first.model_copy(update={"verdict": Verdict.PASS, "judged": True, "evidence": "1"}),
        second.model_copy(update={"verdict": Verdict.FAIL, "judged": True, "evidence": "2"}),
    ]
    merged = with_judgements(ledger, judged)
    assert [(e.check, e.verdict, e.evidence) for e in merged.entries] == [
        ("criterion 2: x", Verdict.PASS, "1"),
        ("build", Verdict.PASS, ""),
        ("criterion 2: x", Verdict.FAIL, "2"),
    ]


def outcome(pid: str, status: str, **fields: object) -> PhaseOutcome:
    return PhaseOutcome(
        phase_id=pid, title=f"Phase {pid}", owner="Rust Developer", status=status, **fields
    )  # type: ignore[arg-type]


def test_plan_status_says_how_far_the_run_got() -> None:
    assert plan_status([outcome("1", "complete"), outcome("2", "complete")]) == "Implemented"
    assert (
        plan_status([outcome("1", "complete"), outcome("2", "blocked"), outcome("3", "skipped")])
        == "Partially Implemented (1/3 phases complete)"
    )
    assert plan_status([outcome("1", "timeout")]) == "Not Implemented (0/1 phases complete)"


def test_reports_hold_the_evidence_and_label_claims() -> None:
    ledger = Ledger(
        entries=[
            LedgerEntry(check="file tests/beta.rs", verdict=Verdict.FAIL, evidence="missing"),
            LedgerEntry(check="blast-radius tests", verdict=Verdict.PASS, evidence="1 passed"),
        ]
    )
    report = RunReport(
        plan_path="plan.md",
        plan_title="Demo",
        status="Partially Implemented (1/2 phases complete)",
        flow_run_id="1234",
        outcomes=[
            outcome(
                "1", "complete", artifacts=["tests/alpha.rs"], tokens={"input": 3}, ledger=ledger
            ),
            outcome(
                "2",
                "blocked",
                error="missing file",
                failing=["[fail] file tests/beta.rs (verified): missing"],
                claims={"owner": "Status: COMPLETE"},
            ),
        ],
    )
    assert report.exit_code == 1
    text = final_report(report)
    for heading in (
        "### Phase Summary",
        "### Files Changed",
        "### Test Results",
        "### Quality Checks",
        "### Issues",
        "### Next Steps",
    ):
        assert heading in text
    assert "`tests/alpha.rs` (phase 1)" in text
    assert "[fail] file tests/beta.rs" in text
    assert "Agent Claims (recorded, not evidence)" in text
    assert "PARTIAL SUCCESS" in text
    rows = table_rows(report.outcomes)
    assert rows[0] == {
        "phase": "1",
        "name": "Phase 1",
        "owner": "Rust Developer",
        "wave": 0,
        "status": "complete",
        "duration": "",
        "tokens": 3,
        "cost_usd": 0.0,
        "verdict": "complete (2 checks)",
    }
    summary = implementation_summary(report)
    assert "- Phase 2: Phase 2 - Blocked - missing file" in summary


def test_skills_come_from_the_user_the_plan_and_the_repository(tmp_path: Path) -> None:
    plan = parse_plan(
        write_plan(
            tmp_path,
            demo_plan().replace(
                "Integration tests for positive", "Integration tests with clap for positive"
            ),
        )
    )
    (tmp_path / "Cargo.toml").write_text("[package]\nname='x'\n")
    user, detected = detect_skills(plan, tmp_path, ["my-skill"])
    assert user == ["my-skill"]
    assert detected[:3] == ["rust-testing", "rust-logging", "rust-devops"]
    assert "clap" in detected


def test_live_view_shows_waves_and_transitions() -> None:
    import io
    from types import SimpleNamespace

    from rich.console import Console

    from cli.live import LiveView

    def checkpoint(pid: str, status: str, error: str | None = None) -> SimpleNamespace:
        return SimpleNamespace(phase_id=pid, status=status, error=error, tokens={"output": 7})

    screen = io.StringIO()
    view = LiveView(live=True, console=Console(file=screen, width=100))
    with view:
        view.set_waves([["1", "2"], ["3"]])
        view.observe(checkpoint("1", "running"))
        view.observe(checkpoint("3", "skipped", "depends on phase 1"))
        view.observe(checkpoint("1", "blocked", "tests/alpha.rs is missing"))
    final = screen.getvalue().split("plan-executor")[-1]
    assert "│ 1    │ 1     │ blocked" in final and "tests/alpha.rs is missing" in final
    assert "│ 2    │ 3     │ skipped" in final

    lines = io.StringIO()
    plain = LiveView(live=False, console=Console(file=lines, width=200))
    with plain:
        plain.observe(checkpoint("2", "running"))
        plain.observe(checkpoint("2", "running"))
        plain.observe(checkpoint("2", "complete"))
    assert lines.getvalue().splitlines() == ["[phase 2] running", "[phase 2] complete"]


def test_feature_tester_joins_when_the_phase_assigns_one(tmp_path: Path) -> None:
    from flows.phase import _agent_roles

    phase = parse_plan(write_plan(tmp_path)).phases[0]
    assert _agent_roles(phase, tmp_path) == [("owner", "Rust Developer")]
    with_tester = phase.model_copy(update={"extra_fields": {"Supporting": "Feature Tester (Rust)"}})
    assert _agent_roles(with_tester, tmp_path) == [
        ("owner", "Rust Developer"),
        ("tester", "feature-tester-rust"),
    ]


def test_process_scope_kills_commands_still_running_in_threads(tmp_path: Path) -> None:
    import signal

    from tasks.shell import process_scope, run

    async def scenario() -> object:
        with process_scope() as scope:
            command = asyncio.create_task(
                asyncio.to_thread(run, ["sleep", "30"], cwd=tmp_path, timeout_s=60)
            )
            for _ in range(200):  # until the thread has started the command
                if scope._groups:
                    break
                await asyncio.sleep(0.02)
            assert scope.kill() == 1
            result = await command
            late = await asyncio.to_thread(run, ["sleep", "30"], cwd=tmp_path, timeout_s=60)
        return result, late

    result, late = asyncio.run(scenario())
    # Killed by the scope (SIGKILL), not finished and not by their own 60 s timeout.
    assert result.exit_code == late.exit_code == -signal.SIGKILL  # type: ignore[attr-defined]
    assert not result.timed_out and not late.timed_out  # type: ignore[attr-defined]


def test_report_says_when_agents_ran_without_the_sandbox() -> None:
    sandboxed = PhaseOutcome(phase_id="1", title="A", status="complete")
    loose = PhaseOutcome(phase_id="2", title="B", status="complete", unsandboxed=True)
    report = RunReport(plan_path="p.md", status="Implemented", outcomes=[sandboxed, loose])
    text = final_report(report)
    assert "**UNSANDBOXED:**" in text and "phase(s) 2 " in text
    quiet = RunReport(plan_path="p.md", status="Implemented", outcomes=[sandboxed])
    assert "UNSANDBOXED" not in final_report(quiet)


def test_run_options_reach_the_agent_sandbox(tmp_path: Path) -> None:
    """`--no-network` / `--allow-unsandboxed` and the protected plan file reach every agent
    request (the sandbox builds its bubblewrap command line from them)."""
    from flows.context import ResolvedRunOptions, RunContext
    from flows.phase import agent_request
    from tasks.run_lock import run_lock_path

    plan_path = tmp_path / ".ai" / "plans" / "2026-11-24.demo.md"
    plan_path.parent.mkdir(parents=True)
    plan_path.write_text(demo_plan())
    plan = parse_plan(plan_path)
    options = ResolvedRunOptions(repo=tmp_path, network=False, allow_unsandboxed=True, max_turns=30)
    context = RunContext(
        plan_path=plan_path,
        plan=plan,
        options=options,
        mirror=PlanMirror(plan_path, tmp_path, plan_title=plan.title, enabled=False),
        skills=["rust"],
    )
    owner = agent_request(context, plan.phases[0], "rust-developer", "do it", role_suffix="details")
    verifier = agent_request(
        context,
        plan.phases[0],
        "general-purpose",
        "judge",
        role_suffix="verifier",
        read_only=True,
        max_turns=20,
    )
    for request in (owner, verifier):
        assert request.network is False and request.allow_unsandboxed is True
        assert request.protected_paths == [plan_path, run_lock_path(plan_path)]
        assert request.skills == ["rust"]
    assert (owner.max_turns, owner.read_only) == (30, False)
    assert (verifier.max_turns, verifier.read_only) == (20, True)


def test_the_retry_entrypoint_takes_exactly_the_flows_parameters() -> None:
    # `prefect flow-run retry --entrypoint ...:execute_plan_sync` refuses a run whose stored
    # parameters do not fit ("Failed to use parameters from previous attempt").
    import inspect

    from flows import execute_plan as module

    def parameters(flow: object) -> list[tuple[str, object]]:
        signature = inspect.signature(flow.fn)  # type: ignore[attr-defined]
        return [(p.name, p.default) for p in signature.parameters.values()]

    assert parameters(module.execute_plan_sync) == parameters(module.execute_plan)


def test_the_run_form_describes_the_options_and_every_field() -> None:
    """The Prefect UI's run form shows the flow's parameters from this schema: `options` is one
    typed parameter, and each of its fields says what it does (attribute docstrings)."""
    from prefect.utilities.callables import parameter_schema

    from flows import execute_plan as module
    from flows.context import RunOptions

    for flow in (module.execute_plan, module.execute_plan_sync):
        schema = parameter_schema(flow).model_dump()
        assert list(schema["properties"]) == ["plan_path", "options"]
        assert schema["required"] == ["plan_path"]
        options = schema["properties"]["options"]
        assert options["description"]
        assert options["default"] == RunOptions().model_dump(mode="json")
        fields = schema["definitions"]["RunOptions"]["properties"]
        assert set(fields) == set(RunOptions.model_fields)
        undescribed = [name for name, field in fields.items() if not field.get("description")]
        assert undescribed == []
        assert fields["max_turns"]["minimum"] == 1 and fields["max_cost_usd"]["anyOf"][0] == {
            "exclusiveMinimum": 0.0,
            "type": "number",
        }
    described = parameter_schema(module.execute_plan).model_dump()["properties"]["options"]
    assert "replaces the deployment's whole" in described["description"]


def test_run_options_resolve_the_repository_once() -> None:
    """The flow's options leave the repository open (the plan's); what the phases get has it."""
    import pytest
    from pydantic import ValidationError

    from flows.context import ResolvedRunOptions, RunOptions

    given = RunOptions(max_turns=7, agent_runtime="claude-code")
    assert given.repo is None
    resolved = given.resolved(Path("/r"))
    assert isinstance(resolved, ResolvedRunOptions) and resolved.repo == Path("/r")
    assert resolved.model_dump(exclude={"repo"}) == given.model_dump(exclude={"repo"})
    with pytest.raises(ValidationError):
        ResolvedRunOptions()  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        RunOptions.model_validate({"dirty_policy": "ignore"})
    with pytest.raises(ValidationError, match="distibute"):  # a misspelt option is refused
        RunOptions.model_validate({"distibute": True})
