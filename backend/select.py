"""Pick the Prefect backend for a run.

`auto`: PREFECT_API_URL if set (any Prefect server, Prefect Cloud included); else the running
plan-executor server; else one started for this run and stopped when it ends.
`server`: the plan-executor server (running or started for the run), ignoring PREFECT_API_URL.
`ephemeral`: Prefect's own temporary SQLite server, for a quick sequential run (concurrent
subflows on SQLite back off for seconds each, see docs/benchmarks.md).

Inside the context PREFECT_API_URL and PREFECT_API_AUTH_STRING are set both in os.environ (for
child processes) and in Prefect's in-process settings (which were read once, when Prefect was
imported), and both are restored afterwards. The credential of a plan-executor server comes from
its home (`backend.credentials`); a PREFECT_API_URL naming that server gets it too unless
PREFECT_API_AUTH_STRING is set, so nobody has to copy it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel

from backend.server import (
    ServerConfig,
    acquire_for_run,
    drain_client_workers,
    recorded_server,
    release_for_run,
    server_status,
)
from backend.settings import offline_env, temporary_environ

if TYPE_CHECKING:
    from prefect.settings.legacy import Setting

Mode = Literal["auto", "server", "ephemeral"]
_EPHEMERAL_AUTH = f"plan-executor:{secrets.token_urlsafe(32)}"
"""The credential of Prefect's temporary server: one per process, since that server is started
once per process and kept (a second token would be refused by it)."""


class BackendInfo(BaseModel):
    kind: str
    """"external" (PREFECT_API_URL), "server" (plan-executor server) or "ephemeral"."""
    api_url: str | None
    ui_url: str | None
    started_here: bool


@contextlib.contextmanager
def _prefect_api(api_url: str | None, auth: str | None = None) -> Iterator[None]:
    """Point this process's Prefect client at `api_url` (None: the ephemeral server), with the
    credential `auth` (None: whatever PREFECT_API_AUTH_STRING the process has)."""
    from prefect.settings import (
        PREFECT_API_AUTH_STRING,
        PREFECT_API_URL,
        PREFECT_SERVER_ALLOW_EPHEMERAL_MODE,
        PREFECT_SERVER_API_AUTH_STRING,
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS,
        temporary_settings,
    )

    if api_url is not None:
        updates: dict[Setting, str] = {PREFECT_API_URL: api_url}
        if auth is not None:
            updates[PREFECT_API_AUTH_STRING] = auth
        with temporary_settings(updates=updates):
            yield
        return
    ephemeral = {
        PREFECT_SERVER_ALLOW_EPHEMERAL_MODE: True,
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS: 90,
        # the temporary server listens on 127.0.0.1 too: it takes these from our settings
        PREFECT_SERVER_API_AUTH_STRING: _EPHEMERAL_AUTH,
        PREFECT_API_AUTH_STRING: _EPHEMERAL_AUTH,
    }
    with temporary_settings(updates=ephemeral, restore_defaults={PREFECT_API_URL}):
        yield


def _ui_url_for(api_url: str) -> str | None:
    """The UI address Prefect derives for an API URL (handles Prefect Cloud too)."""
    from prefect.settings import PREFECT_API_URL, get_current_settings, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        return get_current_settings().ui_url


def credential_for(api_url: str, config: ServerConfig | None = None) -> str | None:
    """The credential a client of `api_url` should send: PREFECT_API_AUTH_STRING when set, else
    the home's when `api_url` is the plan-executor server recorded there, else None."""
    if os.environ.get("PREFECT_API_AUTH_STRING"):
        return os.environ["PREFECT_API_AUTH_STRING"]
    recorded = recorded_server(config or ServerConfig.from_env())
    if recorded is not None and recorded.api_url.rstrip("/") == api_url.rstrip("/"):
        return recorded.client_env().get("PREFECT_API_AUTH_STRING")
    return None


def command_client_env(config: ServerConfig | None = None) -> dict[str, str] | None:
    """PREFECT_API_URL (and the credential, when there is one) for a command that talks to the
    API outside a run (`answer`, `deploy`, `env`, `worker`): PREFECT_API_URL if set, else the
    running plan-executor server; None when there is neither."""
    external = os.environ.get("PREFECT_API_URL")
    if external:
        auth = credential_for(external, config)
        return {"PREFECT_API_URL": external, **({"PREFECT_API_AUTH_STRING": auth} if auth else {})}
    running = server_status(config or ServerConfig.from_env())
    return running.client_env() if running is not None else None


@contextlib.contextmanager
def client_settings(env: dict[str, str]) -> Iterator[None]:
    """Apply a `command_client_env` to os.environ and Prefect's in-process settings."""
    with (
        temporary_environ({"PREFECT_API_AUTH_STRING": None, **env}),
        _prefect_api(env["PREFECT_API_URL"], env.get("PREFECT_API_AUTH_STRING")),
    ):
        yield


@contextlib.contextmanager
def backend(
    mode: Mode = "auto",
    *,
    config: ServerConfig | None = None,
    console: Callable[[str], None] = print,
) -> Iterator[BackendInfo]:
    """Choose, and if needed start, the Prefect backend for the duration of a run."""
    if mode not in ("auto", "server", "ephemeral"):
        raise ValueError(f"unknown backend mode {mode!r}: auto, server or ephemeral")
    quiet: dict[str, str | None] = dict(offline_env())
    external = os.environ.get("PREFECT_API_URL")

    if mode == "ephemeral":
        ephemeral_auth = {
            "PREFECT_SERVER_API_AUTH_STRING": _EPHEMERAL_AUTH,
            "PREFECT_API_AUTH_STRING": _EPHEMERAL_AUTH,
        }
        with (
            temporary_environ({**quiet, "PREFECT_API_URL": None, **ephemeral_auth}),
            _prefect_api(None),
        ):
            yield BackendInfo(kind="ephemeral", api_url=None, ui_url=None, started_here=False)
        return

    if mode == "auto" and external:
        auth = credential_for(external, config)
        with (
            temporary_environ({**quiet, "PREFECT_API_AUTH_STRING": auth} if auth else quiet),
            _prefect_api(external, auth),
        ):
            yield BackendInfo(
                kind="external", api_url=external, ui_url=_ui_url_for(external), started_here=False
            )
        return

    config = config or ServerConfig.from_env()
    if server_status(config) is None:
        console(f"No plan-executor server is running in {config.home}: starting one for this run")
    info, lease = acquire_for_run(config)
    started_here = not info.reused
    if started_here:
        console(
            f"Prefect UI: {info.url} (this server stops when the run ends; keep one running "
            "with `plan-executor server start`)"
        )
    elif lease is not None:
        console(f"Prefect UI: {info.url} (a server started for runs; it stops after the last one)")
    else:
        console(f"Prefect UI: {info.url} (the running plan-executor server)")
    client = info.client_env()
    try:
        with (
            temporary_environ({**quiet, "PREFECT_API_AUTH_STRING": None, **client}),
            _prefect_api(info.api_url, client.get("PREFECT_API_AUTH_STRING")),
        ):
            try:
                yield BackendInfo(
                    kind="server", api_url=info.api_url, ui_url=info.url, started_here=started_here
                )
            finally:
                if (
                    lease is not None
                ):  # the server may stop below: flush logs and events to it first
                    drain_client_workers()
    finally:
        if lease is not None and release_for_run(config, lease):
            console(f"Stopped the Prefect server at {info.url} that was started for the run")
