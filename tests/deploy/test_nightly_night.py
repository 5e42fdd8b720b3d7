"""One whole night (issue #21): the `execute-ready-plans` flow on a crate whose plans folder is
shaped like the monorepo's newest commit, with the agents played by the stand-in Messages API.

Two planner-made plans (`status: "done"`, taken on request) whose work was committed after them
get no agent call and say why; two plans marked ready and one interrupted run all run to their
verdicts in the same night (the first plan's writes never fail the next one's pre-flight, under
the default `dirty_policy: stop`), each from the branch the night began on; the flow ends
Completed with a message, the table and report as artifacts.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from cli.demo import (
    ALPHA_TEST,
    BETA_TEST,
    LIB_ANCHOR,
    REPORT_MODULE,
    PhaseScript,
    ScriptedAgents,
    make_crate,
)
from flows.nightly import execute_ready_plans
from plan_parser.checkpoints import read_plan_state
from tasks.agent.standin import StandinMessagesAPI, editor_create, editor_str_replace
from tasks.worktree import current_branch
from tests.deploy.nightly_fixtures import (
    body_status_plan,
    commit,
    compact_phase,
    compact_plan,
    git,
    interrupt,
)
from tests.flows.conftest import needs_cargo, phase_of

pytestmark = [needs_cargo, pytest.mark.slow, pytest.mark.timeout(400)]

READY = "Reviewed - Ready for Implementation"


def night_repo(root: Path) -> Path:
    """The demo crate without a committed Cargo.lock (cargo writes a new one in the checkout),
    and a plans folder like the monorepo's: done plans with their work, ready plans, an
    interrupted run, a draft."""
    make_crate(
        root,
        plan_name="2026-02-01.alpha.md",
        plan_text=body_status_plan(READY, "1", "Alpha tests", "tests/alpha.rs", "alpha passes"),
    )
    git(root, "rm", "-q", "--cached", "Cargo.lock")
    (root / "Cargo.lock").unlink()
    plans = ".ai/plans"
    commit(
        root,
        "more plans",
        {
            f"{plans}/2026-01-10.plan-for-greeting.md": compact_plan(
                '"done"',
                [compact_phase("7", "Greeting", ["`src/greeting.rs` with `greet()`"], ["greets"])],
            ),
            f"{plans}/2026-01-11.plan-for-usage-docs.md": compact_plan(
                '"done"',
                [compact_phase("8", "Usage", ["`docs/usage.md` for users"], ["documented"])],
            ),
            f"{plans}/2026-01-20.report.md": body_status_plan(
                READY, "3", "Report module", "src/report.rs", "`describe` explains a sum"
            ),
            f"{plans}/2026-02-02.beta.md": compact_plan(
                '"ready"',
                [compact_phase("2", "Beta tests", ["`tests/beta.rs` for negatives"], ["passes"])],
            ),
            f"{plans}/2026-02-03.draft.md": body_status_plan(
                "Draft - Awaiting Review", "9", "Draft", "src/draft.rs", "drafted"
            ),
        },
    )
    commit(
        root,
        "the greeting and the usage docs",
        {"src/greeting.rs": "pub fn greet() {}\n", "docs/usage.md": "# Usage\n"},
    )
    interrupt(root / plans / "2026-01-20.report.md", "3")  # a run killed during phase 3
    return root


def scripts() -> dict[str, PhaseScript]:
    return {
        "1": PhaseScript(edits=[editor_create("tests/alpha.rs", ALPHA_TEST)]),
        "2": PhaseScript(edits=[editor_create("tests/beta.rs", BETA_TEST)]),
        "3": PhaseScript(
            edits=[
                editor_create("src/report.rs", REPORT_MODULE),
                editor_str_replace("src/lib.rs", LIB_ANCHOR, f"pub mod report;\n\n{LIB_ANCHOR}"),
            ]
        ),
    }


async def artifacts_of(flow_run_id: str) -> dict[str, object]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    async with get_client() as client:
        found = await client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    return {artifact.key: artifact.data for artifact in found}


def test_a_night_of_ready_interrupted_and_done_plans(
    tmp_path: Path, prefect_api_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = night_repo(tmp_path / "crate")
    plans = repo / ".ai" / "plans"
    done_plans = {p: p.read_bytes() for p in plans.glob("2026-01-1*.md")}
    start = git(repo, "rev-parse", "HEAD").strip()

    with StandinMessagesAPI(responder=ScriptedAgents(scripts()), auto_summary=False) as api:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", api.base_url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "stand-in-test-key")
        state = asyncio.run(
            execute_ready_plans(repo=str(repo), include_planner_done=True, return_state=True)
        )
        requests = api.message_requests

    assert state.is_completed(), state.message
    assert state.message == (
        "3 run (1 resumed): 3 completed, 0 failed; "
        "3 skipped (2 already implemented, 1 not ready, 0 not plans); 0 invalid"
    )
    # No agent call for the done plans (phases 7, 8) nor the draft (9).
    assert {phase_of(r) for r in requests} == {"1", "2", "3"}
    assert {p: p.read_bytes() for p in done_plans} == done_plans
    for name, phases in [
        ("2026-02-01.alpha.md", {"1"}),
        ("2026-02-02.beta.md", {"2"}),
        ("2026-01-20.report.md", {"3"}),
    ]:
        checkpoints = read_plan_state(plans / name)
        assert checkpoints is not None
        assert {pid for pid, cp in checkpoints.phases.items() if cp.status == "complete"} == phases

    # Back where the night began; each plan's work on its own branch, started from there.
    assert current_branch(repo) == "main"
    assert git(repo, "rev-parse", "HEAD").strip() == start
    assert not (repo / "tests" / "beta.rs").exists()
    for branch, mine, not_mine in [
        ("plan-executor/alpha", "tests/alpha.rs", "tests/beta.rs"),
        ("plan-executor/beta", "tests/beta.rs", "tests/alpha.rs"),
        ("plan-executor/report", "src/report.rs", "tests/alpha.rs"),
    ]:
        files = git(repo, "ls-tree", "-r", "--name-only", branch).split()
        assert mine in files and not_mine not in files, branch
        assert git(repo, "merge-base", branch, "main").strip() == start

    found = asyncio.run(artifacts_of(str(state.state_details.flow_run_id)))
    table = {row["plan"]: row for row in json.loads(str(found["nightly-plans"]))}
    assert table["2026-01-10.plan-for-greeting.md"]["verdict"] == "skipped: already implemented"
    assert table["2026-02-03.draft.md"]["verdict"] == "skipped: not ready"
    assert table["2026-01-20.report.md"]["verdict"] == "resumed"
    assert table["2026-02-01.alpha.md"]["state"] == "Completed"
    # What each plan's run spent, priced from the stand-in's usage fields.
    assert table["2026-02-01.alpha.md"]["cost_usd"] > 0
    assert table["2026-02-03.draft.md"]["cost_usd"] is None
    report = str(found["nightly-report"])
    assert "`src/greeting.rs`" in report and "`docs/usage.md`" in report
    assert "**Cost of the night:** $" in report


def test_a_failed_night_ends_with_a_message_not_a_crash(
    tmp_path: Path, prefect_api_url: str
) -> None:
    """Called as a deployment's worker calls it (the result, not the state): a Failed night
    raises Prefect's FailedRun carrying the count, never `TypeError: Unexpected result for
    failed state` (a list as the Failed state's data)."""
    from prefect.exceptions import FailedRun

    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    no_owner = body_status_plan(READY, "1", "No owner", "src/x.rs", "ok").replace(
        "**Principal Owner:** Rust Developer\n", ""
    )
    commit(repo, "plans", {".ai/plans/2026-02-01.no-owner.md": no_owner})

    with pytest.raises(FailedRun) as failed:
        asyncio.run(execute_ready_plans(repo=str(repo)))

    assert str(failed.value) == (
        "0 run (0 resumed): 0 completed, 0 failed; "
        "0 skipped (0 already implemented, 0 not ready, 0 not plans); 1 invalid"
    )
