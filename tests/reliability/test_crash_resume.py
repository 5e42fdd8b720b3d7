"""Crash and resume: a real `plan-executor run` SIGKILLed during an agent call, during a gate
command, inside a checkpoint write (before and after the rename) and at a random moment, then
rerun. After every kill the plan file parses and its checkpoints read back; the rerun finishes
(exit 0, every phase complete); no phase complete before the kill is lost or executed again.

A handful of trials (about 20 s each); `bench/crash_trials.py` runs 50 and writes the tally to
docs/reliability.md. The random trial draws a new seed each time (set CRASH_SEED to replay one);
a failure names its seed.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from tests.flows.conftest import needs_cargo
from tests.reliability.crash_harness import TrialResult, run_trial

pytestmark = [needs_cargo, pytest.mark.slow, pytest.mark.timeout(420)]

RANDOM_SEED = int(os.environ.get("CRASH_SEED") or random.randrange(2**32))


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
    [("agent", 11), ("gate", 5), ("random", RANDOM_SEED)],
    ids=["agent", "gate", "random"],
)
def test_killed_then_rerun_loses_and_repeats_nothing(
    tmp_path: Path, prefect_api_url: str, moment: str, seed: int
) -> None:
    result = run_trial(tmp_path, 1, seed, moment)
    _check(result, tmp_path, must_kill=moment != "random")
    if moment == "agent":  # the killed agent's phase was running; its dependencies were kept
        assert "running" in result.killed_during, result.as_dict()


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
