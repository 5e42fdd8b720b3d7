"""The options of a run: the flows' one `options` parameter, and what the dry run describes.

Plain pydantic, no Prefect: the command line builds them and the free dry run reads them without
importing Prefect (`plan-executor run --dry-run` never does); the flows pass them to every phase.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from plan_parser.validate import UnknownOwners
from plan_parser.vocabulary import DEFAULT_AGENT_TIMEOUT_S, DEFAULT_PHASE_TIMEOUT_S, DirtyPolicy
from tasks.agent.budget import DEFAULT_MAX_TURNS, DEFAULT_NO_PROGRESS_TURNS
from tasks.agent.runtimes import RuntimeName
from tasks.gates.phase_gates import ScopePolicy


class RunOptions(BaseModel):
    """The knobs of one run: the `execute-plan` flow's `options` parameter (every field has a
    default, so a partial dict is a valid value: the fields it leaves out take these defaults).
    """

    # The attribute docstrings become the fields' descriptions in the JSON schema, which the
    # Prefect UI's run form shows beside each field. A name that is no field is refused, as an
    # unknown flow parameter is: a misspelt option must not run with its default silently.
    model_config = ConfigDict(use_attribute_docstrings=True, extra="forbid")

    repo: Path | None = None
    """The repository to work in (None: the git repository that holds the plan)."""
    skills: list[str] = Field(default_factory=list)
    """Skills passed to every agent, beside the ones detected from the plan and the repository."""
    dirty_policy: DirtyPolicy = "stop"
    """Uncommitted changes at pre-flight: `stop`, `stash`, `commit` or `proceed`."""
    include_optional: bool = False
    """Run the phases marked optional too."""
    phase_timeout_s: float = Field(default=DEFAULT_PHASE_TIMEOUT_S, gt=0)
    """Seconds one phase may take (default 600: 10 minutes)."""
    agent_timeout_s: float = Field(default=DEFAULT_AGENT_TIMEOUT_S, gt=0)
    """Seconds one agent call may take (default 300: 5 minutes)."""
    model: str | None = None
    """The model of every agent, overriding the agent definitions (None: the definitions')."""
    dry_run: bool = False
    """Walk the plan and the pre-flight only: no agent call, nothing written."""
    interactive: bool = False
    """Ask a person (pause, or suspend in deployment runs) at a dirty tree, after a failed phase
    and for human-owned phases; otherwise each question takes its non-interactive answer."""
    scope_policy: ScopePolicy = "siblings"
    """Changes outside a phase's declared files: `siblings` fails files no phase declares
    (a wandering agent) and warns for a sibling phase's; `warn` | `fail` for all of them."""
    max_turns: int = Field(default=DEFAULT_MAX_TURNS, ge=1)
    """The turn cap of one agent call: a safety net; budgets are the guard."""
    no_progress_turns: int = Field(default=DEFAULT_NO_PROGRESS_TURNS, ge=0)
    """Stop an agent call after this many consecutive turns that changed no file and ran no
    new command (0: off); the phase ends `budget`."""
    max_cost_usd: float | None = Field(default=None, gt=0)
    """USD all agent calls of the run may spend together (None: no limit)."""
    max_tokens: int | None = Field(default=None, gt=0)
    """Tokens (every kind) all agent calls of the run may use together (None: no limit)."""
    phase_max_cost_usd: float | None = Field(default=None, gt=0)
    """USD one phase's agent calls may spend (the plan's `phase_max_cost_usd` applies too)."""
    phase_max_tokens: int | None = Field(default=None, gt=0)
    """Tokens one phase's agent calls may use (the plan's `phase_max_tokens` applies too)."""
    network: bool = True
    """Network inside the agents' sandbox (on by default: builds may fetch crates)."""
    allow_unsandboxed: bool = False
    """The explicit unsafe flag: run agent commands without bubblewrap when it is missing."""
    worktrees: bool = True
    """Each phase works in its own git worktree and lands on the integration branch when
    verified (False: every phase works in the checkout itself, the pre-worktree behaviour)."""
    on_current_branch: bool = False
    """Land verified phases on the current branch instead of `plan-executor/<plan>`."""
    keep_worktrees: bool = False
    """Leave the phases' worktrees on disk after the run (their branches always stay)."""
    unknown_owners: UnknownOwners = "error"
    """An owner naming no agent definition: `error` refuses the plan, `general-purpose` runs it
    as general-purpose (a warning)."""
    agent_runtime: RuntimeName = "anthropic"
    """`anthropic` (our tool loop) or `claude-code` (Claude Code in bubblewrap); an agent
    definition's own `runtime:` wins for that agent (tasks.agent.runtimes)."""
    sandbox_gates: bool = True
    """Gate commands in bubblewrap too (they run the agents' tests and build scripts); only the
    run turns this off (`--unsandboxed-gates`), never a repository file."""
    distribute: bool = False
    """Each phase runs as a run of the `execute-phase` deployment on a worker of the pool, in
    the worker's own clone; the parent lands the pushed phase branches (flows.distribute).
    Needs worktrees."""

    def resolved(self, repo: Path) -> ResolvedRunOptions:
        """These options for a run in ``repo`` (the phases and every step after loading)."""
        return ResolvedRunOptions.model_validate({**self.model_dump(), "repo": repo})


class ResolvedRunOptions(RunOptions):
    """:class:`RunOptions` whose repository is known: what the phase subflows and the run's
    context carry (the flow resolves ``repo`` once, :meth:`RunOptions.resolved`)."""

    repo: Path
    """The repository the run works in."""
