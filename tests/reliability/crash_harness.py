"""Crash-and-resume trials: SIGKILL a real `plan-executor run` at a chosen moment, then rerun it.

Used by `tests/reliability/test_crash_resume.py` (a few trials) and `bench/crash_trials.py` (50).

One trial: a fresh demo crate (3 phases: 1 and 2 in parallel, 3 after both; real cargo gates),
the scripted stand-in Messages API as the agents, and a victim `plan-executor run` in a child
process with its own session. The victim is killed with SIGKILL (only its own pid, as the OOM
killer or `kill -9` would: the gate commands it started live on as orphans) at one moment:

- ``agent``: while the stand-in holds a phase's first agent turn (the reply is delayed);
- ``gate``: while a gate command (`cargo ...` in the crate) runs;
- ``write``: inside the plan writer, at its N-th write of the plan file, just before or just
  after the rename (the victim is this module run as a script: it patches the writer's `os` in
  that child only, so the product has no test hook);
- ``random``: after a delay drawn from the trial's seeded RNG.

Then the checks: the plan file parses and its checkpoints read back; the rerun (`--dirty
proceed`: the killed run's work is uncommitted) exits 0 with every phase complete; no phase
that was complete before the kill is lost (still complete, same `completed_at`) or executed
again (no Messages API request for it on the rerun).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
import types
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

MOMENTS = ("agent", "gate", "write", "random")
PLAN_WRITES_SEEN = 14
"""About how many times a clean demo run writes the plan file (the `write` moment draws from
1..this; a draw past the last write lets the victim finish, which the tally counts)."""
RANDOM_WINDOW_S = (1.0, 16.0)
"""The `random` moment's delay range from the victim's start (a clean run takes about 18 s)."""


@dataclass
class TrialResult:
    trial: int
    seed: int
    moment: str
    detail: str = ""
    killed: bool = False
    """False when the victim finished before the kill came (the trial still checks a rerun)."""
    killed_during: str = ""
    """What the kill interrupted, from the checkpoints: `phase 3 running`, `pre-flight`, ..."""
    plan_parsed: bool = False
    state_readable: bool = False
    complete_before: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    """Phases complete before the kill that are not complete (or changed) after the rerun."""
    reexecuted: list[str] = field(default_factory=list)
    """Phases complete before the kill that got a Messages API request on the rerun."""
    rerun_exit: int | None = None
    rerun_finished: bool = False
    rerun_s: float = 0.0
    leftovers: int = 0
    """Processes of the killed run still alive when the rerun started."""
    temporaries: int = 0
    """The writer's temporaries (`.<plan>.XXXXXXXX.tmp`) left beside the plan by the kill."""
    killed_flow_run: str = ""
    """The killed run's flow-run id, from the run lock file it left behind."""
    killed_flow_run_state: str = ""
    """That flow run's state type in Prefect after the rerun (the rerun marks it CRASHED)."""
    error: str = ""

    @property
    def ok(self) -> bool:
        return (
            self.plan_parsed
            and self.state_readable
            and not self.lost
            and not self.reexecuted
            and self.rerun_finished
            and not self.error
        )

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


# -- the victim: `python -m tests.reliability.crash_harness --kill-at-write N before|after ...` --


def _install_write_kill(plan: Path, nth: int, when: str) -> None:
    """SIGKILL this process at the plan writer's ``nth`` rename of ``plan`` (before or after)."""
    import plan_parser.writer as writer

    target = os.path.realpath(plan)
    real_replace = os.replace
    seen = [0]
    lock = threading.Lock()

    def replace(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        if os.path.realpath(dst) != target:
            real_replace(src, dst, *args, **kwargs)
            return
        with lock:
            seen[0] += 1
            fire = seen[0] == nth
        if fire and when == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        real_replace(src, dst, *args, **kwargs)
        if fire:
            os.kill(os.getpid(), signal.SIGKILL)

    class _Os(types.ModuleType):
        def __getattr__(self, name: str) -> Any:
            return getattr(os, name)

    proxy = _Os("os")
    proxy.replace = replace  # type: ignore[attr-defined]
    writer.os = proxy  # type: ignore[attr-defined]


def victim_main(argv: list[str]) -> None:
    """`--kill-at-write N before|after PLAN` then the `plan-executor` arguments."""
    if argv[:1] == ["--kill-at-write"]:
        nth, when, plan = int(argv[1]), argv[2], Path(argv[3])
        _install_write_kill(plan, nth, when)
        argv = argv[4:]
    from cli.app import main

    sys.argv = ["plan-executor", *argv]
    main()


# -- the trial ------------------------------------------------------------------------------


def _crate_processes(repo: Path) -> list[int]:
    """Pids of processes working in the crate (cwd inside it, or its path in the command)."""
    found = []
    marker = str(repo)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "crash_harness" in cmdline or "cli.app" in cmdline:
            continue  # the victim itself and reruns are watched separately
        if cwd == marker or cwd.startswith(marker + "/") or marker in cmdline:
            found.append(int(entry.name))
    return found


def _gate_running(repo: Path) -> bool:
    for pid in _crate_processes(repo):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        program = os.path.basename(cmdline[0].decode()) if cmdline and cmdline[0] else ""
        if program in ("cargo", "rustc", "cargo-clippy", "clippy-driver", "rustfmt"):
            return True
    return False


def _kill_leftovers(repo: Path) -> None:
    """The killed run's orphans (gate commands in their own sessions) that this trial started."""
    for pid in _crate_processes(repo):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(os.getpgid(pid), signal.SIGKILL)


def _killed_during(state: Any) -> str:
    if state is None:
        return "before the first checkpoint"
    running = sorted(pid for pid, cp in state.phases.items() if cp.status == "running")
    if running:
        return "phases " + ", ".join(running) + " running"
    if all(cp.status == "pending" for cp in state.phases.values()):
        return "checkpoints initialised, no phase started"
    if all(cp.status == "complete" for cp in state.phases.values()):
        return "final validation or report"
    return "between phases"


async def _flow_run_state(flow_run_id: str) -> str:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        run = await client.read_flow_run(UUID(flow_run_id))
    return run.state.type.value if run.state else ""


def run_trial(
    workdir: Path,
    trial: int,
    seed: int,
    moment: str,
    *,
    rerun_timeout_s: float = 300.0,
    victim_timeout_s: float = 240.0,
    write_at: tuple[int, str] | None = None,
) -> TrialResult:
    """One kill-and-rerun trial in ``workdir`` (needs PREFECT_API_URL in the environment).

    ``write_at`` fixes the `write` moment (the N-th plan write, "before" or "after" the rename)
    instead of drawing it from the seed."""
    from cli.demo import ScriptedAgents, demo_scripts, make_crate
    from plan_parser import parse_plan
    from plan_parser.checkpoints import read_plan_state
    from tasks import run_lock
    from tasks.agent.standin import StandinMessagesAPI
    from tests.flows.conftest import phase_of

    rng = random.Random(seed)
    result = TrialResult(trial=trial, seed=seed, moment=moment)
    plan_path = make_crate(workdir / "crate")
    repo = plan_path.parents[2]
    scripts = demo_scripts()
    for script in scripts.values():
        script.delay_s = 2.0  # each first turn takes 2 s: a window to kill inside the call
    agents = ScriptedAgents(scripts)
    target_phase = rng.choice(["1", "2", "3"])
    in_call = threading.Event()

    def responder(body: dict[str, Any]) -> Any:
        reply = agents(body)
        if agents.phases_seen and agents.phases_seen[-1] == target_phase:
            in_call.set()
        return reply

    command = ["run", str(plan_path), "--repo", str(repo), "--no-live"]
    victim_argv = [sys.executable, "-m", "tests.reliability.crash_harness"]
    if moment == "write":
        nth = rng.randint(1, PLAN_WRITES_SEEN)
        when = rng.choice(["before", "after"])
        if write_at is not None:
            nth, when = write_at
        victim_argv += ["--kill-at-write", str(nth), when, str(plan_path)]
        result.detail = f"write {nth}, {when} the rename"
    elif moment == "agent":
        result.detail = f"phase {target_phase}'s agent call"
    elif moment == "random":
        delay = rng.uniform(*RANDOM_WINDOW_S)
        result.detail = f"after {delay:.2f} s"
    else:
        skip = rng.randint(0, 6)
        result.detail = f"gate sighting {skip + 1}"
    victim_argv += command

    root = Path(__file__).resolve().parents[2]
    with StandinMessagesAPI(responder=responder, auto_summary=False) as api:
        env = {
            **os.environ,
            "ANTHROPIC_BASE_URL": api.base_url,
            "ANTHROPIC_API_KEY": "stand-in",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])),
        }
        log = workdir / "victim.log"
        with log.open("wb") as out:
            victim = subprocess.Popen(
                victim_argv,
                cwd=root,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                result.killed = _kill_at(
                    victim, moment, rng, in_call, repo, result, victim_timeout_s
                )
            finally:
                if victim.poll() is None:
                    os.kill(victim.pid, signal.SIGKILL)
                victim.wait(30)
        if moment == "write":
            result.killed = victim.returncode == -signal.SIGKILL
        if victim.returncode not in (0, 1, -signal.SIGKILL):
            result.error = f"victim exited {victim.returncode}: {log.read_text()[-2000:]}"

        try:
            parsed = parse_plan(plan_path)
            result.plan_parsed = not parsed.errors
            before = read_plan_state(plan_path)
            result.state_readable = True
        except Exception as exc:  # a half-written plan is exactly what this looks for
            result.error = f"plan unreadable after the kill: {type(exc).__name__}: {exc}"
            return result
        result.killed_during = _killed_during(before) if result.killed else "finished"
        complete = {
            pid: cp.completed_at
            for pid, cp in (before.phases.items() if before else [])
            if cp.status == "complete"
        }
        result.complete_before = sorted(complete)
        result.leftovers = len(_crate_processes(repo))
        result.temporaries = len(list(plan_path.parent.glob(f".{plan_path.name}.*.tmp")))
        holder = run_lock.read_holder(run_lock.run_lock_path(plan_path))
        result.killed_flow_run = (holder.flow_run_id or "") if holder else ""
        seen = len(api.message_requests)

        started = time.monotonic()
        try:
            rerun = subprocess.run(
                [sys.executable, "-m", "cli.app", *command, "--dirty", "proceed"],
                cwd=root,
                env=env,
                capture_output=True,
                text=True,
                timeout=rerun_timeout_s,
            )
            result.rerun_exit = rerun.returncode
            (workdir / "rerun.log").write_text(rerun.stdout + rerun.stderr)
            if rerun.returncode != 0:
                result.error = (rerun.stdout + rerun.stderr)[-3000:]
        except subprocess.TimeoutExpired:
            result.error = f"rerun did not finish in {rerun_timeout_s:.0f} s"
        result.rerun_s = round(time.monotonic() - started, 2)
        rerun_phases = {phase_of(r) for r in api.message_requests[seen:]}
        if result.killed_flow_run:
            result.killed_flow_run_state = asyncio.run(_flow_run_state(result.killed_flow_run))

    _kill_leftovers(repo)
    after = read_plan_state(plan_path)
    result.rerun_finished = (
        result.rerun_exit == 0
        and after is not None
        and bool(after.phases)
        and all(cp.status == "complete" for cp in after.phases.values())
    )
    result.lost = sorted(
        pid
        for pid, completed_at in complete.items()
        if after is None
        or pid not in after.phases
        or after.phases[pid].status != "complete"
        or after.phases[pid].completed_at != completed_at
    )
    result.reexecuted = sorted(pid for pid in complete if pid in rerun_phases)
    return result


def _kill_at(
    victim: subprocess.Popen[bytes],
    moment: str,
    rng: random.Random,
    in_call: threading.Event,
    repo: Path,
    result: TrialResult,
    timeout_s: float,
) -> bool:
    """Wait for the moment and SIGKILL the victim's pid; False when it ended first."""
    deadline = time.monotonic() + timeout_s
    if moment == "write":
        try:
            victim.wait(timeout_s)
        except subprocess.TimeoutExpired:
            result.error = "the write-kill victim did not end"
        return victim.returncode == -signal.SIGKILL
    if moment == "agent":
        while not in_call.wait(0.05):
            if victim.poll() is not None or time.monotonic() > deadline:
                return False
        time.sleep(rng.uniform(0.1, 1.5))  # inside the 2 s the stand-in holds the reply
    elif moment == "random":
        delay = float(result.detail.split()[1])
        try:
            victim.wait(delay)
            return False
        except subprocess.TimeoutExpired:
            pass
    else:
        skip = int(result.detail.split()[-1]) - 1
        sightings = 0
        was_running = False
        while True:
            if victim.poll() is not None or time.monotonic() > deadline:
                return False
            running = _gate_running(repo)
            if running and not was_running:
                if sightings == skip:
                    break
                sightings += 1
            was_running = running
            time.sleep(0.02)
    if victim.poll() is not None:
        return False
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(30)
    return True


def trial_moments(trials: int, rng: random.Random) -> list[str]:
    """Each moment in turn (so every one is covered), in a seeded order."""
    moments = [MOMENTS[i % len(MOMENTS)] for i in range(trials)]
    rng.shuffle(moments)
    return moments


if __name__ == "__main__":
    victim_main(sys.argv[1:])
