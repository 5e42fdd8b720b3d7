"""A plan as a run takes it in, without Prefect: validated and scheduled, its skills detected
(what a previous run finished is `tasks/resume.py`). The flow (`flows/execute_plan.py`) and the free dry
run (`tasks/dry_run.py`) both use these; nothing here starts a server or writes a file.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from plan_parser.errors import PlanExecutorError
from plan_parser.model import Plan
from plan_parser.validate import UnknownOwners

if TYPE_CHECKING:  # the gate configuration is read only when a plan is checked
    from tasks.gates.config import GateConfig


def plan_name(plan_path: Path) -> str:
    """`2026-01-02.my-plan.md` → `my-plan`: names the run's branches, logs and worktrees."""
    name = Path(plan_path).name.removesuffix(".md")
    return re.sub(r"^\d{4}-\d{2}-\d{2}\.\s*", "", name) or name


class PlanInputError(PlanExecutorError):
    """The plan cannot be run as given (invalid, a dependency cycle, not found)."""


def check_plan(
    plan_path: Path,
    repo: Path,
    *,
    include_optional: bool,
    unknown_owners: UnknownOwners = "error",
    gate_config: GateConfig | None = None,
) -> tuple[Plan, list[list[str]]]:
    """:func:`load_plan` without Prefect: `run` calls it before starting a backend, so bad
    input costs no server and no agent call. Owners are checked against the agent definitions
    the runtime will load, blast-radius commands against the repository's gate configuration
    (``gate_config`` when given: the dry run's, read without running `just`)."""
    from plan_parser import parse_plan
    from plan_parser.schedule import CycleError, waves
    from tasks.agent.definitions import known_agent_names, load_agents, read_only_agent_names
    from tasks.gates.config import load_gate_config

    if not plan_path.is_file():
        raise PlanInputError(f"{plan_path}: no such plan file")
    try:
        command_check = (gate_config or load_gate_config(repo)).refusal
    except (OSError, ValueError):
        command_check = None  # a broken gate configuration is reported by pre-flight
    agents = load_agents(repo)
    plan = parse_plan(
        plan_path,
        repo=repo,
        agents=known_agent_names(repo, agents=agents),
        command_check=command_check,
        read_only_agents=read_only_agent_names(repo, agents=agents),
        unknown_owners=unknown_owners,
    )
    if plan.errors:
        raise PlanInputError("\n".join(d.render(str(plan_path)) for d in plan.errors))
    if not plan.phases:
        raise PlanInputError(f"{plan_path}: the plan has no phases")
    try:
        schedule = waves(plan, include_optional=include_optional)
    except CycleError as exc:
        raise PlanInputError(f"{plan_path}: {exc}") from exc
    return plan, schedule


def check_agent_runtime(agent_runtime: str) -> None:
    """PlanInputError when the run's agent runtime cannot run here (claude-code without its
    optional dependency): said before any agent is called."""
    from tasks.agent.runtimes import RuntimeUnavailable, require_runtime

    try:
        require_runtime(agent_runtime)
    except (RuntimeUnavailable, ValueError) as exc:
        raise PlanInputError(f"--agent-runtime {agent_runtime}: {exc}") from exc


def find_repo(plan_path: Path) -> Path:
    """The git repository holding the plan, else the current directory."""
    for candidate in [plan_path.parent, *plan_path.parents]:
        if (candidate / ".git").exists():
            return candidate
    return Path.cwd().resolve()


SKILL_HINTS = {
    "thiserror": re.compile(r"\bthiserror\b"),
    "color-eyre": re.compile(r"\bcolor[-_]eyre\b"),
    "clap": re.compile(r"\bclap\b", re.I),
}
RUST_SKILLS = ["rust-testing", "rust-logging", "rust-devops"]


def detect_skills(plan: Plan, repo: Path, user: list[str]) -> tuple[list[str], list[str]]:
    """User skills as given; detected ones from the plan, its phases, its owners and the repo."""
    detected: list[str] = []

    def add(name: str) -> None:
        if name and name not in detected and name not in user:
            detected.append(name)

    for name in plan.skills:
        add(name)
    for phase in plan.phases:
        for name in phase.skills:
            add(name)
    rust_owner = any(p.owner and p.owner.agent and "rust" in p.owner.agent for p in plan.phases)
    if rust_owner or (repo / "Cargo.toml").exists():
        for name in RUST_SKILLS:
            add(name)
    text = "\n".join(p.body for p in plan.phases)
    for name, pattern in SKILL_HINTS.items():
        if pattern.search(text):
            add(name)
    return list(user), detected


def skills_banner(user: list[str], detected: list[str]) -> str:
    lines = ["Skills Configuration for Plan Execution", "=" * 40, "", "User-specified skills:"]
    lines += [f"- {s}" for s in user] or ["- None"]
    lines += ["", "Auto-detected skills:"]
    lines += [f"- {s}" for s in detected] or ["- None"]
    lines += ["", "These skills will be passed to phase agents.", "=" * 40]
    return "\n".join(lines)
