"""Crashes between write and rename, SIGKILL while holding the lock, and concurrent writers."""

from __future__ import annotations

import fcntl
import multiprocessing
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from plan_parser.checkpoints import PhaseCheckpoint, read_plan_state
from plan_parser.writer import PlanFileWriter, PlanWriteError
from tasks.shell import run

PLAN = "# Plan\n\n**Status:** Reviewed - Ready for Implementation\n\n## Phases\n\n### Phase 1: a\n"
FORK = multiprocessing.get_context("fork")
SPAWN = multiprocessing.get_context("spawn")
REPO_ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(120)  # a lock bug shows as a hang: fail instead


def _cp(phase_id: str, status: str = "complete") -> PhaseCheckpoint:
    return PhaseCheckpoint(phase_id=phase_id, status=status, artifacts=[f"src/{phase_id}.rs"])  # type: ignore[arg-type]


def _plan(tmp_path: Path) -> Path:
    plan = tmp_path / "plan.md"
    plan.write_text(PLAN)
    PlanFileWriter(plan).set_phase(_cp("1", "running"))
    return plan


def _temporaries(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.name.endswith(".tmp")]


def _lock_is_held(plan: Path) -> bool:
    fd = os.open(plan.with_name(f".{plan.name}.lock"), os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


# ---- a failing rename -----------------------------------------------------------------------


def test_rename_failure_leaves_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = _plan(tmp_path)
    before = plan.read_bytes()

    def refuse(source: object, target: object) -> None:
        assert Path(str(source)).read_bytes() != before  # the new text was written first
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(PlanWriteError, match=rf"{plan}: cannot write \(No space left on device\)"):
        PlanFileWriter(plan).set_phase(_cp("2"))
    assert plan.read_bytes() == before
    assert _temporaries(tmp_path) == []
    monkeypatch.undo()
    assert not _lock_is_held(plan)
    PlanFileWriter(plan).set_phase(_cp("2"))  # and the lock was released
    assert set(read_plan_state(plan).phases) == {"1", "2"}  # type: ignore[union-attr]


def test_interrupt_during_rename_leaves_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = _plan(tmp_path)
    before = plan.read_bytes()

    def interrupt(source: object, target: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupt)
    with pytest.raises(KeyboardInterrupt):
        PlanFileWriter(plan).set_status("Implemented")
    assert plan.read_bytes() == before
    assert _temporaries(tmp_path) == []


# ---- SIGKILL ----------------------------------------------------------------------------------


def _die_before_rename(plan: str, ready: object) -> None:
    def stall(source: object, target: object) -> None:
        ready.set()  # type: ignore[attr-defined]
        time.sleep(600)

    os.replace = stall  # type: ignore[assignment]  # this child process only
    PlanFileWriter(Path(plan)).set_phase(_cp("2"))


def _die_holding_the_lock(plan: str, ready: object) -> None:
    def stall(*args: object, **kwargs: object) -> tuple[int, str]:
        ready.set()  # type: ignore[attr-defined]
        time.sleep(600)
        raise AssertionError("unreachable")

    tempfile.mkstemp = stall  # type: ignore[assignment]  # this child process only
    PlanFileWriter(Path(plan)).set_status("Implemented")


@pytest.mark.parametrize("victim", [_die_before_rename, _die_holding_the_lock])
def test_sigkill_mid_write_leaves_the_old_file(tmp_path: Path, victim: object) -> None:
    plan = _plan(tmp_path)
    before = plan.read_bytes()
    # A fresh interpreter: forking the suite process after other tests left threads can hang.
    ready = SPAWN.Event()
    child = SPAWN.Process(target=victim, args=(str(plan), ready))
    child.start()
    try:
        assert ready.wait(30), "the child never reached the point of the crash"
        assert _lock_is_held(plan)
    finally:
        os.kill(child.pid, signal.SIGKILL)  # type: ignore[arg-type]
        child.join(30)
    assert child.exitcode == -signal.SIGKILL
    assert plan.read_bytes() == before
    stray = _temporaries(tmp_path)
    if victim is _die_before_rename:
        assert len(stray) == 1 and b"phase_2" in stray[0].read_bytes()
    state = read_plan_state(plan)
    assert state is not None and list(state.phases) == ["1"] and state.problems == []
    assert not _lock_is_held(plan)  # the kernel released the dead writer's lock
    PlanFileWriter(plan).set_phase(_cp("3"))
    assert _temporaries(tmp_path) == []  # the next write cleared the dead writer's temporary
    assert list(read_plan_state(plan).phases) == ["1", "3"]  # type: ignore[union-attr]


# ---- concurrency ------------------------------------------------------------------------------

WORKERS = 8
WRITES = 20


def _write_many(plan: str, worker: int) -> None:
    writer = PlanFileWriter(Path(plan))
    for number in range(WRITES):
        status = "complete" if number % 2 else "failed"
        writer.set_phase(_cp(f"w{worker}.{number}", status))
        if number == WRITES // 2:
            writer.set_status(f"running by {worker}")


def _watch(plan: Path, stop: threading.Event, seen: list[str]) -> None:
    """Read the file over and over while others write: it must always parse, never shrink."""
    largest = 0
    while not stop.is_set():
        state = read_plan_state(plan)
        if state is None or state.problems or len(state.phases) < largest:
            seen.append(f"bad read: {state!r:.300}")
            return
        largest = len(state.phases)
        time.sleep(0.02)  # leave the GIL to the writer threads between reads


def _check_all_written(plan: Path) -> None:
    state = read_plan_state(plan)
    assert state is not None and state.problems == []
    expected = {f"w{w}.{n}" for w in range(WORKERS) for n in range(WRITES)} | {"1"}
    assert set(state.phases) == expected
    for phase_id, checkpoint in state.phases.items():
        assert checkpoint.artifacts == [f"src/{phase_id}.rs"]
    assert state.status_before == "Reviewed - Ready for Implementation"
    PlanFileWriter(plan).clear_execution_state()
    assert plan.read_text() == PLAN
    assert _temporaries(plan.parent) == []


def test_concurrent_threads_lose_no_update(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    stop, seen = threading.Event(), []
    watcher = threading.Thread(target=_watch, args=(plan, stop, seen))
    watcher.start()
    threads = [threading.Thread(target=_write_many, args=(str(plan), w)) for w in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    stop.set()
    watcher.join(30)
    assert seen == []
    _check_all_written(plan)


def _remove_lock_file_repeatedly(plan: Path, stop: threading.Event) -> None:
    while not stop.is_set():
        PlanFileWriter(plan).remove_lock_file()
        time.sleep(0.002)


def processes_scenario(plan_text: str) -> None:
    """Forked writers while the parent's threads read the file and remove the lock file again
    and again (writers waiting on a removed lock file must notice and lock the new one; children
    forked while a parent thread holds the lock must not keep it). Raises on any lost update."""
    plan = Path(plan_text)
    stop, seen = threading.Event(), []
    watcher = threading.Thread(target=_watch, args=(plan, stop, seen))
    watcher.start()
    remover = threading.Thread(target=_remove_lock_file_repeatedly, args=(plan, stop))
    remover.start()
    processes = [FORK.Process(target=_write_many, args=(str(plan), w)) for w in range(WORKERS)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)
    stop.set()
    watcher.join(30)
    remover.join(30)
    assert [p.exitcode for p in processes] == [0] * WORKERS
    assert seen == []
    _check_all_written(plan)
    print("scenario ok")


def test_concurrent_processes_lose_no_update(tmp_path: Path) -> None:
    """Run in a fresh interpreter: forking the test process itself is unsafe once other tests
    have left threads in it (Prefect's workers hold locks a forked child can inherit and wait
    on forever), which is about the test process, not about the writer."""
    plan = _plan(tmp_path)
    script = (
        "from tests.writer.test_crash_and_concurrency import processes_scenario; "
        f"processes_scenario({str(plan)!r})"
    )
    result = run([sys.executable, "-c", script], cwd=REPO_ROOT, timeout_s=240)
    assert result.exit_code == 0 and "scenario ok" in result.output, result.output
    assert plan.read_text() == PLAN  # the scenario's check ends by restoring the original


def test_remove_lock_file(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    lock = tmp_path / ".plan.md.lock"
    assert lock.exists()
    PlanFileWriter(plan).remove_lock_file()
    assert not lock.exists()
    PlanFileWriter(plan).remove_lock_file()  # nothing to remove: fine
    PlanFileWriter(plan).set_phase(_cp("2"))
    assert lock.exists()
