"""Phase prompts built from parsed corpus plans."""

from __future__ import annotations

from pathlib import Path

from plan_parser.model import (
    Criterion,
    DocKind,
    FileAction,
    FileRef,
    Owner,
    OwnerKind,
    Phase,
    PhaseType,
    Plan,
)
from tasks.agent.definitions import builtin_agent
from tasks.agent.prompts import SKILLS_HEADING, phase_task, summary_request, system_prompt


def sample_plan() -> tuple[Plan, Phase]:
    phase = Phase(
        id="2.5",
        title="Config parser",
        heading_raw="## Phase 2.5: Config parser",
        line=10,
        end_line=30,
        owner=Owner(raw="Rust Developer", kind=OwnerKind.AGENT_FILE, agent="rust-developer"),
        depends_on=["1", "2"],
        blast_radius="cargo test config::",
        files=[FileRef(path="src/config.rs", action=FileAction.CREATE, description="the parser")],
        deliverables=["TOML parsing with defaults"],
        acceptance_criteria=[Criterion(text="`cargo test config::` passes", checked=False)],
        body="## Phase 2.5: Config parser\n\nParse the config.\n",
    )
    plan = Plan(
        path=".ai/plans/2026-01-01.config.md", kind=DocKind.PLAN, title="Config", phases=[phase]
    )
    return plan, phase


def test_phase_task_carries_the_phase_context() -> None:
    plan, phase = sample_plan()
    text = phase_task(plan, phase, ["rust-testing", "thiserror"])
    for expected in (
        "# Phase 2.5: Config parser",
        ".ai/plans/2026-01-01.config.md",
        "Principal owner: Rust Developer",
        "Depends on phases: 1, 2",
        "cargo test config::",
        "`src/config.rs` (create): the parser",
        "TOML parsing with defaults",
        "`cargo test config::` passes",
        "Parse the config.",
        SKILLS_HEADING,
        "- `rust-testing`",
        "IMPLEMENTATION phase",
    ):
        assert expected in text, expected
    assert text == phase_task(plan, phase, ["rust-testing", "thiserror"])  # deterministic
    assert "verifier" in phase_task(plan, phase, [], role="verifier")
    assert "No skills were configured" in phase_task(plan, phase, [])
    design = phase.model_copy(update={"type": PhaseType.DESIGN})
    assert "DESIGN phase" in phase_task(plan, design, [])


def test_every_corpus_phase_gets_a_prompt(shared_dir: Path) -> None:
    from plan_parser.parser import parse_plan

    count = 0
    for path in sorted((shared_dir / "corpus" / "plans").glob("*.md")):
        plan = parse_plan(path)
        for phase in plan.phases:
            text = phase_task(plan, phase, plan.skills)
            assert f"# Phase {phase.id}:" in text and phase.body.strip()[:40] in text
            count += 1
    assert count > 50


def test_system_prompt_and_summary_request() -> None:
    definition = builtin_agent("general-purpose")
    prompt = system_prompt(definition, ["clap"])
    assert prompt.startswith(definition.prompt) and "- `clap`" in prompt
    assert "`cd` / `export` do not persist" in prompt
    assert SKILLS_HEADING not in system_prompt(definition)
    assert "at most 500 tokens" in summary_request()
