"""Which plans the nightly flow runs: a tmp `.ai/plans` built from real corpus files."""

from __future__ import annotations

import shutil
from pathlib import Path

from flows.nightly import select_ready_plans

CORPUS = {
    # body `**Status:** Reviewed - Ready for Implementation`
    "ready-body": "2026-01-01.better-tables.md",
    # planner-generated: frontmatter `status: "done"`, no body status
    "planner-done": "2026-01-08.consolidate-xx-hash-variants.md",
    # an execution log, not a plan
    "execution-log": "2026-01-05.execution-of-sniff-plus-enhancements.md",
}


def _copy(shared: Path, target: Path, name: str) -> Path:
    source = shared / "corpus" / "plans" / name
    destination = target / name
    shutil.copyfile(source, destination)
    return destination


def _set_body_status(path: Path, status: str) -> None:
    lines = path.read_text().splitlines(keepends=True)
    index = next(i for i, line in enumerate(lines) if line.startswith("**Status:**"))
    lines[index] = f"**Status:** {status}\n"
    path.write_text("".join(lines))


def _set_front_status(path: Path, status: str) -> None:
    text = path.read_text()
    head, sep, rest = text.partition("\nstatus:")
    assert sep, path
    _old, newline, tail = rest.partition("\n")
    path.write_text(f"{head}\nstatus: {status}{newline}{tail}")


def test_ready_plans_are_selected_and_the_rest_left_alone(tmp_path: Path, shared_dir: Path):
    plans = tmp_path / ".ai" / "plans"
    plans.mkdir(parents=True)
    ready = _copy(shared_dir, plans, CORPUS["ready-body"])
    done = _copy(shared_dir, plans, CORPUS["planner-done"])
    _copy(shared_dir, plans, CORPUS["execution-log"])
    implemented = plans / "2026-02-01.already-done.md"
    shutil.copyfile(ready, implemented)
    _set_body_status(implemented, "✅ Implemented")
    partial = plans / "2026-02-02.half-done.md"
    shutil.copyfile(ready, partial)
    _set_body_status(partial, "Partially Implemented (1/3 phases complete)")
    draft = plans / "2026-02-03.draft.md"
    shutil.copyfile(ready, draft)
    _set_body_status(draft, "Draft - Awaiting Review")
    awaiting = plans / "2026-02-04.awaiting-approval.md"
    shutil.copyfile(done, awaiting)
    _set_front_status(awaiting, '"ready_for_approval"')
    executed = plans / "2026-02-05.executed.md"
    shutil.copyfile(done, executed)
    _set_front_status(executed, '"implemented"')
    (plans / "notes.txt").write_text("not markdown")

    verdicts = {Path(v.path).name: v for v in select_ready_plans(tmp_path)}

    assert sorted(name for name, v in verdicts.items() if v.ready) == sorted(
        [ready.name, done.name]
    )
    assert verdicts[ready.name].reason == "status: ready"
    assert verdicts[done.name].reason == "planner finished (frontmatter)"
    assert verdicts[implemented.name].reason == "already run"
    assert verdicts[partial.name].reason == "already run"
    assert verdicts[draft.name].reason == "status is not ready"
    assert verdicts[awaiting.name].reason == "frontmatter status is not ready"
    assert verdicts[executed.name].reason == "frontmatter status is not ready"
    assert verdicts[CORPUS["execution-log"]].reason == "not a plan (execution-log)"
    assert "notes.txt" not in verdicts
    # File-name order: the date prefix, oldest first.
    assert list(verdicts) == sorted(verdicts)


def test_planner_statuses_can_require_the_explicit_body_status(tmp_path: Path, shared_dir: Path):
    plans = tmp_path / ".ai" / "plans"
    plans.mkdir(parents=True)
    ready = _copy(shared_dir, plans, CORPUS["ready-body"])
    _copy(shared_dir, plans, CORPUS["planner-done"])

    chosen = [
        Path(v.path).name for v in select_ready_plans(tmp_path, planner_statuses=[]) if v.ready
    ]

    assert chosen == [ready.name]


def test_a_repository_without_plans_has_nothing_ready(tmp_path: Path):
    assert select_ready_plans(tmp_path) == []
