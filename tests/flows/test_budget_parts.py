"""Budgets without a server: the plan's frontmatter limits, how the run combines them, the
`budget` status and the cost in checkpoints, reports, `status` and the CLI's checks."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from cli.run import options_problem
from flows.context import PhaseOutcome, ResolvedRunOptions, RunOptions
from flows.phase import _as_state, run_budget
from flows.report import RunReport, cost_line, final_report, implementation_summary, table_rows
from plan_parser import parse_plan
from plan_parser.budget import PlanBudget, plan_budget
from plan_parser.checkpoints import PhaseCheckpoint, read_execution_state
from plan_parser.writer import apply_phases
from tasks.agent.budget import Limits
from tasks.mirror import FAILED_LIKE, TERMINAL

PLAN = """---
phase_max_cost_usd: {cost}
phase_max_tokens: {tokens}
---
# Plan with a budget

**Status:** Reviewed - Ready for Implementation

## Phases

### Phase 1: Only phase

**Principal Owner:** self
**Dependencies:** None
**Blast Radius:** `cargo test`

**Acceptance Criteria:**
- [ ] `cargo test` passes
"""


def test_the_plan_sets_per_phase_limits_in_its_frontmatter() -> None:
    budget, problems = plan_budget({"phase_max_cost_usd": "$2.50", "phase_max_tokens": "3_000_000"})
    assert problems == [] and budget == PlanBudget(
        phase_max_cost_usd=2.5, phase_max_tokens=3_000_000
    )
    assert plan_budget({}) == (PlanBudget(), [])


def test_a_bad_frontmatter_limit_is_an_error_with_its_line(tmp_path: Path) -> None:
    plan_path = tmp_path / "plan.md"
    plan_path.write_text(PLAN.format(cost="lots", tokens="-3"))
    plan = parse_plan(plan_path)
    errors = [d for d in plan.errors if d.code == "E-FM-BUDGET"]
    assert [(d.line, d.field) for d in errors] == [
        (2, "phase_max_cost_usd"),
        (3, "phase_max_tokens"),
    ]
    assert "`phase_max_cost_usd: lots` is not a positive USD amount" in errors[0].message


def _git_repo(path: Path, files: dict[str, str]) -> Path:
    path.mkdir()
    for name, text in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t"}
    env |= {"GIT_COMMITTER_EMAIL": "t@t", "PATH": "/usr/bin:/bin"}
    for argv in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "x"]):
        subprocess.run(argv, cwd=path, env=env, check=True)
    return path


def test_the_run_takes_the_tighter_phase_limit_and_the_committed_prices(tmp_path: Path) -> None:
    repo = _git_repo(
        tmp_path / "repo",
        {".ai/plan-executor.toml": '[pricing."claude-standin"]\ninput = 7.0\noutput = 70.0\n'},
    )
    # An agent lowering the prices in the working tree does not widen the run's budget.
    (repo / ".ai/plan-executor.toml").write_text('[pricing."claude-standin"]\ninput = 0.0\n')
    plan_path = tmp_path / "plan.md"
    plan_path.write_text(PLAN.format(cost="2.5", tokens="1000"))
    options = ResolvedRunOptions(
        repo=repo, max_cost_usd=10.0, phase_max_cost_usd=4.0, phase_max_tokens=5_000
    )
    budget = run_budget(parse_plan(plan_path), options)
    assert budget.account.limits == Limits(max_cost_usd=10.0)
    assert budget.phase_limits == Limits(max_cost_usd=2.5, max_tokens=1000)
    assert budget.prices.price_of("claude-standin").input == 7.0
    assert budget.describe() == "run: $10.00; per phase: $2.50 / 1,000 tokens"


def test_budget_is_a_status_everywhere_the_statuses_are_listed() -> None:
    assert "budget" in TERMINAL and "budget" in FAILED_LIKE
    state = _as_state(PhaseOutcome(phase_id="1", status="budget", error="no progress"))
    assert state.is_failed() and state.name == "OverBudget"


def test_budget_status_and_cost_round_trip_through_the_plan_file() -> None:
    checkpoint = PhaseCheckpoint(
        phase_id="2",
        status="budget",
        error="owner agent stopped: no progress: 30 consecutive turns ...",
        tokens={"input": 10, "output": 20, "cache_creation_input": 30, "cache_read_input": 40},
        cost_usd=0.0123,
    )
    text = apply_phases("# P\n", [checkpoint])
    assert "    cost_usd: 0.0123\n" in text and "    status: budget\n" in text
    state = read_execution_state(text)
    assert state is not None and state.problems == [] and state.phases["2"] == checkpoint
    broken = read_execution_state(text.replace("0.0123", "cheap"))
    assert broken is not None and broken.phases["2"].cost_usd is None
    assert any("cost_usd is not a number" in problem for problem in broken.problems)
    hand_written = read_execution_state(text.replace("status: budget", "status: over_budget"))
    assert hand_written is not None and hand_written.phases["2"].status == "budget"


def _outcomes() -> list[PhaseOutcome]:
    tokens = {"input": 1000, "output": 200, "cache_creation_input": 0, "cache_read_input": 5000}
    return [
        PhaseOutcome(phase_id="1", title="One", status="complete", tokens=tokens, cost_usd=0.5),
        PhaseOutcome(
            phase_id="2",
            title="Two",
            status="budget",
            error="owner agent stopped: phase 2 cost budget spent: $1.0312 of $1.00",
            tokens=tokens,
            cost_usd=1.0312,
        ),
        PhaseOutcome(phase_id="3", title="Three", status="budget", error="not run: run ..."),
        PhaseOutcome(
            phase_id="0", title="Zero", status="complete", tokens=tokens, cost_usd=2, resumed=True
        ),
    ]


def test_reports_show_cost_per_phase_and_for_the_run() -> None:
    outcomes = _outcomes()
    line = cost_line(outcomes)
    assert line == (
        "$3.53 (3,000 input, 600 output, 0 cache writes, 15,000 cache reads tokens); "
        "$2.00 of it spent by earlier runs on resumed phases"
    )
    report = RunReport(
        plan_path="p.md",
        status="Partially Implemented (2/4 phases complete)",
        outcomes=outcomes,
        budget="run: $2.00; per phase: $1.00",
        budget_stop="run cost budget spent: $2.0312 of $2.00",
    )
    assert report.cost_usd == pytest.approx(3.5312)
    assert report.tokens["cache_read_input"] == 15_000
    text = final_report(report)
    assert f"**Cost:** {line}" in text
    assert "**Budget:** run: $2.00; per phase: $1.00" in text
    assert "**Run budget reached:** run cost budget spent: $2.0312 of $2.00" in text
    assert "| 2 | Two |  | 0 | budget | - | 6200 | $1.03 | 0 | - |" in text
    assert "| 3 | Three |  | 0 | budget | - | 0 | - | 0 | - |" in text
    assert "- Phase 2 **budget**: owner agent stopped: phase 2 cost budget spent" in text
    assert "raise --max-cost / --phase-max-cost" in text
    assert [row["cost_usd"] for row in table_rows(outcomes)] == [0.5, 1.0312, 0.0, 2.0]
    summary = implementation_summary(report)
    assert f"**Cost:** {line}" in summary
    assert "- Phase 2: Two - Budget ($1.03) - owner agent stopped" in summary


def test_status_prints_each_phase_cost_and_the_total(tmp_path: Path) -> None:
    from cli.app import app

    checkpoints = [
        PhaseCheckpoint(phase_id="1", status="complete", tokens={"input": 5}, cost_usd=0.25),
        PhaseCheckpoint(phase_id="2", status="budget", tokens={"output": 7}, cost_usd=1.5),
        PhaseCheckpoint(phase_id="3", status="budget", error="not run: run cost budget spent"),
    ]
    plan = tmp_path / "plan.md"
    plan.write_text(apply_phases("# P\n", checkpoints))
    result = CliRunner().invoke(app, ["status", str(plan)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "$0.2500" in result.output and "$1.5000" in result.output
    assert "Cost: $1.7500 (5 input, 7 output, 0 cache writes, 0 cache reads tokens) over 2 " in (
        result.output
    )


def test_bad_budget_options_are_refused_before_anything_runs(tmp_path: Path) -> None:
    assert options_problem(max_cost_usd=0.0) == "--max-cost must be positive (got 0.0)"
    assert options_problem(phase_max_tokens=-1) == "--phase-max-tokens must be positive (got -1)"
    assert options_problem(no_progress_turns=0, max_turns=200) is None
    assert options_problem(no_progress_turns=-1).startswith("--no-progress-turns must be 0 (off)")
    plan = tmp_path / "plan.md"
    plan.write_text(PLAN.format(cost="1", tokens="1"))
    from cli.app import app

    result = CliRunner().invoke(app, ["run", str(plan), "--max-cost", "-2"])
    assert result.exit_code == 2, result.output
    assert result.stderr == "error: --max-cost must be positive (got -2.0)\n"
    assert result.stdout == ""
    # The flow's options refuse the same values, whoever builds them.
    with pytest.raises(ValidationError, match="max_cost_usd"):
        RunOptions(max_cost_usd=-2)
    with pytest.raises(ValidationError, match="no_progress_turns"):
        RunOptions(no_progress_turns=-1)


def test_bad_timeouts_are_refused_by_the_options_own_rule(tmp_path: Path) -> None:
    """The timeouts' floor is RunOptions' (so a deployment run is refused too), and the CLI names
    the option that broke it."""
    assert options_problem(phase_timeout_s=0) == "--phase-timeout must be positive (got 0)"
    assert options_problem(agent_timeout_s=-5.0) == "--agent-timeout must be positive (got -5.0)"
    assert options_problem(phase_timeout_s=1, agent_timeout_s=1) is None
    plan = tmp_path / "plan.md"
    plan.write_text(PLAN.format(cost="1", tokens="1"))
    from cli.app import app

    result = CliRunner().invoke(app, ["run", str(plan), "--phase-timeout", "0"])
    assert result.exit_code == 2, result.output
    assert result.stderr == "error: --phase-timeout must be positive (got 0.0)\n"
