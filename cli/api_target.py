"""What `answer` and `watch` both need before they talk to the Prefect API: the run's id and
the API's client settings, or a clear error and the command's exit code."""

from __future__ import annotations

from uuid import UUID

import typer

NO_API = "error: no Prefect API: set PREFECT_API_URL, or start `plan-executor server start`"


def flow_run_and_api(flow_run_id: str, exit_code: int) -> tuple[UUID, dict[str, str]]:
    """The flow run id as a UUID and the client environment (PREFECT_API_URL, the credential)."""
    try:
        run_id = UUID(flow_run_id)
    except ValueError:
        typer.echo(f"error: {flow_run_id!r} is not a flow run id", err=True)
        raise typer.Exit(exit_code) from None
    from backend.select import command_client_env

    client = command_client_env()
    if client is None:
        typer.echo(NO_API, err=True)
        raise typer.Exit(exit_code)
    return run_id, client
