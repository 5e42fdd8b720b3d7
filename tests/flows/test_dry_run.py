"""Issue 16: `run --dry-run` is free and fast: no Prefect, no server, no command of the target
repository, nothing written; it shows each phase's gate commands and a cost range, and `--json`
gives the same as data."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cli.demo import CRATE_FILES, demo_plan
from flows.context import RunOptions
from tasks.dry_run import DryRunReport

ROOT = Path(__file__).resolve().parents[2]
JUSTFILE = 'set shell := ["bash", "-c"]\nflags := "-q"\n\ntest *args=\'\':\n    cargo test {{args}}\n\nlint:\n    cargo clippy\n'

# Runs the CLI in a fresh interpreter and says afterwards whether anything imported Prefect.
PROBE = """
import sys
from cli.app import app
try:
    app(sys.argv[1:], prog_name="plan-executor")
except SystemExit as exit_:
    code = exit_.code
loaded = sorted(m for m in sys.modules if m == "prefect" or m.startswith("prefect."))
print("PREFECT-MODULES:", len(loaded), file=sys.stderr)
sys.exit(code)
"""


def git(repo: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@localhost",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@localhost",
    }
    done = subprocess.run(
        ["git", *args], cwd=repo, env=env, capture_output=True, text=True, check=True
    )
    return done.stdout


def make_repo(root: Path, plan_text: str | None = None) -> Path:
    """The demo crate with a justfile, committed (no cargo needed: nothing is built)."""
    for relative, text in CRATE_FILES.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    (root / "justfile").write_text(JUSTFILE, encoding="utf-8")
    (root / "CLAUDE.md").write_text("Keep functions small.\n", encoding="utf-8")
    plan = root / ".ai" / "plans" / "2026-12-01.demo-sums.md"
    plan.parent.mkdir(parents=True)
    plan.write_text(plan_text or demo_plan(), encoding="utf-8")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "fixture")
    return plan


def shims(folder: Path, marker: Path) -> dict[str, str]:
    """A PATH whose cargo, just, rustc, pytest and bwrap only note that they were started."""
    folder.mkdir()
    for name in ("cargo", "just", "rustc", "pytest", "bwrap", "prefect", "postgres", "pg_ctl"):
        shim = folder / name
        shim.write_text(f'#!/bin/sh\necho "{name} $*" >> "{marker}"\nexit 0\n')
        shim.chmod(0o755)
    return {**os.environ, "PATH": f"{folder}{os.pathsep}{os.environ['PATH']}"}


def tree(repo: Path) -> dict[str, tuple[int, int]]:
    """Every file under the repository (the .git folder too), with its size and mtime."""
    found = {}
    for path in repo.rglob("*"):
        if path.is_file():
            stat = path.stat()
            found[str(path.relative_to(repo))] = (stat.st_size, stat.st_mtime_ns)
    return found


def cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        cwd=cwd,
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_dry_run_runs_nothing_writes_nothing_and_shows_gates_and_cost(tmp_path: Path) -> None:
    repo = tmp_path / "crate"
    plan = make_repo(repo)
    marker = tmp_path / "started.txt"
    env = shims(tmp_path / "bin", marker)
    home = tmp_path / "pe-home"
    env["PLAN_EXECUTOR_HOME"] = str(home)
    env.pop("PREFECT_API_URL", None)
    plan_bytes, plan_mtime = plan.read_bytes(), plan.stat().st_mtime_ns
    before = tree(repo)

    done = cli(["run", str(plan), "--dry-run"], env, repo)

    assert done.returncode == 0, done.stdout + done.stderr
    assert not marker.exists(), marker.read_text()  # no cargo, just, bwrap, prefect ... started
    assert "PREFECT-MODULES: 0" in done.stderr  # Prefect not even imported: no server, no flow
    assert not home.exists()  # no embedded server home, database or port file
    assert plan.read_bytes() == plan_bytes and plan.stat().st_mtime_ns == plan_mtime
    assert tree(repo) == before  # nothing written: no .ai/logs, no lock, no git object
    out = done.stdout
    # The gate commands, from the committed justfile (read as text, not by `just`).
    assert "Gate commands from: detected justfile (at HEAD)" in out
    assert "blast radius: `cargo test --test alpha`" in out
    assert "then: build `cargo build`; lint `cargo clippy --workspace -- -D warnings`" in out
    assert "full test suite `just test`" in out
    assert "2. gates: runs `cargo test report`" in out
    assert "3. verifier: `describe` explains a sum" in out
    assert "agent (owner): rust-developer (.claude/agents/rust-developer.md), model" in out
    assert "timeouts: phase 600s, agent call 300s" in out
    ranges = re.findall(r"forecast: \S+–\S+ tokens, \$(\d+\.\d\d)–\$(\d+\.\d\d)", out)
    assert len(ranges) == 3 and all(float(lo) <= float(hi) for lo, hi in ranges)
    assert re.search(r"Forecast for the run: \S+–\S+ tokens, \$\d+\.\d\d–\$\d+\.\d\d", out)
    assert "prices of 2026-11-30" in out

    as_json = cli(["run", str(plan), "--dry-run", "--json"], env, repo)
    assert as_json.returncode == 0, as_json.stderr
    report = DryRunReport.model_validate(json.loads(as_json.stdout))
    assert [p.phase_id for p in report.phases] == ["1", "2", "3"]
    assert report.waves == [["1", "2"], ["3"]]
    three = report.phases[2]
    assert [c.decided_by for c in three.criteria] == ["gates", "gates", "verifier"]
    assert [a.role for a in three.agents] == ["owner", "verifier"]
    assert report.forecast.cost_usd.low <= report.forecast.cost_usd.high
    assert not marker.exists() and tree(repo) == before


def test_dry_run_is_refused_while_a_run_holds_the_plan(tmp_path: Path) -> None:
    from cli.run import run_plan
    from tasks import run_lock

    plan = make_repo(tmp_path / "crate")
    said: list[str] = []
    lock = run_lock.acquire(plan)
    try:
        code = run_plan(plan, RunOptions(dry_run=True), echo=lambda m="", **_: said.append(str(m)))
    finally:
        lock.release()
    assert code == 2
    assert "another plan-executor run is executing this plan" in "\n".join(said)
    assert not run_lock.run_lock_path(plan).exists()  # the probe made no lock file either

    said.clear()
    assert run_plan(plan, RunOptions(dry_run=True), echo=lambda m="", **_: said.append(str(m))) == 0
    assert not run_lock.run_lock_path(plan).exists()


def test_dry_run_of_an_invalid_plan_says_why(tmp_path: Path) -> None:
    from cli.run import run_plan

    plan = make_repo(
        tmp_path / "crate",
        plan_text=demo_plan().replace(
            "**Dependencies:** Phase 1, Phase 2", "**Dependencies:** Phase 9"
        ),
    )
    said: list[str] = []
    code = run_plan(plan, RunOptions(dry_run=True), echo=lambda m="", **_: said.append(str(m)))
    assert code == 2
    assert "invalid plan" in "\n".join(said) and plan.name in "\n".join(said)


@pytest.mark.parametrize(
    "name",
    [
        "PLAN_EXECUTOR_API_TIMEOUT_S",
        "PLAN_EXECUTOR_QUESTION_TIMEOUT_S",
        "PLAN_EXECUTOR_AGENT_RETRY_DELAYS_S",
    ],
)
def test_a_bad_environment_setting_refuses_the_run_before_it_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """Read when first needed, a bad question timeout used to end a run in its middle (or, before,
    quietly become an hour): every setting is checked before anything runs."""
    from cli.run import run_plan

    plan = make_repo(tmp_path / "crate")
    before = plan.read_bytes()
    monkeypatch.setenv(name, "soon")
    said: list[str] = []
    code = run_plan(plan, RunOptions(dry_run=True), echo=lambda m="", **_: said.append(str(m)))
    assert code == 2
    assert f"{name}='soon' is not valid" in "\n".join(said)
    assert plan.read_bytes() == before


@pytest.mark.parametrize("max_turns", [None, 7])
def test_dry_run_shows_the_runs_own_turn_cap(tmp_path: Path, max_turns: int | None) -> None:
    """The free dry run used to show a turn cap of 40, its own default, whatever the run's."""
    from cli.run import run_plan

    plan = make_repo(tmp_path / "crate")
    said: list[str] = []
    options = RunOptions(dry_run=True, **({"max_turns": max_turns} if max_turns else {}))
    code = run_plan(plan, options, echo=lambda m="", **_: said.append(str(m)), as_json=True)
    assert code == 0, said
    report = DryRunReport.model_validate(json.loads("\n".join(said)))
    caps = {phase.timeouts["max_turns"] for phase in report.phases if phase.timeouts}
    assert caps == {options.max_turns}
    assert options.max_turns == (max_turns or 200)


@pytest.mark.parametrize("flag", ["--json", "--with-preflight"])
def test_dry_run_flags_need_dry_run(tmp_path: Path, flag: str) -> None:
    from cli.run import run_plan

    plan = make_repo(tmp_path / "crate")
    said: list[str] = []
    options = {"as_json": True} if flag == "--json" else {"with_preflight": True}
    assert run_plan(plan, echo=lambda m="", **_: said.append(str(m)), **options) == 2
    assert "go with --dry-run" in "\n".join(said)


HUMAN_SELF_AND_DESIGN = """# Owners that are not agents

**Created:** 2026-11-24
**Status:** Reviewed - Ready for Implementation

## Phases

### Phase 1: Manual review

**Principal Owner:** human
**Dependencies:** None
**Blast Radius:** `cargo test adds`

**Acceptance Criteria:**
- [ ] `cargo test adds` passes

---

### Phase 2: Check the crate

**Principal Owner:** self
**Dependencies:** None
**Blast Radius:** `cargo test adds`

**Acceptance Criteria:**
- [ ] `cargo test adds` passes

---

### Phase 3: Design the report (Design)

**Principal Owner:** Rust Developer
**Type:** Design
**Dependencies:** Phase 2

**Files to Create:**
- `docs/report.md` - the design

**Acceptance Criteria:**
- [ ] `docs/report.md` exists
- [ ] The design explains how sums are shown to a person
"""


def test_human_self_and_design_phases(tmp_path: Path) -> None:
    from tasks.dry_run import dry_run, render_text

    plan = make_repo(tmp_path / "crate", plan_text=HUMAN_SELF_AND_DESIGN)
    report = dry_run(plan, None, RunOptions())
    human, orchestrator, design = report.phases
    assert human.action.startswith("human work (blocked unless --interactive)")
    assert orchestrator.action == "gates only"
    for phase in (human, orchestrator):
        assert phase.agents == [] and phase.forecast.cost_usd.high == 0
    assert design.type == "design"
    assert [c.decided_by for c in design.criteria] == ["gates", "verifier"]
    assert design.blast_radius[0].note.startswith("not run: design phase")
    assert [a.role for a in design.agents] == ["owner", "verifier"]
    assert design.forecast.calls[0].role == "design"
    assert report.forecast.cost_usd.low == design.forecast.cost_usd.low
    text = render_text(report)
    assert "forecast: no agent call, $0 (human work" in text
    assert "then: build `cargo build` (only when the phase changed code); lint (not run" in text


def test_justfile_recipe_names_read_as_text() -> None:
    from tasks.gates.config import justfile_recipe_names

    text = (
        'set shell := ["bash", "-c"]\nexport RUST_LOG := "info"\nflags := "-q"\n'
        "alias t := test\n\ntest *args='': build\n    cargo test {{args}}\n\n@build:\n"
        "    cargo build\n[private]\nlint-all arg:\n    cargo clippy\n"
    )
    assert justfile_recipe_names(text) == {"test", "build", "lint-all"}


def test_a_grep_the_run_would_not_start_is_shown_as_the_verifiers() -> None:
    """A piped grep was shown as a command the run would start; the run hands it to the
    verifier (plan text is never given to a shell), and so does the dry run now."""
    from tasks.dry_run import _planned_grep
    from tasks.gates.ledger import Verdict

    piped = _planned_grep(Path("."), "criterion 1", "grep -c fn src/lib.rs | wc -l", "")
    assert piped.verdict is Verdict.NEEDS_JUDGEMENT and "shell operators" in piped.evidence
    plain = _planned_grep(Path("."), "criterion 1", "grep -q fn src/lib.rs", "")
    assert (plain.verdict, plain.evidence) == (Verdict.NOT_RUN, "would run")
