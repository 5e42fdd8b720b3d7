"""Two runs of one plan at once: the second is refused by the run lock and changes nothing; the
first is not disturbed. Plus the lock itself: exclusive, described, released on every exit and
by the kernel when its holder is SIGKILLed, never inherited by a forked child."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from cli.demo import ScriptedAgents, demo_scripts, make_crate
from plan_parser.checkpoints import read_plan_state
from tasks import run_lock
from tasks.agent.standin import StandinMessagesAPI
from tasks.gates.preflight import dirty_files
from tests.flows.conftest import needs_cargo, phase_of

ROOT = Path(__file__).resolve().parents[2]


def _plan(tmp_path: Path) -> Path:
    plan = tmp_path / ".ai" / "plans" / "2026-01-01.lock-me.md"
    plan.parent.mkdir(parents=True)
    plan.write_text("# Plan\n\n**Status:** Draft\n", encoding="utf-8")
    return plan


def test_lock_is_exclusive_names_its_holder_and_is_removed_on_release(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    lock = run_lock.acquire(plan, flow_run_id="run-one")
    lock_file = plan.with_name(".2026-01-01.lock-me.md.run.lock")
    assert lock.path == lock_file
    body = json.loads(lock_file.read_text())
    assert body["pid"] == os.getpid() and body["flow_run_id"] == "run-one"
    assert body["host"] and body["started_at"]

    with pytest.raises(run_lock.RunLockHeld) as refused:
        run_lock.acquire(plan)
    message = str(refused.value)
    assert str(plan) in message and f"pid {os.getpid()}" in message and "run-one" in message
    assert "Nothing was changed" in message and "Wait for that run" in message

    lock.release()
    lock.release()  # idempotent
    assert not lock_file.exists()
    with run_lock.held(plan) as again:
        assert again.held
    assert not lock_file.exists()


def test_a_sigkilled_holder_never_blocks_the_next_run(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, time
                from tasks import run_lock
                run_lock.acquire({str(plan)!r}, flow_run_id="doomed")
                print("held", flush=True)
                time.sleep(600)
                """
            ),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(run_lock.RunLockHeld) as refused:
            run_lock.acquire(plan)
        assert refused.value.holder is not None and refused.value.holder.pid == holder.pid
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(30)
    stale = plan.with_name(f".{plan.name}.run.lock")
    assert json.loads(stale.read_text())["flow_run_id"] == "doomed"  # left behind, unlocked
    with run_lock.held(plan, flow_run_id="rerun") as lock:
        assert json.loads(lock.path.read_text())["flow_run_id"] == "rerun"


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_the_next_holder_stops_what_a_killed_holder_left_running(tmp_path: Path) -> None:
    """A command the killed run started outside the sandbox (its own session, as gate commands
    are) is stopped when the plan is next locked; a look-alike without the token is not."""
    plan = _plan(tmp_path)
    script = textwrap.dedent(
        f"""
        import subprocess, time
        from tasks import run_lock
        run_lock.acquire({str(plan)!r})
        gate = subprocess.Popen(["sleep", "600"], start_new_session=True)
        print(gate.pid, flush=True)
        time.sleep(600)
        """
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    bystander = subprocess.Popen(["sleep", "600"], start_new_session=True)
    try:
        assert holder.stdout is not None
        orphan = int(holder.stdout.readline())
        holder.send_signal(signal.SIGKILL)
        holder.wait(30)
        assert _alive(orphan)  # outlived the run that started it

        with run_lock.held(plan) as lock:
            assert lock.previous is not None and lock.previous.run_token
            assert os.environ[run_lock.RUN_ENV] == lock.holder.run_token
            assert run_lock.reap_leftovers(lock.previous) == [orphan]
            for _ in range(100):
                if not _alive(orphan):
                    break
                time.sleep(0.05)
            assert not _alive(orphan)
            assert _alive(bystander.pid)
        assert run_lock.RUN_ENV not in os.environ
    finally:
        for pid in (holder.pid, bystander.pid):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        bystander.wait(30)
        with contextlib.suppress(OSError, ValueError, NameError):
            os.kill(orphan, signal.SIGKILL)


def test_a_forked_child_does_not_keep_the_lock(tmp_path: Path) -> None:
    """A child forked by the run (without exec) that outlives it must not hold the plan."""
    plan = _plan(tmp_path)
    script = textwrap.dedent(
        f"""
        import os, signal
        from tasks import run_lock
        run_lock.acquire({str(plan)!r})
        child = os.fork()
        if child == 0:
            os.close(1)
            os.close(2)
            signal.pause()
        print(child, flush=True)
        os._exit(0)  # the holder dies without releasing; its forked child lives on
        """
    )
    # A fresh interpreter: forking the suite's own process after Prefect ran can hang.
    holder = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    orphan = int(holder.stdout.strip())
    try:
        assert Path(f"/proc/{orphan}").exists()
        with run_lock.held(plan):
            pass
    finally:
        os.kill(orphan, signal.SIGKILL)


def test_preflight_ignores_the_run_lock_file(tmp_path: Path) -> None:
    from tasks.shell import run

    repo = tmp_path
    plan = _plan(repo)
    for argv in (["git", "init", "-q"], ["git", "add", "-A"]):
        run(argv, cwd=repo)
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t"}
    run(
        ["git", "commit", "-qm", "plan"],
        cwd=repo,
        env={**env, "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"},
    )
    relative = str(plan.relative_to(repo))
    with run_lock.held(plan):
        assert dirty_files(repo, relative) == []
        (repo / "other.txt").write_text("x")
        assert dirty_files(repo, relative) == ["other.txt"]


@needs_cargo
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_second_run_is_refused_while_the_first_is_inside_an_agent_call(
    tmp_path: Path, prefect_api_url: str
) -> None:
    plan_path = make_crate(tmp_path / "crate")
    repo = plan_path.parents[2]
    agents = ScriptedAgents(demo_scripts())
    inside_call = threading.Event()
    go_on = threading.Event()

    def responder(body: dict) -> object:
        reply = agents(body)
        if set(agents.phases_seen) >= {"1", "2"}:
            inside_call.set()
        # Every request waits until the second runs are done: both agents of wave 1 are held
        # inside their first call (they run concurrently, so both calls arrive).
        go_on.wait(200)
        return reply

    with StandinMessagesAPI(responder=responder, auto_summary=False) as api:
        env = {**os.environ, "ANTHROPIC_BASE_URL": api.base_url, "ANTHROPIC_API_KEY": "stand-in"}
        command = [sys.executable, "-m", "cli.app", "run", str(plan_path), "--no-live"]
        with (tmp_path / "first.log").open("wb") as out:
            first = subprocess.Popen(
                command,
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                assert inside_call.wait(180), (tmp_path / "first.log").read_text()
                plan_bytes = plan_path.read_bytes()
                logs = sorted(p.name for p in (repo / ".ai" / "logs").iterdir())
                requests_before = len(api.message_requests)

                seconds = [
                    subprocess.run(
                        [*command, *extra],
                        cwd=ROOT,
                        env=env,
                        capture_output=True,
                        text=True,
                        timeout=120,
                    )
                    for extra in ([], ["--dry-run"])
                ]
                assert first.poll() is None, "the first run ended before the second was refused"
                assert plan_path.read_bytes() == plan_bytes
                assert sorted(p.name for p in (repo / ".ai" / "logs").iterdir()) == logs
                assert len(api.message_requests) == requests_before
                go_on.set()
                first.wait(240)
            finally:
                go_on.set()
                if first.poll() is None:
                    os.killpg(first.pid, signal.SIGKILL)
                    first.wait(30)

    for second in seconds:
        assert second.returncode == 2, second.stdout + second.stderr
        assert "another plan-executor run is executing this plan" in second.stderr
        assert f"pid {first.pid}" in second.stderr and plan_path.name in second.stderr
        assert "invalid plan" not in second.stderr
    assert first.returncode == 0, (tmp_path / "first.log").read_text()
    state = read_plan_state(plan_path)
    assert state is not None
    assert all(cp.status == "complete" for cp in state.phases.values())
    assert {phase_of(r) for r in api.message_requests} == {"1", "2", "3"}
    assert not plan_path.with_name(f".{plan_path.name}.run.lock").exists()


@pytest.mark.skipif(not shutil.which("bwrap"), reason="bubblewrap is not installed")
def test_an_agent_cannot_delete_the_run_lock_to_let_a_second_run_in(tmp_path: Path) -> None:
    """The agents' sandbox gets the lock file read-only like the plan: removed, a second run would
    lock a new file beside the first run (flock locks the open file, not the name)."""
    from cli.demo import demo_plan
    from flows.context import ResolvedRunOptions, RunContext
    from flows.phase import agent_request
    from plan_parser import parse_plan
    from tasks.agent.sandbox import Sandbox, SandboxSettings
    from tasks.mirror import PlanMirror

    plan_path = tmp_path / ".ai" / "plans" / "2026-11-24.demo.md"
    plan_path.parent.mkdir(parents=True)
    plan_path.write_text(demo_plan(), encoding="utf-8")
    plan = parse_plan(plan_path)
    context = RunContext(
        plan_path=plan_path,
        plan=plan,
        options=ResolvedRunOptions(repo=tmp_path),
        mirror=PlanMirror(plan_path, tmp_path, plan_title=plan.title, enabled=False),
        skills=[],
    )
    request = agent_request(
        context, plan.phases[0], "rust-developer", "do it", role_suffix="details"
    )
    with run_lock.held(plan_path, flow_run_id="first"):
        lock_file = run_lock.run_lock_path(plan_path)
        sandbox = Sandbox(tmp_path, SandboxSettings(read_only_paths=request.protected_paths))
        result = sandbox.run(
            f"rm -f {lock_file.relative_to(tmp_path)}; mv .ai/plans .ai/moved", timeout_s=30
        )
        assert result.exit_code != 0, result.output
        assert lock_file.exists()
        with pytest.raises(run_lock.RunLockHeld):
            run_lock.acquire(plan_path, flow_run_id="second")
