"""Gate command detection and overrides."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tasks.gates.config import justfile_recipes, load_gate_config
from tests.gates.helpers import CRATES


def test_cargo_defaults(tmp_path: Path) -> None:
    shutil.copytree(CRATES / "single", tmp_path / "r")
    config = load_gate_config(tmp_path / "r")
    assert config.test == ["cargo", "test"]
    assert config.build == ["cargo", "build"]
    assert config.lint == ["cargo", "clippy", "--workspace", "--", "-D", "warnings"]
    assert config.fmt == ["cargo", "fmt", "--check", "--all"]
    assert config.doc_test == ["cargo", "test", "--doc"]
    assert config.source == "cargo default"
    assert config.tools() == ["git", "cargo"]


def test_justfile_recipes_are_detected(tmp_path: Path) -> None:
    shutil.copytree(CRATES / "justcrate", tmp_path / "r")
    config = load_gate_config(tmp_path / "r")
    assert config.test == ["just", "test"]
    assert config.build == ["just", "build"]
    assert config.source == "detected justfile"
    assert "just" in config.tools()


def test_justfile_without_test_recipe_keeps_cargo(tmp_path: Path) -> None:
    (tmp_path / "Cargo.toml").write_text('[package]\nname = "r"\n')
    (tmp_path / "justfile").write_text(
        "set shell := ['bash', '-c']\nx := 'y'\n\nbuild *args:\n    cargo build {{args}}\n"
    )
    assert justfile_recipes(tmp_path / "justfile") == {"build"}
    config = load_gate_config(tmp_path)
    assert config.test == ["cargo", "test"]
    assert config.build == ["just", "build"]


def test_justfile_recipes_come_from_just_itself(tmp_path: Path) -> None:
    # Recipe headers a line-based reading gets wrong, taken from real justfiles.
    (tmp_path / "justfile").write_text(
        'set shell := ["bash", "-c"]\n'
        "version := `echo side-effect > marker`\n"
        "alias b := build\n\n"
        'build *args="":\n    cargo build {{args}}\n\n'
        '[group("ci")]\ntest *args="": build\n    cargo test {{args}}\n\n'
        "[private]\nhelper:\n    true\n\n"
        'lint target="all" +flags="-D warnings":\n    cargo clippy {{flags}}\n'
    )
    assert justfile_recipes(tmp_path / "justfile") == {"build", "test", "helper", "lint"}
    assert not (tmp_path / "marker").exists()  # reading the recipes evaluates nothing
    config = load_gate_config(tmp_path)
    assert (config.test, config.build) == (["just", "test"], ["just", "build"])


def test_unreadable_justfile_keeps_cargo(tmp_path: Path) -> None:
    (tmp_path / "Cargo.toml").write_text('[package]\nname = "r"\n')
    (tmp_path / "justfile").write_text("test:\n    cargo test\nthis is not just syntax (\n")
    assert justfile_recipes(tmp_path / "justfile") == set()
    assert load_gate_config(tmp_path).test == ["cargo", "test"]


def test_overrides_pyproject_then_ai_toml(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.plan-executor]\ntest = "pytest -q"\nlint = ["ruff", "check", "."]\ntimeout_s = 60\nother = 1\n'
    )
    (tmp_path / ".ai").mkdir()
    (tmp_path / ".ai" / "plan-executor.toml").write_text(
        'fmt = "ruff format --check ."\ntest = "pytest -x"\n'
    )
    config = load_gate_config(tmp_path)
    assert config.test == ["pytest", "-x"]
    assert config.lint == ["ruff", "check", "."]
    assert config.fmt == ["ruff", "format", "--check", "."]
    assert config.timeout_s == 60
    # A pyproject.toml without a Cargo.toml is a Python repository: its defaults, overridden.
    assert config.doc_test == []
    assert (
        config.source
        == "python default + pyproject.toml [tool.plan-executor] + .ai/plan-executor.toml"
    )


def test_bad_override_type_is_an_error(tmp_path: Path) -> None:
    (tmp_path / ".ai").mkdir()
    (tmp_path / ".ai" / "plan-executor.toml").write_text("test = 3\n")
    with pytest.raises(ValueError, match="`test` must be"):
        load_gate_config(tmp_path)


def test_plan_commands_are_limited_to_allowed_programs_and_subcommands(tmp_path: Path) -> None:
    config = load_gate_config(tmp_path)
    assert config.refusal(["cargo", "test", "--lib", "link"]) is None
    assert config.refusal(["cargo", "+nightly", "test"]) is None
    assert config.refusal(["just", "anything"]) is None
    assert "not an allowed subcommand" in (config.refusal(["cargo", "publish"]) or "")
    assert "not an allowed subcommand" in (config.refusal(["npm", "install", "x"]) or "")
    assert "not an allowed gate program" in (config.refusal(["rm", "-rf", "/"]) or "")
    assert "not an allowed gate program" in (
        config.refusal(["RUST_LOG=debug", "cargo", "test"]) or ""
    )
    (tmp_path / ".ai").mkdir()
    (tmp_path / ".ai" / "plan-executor.toml").write_text(
        '[allowed_subcommands]\ncargo = ["test", "publish"]\n'
    )
    assert load_gate_config(tmp_path).refusal(["cargo", "publish"]) is None


def test_our_own_scripts_are_found_without_an_activated_venv(tmp_path: Path) -> None:
    from tasks import shell

    # The conftest took our scripts directory off PATH, as a never-activated venv has it.
    scripts = shell.own_scripts_dir()
    assert scripts not in os.environ["PATH"].split(os.pathsep)
    assert shell.which("just") == str(Path(scripts) / "just")
    assert shell.search_path("/usr/bin").split(os.pathsep) == ["/usr/bin", scripts]
    # A program the user put on PATH comes first, as in their shell.
    own = tmp_path / "just"
    own.write_text("#!/bin/sh\necho mine\n")
    own.chmod(0o755)
    assert shell.which("just", f"{tmp_path}{os.pathsep}/usr/bin") == str(own)
    # And a command started without an explicit environment sees the same search path.
    result = shell.run(["just", "--version"], cwd=tmp_path)
    assert result.ok and result.output.startswith("just "), result.output


def _commit_all(repo: Path) -> None:
    from tasks import shell

    for argv in (
        ["git", "init", "-q"],
        ["git", "add", "-A"],
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c"],
    ):
        assert shell.run(argv, cwd=repo, timeout_s=60).ok


def test_committed_config_ignores_the_working_tree(tmp_path: Path) -> None:
    """A run's gates read HEAD: what an agent writes into the tree decides nothing."""
    from tasks.gates.config import load_committed_gate_config

    repo = tmp_path / "r"
    shutil.copytree(CRATES / "justcrate", repo)
    (repo / ".ai").mkdir()
    (repo / ".ai" / "plan-executor.toml").write_text('lint = "cargo clippy"\n')
    _commit_all(repo)
    (repo / ".ai" / "plan-executor.toml").write_text("build = ['sh', '-c', 'touch pwned']\n")
    (repo / "pyproject.toml").write_text("[tool.plan-executor]\ntest = 'sh -c true'\n")
    (repo / "justfile").write_text("nothing:\n    true\n")

    config = load_committed_gate_config(repo)
    assert (config.test, config.build) == (["just", "test"], ["just", "build"])
    assert config.lint == ["cargo", "clippy"]
    assert config.source == "detected justfile + .ai/plan-executor.toml (at HEAD)"
    assert load_gate_config(repo).build == ["sh", "-c", "touch pwned"]  # the tree's, for validate


def test_committed_config_without_commits_is_the_default(tmp_path: Path) -> None:
    from tasks import shell
    from tasks.gates.config import load_committed_gate_config

    assert shell.run(["git", "init", "-q"], cwd=tmp_path, timeout_s=60).ok
    (tmp_path / ".ai").mkdir()
    (tmp_path / ".ai" / "plan-executor.toml").write_text("build = 'sh -c x'\n")
    # Nothing committed: no Cargo.toml, so no cargo command, and not the working tree's file.
    assert load_committed_gate_config(tmp_path).build == []
