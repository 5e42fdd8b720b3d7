"""One run per plan: an exclusive `flock` held for the whole `execute-plan` flow run.

The lock file is a sibling of the plan, `.<plan-name>.run.lock`, with a small JSON body naming
the holder (pid, host, started_at, flow_run_id) so that a refused second run can say who holds
the plan. The flow takes it first thing (so `prefect deployment run` is covered, not only the
CLI) and releases it on every exit; a holder killed with SIGKILL releases it too, because the
kernel drops an flock with the last descriptor, so a rerun after a crash is never blocked by a
stale file. The descriptor is close-on-exec and closed in forked children: gate commands that
outlive a killed run never keep the plan locked.

A run killed outright leaves behind the commands it started outside the sandbox (gate commands
run in their own sessions; sandboxed ones die with the run through bubblewrap's
`--die-with-parent`): a `cargo test` stuck in a test would run on for good, with no timer left
to kill it. So the holder marks its environment with a random
token (`PLAN_EXECUTOR_RUN`, inherited by every command it starts unsandboxed) that the body
records, and the next run of the plan kills the process groups still carrying the token of the
run it replaces (:func:`reap_leftovers`): exactly that run's commands, nothing else.

Release unlinks the file while still holding the lock; a process that opened the old file while
waiting notices (the inode changed) and locks the new one, the same scheme as the plan writer's
`.<plan>.lock`.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import secrets
import signal
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ValidationError

from plan_parser.errors import PlanExecutorError
from plan_parser.writer import same_file

RUN_ENV = "PLAN_EXECUTOR_RUN"
"""Set to the holder's token while it runs: the commands it starts inherit it."""

_OPEN_FDS: set[int] = set()
"""Run-lock descriptors this process holds: closed in children made by fork()."""


def _close_inherited() -> None:
    for fd in list(_OPEN_FDS):
        with contextlib.suppress(OSError):
            os.close(fd)
    _OPEN_FDS.clear()


os.register_at_fork(after_in_child=_close_inherited)


class RunHolder(BaseModel):
    """Who holds a plan (the lock file's body)."""

    pid: int | None = None
    host: str = ""
    started_at: str = ""
    flow_run_id: str | None = None
    run_token: str = ""
    """The value of PLAN_EXECUTOR_RUN in the holder and the commands it started."""

    def describe(self) -> str:
        parts = []
        if self.pid is not None:
            parts.append(f"pid {self.pid}")
        if self.host:
            parts.append(f"on {self.host}")
        if self.started_at:
            parts.append(f"since {self.started_at}")
        if self.flow_run_id:
            parts.append(f"flow run {self.flow_run_id}")
        return ", ".join(parts) or "holder unknown"


class RunLockHeld(PlanExecutorError):
    """Another run holds the plan."""

    def __init__(self, plan: Path, lock_path: Path, holder: RunHolder | None) -> None:
        self.plan = plan
        self.lock_path = lock_path
        self.holder = holder
        who = holder.describe() if holder else "holder unknown"
        super().__init__(
            f"{plan}: another plan-executor run is executing this plan ({who}); "
            f"lock {lock_path}. Nothing was changed. Wait for that run to finish "
            f"(`plan-executor status {plan}`), or stop it and run again; a run that was "
            "killed releases the lock by itself."
        )


class RunLockError(PlanExecutorError):
    """The lock file could not be opened (a read-only folder, permissions)."""


def run_lock_path(plan: Path) -> Path:
    """The sibling lock file of a plan: `dir/.<name>.run.lock` (next to the writer's lock)."""
    target = Path(os.path.realpath(plan))
    return target.with_name(f".{target.name}.run.lock")


def read_holder(lock_path: Path) -> RunHolder | None:
    try:
        return RunHolder.model_validate_json(lock_path.read_bytes() or b"{}")
    except (OSError, ValidationError, ValueError):
        return None


def _open(lock_path: Path) -> int:
    try:
        return os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as problem:
        raise RunLockError(
            f"cannot open the run lock {lock_path} ({problem.strerror}); nothing was changed"
        ) from None


class RunLock:
    """The held lock of one run; :meth:`release` (idempotent) gives the plan back."""

    def __init__(
        self,
        plan: Path,
        lock_path: Path,
        fd: int,
        holder: RunHolder,
        previous: RunHolder | None,
        saved_env: str | None,
    ) -> None:
        self.plan = plan
        self.path = lock_path
        self.holder = holder
        self.previous = previous
        """The body a killed holder left behind (a clean release removes the file), else None."""
        self._fd: int | None = fd
        self._saved_env = saved_env

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        if os.environ.get(RUN_ENV) == self.holder.run_token:
            if self._saved_env is None:
                os.environ.pop(RUN_ENV, None)
            else:
                os.environ[RUN_ENV] = self._saved_env
        try:
            if same_file(fd, self.path):
                with contextlib.suppress(OSError):
                    os.unlink(self.path)  # still holding it: waiters re-check the inode
        finally:
            _OPEN_FDS.discard(fd)
            os.close(fd)


def acquire(plan: Path, *, flow_run_id: str | None = None) -> RunLock:
    """Take the plan's run lock without waiting; raises :class:`RunLockHeld` when it is held."""
    plan = Path(plan)
    lock_path = run_lock_path(plan)
    while True:
        fd = _open(lock_path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as problem:
            os.close(fd)
            if problem.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise RunLockError(f"cannot lock {lock_path}: {problem}") from None
            raise RunLockHeld(plan, lock_path, read_holder(lock_path)) from None
        if same_file(fd, lock_path):
            break
        os.close(fd)  # released and unlinked while we opened it: lock the new file
    _OPEN_FDS.add(fd)
    previous = read_holder(lock_path) if os.fstat(fd).st_size else None
    holder = RunHolder(
        pid=os.getpid(),
        host=socket.gethostname(),
        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
        flow_run_id=flow_run_id,
        run_token=secrets.token_hex(12),
    )
    # The body is only a description for a refused run; the flock is the lock.
    body = json.dumps(holder.model_dump(), sort_keys=True).encode() + b"\n"
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
        os.pwrite(fd, body, 0)
    saved_env = os.environ.get(RUN_ENV)
    os.environ[RUN_ENV] = holder.run_token
    return RunLock(plan, lock_path, fd, holder, previous, saved_env)


def processes_of(token: str) -> list[int]:
    """Pids of live processes (readable by us) whose environment carries this run token."""
    if not token:
        return []
    mark = f"{RUN_ENV}={token}".encode()
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as handle:
                environ = handle.read()
        except OSError:
            continue  # gone, a kernel thread, or another user's
        if mark in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def reap_leftovers(previous: RunHolder | None) -> list[int]:
    """Kill the process groups a killed run left running (its token in their environment).

    Only called by the run that now holds the lock, so the run the token belongs to is gone."""
    pids = processes_of(previous.run_token) if previous else []
    groups = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            groups.add(os.getpgid(pid))
    for group in groups - {os.getpgrp()}:
        with contextlib.suppress(OSError):
            os.killpg(group, signal.SIGKILL)
    return pids


@contextlib.contextmanager
def held(plan: Path, *, flow_run_id: str | None = None) -> Iterator[RunLock]:
    lock = acquire(plan, flow_run_id=flow_run_id)
    try:
        yield lock
    finally:
        lock.release()


async def mark_killed_run_crashed(
    previous: RunHolder | None, current_flow_run_id: str | None
) -> list[str]:
    """Set the killed holder's flow run, and its phase subflows still running, to Crashed.

    A SIGKILLed run cannot report its own end, so Prefect would show it Running for good. Only the
    run that now holds the lock calls this, so the previous holder is known to be gone; a Prefect
    retry of the same flow run finds its own id in the lock file and leaves it alone. Returns the
    ids marked; an API that cannot be reached marks nothing (the run itself must not fail on it).
    """
    if previous is None or not previous.flow_run_id or previous.flow_run_id == current_flow_run_id:
        return []
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId
    from prefect.states import Crashed

    marked: list[str] = []
    message = (
        f"killed without reporting its end ({previous.describe()}); "
        f"found by the next run of the plan, {current_flow_run_id or 'a local run'}"
    )
    try:
        killed = UUID(previous.flow_run_id)
        async with get_client() as client:
            children = await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[killed])
                )
            )
            runs = [await client.read_flow_run(killed), *children]
            for run in runs:
                if run.state is None or run.state.is_final():
                    continue
                await client.set_flow_run_state(run.id, Crashed(message=message), force=True)
                marked.append(str(run.id))
    except Exception:  # noqa: BLE001 - bookkeeping for the UI; the rerun goes on regardless
        return marked
    return marked


def holder_if_held(plan: Path) -> tuple[bool, RunHolder | None]:
    """Whether a run holds the plan now (and who), without taking the lock or creating its file.

    For the free dry run, which writes nothing: a shared `flock` tried for an instant on the
    existing lock file. (A run starting in that instant is refused as if two runs had met.)
    """
    lock_path = run_lock_path(plan)
    try:
        fd = os.open(lock_path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False, None  # no lock file: nobody holds the plan
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as problem:
        if problem.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return True, read_holder(lock_path)
        return False, None
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False, None
    finally:
        os.close(fd)
