"""`plan-executor watch` on a run that ended: its final state and message, each phase's state and
message, the report artifact and `plan-executor status PLAN`, read through the Prefect API."""

from __future__ import annotations

import asyncio
import uuid

from prefect import flow
from prefect.artifacts import acreate_markdown_artifact
from prefect.states import Completed, Failed
from typer.testing import CliRunner

from cli.app import app


@flow(name="watch-probe-phase", flow_run_name="phase-{phase_id}")
async def probe_phase(phase_id: str, blocked: bool) -> object:
    if blocked:
        return Failed(message="[fail] file src/shout.rs (verified): src/shout.rs is missing")
    return Completed(message="complete (18 checks)")


@flow(name="watch-probe", flow_run_name="execute-plan: watch-probe")
async def probe_run(plan_path: str) -> object:
    await probe_phase("10", blocked=True, return_state=True)
    await probe_phase("2", blocked=False, return_state=True)
    await acreate_markdown_artifact(
        markdown="## Plan Execution Complete\n\n**Status:** PARTIAL\n", key="plan-probe-report"
    )
    return Failed(message="Partially Implemented (1/2 phases complete)")


def test_watch_summarises_a_finished_run(prefect_api_url: str) -> None:
    state = asyncio.run(probe_run("/repo/.ai/plans/2026-12-07.probe.md", return_state=True))
    run_id = str(state.state_details.flow_run_id)
    result = CliRunner().invoke(app, ["watch", "--report", run_id])
    assert result.exit_code == 1, result.output  # the run did not complete
    lines = result.output.splitlines()
    assert (
        "Run 'execute-plan: watch-probe' ended Failed: Partially Implemented (1/2 phases complete)"
        in lines
    )
    phases = [line.split() for line in lines if line.startswith("  phase-")]
    assert [words[:2] for words in phases] == [["phase-2", "Completed"], ["phase-10", "Failed"]]
    assert "src/shout.rs is missing" in " ".join(phases[1])
    assert (
        f"  - the run in the UI:  {prefect_api_url.removesuffix('/api')}/runs/flow-run/{run_id}"
        in lines
    )
    assert any("`plan-probe-report`" in line for line in lines)
    assert any(
        line.startswith("  - the plan's checkpoints and failing checks: ")
        and line.endswith("plan-executor status /repo/.ai/plans/2026-12-07.probe.md")
        for line in lines
    ), result.output
    assert "**Status:** PARTIAL" in result.output  # --report prints the report itself
    assert not any("prefect.artifact" in line for line in lines)


def test_watch_refuses_what_is_not_a_run(prefect_api_url: str) -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["watch", "not-a-uuid"]).exit_code == 2
    missing = runner.invoke(app, ["watch", str(uuid.uuid4())])
    assert missing.exit_code == 2 and "no flow run" in missing.output
