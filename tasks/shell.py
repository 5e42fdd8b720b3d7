"""The one module that runs subprocesses.

Every command plan-executor runs (gates, git, the agent's bash tool inside its sandbox) goes
through :func:`run`. It gives each command its own session so that a timeout kills the whole
process group, merges stdout and stderr in order, keeps a digest of the full output and a capped
copy for evidence and prompts.

It uses :mod:`subprocess` rather than the `sh` library the design card chose: `sh` starts each
process from Python with its own helper threads, which measured 6.5 ms wall / 3.5 ms CPU per
`true` against 0.9 ms with ``Popen`` in a process that has Prefect loaded, and a phase starts
dozens of processes (gates, git, sandboxed tools): half of the engine's samples per phase
(docs/benchmarks.md, "Engine overhead").
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import contextvars
import hashlib
import os
import shutil
import signal
import subprocess
import sysconfig
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from pydantic import BaseModel

DEFAULT_OUTPUT_CAP = 30_000
CUT_NOTE = "\n[... output cut: {cut} of {total} characters omitted ...]\n"
READ_CHUNK = 65_536
"""Output is handed over in chunks of this size, not lines: a command printing 10 MB without a
newline would otherwise be buffered whole in memory."""


def own_scripts_dir() -> str:
    """Where the programs installed beside plan-executor live (`.venv/bin`: `just`, `prefect`)."""
    return sysconfig.get_path("scripts")


def search_path(path: str | None = None) -> str:
    """``path`` (default: our own PATH) with our own scripts directory after it.

    plan-executor installs `just` (rust-just) into its environment; `.ci/run` and the README call
    `.venv/bin/plan-executor` without activating the venv, so that directory is not on PATH.
    It goes last: a program the user put on PATH wins, as it would in their shell.
    """
    entries = (os.environ.get("PATH", "") if path is None else path).split(os.pathsep)
    entries = [entry for entry in entries if entry]
    scripts = own_scripts_dir()
    if scripts and scripts not in entries:
        entries.append(scripts)
    return os.pathsep.join(entries)


def which(program: str, path: str | None = None) -> str | None:
    """Where ``program`` is found on :func:`search_path` (``path`` plus our scripts directory)."""
    return shutil.which(program, path=search_path(path))


class CommandResult(BaseModel):
    """What a finished command left behind."""

    argv: list[str]
    cwd: str
    exit_code: int
    duration_s: float
    output: str
    """stdout and stderr interleaved; capped to the head and tail when it was too long."""
    output_chars: int
    output_sha256: str
    truncated: bool = False
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out

    def tail(self, lines: int = 20) -> str:
        return "\n".join(self.output.rstrip("\n").splitlines()[-lines:])


class _Collector:
    """Accumulates output chunks; keeps everything up to ``keep_chars`` plus a rolling tail."""

    def __init__(self, cap: int | None) -> None:
        self.cap = cap
        self.head: list[str] = []
        self.head_len = 0
        self.tail = ""
        self.total = 0
        self.digest = hashlib.sha256()
        self.lock = threading.Lock()
        # A chunk boundary can split a character: the incremental decoder joins its halves.
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def __call__(self, chunk: bytes) -> None:
        self._add(self.decoder.decode(chunk))

    def _flush(self) -> str:
        pending = self.decoder.decode(b"", final=True)
        self.decoder.reset()
        return pending

    def _add(self, text: str) -> None:
        if not text:
            return
        with self.lock:
            self.digest.update(text.encode("utf-8", "replace"))
            self.total += len(text)
            if self.cap is None:
                self.head.append(text)
                return
            head_budget = self.cap // 2
            if self.head_len < head_budget:
                take = text[: head_budget - self.head_len]
                self.head.append(take)
                self.head_len += len(take)
                text = text[len(take) :]
            if text:
                self.tail = (self.tail + text)[-(self.cap - head_budget) :]

    def result(self) -> tuple[str, bool]:
        self._add(self._flush())
        head = "".join(self.head)
        if self.cap is None or self.total <= self.cap:
            return head + self.tail, False
        cut = self.total - len(head) - len(self.tail)
        return head + CUT_NOTE.format(cut=cut, total=self.total) + self.tail, True


class ProcessScope:
    """The commands started inside one :func:`process_scope`, so a caller can kill them all.

    A phase that runs out of time kills its scope: the gate or agent commands still running in
    worker threads die with their process groups instead of outliving the phase.
    """

    def __init__(self) -> None:
        self._groups: set[int] = set()
        self._lock = threading.Lock()
        self.killed = False

    def add(self, pgid: int) -> None:
        with self._lock:
            if not self.killed:
                self._groups.add(pgid)
                return
        _kill_group(pgid)  # started after the scope was killed: it dies at once

    def discard(self, pgid: int) -> None:
        with self._lock:
            self._groups.discard(pgid)

    def kill(self) -> int:
        """Kill every running command of the scope (and any started later); returns how many."""
        with self._lock:
            self.killed = True
            groups = list(self._groups)
            self._groups.clear()
        for pgid in groups:
            _kill_group(pgid)
        return len(groups)


_SCOPE: contextvars.ContextVar[ProcessScope | None] = contextvars.ContextVar(
    "plan_executor_process_scope", default=None
)


@contextlib.contextmanager
def process_scope() -> Iterator[ProcessScope]:
    """Commands run in this context (threads started with `asyncio.to_thread` included) join it."""
    scope = ProcessScope()
    token = _SCOPE.set(scope)
    try:
        yield scope
    finally:
        _SCOPE.reset(token)


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def run(
    argv: Sequence[str],
    *,
    cwd: Path | str,
    env: Mapping[str, str] | None = None,
    timeout_s: float | None = None,
    output_cap: int | None = DEFAULT_OUTPUT_CAP,
    stdin: str | None = None,
) -> CommandResult:
    """Run ``argv`` in ``cwd`` and wait for it; never raises for a non-zero exit or a timeout.

    ``env`` replaces the environment entirely when given (callers build allow-lists).
    A missing executable gives exit code 127, as a shell would.
    """
    argv = [str(a) for a in argv]
    collector = _Collector(output_cap)
    started = time.monotonic()
    timed_out = threading.Event()
    # Looked up on our own PATH (not the command's allow-listed one), as a shell started by us would.
    executable = which(argv[0])
    if executable is None:
        collector(f"{argv[0]}: command not found\n".encode())
        return _result(argv, cwd, 127, started, collector, timed_out=False)
    # An inherited environment gets the same search path, so that `just` finds `just` and a
    # recipe's own commands resolve as the gate's first word did.
    child_env = dict(env) if env is not None else {**os.environ, "PATH": search_path()}
    try:
        process = subprocess.Popen(
            [executable, *argv[1:]],
            cwd=str(cwd),
            env=child_env,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as exc:  # not executable, cwd missing: what a shell would say, exit 126
        collector(f"{argv[0]}: {exc.strerror or exc}\n".encode())
        return _result(argv, cwd, 126, started, collector, timed_out=False)

    scope = _SCOPE.get()
    if scope is not None:
        scope.add(process.pid)

    def kill_group() -> None:
        timed_out.set()
        _kill_group(process.pid)

    timer = threading.Timer(timeout_s, kill_group) if timeout_s else None
    if timer:
        timer.daemon = True
        timer.start()
    reader = threading.Thread(target=_read_all, args=(process, collector), daemon=True)
    reader.start()
    try:
        if stdin:
            _feed(process, stdin)
        exit_code = process.wait()
    finally:
        if timer:
            timer.cancel()
        if scope is not None:
            scope.discard(process.pid)
        # Orphaned grandchildren of a finished command still die with their group, which also
        # closes the pipe they may hold open.
        _kill_group(process.pid)
        reader.join(READER_GRACE_S)
        if process.stdout is not None and not reader.is_alive():
            process.stdout.close()
    return _result(argv, cwd, exit_code, started, collector, timed_out=timed_out.is_set())


READER_GRACE_S = 5.0
"""How long the output is drained after the command ended and its group was killed: a process
that left the group (setsid) can hold the pipe open; its output after that is not waited for."""


def _read_all(process: subprocess.Popen[bytes], collector: _Collector) -> None:
    stream = process.stdout
    assert stream is not None
    fd = stream.fileno()
    with contextlib.suppress(OSError, ValueError):
        while chunk := os.read(fd, READ_CHUNK):
            collector(chunk)


def _feed(process: subprocess.Popen[bytes], text: str) -> None:
    assert process.stdin is not None
    with contextlib.suppress(BrokenPipeError, OSError):
        process.stdin.write(text.encode())
    with contextlib.suppress(BrokenPipeError, OSError):
        process.stdin.close()


def _result(
    argv: list[str],
    cwd: Path | str,
    exit_code: int,
    started: float,
    collector: _Collector,
    *,
    timed_out: bool,
) -> CommandResult:
    output, truncated = collector.result()
    if timed_out:
        output += "\n[command killed: timeout]\n"
    return CommandResult(
        argv=argv,
        cwd=str(cwd),
        exit_code=exit_code,
        duration_s=round(time.monotonic() - started, 3),
        output=output,
        output_chars=collector.total,
        output_sha256=collector.digest.hexdigest(),
        truncated=truncated,
        timed_out=timed_out,
    )


async def arun(argv: Sequence[str], **kwargs: object) -> CommandResult:
    """:func:`run` without blocking the event loop (phases run as concurrent async subflows)."""
    return await asyncio.to_thread(run, argv, **kwargs)  # type: ignore[arg-type]
