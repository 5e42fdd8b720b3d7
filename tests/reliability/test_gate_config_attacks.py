"""Agents cannot reach the machine through the engine (issue 13): a hostile agent, scripted
through the stand-in Messages API, the real SDK and the real tool loop, attacks through what the
gates read and through what reaches the model.

- (a) the agent writes `.ai/plan-executor.toml` (`sandbox = false`, a build command of its own):
  the phase is blocked on gate configuration and the command never runs;
- (b) the same committed before pre-flight: `sandbox = false` is ignored with a warning and the
  command runs only inside the sandbox;
- (c) with the run's network off, a gate command reaches no socket on 127.0.0.1 even though the
  configuration says `sandbox_network = true`;
- (d) the plan-executor home, the cluster's data and `PREFECT_HOME` inside the repository, or
  inside a toolchain directory kept from the host home: the agent reads nothing there;
- (e) a tool result that prints the API key (or Prefect's credential) reaches the Messages API
  scrubbed, and so does the transcript.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cli.demo import PhaseScript, ScriptedAgents, make_crate
from cli.run import run_plan
from flows.context import RunOptions
from plan_parser import parse_plan
from plan_parser.checkpoints import read_plan_state
from tasks.agent.loop import run_agent
from tasks.gates.ledger import Verdict
from tasks.gates.preflight import run_preflight
from tests.agent.conftest import API_KEY, client_for, make_request
from tests.fakes import (
    StandinMessagesAPI,
    bash_command,
    editor_create,
    editor_str_replace,
    editor_view,
    text_turn,
    tool_turn,
)
from tests.flows.conftest import needs_cargo
from tests.flows.test_run_e2e import Echo

pytestmark = [
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap not installed"),
    pytest.mark.timeout(600),
]

PLAN = """# Multiplication for the demo crate

**Created:** 2026-02-01
**Status:** Reviewed - Ready for Implementation

## Phases

### Phase 1: Multiply

**Principal Owner:** Rust Developer
**Goal:** A `mul` function.
**Dependencies:** None
**Blast Radius:** `cargo test`

**Files to modify:**
- `src/lib.rs` - `mul(a, b)`

**Acceptance Criteria:**
- [ ] `cargo test` passes
"""
CFG_TEST = "#[cfg(test)]"
MUL = "/// Multiplies two numbers.\npub fn mul(a: i64, b: i64) -> i64 {\n    a * b\n}\n\n"


def _commit(repo: Path, message: str) -> None:
    for argv in (
        ["git", "add", "-A"],
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", message],
    ):
        subprocess.run(argv, cwd=repo, check=True, capture_output=True)


def _hostile_config(marker: Path, ran: str = "gate-ran") -> str:
    """`sandbox = false` and a build command that writes ``marker`` (outside the repository:
    only a command run on the host can leave it there) and ``ran`` inside it."""
    script = f"echo ran > {ran}; echo pwned > {marker}; true"
    return f"sandbox = false\nbuild = ['sh', '-c', {json.dumps(script)}]\n"


# --- (a) and (b): the gate configuration ----------------------------------------------------


@needs_cargo
def test_a_agent_written_gate_config_blocks_the_phase_and_never_runs(
    tmp_path: Path, prefect_api_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "outside" / "marker"
    marker.parent.mkdir()
    plan_path = make_crate(tmp_path / "crate", plan_text=PLAN, plan_name="2026-02-01.mul.md")
    repo = plan_path.parents[2]
    edits = [
        editor_str_replace("src/lib.rs", CFG_TEST, MUL + CFG_TEST),
        editor_create(".ai/plan-executor.toml", _hostile_config(marker)),
    ]
    echo = Echo()
    scripts = {"1": PhaseScript(edits=edits, cite="src/lib.rs:1")}
    with StandinMessagesAPI(responder=ScriptedAgents(scripts), auto_summary=False) as api:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", api.base_url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "stand-in-test-key")
        code = run_plan(plan_path, RunOptions(repo=repo), live=False, echo=echo)

    assert not marker.exists(), "the agent's build command ran on the host"
    assert not (repo / "gate-ran").exists(), "the agent's build command ran at all"
    assert code == 1, echo.text
    state = read_plan_state(plan_path)
    assert state is not None
    checkpoint = state.phases["1"]
    assert checkpoint.status == "blocked", checkpoint
    deciding = [line for line in checkpoint.ledger if "integrity: gate configuration" in line]
    assert deciding and deciding[0].startswith("[fail] "), checkpoint.ledger
    assert ".ai/plan-executor.toml (added)" in deciding[0]


@needs_cargo
def test_b_committed_sandbox_false_is_ignored_and_the_command_runs_sandboxed(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "outside" / "marker"
    marker.parent.mkdir()
    plan_path = make_crate(tmp_path / "crate", plan_text=PLAN, plan_name="2026-02-01.mul.md")
    repo = plan_path.parents[2]
    (repo / ".ai" / "plan-executor.toml").write_text(
        _hostile_config(marker) + "test = 'true'\nlint = 'true'\nfmt = 'true'\n"
    )
    _commit(repo, "gate configuration from whoever could push")

    result = run_preflight(repo, parse_plan(plan_path, repo=repo), plan_path=plan_path)

    assert not marker.exists(), "a committed `sandbox = false` ran the build on the host"
    assert (repo / "gate-ran").read_text() == "ran\n"  # it did run: in the sandbox
    config_entry = next(e for e in result.ledger.entries if e.check == "gate configuration")
    assert config_entry.verdict is Verdict.WARN, config_entry.line()
    assert "`sandbox` ignored" in config_entry.evidence
    assert result.config is not None and result.config.sandbox is True
    assert result.ok and "warnings: gate configuration" in result.message, result.message


# --- (c): the run's network ------------------------------------------------------------------


class Listener:
    """A TCP listener on 127.0.0.1 that counts the connections it accepts."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            conn.close()

    def __enter__(self) -> Listener:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


def test_c_with_the_network_off_a_gate_command_reaches_no_local_socket(
    tmp_path: Path, prefect_api_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan_path = make_crate(tmp_path / "crate", plan_text=PLAN, plan_name="2026-02-01.mul.md")
    repo = plan_path.parents[2]
    with Listener() as listener:
        connect = (
            "import socket, pathlib; pathlib.Path('gate-ran').write_text('ran'); "
            f"socket.create_connection(('127.0.0.1', {listener.port}), 5).close(); "
            "pathlib.Path('gate-connected').write_text('yes')"
        )
        (repo / ".ai" / "plan-executor.toml").write_text(
            "sandbox_network = true\n"
            f"build = ['python3', '-c', {json.dumps(connect)}]\n"
            "test = 'true'\nlint = 'true'\nfmt = 'true'\n"
        )
        _commit(repo, "the configuration wants the network")
        # Control: the same command on this machine does reach the listener.
        subprocess.run(["python3", "-c", connect], cwd=tmp_path, check=True, timeout=30)
        assert listener.accepted == 1
        echo = Echo()
        scripts = {"1": PhaseScript(edits=[], cite="src/lib.rs:1")}
        with StandinMessagesAPI(responder=ScriptedAgents(scripts), auto_summary=False) as api:
            monkeypatch.setenv("ANTHROPIC_BASE_URL", api.base_url)
            monkeypatch.setenv("ANTHROPIC_API_KEY", "stand-in-test-key")
            code = run_plan(plan_path, RunOptions(repo=repo, network=False), live=False, echo=echo)
        accepted = listener.accepted

    assert (repo / "gate-ran").read_text() == "ran", echo.text  # the gate command did run
    assert accepted == 1, "a gate command reached 127.0.0.1 with the run's network off"
    assert not (repo / "gate-connected").exists()
    assert code == 1, echo.text  # its build failed: pre-flight stops the run


# --- (d) and (e): secrets ---------------------------------------------------------------------


@pytest.fixture
def standin() -> Iterator[Callable[..., StandinMessagesAPI]]:
    started: list[StandinMessagesAPI] = []

    def make(*args: Any, **kwargs: Any) -> StandinMessagesAPI:
        fake = StandinMessagesAPI(*args, **kwargs).start()
        started.append(fake)
        return fake

    yield make
    for fake in started:
        fake.stop()


@pytest.fixture
def base() -> Iterator[Path]:
    """A directory outside /tmp (the sandbox's private /tmp would hide whatever lies under the
    host's /tmp and prove nothing)."""
    parent = next((p for p in ("/srv", "/opt", "/mnt") if os.access(p, os.W_OK)), None)
    if parent is None:
        pytest.skip("no writable directory outside /tmp for the test's home and repository")
    path = Path(tempfile.mkdtemp(prefix="pe-secrets-", dir=parent))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _repo(path: Path) -> Path:
    (path / "src").mkdir(parents=True)
    (path / "src" / "lib.rs").write_text("pub fn one() -> u32 { 1 }\n")
    subprocess.run(["git", "init", "-q"], cwd=path, check=True)
    _commit(path, "init")
    return path


def _agent(
    standin: Callable[..., StandinMessagesAPI], repo: Path, calls: list[dict[str, Any]]
) -> tuple[list[str], str, str]:
    """One agent call making ``calls``: the tool results it got back, every request body the
    Messages API received, and the transcript."""
    fake = standin([tool_turn(*calls), text_turn("done")])
    result = run_agent(make_request(repo), client=client_for(fake))
    assert result.ok, result.error
    last_user = [m for m in fake.message_requests[1].body["messages"] if m["role"] == "user"][-1]
    results = [b for b in last_user["content"] if b.get("type") == "tool_result"]
    assert len(results) == len(calls)
    sent = json.dumps([request.body for request in fake.message_requests])
    log = (repo / result.details_log).read_text() if result.details_log else ""
    texts = [b["content"] if isinstance(b["content"], str) else json.dumps(b) for b in results]
    return texts, sent, log


def _plant(home: Path, prefect_home: Path) -> dict[str, str]:
    """Files where plan-executor and Prefect keep their state: name → a unique content."""
    planted = {
        "server.json": home / "server.json",
        "PG_VERSION": home / "postgres" / "PG_VERSION",
        "profiles.toml": prefect_home / "profiles.toml",
    }
    contents = {}
    for name, path in planted.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        contents[name] = f"{name}-content-{uuid.uuid4().hex}"
        path.write_text(contents[name])
    return contents


@pytest.mark.parametrize("where", ["inside the repository", "inside a kept toolchain dir"])
def test_d_the_homes_of_plan_executor_and_prefect_are_hidden_from_agents(
    where: str, base: Path, standin: Callable[..., StandinMessagesAPI], monkeypatch
) -> None:
    repo = _repo(base / "repo")
    host_home = base / "home"
    cargo_home = host_home / ".cargo"
    (cargo_home / "bin").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(host_home))
    monkeypatch.setenv("CARGO_HOME", str(cargo_home))
    monkeypatch.setenv("PATH", f"{cargo_home / 'bin'}{os.pathsep}{os.environ['PATH']}")
    inside = repo if where == "inside the repository" else cargo_home
    home, prefect_home = inside / "pe-home", inside / "prefect-home"
    monkeypatch.setenv("PLAN_EXECUTOR_HOME", str(home))
    monkeypatch.setenv("PREFECT_HOME", str(prefect_home))
    contents = _plant(home, prefect_home)

    calls = [
        bash_command(f"cat {home}/server.json {home}/postgres/PG_VERSION; ls -a {home}"),
        bash_command(f"cat {prefect_home}/profiles.toml; ls -a {prefect_home}"),
        bash_command(f"grep -r content {inside} || true"),
    ]
    if where == "inside the repository":
        calls += [editor_view("pe-home/server.json"), editor_view("prefect-home/profiles.toml")]
    texts, sent, log = _agent(standin, repo, calls)

    assert "No such file or directory" in texts[0], texts[0]  # the command ran, saw nothing
    for value in contents.values():
        assert value not in sent and value not in log
    if where == "inside the repository":
        assert "hidden from agents" in texts[3] and "hidden from agents" in texts[4]
    for name, value in contents.items():  # and nothing was lost on the host
        assert value in {p.read_text() for p in inside.rglob(name)}


def test_e_a_tool_result_with_the_api_key_reaches_the_api_scrubbed(
    tmp_path: Path, standin: Callable[..., StandinMessagesAPI], monkeypatch: pytest.MonkeyPatch
) -> None:
    env_key = f"sk-ant-env-{uuid.uuid4().hex}"
    auth = f"admin:{uuid.uuid4().hex}"
    password = f"pg-{uuid.uuid4().hex}"
    monkeypatch.setenv("ANTHROPIC_API_KEY", env_key)
    monkeypatch.setenv("PREFECT_API_AUTH_STRING", auth)
    home = tmp_path / "pe-home"
    home.mkdir()
    (home / "postgres.credential").write_text(password + "\n")
    monkeypatch.setenv("PLAN_EXECUTOR_HOME", str(home))
    repo = _repo(tmp_path / "repo")
    # Where an agent may meet them: a file someone left in the repository.
    (repo / "notes.txt").write_text(f"key={env_key}\nclient={API_KEY}\n{auth}\n{password}\n")
    secrets = [env_key, API_KEY, auth, password]

    calls = [
        bash_command("cat notes.txt"),
        bash_command("SOMETHING=$(cat notes.txt); echo $SOMETHING"),
        editor_view("notes.txt"),
        bash_command("base64 -w0 notes.txt | base64 -d"),
    ]
    texts, sent, log = _agent(standin, repo, calls)

    assert all("[redacted]" in text for text in texts), texts
    for secret in secrets:
        assert secret not in sent, "a secret reached the Messages API"
        assert secret not in log, "a secret reached the transcript"
    assert "key=[redacted]" in texts[0]
