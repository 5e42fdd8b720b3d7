"""Issue #15: agents see what Claude Code shows: memory files and the repository's skills."""

from __future__ import annotations

from pathlib import Path

from plan_parser import parse_text
from tasks.agent.context_files import (
    missing_skills,
    nested_memory,
    phase_context,
    repository_context,
    skills,
)
from tasks.agent.definitions import builtin_agent
from tasks.agent.prompts import phase_task, system_prompt
from tests.agent.conftest import client_for, make_request
from tests.fakes import text_turn
from tests.parser.helpers import phase_block, plan_text


def make_repo(root: Path) -> Path:
    (root / "crates" / "db" / "src").mkdir(parents=True)
    (root / "CLAUDE.md").write_text("Always run `just check` before saying done.\n")
    (root / "crates" / "CLAUDE.md").write_text("Crates share one error type.\n")
    (root / "crates" / "db" / "AGENTS.md").write_text("Use sqlx offline mode.\n")
    for name, description in (("sqlx", "Query with sqlx macros"), ("tokio", "Async runtime")):
        folder = root / ".claude" / "skills" / name
        folder.mkdir(parents=True)
        (folder / "SKILL.md").write_text(
            f"---\nname: {name}\ndescription: {description}\n---\n# {name} skill body\n"
        )
    return root


def _phase_plan():
    block = phase_block(
        "1",
        "Create db module",
        files=["crates/db/src/db.rs"],
        extra="**Skills:** sqlx, serde\n\n",
    )
    return parse_text(plan_text(block), "2026-02-01.plan-for-test.md")


def test_index_and_memory_in_the_system_prompt(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    assert [s.name for s in skills(repo)] == ["sqlx", "tokio"]
    section = repository_context(repo)
    assert "Always run `just check`" in section
    assert "`sqlx`: Query with sqlx macros (`.claude/skills/sqlx/SKILL.md`)" in section
    assert "skill body" not in section  # bodies are read on demand, or come with the task
    prompt = system_prompt(builtin_agent("general-purpose"), [], section)
    assert prompt == system_prompt(builtin_agent("general-purpose"), [], repository_context(repo))


def test_nested_memory_and_required_skill_bodies_in_the_task(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    assert [m.path for m in nested_memory(repo, ["crates/db/src/db.rs"])] == [
        "crates/CLAUDE.md",
        "crates/db/AGENTS.md",
    ]
    plan = _phase_plan()
    task = phase_task(plan, plan.phases[0], [], repo=repo)
    assert "Crates share one error type." in task and "Use sqlx offline mode." in task
    assert "# sqlx skill body" in task and "tokio skill body" not in task
    assert phase_context(repo, [], []) == ""
    assert missing_skills(repo, ["sqlx", "serde"]) == ["serde"]


def test_missing_required_skill_is_a_validate_warning(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    block = phase_block("1", "Create db", files=["src/db.rs"], extra="**Skills:** sqlx, serde\n\n")
    plan = parse_text(plan_text(block), "2026-02-01.plan-for-test.md", repo=repo)
    missing = [d for d in plan.warnings if d.code == "W-SKILL-MISSING"]
    assert len(missing) == 1 and "'serde'" in missing[0].message


def test_first_request_carries_claude_md_and_the_required_skill(standin, tmp_path: Path) -> None:
    from tasks.agent.loop import run_agent

    repo = make_repo(tmp_path / "repo")
    plan = _phase_plan()
    task = phase_task(plan, plan.phases[0], [], repo=repo)
    fake = standin([text_turn("done")])
    result = run_agent(make_request(repo, task=task), client=client_for(fake))
    assert result.ok, result.error
    first = fake.message_requests[0].body
    system = "".join(block["text"] for block in first["system"])
    user = first["messages"][0]["content"][0]["text"]
    assert "Always run `just check` before saying done." in system
    assert "# sqlx skill body" in user
