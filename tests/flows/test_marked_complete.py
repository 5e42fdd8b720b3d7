"""Issue #15: a phase whose heading says `✅ COMPLETE` is treated like a complete checkpoint."""

from __future__ import annotations

from pathlib import Path

from flows.execute_plan import MARKED_COMPLETE, _resumed_outcome, resumable_phases
from flows.report import RunReport, _run_link
from plan_parser import parse_text
from tests.parser.helpers import phase_block, plan_text


def _plan():
    text = plan_text(
        phase_block("1", "Config \u2705 COMPLETE", files=["src/config.rs"]),
        phase_block("2", "Cache \u2705 PARTIAL COMPLETE", deps="Phase 1"),
        phase_block("3", "Done too \u2705 COMPLETE", files=["src/missing.rs"]),
    )
    return parse_text(text, "2026-02-01.plan-for-test.md")


def test_parser_marks_the_phase_and_keeps_the_title_clean() -> None:
    plan = _plan()
    assert [p.completed_in_plan for p in plan.phases] == [True, False, True]
    assert plan.phases[0].title == "Config"


def test_marked_phase_is_not_run_when_its_files_exist(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "config.rs").write_text("// done\n")
    plan = _plan()
    resumed = resumable_phases(plan, None, tmp_path, ["1", "2", "3"])
    assert list(resumed) == ["1"]  # 2 is only partial, 3's declared file is missing
    outcome = _resumed_outcome(plan.phase("1"), resumed["1"], 1)
    assert outcome.status == "complete" and outcome.resume_reason == MARKED_COMPLETE
    assert MARKED_COMPLETE in outcome.verdict
    report = RunReport(plan_path="p", repo=str(tmp_path), status="")
    assert _run_link(report, outcome) == MARKED_COMPLETE


def test_dry_run_says_marked_complete_and_repeats_the_warnings(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from flows.execute_plan import dry_run_text

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "config.rs").write_text("// done\n")
    plan = _plan()
    resumed = resumable_phases(plan, None, tmp_path, ["1", "2", "3"])
    context = SimpleNamespace(
        plan=plan,
        plan_path=tmp_path / "plan.md",
        options=SimpleNamespace(dirty_policy="stop", repo=tmp_path),
        waves=[["1"], ["2", "3"]],
    )
    report = RunReport(plan_path="p", repo=str(tmp_path), status="", preflight_ok=True)
    text = dry_run_text(context, report, resumed)  # type: ignore[arg-type]
    assert f"phase 1: Config [rust-developer; implementation] -> skip ({MARKED_COMPLETE})" in text
    assert "phase 2: Cache [rust-developer; implementation] after 1 -> agent" in text
