"""`plan-executor deploy`: the Prefect commands of "Run it on a Prefect server", in one go.

It runs exactly what the README shows (``prefect work-pool create``, ``prefect deploy --all
--no-prompt`` in the checkout that holds ``prefect.yaml``), then creates the agents' global
concurrency limit, and prints the worker command. Prefect's own commands work without it.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

POOL_NAME = "plan-executor"
PROJECT_DIR = Path(__file__).resolve().parents[1]
"""The checkout holding prefect.yaml (this package is installed editable from it)."""


def prefect_executable() -> str:
    beside = Path(sys.executable).with_name("prefect")
    return str(beside) if beside.exists() else "prefect"


def deploy_env(timezone: str, nightly_repo: Path | None) -> dict[str, str]:
    """This process's environment plus the values prefect.yaml reads at deploy time."""
    env = dict(os.environ)
    env["PLAN_EXECUTOR_TIMEZONE"] = timezone
    if nightly_repo is not None:
        env["PLAN_EXECUTOR_NIGHTLY_REPO"] = str(nightly_repo.expanduser().resolve())
    return env


def register(app: typer.Typer) -> None:
    @app.command()
    def deploy(
        nightly_repo: Annotated[
            Path | None,
            typer.Option(
                "--nightly-repo",
                envvar="PLAN_EXECUTOR_NIGHTLY_REPO",
                help="Repository whose ready plans the nightly deployment runs.",
            ),
        ] = None,
        timezone: Annotated[
            str,
            typer.Option(
                envvar="PLAN_EXECUTOR_TIMEZONE",
                help="Timezone of the nightly 02:00 schedule (IANA name, e.g. Europe/Berlin).",
            ),
        ] = "UTC",
        agent_limit: Annotated[
            int,
            typer.Option(help="Size of the agents' global concurrency limit when it is created."),
        ] = 4,
        project_dir: Annotated[
            Path, typer.Option(help="The checkout with prefect.yaml.")
        ] = PROJECT_DIR,
    ) -> None:
        """Create the work pool, deploy prefect.yaml, create the agent concurrency limit."""
        import asyncio

        from backend.select import client_settings, command_client_env
        from tasks.concurrency import AGENT_LIMIT_NAME, ensure_agent_limit
        from tasks.shell import run

        client = command_client_env()
        if client is None:
            typer.echo(
                "PREFECT_API_URL is not set and no plan-executor server runs: deploying to the "
                "profile's server (see `plan-executor server start`)",
                err=True,
            )
        prefect = prefect_executable()
        env = {**deploy_env(timezone, nightly_repo), **(client or {})}
        steps = [
            (
                [prefect, "work-pool", "inspect", POOL_NAME],
                [prefect, "work-pool", "create", POOL_NAME, "--type", "process"],
            ),
            (None, [prefect, "deploy", "--all", "--no-prompt"]),
        ]
        for check, command in steps:
            if check is not None and run(check, cwd=project_dir, env=env, timeout_s=120).ok:
                typer.echo(f"work pool {POOL_NAME} exists")
                continue
            typer.echo(
                "$ "
                + " ".join(Path(command[0]).name if i == 0 else a for i, a in enumerate(command))
            )
            result = run(command, cwd=project_dir, env=env, timeout_s=600, output_cap=None)
            typer.echo(result.tail(40))
            if not result.ok:
                raise typer.Exit(result.exit_code or 1)
        with client_settings(client) if client else contextlib.nullcontext():
            created = asyncio.run(ensure_agent_limit(agent_limit))
        typer.echo(
            f"global concurrency limit {AGENT_LIMIT_NAME}: "
            + (f"created (limit {agent_limit})" if created else "exists (left as it is)")
        )
        if nightly_repo is None:
            typer.echo(
                "note: no --nightly-repo: the nightly deployment has no repository and fails "
                "until you set its `repo` parameter",
                err=True,
            )
        typer.echo(
            "\nNow start a worker in a second terminal (it keeps running; the runs get its "
            "environment, ANTHROPIC_API_KEY included):\n"
            f"  {Path(sys.executable).with_name('plan-executor')} worker   "
            f"(= prefect worker start --pool {POOL_NAME}, with the server's address and credential)"
        )
