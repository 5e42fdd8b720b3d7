"""Crash and resume: a real `plan-executor run` SIGKILLed during an agent call, during a gate
command, inside a checkpoint write (before and after the rename) and at a random moment, then
rerun. After every kill the plan file parses and its checkpoints read back; the rerun finishes
(exit 0, every phase complete); no phase complete before the kill is lost or executed again.

A handful of trials (about 20 s each); `bench/crash_trials.py` runs 50 and writes the tally to
docs/reliability.md. The random trial's seed is fixed (CRASH_SEED=random draws one, CRASH_SEED=<n>
replays one); a failure names its seed.
"""

from __future__ import annotations

import contextlib
import os
import random
from pathlib import Path

import pytest

from tests.flows.conftest import needs_cargo
from tests.reliability.crash_harness import TrialResult, run_trial

STUCK_ONCE_PLAN = """# A phase whose test hangs the first time it runs

**Created:** 2026-11-24
**Status:** Reviewed - Ready for Implementation

## Phases

### Phase 1: Stuck once

**Principal Owner:** Rust Developer
**Dependencies:** None
**Blast Radius:** `cargo test --test stuck`

**Files to create:**
- `tests/stuck.rs` - a test that hangs on its first run only

**Acceptance Criteria:**
- [ ] `cargo test --test stuck` passes
"""

# One marker for the whole repository: the phase's worktree and the checkout alike.
STUCK_ONCE_TEST = """const MARKER: &str = "@MARKER@";

#[test]
fn stuck_on_the_first_run_only() {
    let first = std::path::Path::new(MARKER);
    if !first.exists() {
        std::fs::write(&first, "").unwrap();
        loop {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}
"""

pytestmark = [needs_cargo, pytest.mark.slow, pytest.mark.timeout(420)]

# A fixed seed keeps CI deterministic (bench trial 31: killed 7.3 s in, phase 2 complete, phase 1
# running); CRASH_SEED=random draws a new one, CRASH_SEED=<n> replays one. Seed 3483009639
# (killed 4.3 s in, phases 1 and 2 starting) showed the stall described in
# docs/reliability.md (the killed run's agent slots held for their 300 s lease; now 60 s).
_SEED = os.environ.get("CRASH_SEED", "2728898079")
RANDOM_SEED = random.randrange(2**32) if _SEED == "random" else int(_SEED)


def _explain(result: TrialResult, workdir: Path) -> str:
    log = workdir / "victim.log"
    tail = log.read_text(errors="replace")[-1500:] if log.exists() else ""
    return (
        f"trial failed (replay: CRASH_SEED={result.seed} pytest {__file__} -k {result.moment}): "
        f"{result.as_dict()}\n--- victim log tail ---\n{tail}"
    )


def _check(result: TrialResult, workdir: Path, *, must_kill: bool = True) -> None:
    why = _explain(result, workdir)
    if must_kill:
        assert result.killed, why
    assert result.plan_parsed and result.state_readable, why
    assert result.lost == [], why
    assert result.reexecuted == [], why
    assert result.rerun_finished and result.rerun_exit == 0, why
    assert not result.error, why


@pytest.mark.parametrize(
    ("moment", "seed"),
    [("agent", 11), ("random", RANDOM_SEED)],
    ids=["agent", "random"],
)
def test_killed_then_rerun_loses_and_repeats_nothing(
    tmp_path: Path, prefect_api_url: str, moment: str, seed: int
) -> None:
    result = run_trial(tmp_path, 1, seed, moment)
    _check(result, tmp_path, must_kill=moment != "random")
    if moment == "agent":  # the killed agent's phase was running; its dependencies were kept
        assert "running" in result.killed_during, result.as_dict()
        # Prefect never heard the killed run end: the rerun marks it Crashed instead of Running.
        assert result.killed_flow_run, result.as_dict()
        assert result.killed_flow_run_state == "CRASHED", result.as_dict()


def test_killed_inside_a_checkpoint_write_before_the_rename(
    tmp_path: Path, prefect_api_url: str
) -> None:
    # A clean run writes the plan 13 times; writes 5-8 are phases 1 and 2 (one step each, then
    # complete, interleaved), so the 8th records the second of them complete. Killed before its
    # rename: the temporary is written and fsynced, the plan keeps its previous, whole content.
    result = run_trial(tmp_path, 1, 1, "write", write_at=(8, "before"))
    _check(result, tmp_path)
    assert result.temporaries == 1, result.as_dict()
    assert len(result.complete_before) <= 1, result.as_dict()


def test_killed_right_after_a_checkpoint_write(tmp_path: Path, prefect_api_url: str) -> None:
    # The 8th write has made phases 1 and 2 complete, and the run dies at once: neither may
    # run again; only phase 3 runs on the rerun.
    result = run_trial(tmp_path, 1, 1, "write", write_at=(8, "after"))
    _check(result, tmp_path)
    assert result.complete_before == ["1", "2"], result.as_dict()
    assert result.temporaries == 0, result.as_dict()


def test_a_gate_command_left_running_by_the_killed_run_is_stopped_by_the_rerun(
    tmp_path: Path, prefect_api_url: str
) -> None:
    """Gates without the sandbox (`--unsandboxed-gates`) run in their own sessions and outlive a run
    killed outright; this one is stuck in a test, and no timer is left to kill it (it would run
    until the machine restarts). The rerun stops it (the run lock's token) and finishes."""
    import signal
    import subprocess
    import sys
    import time

    from cli.demo import PhaseScript, ScriptedAgents, make_crate
    from plan_parser.checkpoints import read_plan_state
    from tasks.agent.standin import StandinMessagesAPI, editor_create
    from tasks.gates.wiring import rustfmt
    from tasks.run_lock import RUN_ENV

    def stuck_tests() -> list[int]:  # the test binary itself running (not rustc building it)
        found = []
        for entry in Path("/proc").iterdir():
            try:
                argv0 = (entry / "cmdline").read_bytes().split(b"\0")[0].decode()
            except (OSError, UnicodeDecodeError):
                continue
            if argv0.startswith(str(repo)) and "/deps/stuck-" in argv0:
                found.append(int(entry.name))
        return found

    plan_path = make_crate(tmp_path / "crate", plan_text=STUCK_ONCE_PLAN)
    repo = plan_path.parents[2]
    (repo / ".git" / "info" / "exclude").write_text("FIRST\n")
    agents = ScriptedAgents(
        {
            "1": PhaseScript(
                edits=[
                    editor_create(
                        "tests/stuck.rs",
                        # Formatted for the fmt gate: a long path wraps.
                        rustfmt(STUCK_ONCE_TEST.replace("@MARKER@", str(repo / "FIRST")), repo)
                        or "",
                    )
                ]
            )
        }
    )
    with StandinMessagesAPI(responder=agents, auto_summary=False) as api:
        env = {**os.environ, "ANTHROPIC_BASE_URL": api.base_url, "ANTHROPIC_API_KEY": "stand-in"}
        env.pop(RUN_ENV, None)
        command = [
            *(sys.executable, "-m", "cli.app", "run", str(plan_path)),
            *("--no-live", "--unsandboxed-gates"),
        ]
        with (tmp_path / "first.log").open("wb") as out:
            first = subprocess.Popen(
                command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
            try:
                for _ in range(1800):  # until the phase's gate runs the stuck test
                    if stuck_tests():
                        break
                    time.sleep(0.1)
                else:
                    pytest.fail((tmp_path / "first.log").read_text())
            finally:
                os.kill(first.pid, signal.SIGKILL)  # the run only, as `kill -9` would
                first.wait(30)
        time.sleep(1)
        assert stuck_tests(), "the stuck gate should outlive the killed run"

        second = subprocess.run(
            [*command, "--dirty", "proceed"], env=env, capture_output=True, text=True, timeout=240
        )

    leftovers = stuck_tests()
    for pid in leftovers:  # never leak the orphan, whatever the outcome
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "left running by a killed run" in second.stdout + second.stderr
    assert leftovers == []
    state = read_plan_state(plan_path)
    assert state is not None and state.phases["1"].status == "complete"
