"""`plan-executor watch FLOW_RUN_ID`: follow a run (one started by `prefect deployment run`, a
worker's, the nightly's) until it ends, then say how it ended and where the outcome is.

`prefect deployment run ... --watch` streams every event of the run: each update of the progress
artifact is a `prefect.artifact.updated` line, and it ends with `Flow run finished in state
'Failed'` and nothing about why. This prints one line per state change of the run and of its
phase subflows, then a summary: the final state and its message, each phase's state and
message, the report artifact, and `plan-executor status PLAN`. On a run that has already ended
it prints the summary only. Exit 0 when the run ended Completed, 1 otherwise, 2 when there is no
such run or no API.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import TYPE_CHECKING, Annotated
from uuid import UUID

import typer

from cli.api_target import flow_run_and_api

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient
    from prefect.client.schemas.objects import Artifact, FlowRun

EXIT_NO_RUN = 2
REPORT_SUFFIX = "-report"
"""Key suffix of the final report artifact (`tasks.artifacts.artifact_key(plan, "report")`)."""


def register(app: typer.Typer) -> None:
    app.command("watch")(watch_command)


def watch_command(
    flow_run_id: Annotated[str, typer.Argument(help="The flow run (printed by `deployment run`).")],
    interval: Annotated[float, typer.Option(help="Seconds between looks at the run.")] = 2.0,
    timeout: Annotated[
        float | None, typer.Option(help="Stop watching after this many seconds (exit 1).")
    ] = None,
    report: Annotated[
        bool, typer.Option("--report", help="Print the run's whole final report at the end.")
    ] = False,
) -> None:
    """Follow a flow run until it ends; then its outcome and where to read more.

    Exit 0 when the run ended Completed, 1 otherwise (or at --timeout), 2 without such a run.
    """
    run_id, client = flow_run_and_api(flow_run_id, EXIT_NO_RUN)
    from backend.select import client_settings

    ui_url = client["PREFECT_API_URL"].rstrip("/").removesuffix("/api")
    with client_settings(client):
        code = asyncio.run(
            _watch(run_id, ui_url, interval=interval, timeout=timeout, full_report=report)
        )
    raise typer.Exit(code)


async def _watch(
    run_id: UUID, ui_url: str, *, interval: float, timeout: float | None, full_report: bool
) -> int:
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    deadline = None if timeout is None else time.monotonic() + timeout
    seen: dict[UUID, tuple[str, str]] = {}
    async with get_client() as client:
        try:
            run = await client.read_flow_run(run_id)
        except ObjectNotFound:
            typer.echo(f"error: no flow run {run_id} on this server", err=True)
            return EXIT_NO_RUN
        already_over = run.state is not None and run.state.is_final()
        while True:
            phases = await _phase_runs(client, run_id)
            if not already_over:
                for line in _changes([run, *phases], seen):
                    typer.echo(line)
            if run.state is not None and run.state.is_final():
                break
            if deadline is not None and time.monotonic() > deadline:
                typer.echo(
                    f"stopped watching after {timeout:g}s; the run goes on: {ui_url}/runs/flow-run/{run_id}"
                )
                return 1
            await asyncio.sleep(interval)
            run = await client.read_flow_run(run_id)
        artifacts = await _artifacts(client, run_id)
    for line in summary_lines(run, phases, artifacts, ui_url):
        typer.echo(line)
    report = _report(artifacts)
    if full_report and report is not None and report.data:
        typer.echo("")
        typer.echo(str(report.data))
    return 0 if run.state is not None and run.state.is_completed() else 1


async def _phase_runs(client: PrefectClient, run_id: UUID) -> list[FlowRun]:
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId
    from prefect.client.schemas.sorting import FlowRunSort

    runs = await client.read_flow_runs(
        flow_run_filter=FlowRunFilter(
            parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[run_id])
        ),
        sort=FlowRunSort.EXPECTED_START_TIME_ASC,
    )
    return sorted(runs, key=lambda run: _natural(run.name))


def _natural(name: str) -> list[tuple[int, int | str]]:
    """`phase-2` before `phase-10`, `phase-2.5` between them."""
    return [(0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", name)]


async def _artifacts(client: PrefectClient, run_id: UUID) -> list[Artifact]:
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    return list(
        await client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
        )
    )


def _state(run: FlowRun) -> tuple[str, str]:
    if run.state is None:
        return ("Unknown", "")
    return (run.state.name or str(run.state.type.value), (run.state.message or "").strip())


def _changes(runs: list[FlowRun], seen: dict[UUID, tuple[str, str]]) -> list[str]:
    """One line per run whose state (name or message) changed since the last look."""
    lines = []
    for run in runs:
        state = _state(run)
        if seen.get(run.id) == state:
            continue
        seen[run.id] = state
        name, message = state
        lines.append(f"[{run.name}] {name}" + (f": {_first_line(message)}" if message else ""))
    return lines


def _first_line(text: str, limit: int = 200) -> str:
    line = next((part.strip() for part in text.splitlines() if part.strip()), "")
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _report(artifacts: list[Artifact]) -> Artifact | None:
    reports = [a for a in artifacts if (a.key or "").endswith(REPORT_SUFFIX)]
    return reports[-1] if reports else None


def summary_lines(
    run: FlowRun, phases: list[FlowRun], artifacts: list[Artifact], ui_url: str
) -> list[str]:
    """How the run ended, each phase's end, and where the outcome is written."""
    name, message = _state(run)
    lines = [
        "",
        f"Run {run.name!r} ended {name}" + (f": {_first_line(message)}" if message else ""),
    ]
    width = max((len(phase.name) for phase in phases), default=0)
    for phase in phases:
        phase_state, phase_message = _state(phase)
        detail = f"  {_first_line(phase_message, 120)}" if phase_message else ""
        lines.append(f"  {phase.name:<{width}}  {phase_state:<9}{detail}".rstrip())
    lines.append("Where the outcome is:")
    lines.append(f"  - the run in the UI:  {ui_url}/runs/flow-run/{run.id}")
    from cli.console import cli_command

    report = _report(artifacts)
    if report is not None:
        lines.append(
            f"  - the final report:  the run's Artifacts tab, `{report.key}` "
            f"(or: {cli_command()} watch --report {run.id})"
        )
    plan = (run.parameters or {}).get("plan_path")
    if plan:
        lines.append(
            f"  - the plan's checkpoints and failing checks: {cli_command()} status {plan}"
        )
    return lines
