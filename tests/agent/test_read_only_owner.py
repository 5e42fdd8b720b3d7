"""Issue #15: a read-only owner (built-in Plan, or `tools:` without a writing tool) is shown as
such by the dry run, and its editor only views."""

from __future__ import annotations

from pathlib import Path

from plan_parser import parse_text
from tasks.agent.definitions import builtin_agent, can_write, load_agent_file
from tasks.dry_run import would_do as _would_do
from tests.parser.helpers import phase_block, plan_text


def _phase(owner: str):
    text = plan_text(phase_block("1", "Create db module", owner=owner, files=["src/db.rs"]))
    return parse_text(text, "2026-02-01.plan-for-test.md").phases[0]


def test_dry_run_marks_a_read_only_owner_on_a_writing_phase(tmp_path: Path) -> None:
    assert "READ-ONLY" in _would_do(_phase("`Plan`"), tmp_path)
    assert "READ-ONLY" not in _would_do(_phase("general-purpose"), tmp_path)


def test_tools_without_a_writing_tool_cannot_write(tmp_path: Path) -> None:
    path = tmp_path / "reviewer.md"
    path.write_text("---\ntools: Read, Grep, Glob\n---\nReview.\n")
    assert not can_write(load_agent_file(path))
    path.write_text("---\ntools: Read, Edit\n---\nWrite.\n")
    assert can_write(load_agent_file(path))
    assert not can_write(builtin_agent("plan")) and can_write(builtin_agent("general-purpose"))


def test_editor_of_a_read_only_tools_list_only_views(tmp_path: Path) -> None:
    from tasks.agent.sandbox import Sandbox
    from tasks.agent.tools import tools_for

    sandbox = Sandbox(tmp_path)
    viewing = tools_for(
        ["Read", "Grep"], repo=tmp_path, sandbox=sandbox, read_only=False, timeout_s=5
    )
    writing = tools_for(
        ["Read", "Edit"], repo=tmp_path, sandbox=sandbox, read_only=False, timeout_s=5
    )
    assert viewing.by_name["str_replace_based_edit_tool"].read_only  # type: ignore[attr-defined]
    assert not writing.by_name["str_replace_based_edit_tool"].read_only  # type: ignore[attr-defined]
