"""Pre-flight on fixture repositories: the dirty-tree policies, baseline, tools and agents."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from plan_parser.model import DocKind, Owner, OwnerKind, PhaseType, Plan
from plan_parser.owners import normalise_owner
from tasks.gates.ledger import Verdict
from tasks.gates.preflight import first_wave_is_design, run_preflight
from tests.gates.helpers import git, phase

PLAN_PATH = ".ai/plans/2026-01-01.fixture.md"


def make_plan(owner: Owner | None = None, type: PhaseType = PhaseType.IMPLEMENTATION) -> Plan:
    first = phase([("src/math.rs", "modify")], type=type).model_copy(update={"owner": owner})  # type: ignore[list-item]
    return Plan(path=PLAN_PATH, kind=DocKind.PLAN, title="Fixture plan", phases=[first])


def add_run_files(repo: Path) -> None:
    """The plan file, its writer's lock file and a log: present and untracked, yet never a
    reason to stop."""
    (repo / PLAN_PATH).parent.mkdir(parents=True)
    (repo / PLAN_PATH).write_text("# Fixture plan\n")
    (repo / PLAN_PATH).with_name(f".{Path(PLAN_PATH).name}.lock").write_text("")
    (repo / ".ai" / "logs").mkdir()
    (repo / ".ai" / "logs" / "run.log").write_text("log\n")


def entry(result, check):  # type: ignore[no-untyped-def]
    return next(e for e in result.ledger.entries if e.check == check)


def test_clean_tree_passes_and_records_the_baseline(repo_factory: Callable[[str], Path]) -> None:
    repo = repo_factory("single")
    add_run_files(repo)
    (repo / ".claude" / "agents").mkdir(parents=True)
    (repo / ".claude" / "agents" / "rust-developer.md").write_text(
        "---\nname: rust-developer\n---\n"
    )
    git(repo, "add", ".claude")
    git(repo, "commit", "-q", "-m", "agents")
    result = run_preflight(
        repo, make_plan(normalise_owner("Rust Developer")), plan_path=repo / PLAN_PATH
    )
    assert result.ok, result.message
    assert result.message.startswith("pre-flight passed")
    assert entry(result, "working tree").evidence == "clean"
    assert entry(result, "agent rust-developer").verdict is Verdict.PASS
    assert result.baseline is not None
    assert result.baseline.results["single::math::tests::square_of_three"] == "ok"
    assert result.baseline.results["single::tests::slow_sum"] == "ignored"
    assert len(result.baseline.results) == 8
    for check in ("baseline tests", "build", "lint", "fmt", "tools"):
        assert entry(result, check).verdict is Verdict.PASS, entry(result, check).line()


def test_dirty_tree_stops_under_stop(repo_factory: Callable[[str], Path]) -> None:
    repo = repo_factory("single")
    add_run_files(repo)
    (repo / "src" / "lib.rs").write_text((repo / "src" / "lib.rs").read_text() + "\n// wip\n")
    (repo / "scratch.txt").write_text("notes\n")
    result = run_preflight(
        repo, make_plan(normalise_owner("rust-developer")), plan_path=repo / PLAN_PATH
    )
    assert not result.ok
    tree = entry(result, "working tree")
    assert tree.verdict is Verdict.FAIL
    assert "scratch.txt" in tree.evidence and "src/lib.rs" in tree.evidence
    assert ".ai" not in tree.evidence
    assert "working tree: uncommitted changes in 2 files" in result.message
    assert "stash | commit | proceed" in result.message
    assert "agent rust-developer: .claude/agents/rust-developer.md missing" in result.message
    assert result.baseline is None
    assert entry(result, "baseline tests").verdict is Verdict.NOT_RUN
    assert "// wip" in (repo / "src" / "lib.rs").read_text()


def test_dirty_tree_is_stashed_under_stash(repo_factory: Callable[[str], Path]) -> None:
    repo = repo_factory("single")
    add_run_files(repo)
    (repo / "src" / "lib.rs").write_text((repo / "src" / "lib.rs").read_text() + "\n// wip\n")
    (repo / "scratch.txt").write_text("notes\n")
    result = run_preflight(repo, make_plan(), plan_path=repo / PLAN_PATH, policy="stash")
    assert result.ok, result.message
    tree = entry(result, "working tree")
    assert tree.verdict is Verdict.PASS and "stashed 2 files" in tree.evidence
    assert result.stash_ref and result.stash_ref in tree.evidence
    assert "// wip" not in (repo / "src" / "lib.rs").read_text()
    assert not (repo / "scratch.txt").exists()
    # The plan file and the logs stay where they are.
    assert (repo / PLAN_PATH).is_file() and (repo / ".ai" / "logs" / "run.log").is_file()
    assert "plan-executor pre-flight" in git(repo, "stash", "list")
    git(repo, "stash", "pop", "-q")
    assert "// wip" in (repo / "src" / "lib.rs").read_text()
    assert (repo / "scratch.txt").read_text() == "notes\n"


def test_commit_and_proceed_policies(repo_factory: Callable[[str], Path]) -> None:
    repo = repo_factory("single")
    add_run_files(repo)
    (repo / "scratch.txt").write_text("notes\n")
    proceed = run_preflight(
        repo, make_plan(), plan_path=repo / PLAN_PATH, policy="proceed", skip_tests=True
    )
    tree = entry(proceed, "working tree")
    assert (tree.verdict, tree.required) == (Verdict.WARN, False)
    assert proceed.ok and "warnings: working tree" in proceed.message
    committed = run_preflight(
        repo, make_plan(), plan_path=repo / PLAN_PATH, policy="commit", skip_tests=True
    )
    assert committed.ok, committed.message
    assert committed.commit and committed.commit in entry(committed, "working tree").evidence
    assert git(repo, "show", "--name-only", "--format=", "HEAD").split() == ["scratch.txt"]
    assert "?? .ai/" in git(repo, "status", "--porcelain")


def test_baseline_is_skipped_when_the_plan_starts_with_design(
    repo_factory: Callable[[str], Path],
) -> None:
    repo = repo_factory("single")
    plan = make_plan(type=PhaseType.DESIGN)
    assert first_wave_is_design(plan)
    assert not first_wave_is_design(make_plan())
    result = run_preflight(repo, plan, plan_path=repo / PLAN_PATH)
    assert result.ok, result.message
    assert result.baseline is None
    baseline = entry(result, "baseline tests")
    assert baseline.verdict is Verdict.NOT_RUN and "design" in baseline.evidence


def test_failing_suite_and_missing_tool_stop_the_run(repo_factory: Callable[[str], Path]) -> None:
    repo = repo_factory("single")
    math = repo / "src" / "math.rs"
    math.write_text(
        math.read_text().replace("assert_eq!(square(0), 0);", "assert_eq!(square(0), 1);")
    )
    git(repo, "commit", "-q", "-am", "break a test")
    from tasks.gates.config import load_gate_config

    config = load_gate_config(repo).model_copy(
        update={"required_tools": ["git", "cargo", "no-such-tool-xyz"]}
    )
    result = run_preflight(repo, make_plan(), plan_path=repo / PLAN_PATH, config=config)
    assert not result.ok
    baseline = entry(result, "baseline tests")
    assert baseline.verdict is Verdict.FAIL
    assert "failing: single::math::tests::square_of_zero" in baseline.evidence
    assert (
        result.baseline is not None
        and result.baseline.results["single::math::tests::square_of_zero"] == "FAILED"
    )
    assert "tools: missing on PATH: no-such-tool-xyz" in result.message
    assert "baseline tests:" in result.message


def test_owner_kinds_other_than_agent_files_need_no_definition(
    repo_factory: Callable[[str], Path],
) -> None:
    repo = repo_factory("single")
    plan = make_plan(Owner(raw="human", kind=OwnerKind.HUMAN))
    result = run_preflight(repo, plan, plan_path=repo / PLAN_PATH, skip_tests=True)
    assert not [e for e in result.ledger.entries if e.check.startswith("agent")]
