"""The parser reads a plan the same way after plan-executor wrote its state into it.

Resume compares each phase's `body_hash` with the one recorded in the checkpoints, so writing
the checkpoint section, the status and the summary must change no phase, no id and no hash.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from plan_parser import DocKind, Plan, parse_plan
from plan_parser.checkpoints import PhaseCheckpoint
from plan_parser.writer import PlanFileWriter


def _facts(
    path: Path, plan: Plan | None = None
) -> list[tuple[str, str, list[str], int, str, str | None]]:
    plan = plan or parse_plan(path)
    return [
        (p.id, p.title, p.depends_on, len(p.acceptance_criteria), p.body_hash, p.blast_radius)
        for p in plan.phases
    ]


# One plan per format and per trap that touches section boundaries: family A with the plan-level
# tables after the phases, H2 phases under the H1, family B and C, lettered / decimal ids, the
# mis-nested fences, the only plan whose last phase runs to the end of the file, an Implementation
# Summary already present, and invalid frontmatter.
SAMPLE = [
    "2025-12-28. Restructuring.md",
    "2025-12-29.add-brief-output.md",
    "2025-12-30.fixing-changelog-research.md",
    "2025-12-30.implement-skill-force-flags.md",
    "2026-01-03.mermaid-module.md",
    "2026-01-03.tts-improvements.md",
    "2026-01-05.plan-for-sniff-plus-enhancements.md",
    "2026-01-20.plan-for-hugging-face-api-client.md",
    "2026-01-20.tree-hugger.md",
    "2026-01-21.plan-for-queue-tui-restructure.md",
    "2026-01-29.plan-for-terminal-image-component.md",
    "2026-01-30.plan-for-biscuit-hash-cli.md",
]


def test_state_written_by_the_writer_changes_no_phase(shared_dir: Path, tmp_path: Path) -> None:
    checked = 0
    for name in SAMPLE:
        source = shared_dir / "corpus" / "plans" / name
        original = parse_plan(source)
        assert original.kind is DocKind.PLAN, name
        path = tmp_path / source.name
        shutil.copyfile(source, path)
        before = _facts(path, original)
        writer = PlanFileWriter(path)
        writer.set_phases(
            PhaseCheckpoint(
                phase_id=phase.id,
                status="complete" if n % 2 else "failed",
                phase_hash=phase.body_hash,
                error=None if n % 2 else "### Phase 99: not a heading in YAML",
            )
            for n, phase in enumerate(original.phases)
        )
        writer.set_status("Implemented")
        writer.set_summary("### Phase 1: done\n\nAll phases ran.\n")
        after = parse_plan(path)
        assert _facts(path, after) == before, source.name
        assert {d.code for d in after.errors} == {d.code for d in original.errors}, source.name
        checked += 1
    assert checked == len(SAMPLE)


@pytest.mark.parametrize("ending", ["\n", "", "\n\n---\n"])
def test_last_phase_hash_survives_an_appended_section(tmp_path: Path, ending: str) -> None:
    path = tmp_path / "2026-02-01.plan-for-end.md"
    text = (
        "# P\n\n## Phases\n\n### Phase 1: Only\n\n**Agent:** general-purpose\n\n"
        "**Pass when:**\n- [ ] done"
    )
    path.write_text(text + ending)
    before = _facts(path)
    PlanFileWriter(path).set_phases([PhaseCheckpoint(phase_id="1", status="running")])
    assert "## Execution Checkpoints" in path.read_text()
    assert _facts(path) == before
