"""The local backend end to end: `plan-executor server` (CLI), concurrent subflows on it, SIGKILL
recovery, runs that start their own server, and the port-taken error. Real PostgreSQL, real
Prefect server; processes are checked by pid."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import psutil
import pytest

from backend import postgres
from backend.select import backend
from backend.server import ServerConfig, api_status, server_status, stop_server
from tasks.shell import CommandResult, run
from tests.prefect_fixture import free_port, private_tmp_dir

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).parent / "plan-executor")


# -- flows under test -----------------------------------------------------------------------


def _flows() -> Any:
    """Defined lazily so that importing this module does not import Prefect."""
    from prefect import flow

    @flow(name="backend-test-child")
    async def child(i: int) -> int:
        await asyncio.sleep(0.2)
        return i

    @flow(name="backend-test-parent")
    async def parent(n: int) -> list[int]:
        return list(await asyncio.gather(*[child(i) for i in range(n)]))

    return parent


def client_settings(api_url: str, auth: str) -> Any:
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

    return temporary_settings(updates={PREFECT_API_URL: api_url, PREFECT_API_AUTH_STRING: auth})


def run_concurrent_subflows(api_url: str, auth: str, n: int) -> tuple[UUID, list[int]]:
    """Run a parent flow with `n` gathered async subflows against `api_url`."""
    parent = _flows()
    with client_settings(api_url, auth):
        state = asyncio.run(parent(n, return_state=True))
    assert state.is_completed(), state
    return state.state_details.flow_run_id, state.result()


def read_children(api_url: str, auth: str, parent_id: UUID) -> list[tuple[int, UUID, str]]:
    """(parameter i, flow run id of the parent task run's flow, state) for every child run."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

    async def read() -> list[tuple[int, UUID, str]]:
        async with get_client() as client:
            runs = await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent_id])
                )
            )
            linked = []
            for child_run in runs:
                assert child_run.parent_task_run_id is not None, child_run
                tracking = await client.read_task_run(child_run.parent_task_run_id)
                linked.append(
                    (child_run.parameters["i"], tracking.flow_run_id, child_run.state_name)
                )
            return linked

    with client_settings(api_url, auth):
        return asyncio.run(read())


# -- helpers --------------------------------------------------------------------------------


def family(pid: int) -> set[int]:
    try:
        proc = psutil.Process(pid)
        return {pid} | {child.pid for child in proc.children(recursive=True)}
    except psutil.NoSuchProcess:
        return set()


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_gone(pids: set[int], timeout_s: float = 15) -> set[int]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.1)
    return {p for p in pids if alive(p)}


def kill(pids: set[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert wait_gone(pids) == set()


@pytest.fixture
def home_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, int, dict[str, str]]]:
    """A plan-executor home, a free port, and the CLI environment that selects them.

    Another test may have started the suite's shared server and exported its URL; `auto` would
    rightly prefer it, but these tests are about finding the plan-executor server.
    """
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    root = private_tmp_dir("plan-executor-test-home-")
    home = root / "home"
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PREFECT_API_URL", "PREFECT_API_AUTH_STRING")
    }
    env.update(PLAN_EXECUTOR_HOME=str(home), PLAN_EXECUTOR_PORT=str(port))
    yield home, port, env
    stop_server(ServerConfig(home=home, port=port))  # whatever a failed test left running
    shutil.rmtree(root, ignore_errors=True)


def cli(env: dict[str, str], *args: str) -> CommandResult:
    return run([CLI, "server", *args], cwd=REPO, env=env, timeout_s=180)


def json_of(result: CommandResult) -> dict:
    text = result.output
    return json.loads(text[text.index("{") : text.rindex("}") + 1])


# -- tests ----------------------------------------------------------------------------------


def test_cli_server_serves_concurrent_subflows_and_recovers_from_sigkill(home_env) -> None:
    home, port, env = home_env
    config = ServerConfig(home=home, port=port)

    started = cli(env, "start", "--json")
    assert started.exit_code == 0, started.output
    first = json_of(started)
    assert first["reused"] is False
    assert first["url"] == f"http://127.0.0.1:{port}"
    assert first["api_url"] == f"http://127.0.0.1:{port}/api"
    assert Path(first["log_path"]).is_file()
    assert (home / "server.pid").read_text().strip() == str(first["server_pid"])

    again = cli(env, "start")
    assert again.exit_code == 0, again.output
    assert "Already running." in again.output
    assert f"prefect server {first['server_pid']}, postgres {first['postgres_pid']}" in again.output

    status = cli(env, "status")
    assert status.exit_code == 0, status.output
    assert f"UI:       http://127.0.0.1:{port}" in status.output

    if os.geteuid() == 0:  # postgres refuses root: it must run as the unprivileged user
        assert psutil.Process(first["postgres_pid"]).uids().real != 0
        assert (home / "postgres").stat().st_uid != 0

    # the API needs the home's credential; the health check does not
    auth = (home / "api-auth.credential").read_text().strip()
    assert Path(first["auth_file"]) == home / "api-auth.credential"
    assert api_status("127.0.0.1", port, None) == 401
    assert api_status("127.0.0.1", port, auth) == 200

    # 20 concurrent async subflows, read back with their parent links
    parent_id, results = run_concurrent_subflows(first["api_url"], auth, 20)
    assert results == list(range(20))
    children = read_children(first["api_url"], auth, parent_id)
    assert sorted(i for i, _, _ in children) == list(range(20))
    assert {parent for _, parent, _ in children} == {parent_id}
    assert {state for _, _, state in children} == {"Completed"}

    # a run that finds the persistent server uses it and leaves it running
    messages: list[str] = []
    with backend("auto", config=config, console=messages.append) as chosen:
        assert chosen.kind == "server" and chosen.started_here is False
        assert os.environ["PREFECT_API_URL"] == first["api_url"]
        assert os.environ["PREFECT_API_AUTH_STRING"] == auth
    assert server_status(config) is not None
    assert any(f"http://127.0.0.1:{port}" in line for line in messages)

    from backend.server import drain_client_workers

    drain_client_workers()  # our logs and events went to this server, which is about to die

    # SIGKILL every process of the server and its database: the next start replaces them
    killed = family(first["server_pid"]) | family(first["postgres_pid"])
    kill(killed)
    assert cli(env, "status").exit_code == 1
    replaced_run = cli(env, "start", "--json")
    assert replaced_run.exit_code == 0, replaced_run.output
    replaced = json_of(replaced_run)
    assert replaced["reused"] is False
    assert {replaced["server_pid"], replaced["postgres_pid"]}.isdisjoint(killed)
    assert (
        home / "api-auth.credential"
    ).read_text().strip() == auth  # made once, kept across restarts
    assert api_status("127.0.0.1", port, auth) == 200

    assert cli(env, "status").exit_code == 0
    ours = family(replaced["server_pid"]) | family(replaced["postgres_pid"])
    assert len(ours) >= 3  # the server, the postmaster and its helper processes

    # the database dies under a running server: status says so, stop still cleans up
    kill(family(replaced["postgres_pid"]))
    stuck = cli(env, "status")
    assert stuck.exit_code == 1 and "A server is recorded" in stuck.output, stuck.output
    stopped = cli(env, "stop")
    assert stopped.exit_code == 0 and "Stopped" in stopped.output, stopped.output
    assert wait_gone(ours) == set()
    assert cli(env, "status").exit_code == 1
    assert not (home / "server.pid").exists()
    assert "No plan-executor server was running" in cli(env, "stop").output


KILLED_RUN = """
import json, os, signal, sys
from pathlib import Path
from backend.select import backend
from backend.server import ServerConfig
config = ServerConfig(home=Path(sys.argv[1]), port=int(sys.argv[2]))
with backend("auto", config=config) as chosen:
    print("BACKEND " + chosen.model_dump_json(), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_run_started_server_survives_a_killed_run_and_the_next_run_cleans_it_up(
    home_env,
) -> None:
    home, port, env = home_env
    config = ServerConfig(home=home, port=port)

    killed_run = run([sys.executable, "-c", KILLED_RUN, str(home), str(port)], cwd=REPO, env=env)
    assert killed_run.exit_code == -signal.SIGKILL or killed_run.exit_code == 137, killed_run
    assert "starting one for this run" in killed_run.output
    chosen = json.loads(killed_run.output.split("BACKEND ", 1)[1].splitlines()[0])
    assert chosen["kind"] == "server" and chosen["started_here"] is True
    assert f"Prefect UI: http://127.0.0.1:{port}" in killed_run.output

    orphan = server_status(config)
    assert orphan is not None, "the server of a killed run is left for the next run to reuse"
    ours = family(orphan.server_pid) | family(orphan.postgres_pid)

    messages: list[str] = []
    with backend("auto", config=config, console=messages.append) as reused:
        assert reused.kind == "server" and reused.started_here is False
        assert reused.api_url == orphan.api_url
    assert any("stops after the last one" in line for line in messages), messages
    assert any(line.startswith("Stopped the Prefect server") for line in messages), messages
    assert server_status(config) is None
    assert wait_gone(ours) == set()


def test_a_running_server_without_the_credential_is_replaced(home_env, monkeypatch) -> None:
    """A server started by an older plan-executor (no credential) must not go on serving."""
    from backend import server as server_module

    home, port, _ = home_env
    config = ServerConfig(home=home, port=port)
    real_env = server_module._server_env

    def old_version_env(*args: Any) -> dict:
        env = real_env(*args)
        del env["PREFECT_SERVER_API_AUTH_STRING"]
        return env

    monkeypatch.setattr(server_module, "_server_env", old_version_env)
    old = server_module.start_server(config, timeout_s=120)
    assert api_status("127.0.0.1", port, None) == 200  # open, as before issue 13
    monkeypatch.setattr(server_module, "_server_env", real_env)

    new = server_module.start_server(config, timeout_s=120)
    assert new.reused is False and new.server_pid != old.server_pid
    assert wait_gone({old.server_pid}) == set()
    assert api_status("127.0.0.1", port, None) == 401
    assert api_status("127.0.0.1", port, (home / "api-auth.credential").read_text().strip()) == 200


def test_port_taken_by_another_program_is_a_clear_error(home_env) -> None:
    home, port, env = home_env
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        result = cli(env, "start")
    assert result.exit_code == 2, result.output
    assert f"port {port} on 127.0.0.1 is already in use" in result.output
    assert "--port" in result.output and "PLAN_EXECUTOR_PORT" in result.output
    assert not (home / "server.json").exists()
    assert postgres.cluster_status(home / "postgres") is None


def test_external_and_ephemeral_modes_set_and_restore_the_api_url(tmp_path, monkeypatch) -> None:
    from prefect.settings import PREFECT_API_URL

    config = ServerConfig(home=tmp_path / "home", port=free_port())
    before = PREFECT_API_URL.value()
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    with backend("auto", config=config, console=lambda _: None) as chosen:
        assert chosen.kind == "external" and chosen.started_here is False
        assert chosen.api_url == "http://127.0.0.1:9/api"
        assert chosen.ui_url == "http://127.0.0.1:9"
        assert PREFECT_API_URL.value() == "http://127.0.0.1:9/api"
    assert not (config.home / "server.json").exists()  # nothing was started

    with backend("ephemeral", config=config) as chosen:
        assert chosen.kind == "ephemeral" and chosen.api_url is None
        assert "PREFECT_API_URL" not in os.environ
        # Prefect's temporary server takes its credential from these (clients send the same)
        auth = os.environ["PREFECT_SERVER_API_AUTH_STRING"]
        assert auth.startswith("plan-executor:") and os.environ["PREFECT_API_AUTH_STRING"] == auth
        assert PREFECT_API_URL.value() is None
        assert os.environ["DO_NOT_TRACK"] == "1"
    assert os.environ["PREFECT_API_URL"] == "http://127.0.0.1:9/api"
    assert PREFECT_API_URL.value() == before

    with pytest.raises(ValueError, match="unknown backend mode"), backend("sqlite"):  # type: ignore[arg-type]
        pass


def test_session_fixture_serves_concurrent_subflows(prefect_api_url, prefect_server) -> None:
    from prefect.settings import PREFECT_API_URL

    assert PREFECT_API_URL.value() == prefect_api_url
    assert os.environ["PREFECT_API_URL"] == prefect_api_url
    assert postgres.cluster_status(prefect_server.log_path.parents[1] / "postgres") is not None
    auth = os.environ["PREFECT_API_AUTH_STRING"]  # the fixture's server requires it
    assert auth == (prefect_server.auth_file).read_text().strip()
    parent_id, results = run_concurrent_subflows(prefect_api_url, auth, 4)
    assert results == [0, 1, 2, 3]
    children = read_children(prefect_api_url, auth, parent_id)
    assert sorted(i for i, _, _ in children) == [0, 1, 2, 3]
    assert {parent for _, parent, _ in children} == {parent_id}
