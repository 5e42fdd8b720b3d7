"""`plan-executor answer`: answer a run that waits for a person, from the terminal.

What the Resume form of a paused or suspended run does in the Prefect UI (Prefect 3.8 has no
`prefect flow-run resume` command): the fields are checked by the server against the run's typed
input (`flows.approvals`), so a wrong value is refused and the run keeps waiting.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from cli.api_target import flow_run_and_api

EXIT_REFUSED = 2


def register(app: typer.Typer) -> None:
    app.command("answer")(answer_command)


def parse_fields(pairs: list[str]) -> dict[str, object]:
    """`action=stash done=true note="by hand"` → a run input; values are JSON when they parse."""
    fields: dict[str, object] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"{pair!r}: expected field=value")
        try:
            fields[name] = json.loads(raw)
        except json.JSONDecodeError:
            fields[name] = raw
    return fields


def answer_command(
    flow_run_id: Annotated[str, typer.Argument(help="The waiting flow run (its id is logged).")],
    fields: Annotated[
        list[str], typer.Argument(help="The answer as field=value pairs, e.g. action=stash.")
    ],
) -> None:
    """Answer a run that waits for a person (dirty tree, failed phase, human-owned phase)."""
    run_input = parse_fields(fields)
    run_id, client = flow_run_and_api(flow_run_id, EXIT_REFUSED)
    from prefect.flow_runs import resume_flow_run

    from backend.select import client_settings

    with client_settings(client):
        try:
            resume_flow_run(run_id, run_input=run_input)
        except Exception as exc:  # the server refuses: not paused, wrong field, wrong value
            typer.echo(f"error: {flow_run_id}: {exc}", err=True)
            raise typer.Exit(EXIT_REFUSED) from None
    typer.echo(f"Answered flow run {flow_run_id} with {json.dumps(run_input)}")
