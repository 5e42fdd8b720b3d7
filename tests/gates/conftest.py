"""Fixture crates copied into fresh git repositories; one cargo target dir for the session."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tasks import shell
from tasks.gates.cargo_output import TestRun, parse_test_output
from tests.gates.helpers import make_repo


@pytest.fixture(scope="package", autouse=True)
def cargo_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Every cargo command of the session shares one target dir (builds are reused where the
    crate path allows); no network, no colour. PATH is that of a venv that was never activated
    (our scripts directory taken off it): the gates must find the `just` we installed anyway."""
    target = Path(
        os.environ.get("PLAN_EXECUTOR_TEST_CARGO_TARGET", tmp_path_factory.mktemp("cargo-target"))
    )
    saved = dict(os.environ)
    os.environ["CARGO_TARGET_DIR"] = str(target)
    os.environ["CARGO_NET_OFFLINE"] = "true"
    os.environ["CARGO_TERM_COLOR"] = "never"
    os.environ["RUST_BACKTRACE"] = "0"
    scripts = {shell.own_scripts_dir(), str(Path(sys.executable).parent)}
    os.environ["PATH"] = os.pathsep.join(
        entry for entry in os.environ.get("PATH", "").split(os.pathsep) if entry not in scripts
    )
    if shutil.which("cargo") is None:
        pytest.skip("cargo is not installed")
    yield target
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture
def repo_factory(tmp_path: Path) -> Callable[[str], Path]:
    return lambda crate: make_repo(crate, tmp_path / crate)


@pytest.fixture(scope="module")
def single_baseline(tmp_path_factory: pytest.TempPathFactory, cargo_env: Path) -> TestRun:
    """`cargo test` on a pristine copy of the single crate; test keys do not depend on the
    checkout path, so every copy shares this baseline."""
    repo = make_repo("single", tmp_path_factory.mktemp("baseline") / "single")
    result = shell.run(["cargo", "test"], cwd=repo, timeout_s=600)
    assert result.ok, result.output
    return parse_test_output(result.output).model_copy(
        update={"command": "cargo test", "exit_code": 0}
    )
