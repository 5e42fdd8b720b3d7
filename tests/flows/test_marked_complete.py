"""Issue #15: a phase whose heading says `✅ COMPLETE` is treated like a complete checkpoint."""

from __future__ import annotations

from pathlib import Path

from flows.context import resumed_outcome
from flows.report import RunReport, _run_link
from plan_parser import parse_text
from tasks.resume import MARKED_COMPLETE, resumable_phases
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
    outcome = resumed_outcome(plan.phase("1"), resumed["1"], 1)
    assert outcome.status == "complete" and outcome.resume_reason == MARKED_COMPLETE
    assert MARKED_COMPLETE in outcome.verdict
    report = RunReport(plan_path="p", repo=str(tmp_path), status="")
    assert _run_link(report, outcome) == MARKED_COMPLETE


def test_dry_run_says_marked_complete_and_repeats_the_warnings(tmp_path: Path) -> None:
    from tasks.dry_run import (
        LoadedRun,
        describe_loaded_run,
        render_text,
        with_preflight,
    )
    from tasks.options import RunOptions

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "config.rs").write_text("// done\n")
    plan = _plan()
    resumed = resumable_phases(plan, None, tmp_path, ["1", "2", "3"])
    loaded = LoadedRun(
        plan=plan,
        plan_path=tmp_path / "plan.md",
        waves=[["1"], ["2", "3"]],
        repo=tmp_path,
        skills=[],
        resumed=resumed,
        options=RunOptions(dirty_policy="stop"),
    )
    detail = with_preflight(describe_loaded_run(loaded), ok=True, message="")
    text = render_text(detail, dirty_policy="stop")
    assert f"phase 1: Config [rust-developer; implementation] -> skip ({MARKED_COMPLETE})" in text
    assert "phase 2: Cache [rust-developer; implementation] after 1 -> agent" in text
