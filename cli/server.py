"""`plan-executor server start | stop | status`: the local Prefect server with its UI; `env` and
`worker`: its clients, with its address and credential (never copied by hand)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:  # the server module is imported by the commands only, keeping --help fast
    from backend.server import ServerConfig, ServerInfo

HomeOption = Annotated[
    Path | None,
    typer.Option(
        "--home",
        envvar="PLAN_EXECUTOR_HOME",
        help="plan-executor home: server data, logs, pid files [default: ~/.plan-executor]",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the server as JSON.")]


def _config(home: Path | None, host: str | None = None, port: int | None = None) -> ServerConfig:
    from backend.server import ServerConfig

    return ServerConfig.from_env(home=home, host=host, port=port)


def _print_info(info: ServerInfo, *, as_json: bool, headline: str) -> None:
    if as_json:
        typer.echo(info.model_dump_json(indent=2))
        return
    typer.echo(headline)
    typer.echo(f"  UI:       {info.url}")
    typer.echo(f"  API:      {info.api_url}   (eval $(plan-executor env) for a shell)")
    typer.echo(f"  login:    the UI asks for the credential in {info.auth_file}")
    typer.echo(f"  pids:     prefect server {info.server_pid}, postgres {info.postgres_pid}")
    typer.echo(f"  log:      {info.log_path}")


def register(app: typer.Typer) -> None:
    server_app = typer.Typer(
        name="server",
        help="The local Prefect server (with its UI) on an embedded PostgreSQL.",
        no_args_is_help=True,
    )

    @server_app.command()
    def start(
        home: HomeOption = None,
        host: Annotated[
            str,
            typer.Option(
                envvar="PLAN_EXECUTOR_HOST",
                help="Address to bind. Other machines need a non-loopback one, e.g. 0.0.0.0.",
            ),
        ] = "127.0.0.1",
        port: Annotated[
            int, typer.Option(envvar="PLAN_EXECUTOR_PORT", help="Port of the API and the UI.")
        ] = 4200,
        timeout: Annotated[
            float, typer.Option(help="Seconds to wait for the server to become healthy.")
        ] = 90,
        as_json: JsonOption = False,
    ) -> None:
        """Start the server in the background, or report the one already running."""
        from backend.postgres import PostgresError
        from backend.server import PortInUseError, ServerError, start_server

        config = _config(home, host, port)
        if not as_json:
            typer.echo(f"Starting the Prefect server ({config.home}) ...")
        try:
            info = start_server(config, timeout_s=timeout)
        except PortInUseError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        except (ServerError, PostgresError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
        headline = "Already running." if info.reused else "Started."
        if info.reused and not info.url.endswith(f":{config.port}") and not as_json:
            headline += f" (It listens on its own port, not {config.port}: stop it to move it.)"
        _print_info(info, as_json=as_json, headline=headline)
        if not as_json and config.host not in ("127.0.0.1", "localhost", "::1"):
            import socket

            name = socket.gethostname() if config.host in ("0.0.0.0", "::") else config.host
            typer.echo(
                f"  other machines: export PREFECT_API_URL=http://{name}:{config.port}/api "
                f"PREFECT_API_AUTH_STRING=<the content of {info.auth_file}>"
            )

    @server_app.command()
    def stop(home: HomeOption = None) -> None:
        """Stop the server and its PostgreSQL."""
        from backend.server import stop_server

        config = _config(home)
        if stop_server(config):
            typer.echo(f"Stopped the Prefect server and PostgreSQL ({config.home}).")
        else:
            typer.echo(f"No plan-executor server was running ({config.home}).")

    @server_app.command()
    def status(home: HomeOption = None, as_json: JsonOption = False) -> None:
        """Report the running server; exit code 1 when none is running."""
        from backend.server import recorded_server, server_status

        config = _config(home)
        info = server_status(config)
        if info is None:
            stuck = recorded_server(config)
            if as_json:
                typer.echo("null")
            elif stuck is not None:
                typer.echo(
                    f"A server is recorded (pid {stuck.server_pid}, {stuck.url}) but does not "
                    f"answer its health check or its database is down; see {stuck.log_path}. "
                    "`plan-executor server start` replaces it, `stop` stops it."
                )
            else:
                typer.echo(f"No plan-executor server is running ({config.home}).")
            raise typer.Exit(1)
        _print_info(info, as_json=as_json, headline="Running.")

    app.add_typer(server_app, name="server")

    @app.command("env")
    def env_command(home: HomeOption = None) -> None:
        """Print `export` lines for a shell: the server's API address and credential.

        Use: eval "$(plan-executor env)". PREFECT_API_URL set in your environment wins.
        """
        import shlex

        client = _client_env(home)
        for name, value in client.items():
            typer.echo(f"export {name}={shlex.quote(value)}")

    @app.command(
        "worker",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    )
    def worker_command(
        ctx: typer.Context,
        pool: Annotated[str, typer.Option(help="The work pool to poll.")] = "plan-executor",
        home: HomeOption = None,
    ) -> None:
        """Start `prefect worker start --pool plan-executor` on the server, with its credential.

        Further arguments go to `prefect worker start` (e.g. --name). The worker replaces this
        process; its environment is the environment of the runs it starts.
        """
        import os

        from cli.deploy import prefect_executable
        from tasks.shell import which

        env = {**os.environ, **_client_env(home)}
        prefect = which(prefect_executable())
        if prefect is None:
            typer.echo("error: the `prefect` command was not found", err=True)
            raise typer.Exit(1)
        argv = [prefect, "worker", "start", "--pool", pool, *ctx.args]
        typer.echo(f"$ prefect worker start --pool {pool} {' '.join(ctx.args)}".rstrip(), err=True)
        # exec, not a child: signals reach the worker directly and nothing waits on it
        os.execve(argv[0], argv, env)


def _client_env(home: Path | None) -> dict[str, str]:
    """The API address and credential a client should use, or exit 1 when there is no server."""
    from backend.select import command_client_env

    client = command_client_env(_config(home))
    if client is None:
        typer.echo(
            "error: no plan-executor server is running (`plan-executor server start`) and "
            "PREFECT_API_URL is not set",
            err=True,
        )
        raise typer.Exit(1)
    return client
