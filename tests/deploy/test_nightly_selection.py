"""Which plans the nightly flow runs, on a fixture repository shaped like the monorepo's newest
commit (issue #21): planner-made compact plans with `status: "done"` whose work was committed
after them, plans marked ready, an interrupted run, drafts and an execution log. No agent runs
here: selection, the "already implemented?" evidence, the dirty-tree rule and the starting point.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.nightly import PlanVerdict, consider_plans, readiness, run_order
from plan_parser import parse_plan
from plan_parser.completion import as_path
from tasks import worktree
from tasks.gates.preflight import dirty_files
from tests.deploy.nightly_fixtures import (
    body_status_plan,
    commit,
    compact_phase,
    compact_plan,
    git,
    interrupt,
)

PLANS = ".ai/plans"
AGENT = "---\ndescription: Rust developer\nmodel: claude-standin\n---\nYou write Rust.\n"
BASE = {
    "Cargo.toml": '[workspace]\nmembers = ["store"]\n',
    "store/Cargo.toml": '[package]\nname = "store"\nversion = "0.1.0"\nedition = "2021"\n',
    "store/src/lib.rs": "pub fn answer() -> u32 {\n    42\n}\n",
    ".claude/agents/rust-developer.md": AGENT,
}


def plans() -> dict[str, str]:
    return {
        # The work of these three is committed afterwards (see `work()`).
        "2026-01-29.plan-for-inventory-db.md": compact_plan(
            '"done"',
            [
                compact_phase(
                    "1",
                    "Schema",
                    ["`store/migrations/0001_inventory.sql` with the `topics` table"],
                    ["the schema has a `topics` table"],
                ),
                compact_phase(
                    "2",
                    "Database module",
                    ["`src/db/mod.rs` with the pool", "Updated `store/Cargo.toml` with sqlx"],
                    ["`cargo build -p store` succeeds"],
                    deps="Phase 1",
                ),
            ],
            title="an inventory database",
        ),
        "2026-01-29.plan-for-cli-flags.md": compact_plan(
            "done",
            [
                compact_phase(
                    "1",
                    "Flags",
                    ["Updated `store/src/lib.rs` with the flags", "`Cargo.toml` workspace lints"],
                    ["`store/Cargo.toml` names the new feature"],
                )
            ],
        ),
        "2026-01-30.plan-for-ticked.md": compact_plan(
            '"completed"',
            [
                compact_phase("1", "Ticked", ["a note"], ["written"]).replace("- [ ]", "- [x]"),
            ],
        ),
        # Ready, and nothing of it exists (it names a file another plan's work changed).
        "2026-01-31.ready-body.md": body_status_plan(
            "Reviewed - Ready for Implementation",
            "1",
            "Report module",
            "store/src/report.rs",
            "`store/Cargo.toml` is unchanged",
        ),
        # Ready, building on the inventory plan's module (added after this plan was): its own
        # new file is still missing, so it runs.
        "2026-01-28.plan-for-db-cache.md": body_status_plan(
            "Reviewed - Ready for Implementation",
            "1",
            "Cache",
            "store/src/cache.rs",
            "`store/src/db/mod.rs` serves the cache",
        ),
        "2026-02-01.approved.md": compact_plan(
            '"approved"',
            [compact_phase("1", "Export", ["`store/src/export.rs`"], ["exports work"])],
        ),
        "2026-02-02.draft.md": body_status_plan(
            "Draft - Awaiting Review", "1", "Draft", "store/src/draft.rs", "it drafts"
        ),
        "2026-02-03.awaiting.md": compact_plan(
            '"ready_for_approval"', [compact_phase("1", "Wait", ["`x/y.rs`"], ["waits"])]
        ),
        "2026-02-04.shipped.md": body_status_plan(
            "✅ Implemented", "1", "Shipped", "store/src/shipped.rs", "it ships"
        ),
        # Ready, but another tool executed it and logged that.
        "2026-01-20.plan-for-logged.md": body_status_plan(
            "Reviewed - Ready for Implementation", "1", "Logged", "store/src/logged.rs", "logs"
        ),
        "2026-01-20.execution-of-logged.md": (
            "---\nplan_file: .ai/plans/2026-01-20.plan-for-logged.md\nstatus: done\n---\n"
            "# Plan Execution\n\n## Progress\n\n- [x] Plan execution started\n"
        ),
        # Interrupted by a killed run (checkpoints added after the commit, as a run leaves them).
        "2026-01-25.plan-for-resumable.md": compact_plan(
            '"done"',
            [
                compact_phase("1", "First", ["`store/src/first.rs`"], ["first works"]),
                compact_phase(
                    "2", "Second", ["`store/src/second.rs`"], ["second works"], deps="Phase 1"
                ),
            ],
        ),
    }


def work() -> dict[str, str]:
    """What was committed after the plans: the done plans' work (and the resumable plan's
    finished phase 1, merged by a person)."""
    return {
        "store/migrations/0001_inventory.sql": "CREATE TABLE topics (name TEXT PRIMARY KEY);\n",
        "store/src/db/mod.rs": "pub struct Pool;\n",
        "store/Cargo.toml": BASE["store/Cargo.toml"] + '\n[dependencies]\nsqlx = "0.8"\n',
        "store/src/lib.rs": BASE["store/src/lib.rs"] + "pub mod flags {}\n",
        "Cargo.toml": BASE["Cargo.toml"] + "\n[workspace.lints.rust]\nunsafe_code = 'forbid'\n",
        "store/src/first.rs": "pub fn first() {}\n",
    }


@pytest.fixture
def monorepo(tmp_path: Path) -> Path:
    repo = tmp_path / "monorepo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    commit(repo, "the crate", BASE)
    commit(repo, "plans", {f"{PLANS}/{name}": text for name, text in plans().items()})
    commit(repo, "the work of the plans", work())
    interrupt(repo / PLANS / "2026-01-25.plan-for-resumable.md", "2", complete=["1"])
    return repo


def by_name(verdicts: list[PlanVerdict]) -> dict[str, PlanVerdict]:
    return {v.plan: v for v in verdicts}


def test_default_runs_only_ready_and_unfinished_plans(monorepo: Path) -> None:
    verdicts = by_name(consider_plans(monorepo))

    assert {name: v.verdict for name, v in verdicts.items()} == {
        "2026-01-20.execution-of-logged.md": "not a plan",
        "2026-01-20.plan-for-logged.md": "already implemented",
        "2026-01-25.plan-for-resumable.md": "resume",
        "2026-01-28.plan-for-db-cache.md": "run",
        "2026-01-29.plan-for-cli-flags.md": "not ready",
        "2026-01-29.plan-for-inventory-db.md": "not ready",
        "2026-01-30.plan-for-ticked.md": "not ready",
        "2026-01-31.ready-body.md": "run",
        "2026-02-01.approved.md": "run",
        "2026-02-02.draft.md": "not ready",
        "2026-02-03.awaiting.md": "not ready",
        "2026-02-04.shipped.md": "already implemented",
    }
    done = verdicts["2026-01-29.plan-for-inventory-db.md"]
    assert "planning session" in done.reason and "include_planner_done" in done.reason
    assert verdicts["2026-01-25.plan-for-resumable.md"].reason == (
        "unfinished run: phase 2 running (interrupted)"
    )
    logged = verdicts["2026-01-20.plan-for-logged.md"]
    assert logged.evidence == [
        "execution log: `.ai/plans/2026-01-20.execution-of-logged.md`",
        "files it names that do not exist: `store/src/logged.rs`",
    ]
    assert verdicts["2026-02-04.shipped.md"].status == "✅ Implemented"
    # Resumed work first, then the ready plans oldest first.
    assert [v.plan for v in run_order(list(verdicts.values()))] == [
        "2026-01-25.plan-for-resumable.md",
        "2026-01-28.plan-for-db-cache.md",
        "2026-01-31.ready-body.md",
        "2026-02-01.approved.md",
    ]


def test_planner_done_plans_taken_on_request_are_skipped_with_their_evidence(
    monorepo: Path,
) -> None:
    verdicts = by_name(consider_plans(monorepo, include_planner_done=True))

    inventory = verdicts["2026-01-29.plan-for-inventory-db.md"]
    assert inventory.verdict == "already implemented"
    added = next(line for line in inventory.evidence if "were added after" in line)
    # `src/db/mod.rs` in the plan is the crate's `store/src/db/mod.rs`.
    assert "`store/migrations/0001_inventory.sql`" in added and "`store/src/db/mod.rs`" in added
    flags = verdicts["2026-01-29.plan-for-cli-flags.md"]
    assert flags.verdict == "already implemented"
    assert any("changed after" in line and "3 of 3" in line for line in flags.evidence)
    ticked = verdicts["2026-01-30.plan-for-ticked.md"]
    assert ticked.verdict == "already implemented"
    assert ticked.evidence == ["every phase marked done: 1: all 1 acceptance criteria ticked [x]"]
    # Ready plans with no work of theirs in the repository still run: one shared file that
    # another plan changed is not evidence enough.
    assert verdicts["2026-01-31.ready-body.md"].verdict == "run"
    assert verdicts["2026-01-31.ready-body.md"].evidence == []
    # Only the resumable plan's unfinished phase 2 is judged: phase 1's file is expected.
    assert verdicts["2026-01-25.plan-for-resumable.md"].verdict == "resume"


def test_force_runs_a_plan_that_looks_implemented_and_keeps_the_evidence(
    monorepo: Path,
) -> None:
    verdicts = by_name(
        consider_plans(
            monorepo, include_planner_done=True, force=["2026-01-29.plan-for-inventory-*"]
        )
    )

    forced = verdicts["2026-01-29.plan-for-inventory-db.md"]
    assert (forced.verdict, forced.forced) == ("run", True)
    assert "forced" in forced.reason and forced.evidence
    assert verdicts["2026-01-29.plan-for-cli-flags.md"].verdict == "already implemented"


def test_a_plan_with_errors_is_invalid_not_run(monorepo: Path) -> None:
    bad = monorepo / PLANS / "2026-02-05.no-owner.md"
    bad.write_text(
        body_status_plan("Reviewed - Ready for Implementation", "1", "X", "a/b.rs", "ok").replace(
            "**Principal Owner:** Rust Developer\n", ""
        )
    )

    verdict = by_name(consider_plans(monorepo))[bad.name]

    assert verdict.verdict == "invalid"
    assert "owner" in verdict.reason


def test_frontmatter_statuses_that_mean_ready(tmp_path: Path) -> None:
    path = tmp_path / "2026-01-01.x.md"
    for status, expected in [
        ('"ready"', "run"),
        ("approved", "run"),
        ('"done"', "not ready"),
        ('"complete"', "not ready"),
        ('"ready_for_approval"', "not ready"),
        ('"implemented"', "already implemented"),
        ('"clarifying"', "not ready"),
    ]:
        path.write_text(compact_plan(status, [compact_phase("1", "X", ["`a/b.rs`"], ["ok"])]))
        assert readiness(parse_plan(path)).verdict == expected, status
    assert readiness(parse_plan(path), include_planner_done=False).verdict == "not ready"
    # Body statuses a run writes back, without its checkpoints (removed by hand): not ready.
    for status, expected in [
        ("Partially Implemented (1/3 phases complete)", "not ready"),
        ("Not Implemented (0/2 phases complete)", "not ready"),
        ("In Progress", "not ready"),
        ("Implemented", "already implemented"),
        ("Done", "already implemented"),
    ]:
        path.write_text(body_status_plan(status, "1", "X", "a/b.rs", "ok"))
        assert readiness(parse_plan(path)).verdict == expected, status


def test_paths_named_in_prose() -> None:
    assert as_path("store/src/db.rs:12-20") == "store/src/db.rs"
    assert as_path("Cargo.toml") == "Cargo.toml"
    assert as_path("./src/lib.rs") == "src/lib.rs"
    for not_a_path in ("sqlx::Type", "init_pool()", ":memory:", "0.8", ".db", "cargo test -p x"):
        assert as_path(not_a_path) is None, not_a_path


def test_another_plans_checkpoint_mirror_is_not_the_users_change(monorepo: Path) -> None:
    plan = f"{PLANS}/2026-01-31.ready-body.md"
    resumable = monorepo / PLANS / "2026-01-25.plan-for-resumable.md"
    assert "Execution Checkpoints" in resumable.read_text()  # uncommitted, from the killed run
    (monorepo / PLANS / ".2026-01-25.plan-for-resumable.md.run.lock").write_text("")

    assert dirty_files(monorepo, plan) == []

    resumable.write_text(resumable.read_text().replace("First.", "First, edited by hand."))
    assert dirty_files(monorepo, plan) == [f"{PLANS}/2026-01-25.plan-for-resumable.md"]


def test_the_checkout_goes_back_to_where_the_night_began(monorepo: Path) -> None:
    commit(monorepo, "a lock file", {"Cargo.lock": "version = 3\n"})
    mirror = (monorepo / PLANS / "2026-01-25.plan-for-resumable.md").read_text()
    start = worktree.start_point(monorepo)
    assert start.branch == "main"
    # A plan's run: its branch, a landed commit, and cargo's lock files in the checkout.
    git(monorepo, "checkout", "-q", "-b", "plan-executor/ready-body")
    commit(monorepo, "phase 1", {"store/src/report.rs": "pub fn report() {}\n"})
    (monorepo / "Cargo.lock").write_text("version = 4\n")
    (monorepo / "store" / "Cargo.lock").write_text("version = 4\n")

    put_back = worktree.return_to_start(monorepo, start)

    assert sorted(put_back) == ["Cargo.lock", "store/Cargo.lock"]
    assert worktree.current_branch(monorepo) == "main"
    assert (monorepo / "Cargo.lock").read_text() == "version = 3\n"
    assert not (monorepo / "store" / "Cargo.lock").exists()
    assert not (monorepo / "store" / "src" / "report.rs").exists()  # stays on its branch
    assert (monorepo / PLANS / "2026-01-25.plan-for-resumable.md").read_text() == mirror


def test_the_nightly_options_keep_the_budgets_on_whatever_a_run_leaves_out() -> None:
    """A run's `options` replaces the deployment's whole (Prefect merges parameters one level
    deep): the nightly's own defaults keep each plan's budget on for the fields left out."""
    from prefect.utilities.callables import parameter_schema

    from flows.context import RunOptions
    from flows.nightly import (
        NIGHTLY_MAX_COST_USD,
        NIGHTLY_PHASE_MAX_COST_USD,
        NightlyRunOptions,
        execute_ready_plans,
    )

    partial = NightlyRunOptions.model_validate({"dry_run": True})
    assert partial.dry_run
    assert (partial.max_cost_usd, partial.phase_max_cost_usd) == (
        NIGHTLY_MAX_COST_USD,
        NIGHTLY_PHASE_MAX_COST_USD,
    )
    assert NightlyRunOptions.model_validate({"max_cost_usd": None}).max_cost_usd is None
    others = set(RunOptions.model_fields) - {"max_cost_usd", "phase_max_cost_usd"}
    assert NightlyRunOptions().model_dump(include=others) == RunOptions().model_dump(include=others)
    schema = parameter_schema(execute_ready_plans).model_dump()
    assert schema["properties"]["options"]["description"]
    fields = schema["definitions"]["NightlyRunOptions"]["properties"]
    assert set(fields) == set(RunOptions.model_fields)
    assert [name for name, field in fields.items() if not field.get("description")] == []
