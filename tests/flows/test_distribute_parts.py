"""Pieces of the distributed run that need no server: the attempt a worker caches agent calls
under, the heartbeat silence that counts as a dead worker, the phase flow's parameters."""

from __future__ import annotations

import re

import pytest

from flows import distribute
from flows.context import RunOptions


def test_only_a_phase_that_goes_on_from_its_pushed_branch_keeps_the_parents_attempt():
    assert distribute.worker_attempt("a1-2", "fetched, continued") == "a1-2"
    fresh = distribute.worker_attempt("a1-2", "cloned, fresh")
    assert fresh.startswith("a1-2@") and fresh != "a1-2"
    assert distribute.worker_attempt("a1-2", "cloned, fresh") != fresh  # per run, never reused
    assert distribute.worker_attempt(None, "fetched, continued").startswith("attempt@")


def test_heartbeat_silence_that_means_a_dead_worker(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(distribute.ZOMBIE_AFTER_ENV, "45")
    assert distribute.zombie_after_s() == 45.0
    monkeypatch.setenv(distribute.ZOMBIE_AFTER_ENV, "0")
    assert distribute.zombie_after_s() is None
    monkeypatch.delenv(distribute.ZOMBIE_AFTER_ENV)
    assert distribute.zombie_after_s() == 3 * 180.0  # Prefect's default heartbeat interval


def test_the_phase_flow_takes_the_run_options_and_nothing_secret():
    from prefect.utilities.callables import parameter_schema

    schema = parameter_schema(distribute.execute_phase.fn)
    assert set(schema.required) == {"plan", "phase_id", "clone_url", "base", "options"}
    assert RunOptions(repo="/r", distribute=True).distribute  # type: ignore[arg-type]
    secretish = [
        name
        for name in RunOptions.model_fields
        if re.search(r"key|secret|password|credential|auth", name)
        or ("token" in name and not name.endswith("max_tokens"))  # budgets count tokens
    ]
    assert secretish == []
