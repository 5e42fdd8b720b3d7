"""Long-running Prefect processes for the deployment tests: a process worker.

They run in the background for the length of a test session, which `tasks.shell.run` (run and
wait) does not do, so they are started here with `subprocess.Popen`, each in its own process
group, and always stopped by the fixture that started them: SIGTERM (twice for a worker, whose
first SIGTERM only forwards SIGINT to its flow runs), then SIGKILL of the group, and a check
that the pid is gone.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

PREFECT = str(Path(sys.executable).with_name("prefect"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def base_env(home: Path, api_url: str | None = None) -> dict[str, str]:
    """The environment of a Prefect CLI process isolated in ``home``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "ANTHROPIC_"))}
    env.update(
        PREFECT_HOME=str(home),
        DO_NOT_TRACK="1",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_CLI_PROMPT="false",
        PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL="INFO",
        PREFECT_CLIENT_MAX_RETRIES="8",
    )
    if api_url:
        env["PREFECT_API_URL"] = api_url
        # the session's server requires its credential (tests/prefect_fixture.py set it)
        if os.environ.get("PREFECT_API_AUTH_STRING"):
            env["PREFECT_API_AUTH_STRING"] = os.environ["PREFECT_API_AUTH_STRING"]
    return env


@dataclass
class Background:
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    signals_to_stop: int = 1
    stopped: bool = field(default=False)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self, grace_s: float = 15.0) -> None:
        """Stop the process and its group; returns once the pid is gone."""
        if self.stopped:
            return
        self.stopped = True
        for _ in range(self.signals_to_stop):
            if self.proc.poll() is not None:
                break
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=grace_s / self.signals_to_stop)
        # Flow-run subprocesses and the server's own children share the group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        assert not _pid_alive(self.proc.pid), f"{self.name} pid {self.proc.pid} still alive"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def start_background(
    name: str, argv: list[str], *, cwd: Path, env: dict[str, str], log_path: Path
) -> Background:
    log = log_path.open("wb")
    proc = subprocess.Popen(
        argv, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    log.close()
    return Background(name=name, proc=proc, log_path=log_path)


def start_worker(
    pool: str, *, home: Path, api_url: str, cwd: Path, extra_env: dict[str, str]
) -> Background:
    env = base_env(home, api_url)
    env.update(PREFECT_WORKER_QUERY_SECONDS="1", PREFECT_WORKER_PREFETCH_SECONDS="5")
    env.update(extra_env)
    worker = start_background(
        "prefect worker",
        # No --limit: in 3.8.8 a limited process worker crashes when a run it started and that
        # suspended itself is resumed ("this borrower is already holding one of this
        # CapacityLimiter's tokens"); the run then waits in Scheduled/Resuming for ever.
        [PREFECT, "worker", "start", "--pool", pool, "--name", "test-worker"],
        cwd=cwd,
        env=env,
        log_path=home / "worker.log",
    )
    worker.signals_to_stop = 2
    return worker
