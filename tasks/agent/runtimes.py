"""Which agent runtime runs a call: plan-executor's own tool loop or Claude Code.

- ``anthropic`` (the default): :mod:`tasks.agent.loop`, the anthropic SDK with our editor and
  bash tools, each bash command in bubblewrap.
- ``claude-code``: :mod:`tasks.agent.claude_code`, the Claude Code CLI (bundled in the optional
  ``claude-agent-sdk`` dependency) with its own tools, the whole process in bubblewrap.

Chosen per run (``--agent-runtime``, the flow parameter ``agent_runtime``) and optionally per
agent definition (frontmatter ``runtime: claude-code`` in `.claude/agents/*.md`, which wins
over the run's choice for that agent). Verifier calls (``verdict_criteria``) always use the
anthropic runtime: their verdicts come only from our `record_verdict` tool.

No SDK import here: the CLI and flows validate names without the optional dependency.
"""

from __future__ import annotations

from typing import Final, Literal

from plan_parser.errors import PlanExecutorError

ANTHROPIC: Final = "anthropic"
CLAUDE_CODE: Final = "claude-code"
RUNTIMES: tuple[str, ...] = (ANTHROPIC, CLAUDE_CODE)
RuntimeName = Literal["anthropic", "claude-code"]
EXTRA_HINT = "pip install 'plan-executor[claude-code]'"


class RuntimeUnavailable(PlanExecutorError, RuntimeError):
    """The chosen runtime cannot run here (its optional dependency is not installed)."""


def check_runtime_name(name: str, *, where: str = "agent runtime") -> str:
    """``name`` normalised (`Claude_Code` → `claude-code`); ValueError naming the choices."""
    normalised = name.strip().lower().replace("_", "-")
    if normalised not in RUNTIMES:
        raise ValueError(f"{where}: unknown runtime {name!r}; choose one of {', '.join(RUNTIMES)}")
    return normalised


def claude_code_missing() -> str | None:
    """None when the claude-code runtime's dependency is importable; else what to install."""
    try:
        import claude_agent_sdk  # noqa: F401 - only whether it imports
    except ImportError:
        return (
            "the claude-code agent runtime needs the optional dependency claude-agent-sdk, "
            f"which is not installed: {EXTRA_HINT}"
        )
    return None


def require_runtime(name: str) -> None:
    """RuntimeUnavailable when ``name`` cannot run in this environment (checked before a run)."""
    if check_runtime_name(name) == CLAUDE_CODE and (problem := claude_code_missing()):
        raise RuntimeUnavailable(problem)


def pick_runtime(
    run_choice: str, definition_choice: str | None, *, verifier: bool = False
) -> RuntimeName:
    """The runtime of one call: the verifier's is always anthropic (the `record_verdict`
    tool), else the agent definition's own ``runtime:`` if it has one, else the run's."""
    if verifier:
        return ANTHROPIC
    chosen = check_runtime_name(definition_choice or run_choice)
    return CLAUDE_CODE if chosen == CLAUDE_CODE else ANTHROPIC
