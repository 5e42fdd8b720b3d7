"""Fixture plans and repositories shaped like the monorepo's newest commit (issue #21).

Its `.ai/plans/` holds compact-format plans (`**Agent:** … | **Deps:** …` lines) whose only
status is the planner's frontmatter `status: "done"` beside `started_at` / `finished_at` /
`duration`, whose files are named in prose, and whose work was committed after the plan. The
texts here are written for these tests (no corpus text is copied).
"""

from __future__ import annotations

import os
from pathlib import Path

from plan_parser.checkpoints import PhaseCheckpoint
from plan_parser.writer import PlanFileWriter
from tasks import shell

GIT_ENV = {
    "GIT_AUTHOR_NAME": "fixture",
    "GIT_AUTHOR_EMAIL": "fixture@example.invalid",
    "GIT_COMMITTER_NAME": "fixture",
    "GIT_COMMITTER_EMAIL": "fixture@example.invalid",
}


def git(repo: Path, *args: str) -> str:
    result = shell.run(["git", *args], cwd=repo, timeout_s=60, env={**os.environ, **GIT_ENV})
    assert result.ok, f"git {' '.join(args)} failed: {result.output}"
    return result.output


def commit(repo: Path, message: str, files: dict[str, str] | None = None) -> None:
    for relative, text in (files or {}).items():
        path = repo / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--allow-empty", "-m", message)


def compact_phase(
    pid: str, title: str, deliver: list[str], criteria: list[str], deps: str = "None"
) -> str:
    """One phase in the compact format: pipe lines, Goal / Deliver / Pass when / If failed."""
    items = "\n".join(f"- {item}" for item in deliver)
    checks = "\n".join(f"- [ ] {item}" for item in criteria)
    return f"""### Phase {pid}: {title}
**Agent:** `rust-developer` | **Skills:** rust | **Complexity:** Low
**Deps:** {deps} | **Parallel:** No

**Goal:** {title}.

**Deliver:**
{items}

**Pass when:**
{checks}

**If failed:**
- Rollback: revert the phase's files

---
"""


def compact_plan(status: str, phases: list[str], *, title: str = "a change") -> str:
    """A planner-made plan: the planning session's status in the frontmatter, no body status."""
    return f"""---
status: {status}
started_at: "12:43pm"
finished_at: "12:56pm"
duration: "13 minutes"
required_skills:
  - rust
---
# Planning Process

- [x] Read the code and ask about {title} [12:43pm]
- [x] Write the plan [12:56pm]

## Plan

{"".join(phases)}
## Dependency Graph

**Critical Path:** in order
"""


def body_status_plan(status: str, pid: str, title: str, create: str, criteria: str) -> str:
    """A template-format plan (body `**Status:**`) with one phase that creates one file."""
    return f"""# {title}

**Created:** 2026-02-01
**Status:** {status}

## Phases

### Phase {pid}: {title}

**Principal Owner:** Rust Developer
**Goal:** {title}.
**Dependencies:** None
**Blast Radius:** `cargo test`

**Files to create:**
- `{create}` - {title}

**Acceptance Criteria:**
- [ ] `{create}` exists
- [ ] {criteria}
"""


def interrupt(plan: Path, pid: str, *, complete: list[str] | None = None) -> None:
    """Leave ``plan`` as a run killed during phase ``pid`` leaves it: plan-executor's checkpoint
    section (``complete`` phases done, ``pid`` running) and the status `In Progress`."""
    from plan_parser import parse_plan

    parsed = parse_plan(plan)
    writer = PlanFileWriter(plan)
    checkpoints = [
        PhaseCheckpoint(
            phase_id=phase_id,
            status="complete",
            phase_hash=parsed.phase(phase_id).body_hash,
            started_at="2026-02-01T02:00:00Z",
            completed_at="2026-02-01T02:05:00Z",
        )
        for phase_id in complete or []
    ]
    checkpoints.append(
        PhaseCheckpoint(
            phase_id=pid,
            status="running",
            phase_hash=parsed.phase(pid).body_hash,
            started_at="2026-02-01T02:05:00Z",
            extra={"attempt": f"killed-{pid}"},
        )
    )
    writer.set_phases(checkpoints)
    writer.set_status("In Progress")
    writer.remove_lock_file()
