"""Prompts of an agent call: the system prompt (role + rules) and the phase task (user message).

Both are deterministic (no timestamps, stable order) so that the prompt-cache prefix of tools,
system and the first user message stays identical across turns and across retried calls.
"""

from __future__ import annotations

from pathlib import Path

from plan_parser.model import Phase, PhaseType, Plan
from tasks.agent.context_files import phase_context
from tasks.agent.definitions import AgentDefinition

SUMMARY_TOKENS = 500

ROLE_INSTRUCTIONS = {
    "owner": (
        "You are the principal owner of this phase. Implement its deliverables in the "
        "repository: create and change the files, add the tests the phase asks for, and run the "
        "build and the tests in the blast radius until they pass."
    ),
    "tester": (
        "You are the tester of this phase. Write the tests the phase needs (unit tests next to "
        "the code, integration tests under `tests/`), run them, and fix test code until it "
        "compiles. Report implementation bugs you find instead of hiding them."
    ),
    "verifier": (
        "You are the verifier of this phase. The repository is read-only for you. Check each "
        "acceptance criterion against the code and command output, and say which are met, with "
        "evidence (paths, test names, output). Do not change anything."
    ),
}

DESIGN_NOTE = (
    "This is a DESIGN phase: produce the design artifacts it names (documents, schemas, "
    "skeleton code that compiles). Tests are not required to pass."
)
IMPLEMENTATION_NOTE = (
    "This is an IMPLEMENTATION phase: working code with passing tests. plan-executor verifies "
    "the phase itself afterwards (files exist, tests in the blast radius pass, clippy, fmt and "
    "build are clean); your report is recorded but does not decide completion."
)

TOOL_RULES = """\
## Working rules
- Paths are relative to the repository root; paths outside the repository are refused.
- `bash` runs every command in a fresh shell at the repository root inside a sandbox: the
  filesystem outside the repository is read-only, `$HOME` and `/tmp` are private and empty,
  and `cd` / `export` do not persist between calls (chain them: `cd sub && cargo test`).
- Each command has a time limit; long output is cut, so filter it (`| tail -50`, `grep`).
- No interactive programs (editors, pagers, prompts)."""


SKILLS_HEADING = "## Required Skills to Activate"


def system_prompt(
    definition: AgentDefinition, skills: list[str] | None = None, repository: str = ""
) -> str:
    """Role prompt, the run's skills (when given), the repository's memory and skills index
    (:func:`tasks.agent.context_files.repository_context`) and the tool rules: the same bytes
    for every turn and every phase of a run, so the prompt cache serves them."""
    parts = [
        definition.prompt.strip(),
        skills_section(skills) if skills else "",
        repository,
        TOOL_RULES,
    ]
    return "\n\n".join(p for p in parts if p)


def _bullets(items: list[str]) -> str:
    return "\n".join(f"- {item}" for item in items) if items else "- (none listed)"


def skills_section(skills: list[str]) -> str:
    if not skills:
        return f"{SKILLS_HEADING}\n\nNo skills were configured for this run."
    listed = "\n".join(f"- `{s}`" for s in skills)
    return (
        f"{SKILLS_HEADING}\n\n"
        "Apply the conventions and practices of these skills throughout the task:\n\n"
        f"{listed}"
    )


SCOPE_NOTE = (
    "Scope: change only the files listed above, plus what they imply: the `mod` / `pub mod` "
    "line (and a `pub use` re-export) for a new module file in its parent module (`lib.rs`, "
    "`main.rs`, `mod.rs` or `<parent>.rs`), dependency entries this phase names in the `Cargo.toml` "
    "of the crate that owns the files, `Cargo.lock`, and formatting (`cargo fmt`). Any other file "
    "(another crate, an unlisted source file, CI or gate configuration) blocks the phase."
)


def required_skills(plan: Plan, phase: Phase, skills: list[str]) -> list[str]:
    """The phase's skills, then the plan's, then the run's, each once."""
    ordered: list[str] = []
    for name in [*phase.skills, *plan.skills, *skills]:
        if name.lower() not in {n.lower() for n in ordered}:
            ordered.append(name)
    return ordered


def phase_task(
    plan: Plan,
    phase: Phase,
    skills: list[str],
    *,
    role: str = "owner",
    repo: Path | None = None,
) -> str:
    """The user message of an agent call for ``phase``: context, task, criteria, skills; with
    ``repo``, the memory files nearer the phase's files and the required skills' SKILL.md."""
    instruction = ROLE_INSTRUCTIONS.get(role, ROLE_INSTRUCTIONS["owner"])
    kind_note = DESIGN_NOTE if phase.type is PhaseType.DESIGN else IMPLEMENTATION_NOTE
    files = [
        f"`{f.path}` ({f.action.value})" + (f": {f.description}" if f.description else "")
        for f in phase.files
    ]
    criteria = [c.text for c in phase.acceptance_criteria]
    blast = phase.blast_radius if phase.blast_radius is not None else "(not given: all tests)"
    depends = ", ".join(phase.depends_on) if phase.depends_on else "none"
    owner = phase.owner.raw if phase.owner else "(none)"
    sections = [
        f"# Phase {phase.id}: {phase.title}",
        instruction,
        "## Plan context\n"
        f"- Plan: `{plan.path}` ({plan.title})\n"
        f"- Phase: {phase.id} ({phase.type.value})\n"
        f"- Principal owner: {owner}\n"
        f"- Depends on phases: {depends} (already complete)\n"
        f"- Blast radius (tests to run): {blast}",
        kind_note,
        skills_section(skills),
        "## Files to create or modify\n" + _bullets(files) + "\n\n" + SCOPE_NOTE,
        "## Deliverables\n" + _bullets(phase.deliverables),
        "## Acceptance criteria\n" + _bullets(criteria),
        phase_context(
            repo,
            [f.path for f in phase.files if not f.is_glob],
            required_skills(plan, phase, skills),
        )
        if repo is not None
        else "",
        "## The phase as written in the plan\n\n" + phase.body.strip(),
        "## When you are done\n"
        "Stop calling tools and say you are done. You will then be asked for a short summary.",
    ]
    return "\n\n".join(section for section in sections if section) + "\n"


def summary_request(role: str = "owner") -> str:
    return (
        f"Stop working now. Write your report for the orchestrator in at most {SUMMARY_TOKENS} "
        "tokens, in this form:\n\n"
        f"### Summary (for orchestrator - max {SUMMARY_TOKENS} tokens)\n"
        "- Status: COMPLETE, PARTIAL or BLOCKED (your claim; it will be verified)\n"
        "- Files created/modified\n"
        "- Key decisions\n"
        "- Commands run and their results (tests: counts passed/failed)\n"
        "- Issues and blockers\n\n"
        "Do not call tools. The full transcript is already saved to the details log."
    )
