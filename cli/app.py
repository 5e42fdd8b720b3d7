"""The `plan-executor` command line.

Commands live in `cli/`, one module each, registered here. Modules import their heavy
dependencies (Prefect above all) inside the command body, so `parse`, `validate` and `graph`
start without importing Prefect.
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="plan-executor",
    help="Run multi-phase implementation plans as a Prefect DAG, verified by evidence.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

COMMAND_MODULES = ("parse", "server", "run", "deploy", "answer", "watch")


def _register_commands() -> None:
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"cli.{name}":
                continue  # not written yet
            raise
        module.register(app)


@app.callback()
def _root() -> None:
    """Run multi-phase implementation plans as a Prefect DAG, verified by evidence."""


@app.command()
def version() -> None:
    """Print the plan-executor version."""
    from importlib.metadata import version as dist_version

    typer.echo(dist_version("plan-executor"))


_register_commands()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
