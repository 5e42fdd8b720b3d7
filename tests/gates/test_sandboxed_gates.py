"""Gate commands run the agents' code (tests, build scripts): inside the bubblewrap sandbox, that
code cannot write outside the repository. The unsandboxed control shows the test can fail."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tasks.gates.config import GateRunSettings, load_gate_config
from tasks.gates.evidence import simple_gate
from tasks.gates.ledger import Verdict

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is missing")

ESCAPING_TEST = """
#[test]
fn writes_outside_the_repository() {
    let marker = std::path::Path::new("MARKER");
    std::fs::create_dir_all(marker.parent().unwrap()).unwrap();
    std::fs::write(marker, "written by a test the agent wrote").unwrap();
}
"""


def _escaping_repo(repo_factory: Callable[[str], Path], marker: Path) -> Path:
    repo = repo_factory("single")
    (repo / "tests").mkdir(exist_ok=True)
    (repo / "tests" / "escape.rs").write_text(ESCAPING_TEST.replace("MARKER", str(marker)))
    return repo


def test_gate_commands_cannot_write_outside_the_repository(
    repo_factory: Callable[[str], Path], tmp_path: Path
) -> None:
    marker = tmp_path / "outside" / "host-marker"
    marker.parent.mkdir()
    repo = _escaping_repo(repo_factory, marker)
    config = load_gate_config(repo)
    assert config.sandbox is True

    entry = simple_gate("tests", ["cargo", "test", "--test", "escape"], repo, config)

    assert entry.verdict is Verdict.PASS, entry.line()  # it wrote into the sandbox's private /tmp
    assert entry.command == "cargo test --test escape"
    assert not marker.exists()


def test_unsandboxed_control_does_write(
    repo_factory: Callable[[str], Path], tmp_path: Path
) -> None:
    marker = tmp_path / "outside" / "host-marker"
    marker.parent.mkdir()
    repo = _escaping_repo(repo_factory, marker)
    config = load_gate_config(repo).model_copy(update={"sandbox": False})

    entry = simple_gate("tests", ["cargo", "test", "--test", "escape"], repo, config)

    assert entry.verdict is Verdict.PASS, entry.line()
    assert marker.read_text() == "written by a test the agent wrote"


def test_a_repository_cannot_switch_the_sandbox_or_network_on_or_off(
    repo_factory: Callable[[str], Path],
) -> None:
    """`sandbox` / `sandbox_network` are the run's (GateRunSettings): in a file they are ignored
    with a warning, whatever their value."""
    repo = repo_factory("single")
    (repo / ".ai").mkdir(exist_ok=True)
    (repo / ".ai" / "plan-executor.toml").write_text("sandbox = false\nsandbox_network = true\n")
    config = load_gate_config(repo)
    assert config.sandbox is True
    assert "`sandbox`, `sandbox_network` ignored" in config.warnings[0]
    (repo / ".ai" / "plan-executor.toml").write_text('sandbox = "no"\n')
    assert load_gate_config(repo).sandbox is True
    offline = config.for_run(GateRunSettings(network=False))
    assert (offline.sandbox, offline.sandbox_network) == (True, False)
    assert config.for_run(GateRunSettings(sandbox=False)).sandbox is False
