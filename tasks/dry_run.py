"""The free dry run: what a run of a plan would do and may cost, without doing any of it.

`plan-executor run PLAN --dry-run` calls :func:`dry_run`: no Prefect (not even imported), no
server, no flow run, no agent call, no command of the target repository, and nothing written
(no plan file change, no `.ai/logs`, no run lock: the lock is only probed). What it reads:
the plan, the agent definitions, memory files and skills (as the agents would get them), and
the gate configuration of the committed `HEAD` through `git show` / `git ls-tree`, the way a run
reads it; the justfile's recipe names are read as text instead of `just --dump` (a program of
the repository's toolchain), see :func:`tasks.gates.config.justfile_recipe_names`.

Per phase: its wave, what would happen (agent, human, gates only, skip), the agent calls (role,
definition file, model, tools), skills found and missing, the timeouts, the exact gate commands
(blast radius, criteria, build, lint, fmt), which acceptance criteria the gates decide and which
go to the verifier agent, and the cost forecast (:mod:`tasks.forecast`). The flow's own dry run
(`--with-preflight`, and deployment runs with `dry_run=true`) renders the same report with the
pre-flight's result (:func:`describe_run`, :func:`render_text`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field

from plan_parser.checkpoints import PhaseCheckpoint
from plan_parser.model import OwnerKind, Phase, PhaseType, Plan
from plan_parser.paths import lexical_relative
from plan_parser.vocabulary import TREE_CHANGING_POLICIES
from tasks import shell
from tasks.forecast import (
    CallForecast,
    ForecastSettings,
    PhaseForecast,
    RunForecast,
    forecast_call,
    settings_from_texts,
)
from tasks.gates.config import GateConfig, committed_file, load_committed_gate_config
from tasks.gates.criteria import grep_argv
from tasks.gates.judgements import criterion_number
from tasks.gates.ledger import LedgerEntry, Verdict
from tasks.gates.phase_gates import _TestRuns  # the runner the dry run's planner stands in for
from tasks.options import RunOptions

if TYPE_CHECKING:
    from plan_parser.checkpoints import PhaseCheckpoint
    from tasks.agent.definitions import AgentDefinition
    from tasks.agent.pricing import PriceTable
    from tasks.forecast import Span
    from tasks.gates.cargo_output import TestRun

DRY_RUN_WARNINGS = frozenset(
    {"W-SKILL-MISSING", "W-OWNER-READONLY", "W-OWNER-UNKNOWN", "W-SERIALISED", "W-SERIAL-NOTE"}
)
"""Plan warnings that change what a run would do: the dry run repeats them under its waves."""

PREFLIGHT_NOT_RUN = "not run (free dry run; `--with-preflight` runs it)"


class PlannedCommand(BaseModel):
    """A gate command as the run would start it (argument vector rendered), or why not."""

    check: str
    command: str = ""
    note: str = ""
    """`not run: …` when the run would record it without running it."""


class CriterionPlan(BaseModel):
    number: int
    text: str
    decided_by: Literal["gates", "verifier"]
    how: str
    """The gates: what they read or run; the verifier: why no mechanical check decides it."""


class AgentPlan(BaseModel):
    role: str
    owner: str
    agent: str
    definition: str
    """The agent definition's file (`.claude/agents/x.md`) or `builtin:<type>`."""
    model: str
    tools: list[str]
    read_only: bool = False
    warning: str | None = None


class PhasePlan(BaseModel):
    phase_id: str
    title: str
    wave: int
    type: str
    owner: str
    depends_on: list[str] = Field(default_factory=list)
    action: str
    """One line: `agent rust-developer, then gates`, `gates only`, `skip (…)`."""
    skipped: bool = False
    agents: list[AgentPlan] = Field(default_factory=list)
    skills_found: list[str] = Field(default_factory=list)
    skills_missing: list[str] = Field(default_factory=list)
    timeouts: dict[str, float] = Field(default_factory=dict)
    blast_radius: list[PlannedCommand] = Field(default_factory=list)
    quality: list[PlannedCommand] = Field(default_factory=list)
    criteria: list[CriterionPlan] = Field(default_factory=list)
    forecast: PhaseForecast


class DryRunReport(BaseModel):
    """What `run --dry-run` prints (text) or gives as data (`--json`)."""

    plan_path: str
    plan_title: str
    repo: str
    waves: list[list[str]]
    phases: list[PhasePlan]
    gate_config_source: str
    gate_config_note: str = ""
    preflight: list[PlannedCommand] = Field(default_factory=list)
    preflight_status: str = PREFLIGHT_NOT_RUN
    preflight_ok: bool | None = None
    final_validation: list[PlannedCommand] = Field(default_factory=list)
    working_tree: str = ""
    forecast: RunForecast
    warnings: list[str] = Field(default_factory=list)
    duration_s: float = 0.0


# -- the entry point of the CLI ------------------------------------------------------------------


def dry_run(
    plan_path: Path, repo: Path | None = None, options: RunOptions | None = None
) -> DryRunReport:
    """The free dry run of ``plan_path``; PlanInputError when the plan cannot run, RunLockHeld
    when a run holds the plan."""
    from tasks.agent.pricing import load_price_table
    from tasks.plan_input import check_plan, detect_skills, find_repo
    from tasks.run_lock import RunLockHeld, holder_if_held, run_lock_path

    started = time.monotonic()
    options = options or RunOptions()
    plan_path = Path(plan_path).resolve()
    repo = Path(repo).resolve() if repo else find_repo(plan_path)
    held, holder = holder_if_held(plan_path)
    if held:
        raise RunLockHeld(plan_path, run_lock_path(plan_path), holder)
    config = dry_gate_config(repo)
    plan, waves = check_plan(
        plan_path,
        repo,
        include_optional=options.include_optional,
        unknown_owners="general-purpose"
        if options.unknown_owners == "general-purpose"
        else "error",
        gate_config=config,
    )
    user, detected = detect_skills(plan, repo, options.skills)
    skills = user + [s for s in detected if s not in user]
    resumed = _resumed(plan, plan_path, repo, waves)
    report = describe_run(
        plan=plan,
        plan_path=plan_path,
        waves=waves,
        repo=repo,
        skills=skills,
        resumed=resumed,
        options=options,
        gate_config=config,
        prices=load_price_table(repo),
        settings=load_forecast_settings(repo),
    )
    report.working_tree = _working_tree(repo, options.dirty_policy)
    report.duration_s = round(time.monotonic() - started, 3)
    return report


def dry_gate_config(repo: Path) -> GateConfig:
    """The gate configuration at HEAD, read without running the repository's programs."""
    return load_committed_gate_config(repo, run_just=False)


def load_forecast_settings(repo: Path) -> ForecastSettings:
    """The forecast settings of the working tree (the dry run)."""

    def text(path: Path) -> str | None:
        return path.read_text(encoding="utf-8") if path.is_file() else None

    return settings_from_texts(text(repo / "pyproject.toml"), text(repo / ".ai/plan-executor.toml"))


def load_committed_forecast_settings(repo: Path, ref: str = "HEAD") -> ForecastSettings:
    """The forecast settings of commit ``ref`` (a run, like its prices and gate commands)."""
    return settings_from_texts(
        committed_file(repo, "pyproject.toml", ref),
        committed_file(repo, ".ai/plan-executor.toml", ref),
    )


def _resumed(
    plan: Plan, plan_path: Path, repo: Path, waves: list[list[str]]
) -> dict[str, PhaseCheckpoint]:
    """The phases a run would not run again (checkpoint complete and unchanged, or marked
    complete), as the flow decides it with the default worktree options."""
    from plan_parser.checkpoints import read_plan_state
    from tasks.resume import landing_branch, resumable_phases

    scheduled = [pid for wave in waves for pid in wave]
    previous = read_plan_state(plan_path)
    branch = landing_branch(plan_path, worktrees=True, on_current_branch=False)
    return resumable_phases(plan, previous, repo, scheduled, branch=branch)


def _working_tree(repo: Path, policy: str) -> str:
    """`clean`, or how many uncommitted changes and what a real run would do with them."""
    status = shell.run(
        ["git", "--no-optional-locks", "status", "--porcelain", "--untracked-files=normal"],
        cwd=repo,
        timeout_s=30,
        output_cap=None,
    )
    if status.exit_code == 127 or status.timed_out:
        return f"unknown ({status.output.strip() or 'git did not answer'})"
    if not status.ok:
        return "not a git repository"
    changes = [line for line in status.output.splitlines() if line.strip()]
    if not changes:
        return "clean"
    what = {
        "stop": "stop (rerun with --dirty stash|commit|proceed)",
        "stash": "stash them first",
        "commit": "commit them first",
        "proceed": "proceed with them",
    }.get(policy, policy)
    return f"{len(changes)} uncommitted change(s): a real run would {what}"


# -- the description (the CLI and the flow) ------------------------------------------------------


def describe_run(
    *,
    plan: Plan,
    plan_path: Path,
    waves: list[list[str]],
    repo: Path,
    skills: list[str],
    resumed: dict[str, PhaseCheckpoint],
    options: RunOptions,
    gate_config: GateConfig,
    prices: PriceTable,
    settings: ForecastSettings,
) -> DryRunReport:
    """The dry run's report from what the run has already loaded (pure but for reading files)."""
    from tasks.agent.context_files import repository_context
    from tasks.agent.definitions import load_agents

    agents = load_agents(repo)
    repository = repository_context(repo)
    phases: list[PhasePlan] = []
    for number, wave in enumerate(waves, 1):
        for pid in wave:
            phase = plan.phase(pid)
            phases.append(
                _phase_plan(
                    plan,
                    phase,
                    number,
                    repo,
                    skills,
                    resumed.get(pid),
                    options,
                    gate_config,
                    prices,
                    settings,
                    agents,
                    repository,
                )
            )
    forecast = RunForecast.of([p.forecast for p in phases], settings, prices)
    return DryRunReport(
        plan_path=str(plan_path),
        plan_title=plan.title,
        repo=str(repo),
        waves=waves,
        phases=phases,
        gate_config_source=gate_config.source,
        gate_config_note=(
            "justfile recipes read as text (the dry run does not run `just --dump`)"
            if "justfile" in gate_config.source
            else ""
        ),
        preflight=[
            _planned("baseline tests", gate_config.test),
            _planned("build", gate_config.build),
            _planned("lint", gate_config.lint),
            _planned("fmt", gate_config.fmt),
        ],
        final_validation=[
            _planned("full test suite", gate_config.test),
            _planned("doc tests", gate_config.doc_test),
            _planned("lint", gate_config.lint),
            _planned("fmt", gate_config.fmt),
            _planned("build", gate_config.build),
        ],
        forecast=forecast,
        warnings=[d.render(str(plan_path)) for d in plan.warnings if d.code in DRY_RUN_WARNINGS],
    )


@dataclass(frozen=True)
class LoadedRun:
    """What a run has loaded that its description reads (the flow's dry run and forecast)."""

    plan: Plan
    plan_path: Path
    waves: list[list[str]]
    repo: Path
    skills: list[str]
    """Every skill the run passes to its agents: the user's, then the detected ones."""
    resumed: dict[str, PhaseCheckpoint]
    options: RunOptions
    gate_config: GateConfig | None = None
    """The configuration pre-flight read (None: HEAD's, read as text)."""


def describe_loaded_run(run: LoadedRun) -> DryRunReport:
    """The report of a loaded run: prices and forecast settings from the commit, as the run
    will use them."""
    from tasks.agent.pricing import load_committed_price_table

    return describe_run(
        plan=run.plan,
        plan_path=run.plan_path,
        waves=run.waves,
        repo=run.repo,
        skills=run.skills,
        resumed=run.resumed,
        options=run.options,
        gate_config=run.gate_config or dry_gate_config(run.repo),
        prices=load_committed_price_table(run.repo),
        settings=load_committed_forecast_settings(run.repo),
    )


def forecast_of_loaded_run(run: LoadedRun) -> tuple[RunForecast | None, str | None]:
    """The run's cost forecast, or why there is none: a forecast that cannot be made (a broken
    `[forecast]` table) must never stop the run it forecasts."""
    try:
        return describe_loaded_run(run).forecast, None
    except Exception as exc:  # noqa: BLE001 - any failure only costs the forecast
        return None, f"{type(exc).__name__}: {exc}"


def preflight_line(ok: bool, message: str) -> str:
    """`ok …` / `FAILED …`: a real pre-flight's result as the dry run's text shows it."""
    return f"{'ok' if ok else 'FAILED'} {message}".rstrip()


def with_preflight(report: DryRunReport, *, ok: bool, message: str) -> DryRunReport:
    """The report with the result of the pre-flight the flow's dry run did run."""
    report.preflight_ok = ok
    report.preflight_status = preflight_line(ok, message)
    return report


def _planned(check: str, argv: list[str]) -> PlannedCommand:
    from tasks.gates.evidence import render

    if not argv:
        return PlannedCommand(check=check, note="not run: no command configured")
    return PlannedCommand(check=check, command=render(argv))


def _phase_plan(
    plan: Plan,
    phase: Phase,
    wave: int,
    repo: Path,
    skills: list[str],
    checkpoint: PhaseCheckpoint | None,
    options: RunOptions,
    config: GateConfig,
    prices: PriceTable,
    settings: ForecastSettings,
    agents: dict[str, AgentDefinition],
    repository: str,
) -> PhasePlan:
    from tasks.agent.context_files import find_skill
    from tasks.agent.context_files import skills as repo_skills
    from tasks.agent.prompts import required_skills

    required = required_skills(plan, phase, skills)
    available = repo_skills(repo)
    blast, quality, criteria = planned_gates(repo, phase, config)
    base = PhasePlan(
        phase_id=phase.id,
        title=phase.title,
        wave=wave,
        type=phase.type.value,
        owner=phase.owner_label,
        depends_on=list(phase.depends_on),
        action="",
        skills_found=[s for s in required if find_skill(s, available) is not None],
        skills_missing=[s for s in required if find_skill(s, available) is None],
        timeouts={
            "phase_s": options.phase_timeout_s,
            "agent_call_s": options.agent_timeout_s,
            "max_turns": options.max_turns,
            "gate_command_s": config.timeout_s,
        },
        blast_radius=blast,
        quality=quality,
        criteria=criteria,
        forecast=PhaseForecast(phase_id=phase.id),
    )
    if checkpoint is not None:
        base.action = skip_text(checkpoint)
        base.skipped = True
        base.forecast = PhaseForecast.of(phase.id, [], note="not run: " + base.action)
        return base
    base.action = would_do(phase, repo, interactive=options.interactive)
    calls, plans = _agent_calls(
        plan, phase, repo, skills, options, prices, settings, agents, repository, criteria
    )
    base.agents = plans
    note = "" if calls else base.action
    base.forecast = PhaseForecast.of(phase.id, calls, note=note)
    return base


def skip_text(checkpoint: PhaseCheckpoint) -> str:
    from tasks.resume import MARKED_COMPLETE, resume_reason

    if resume_reason(checkpoint) == MARKED_COMPLETE:
        return f"skip ({MARKED_COMPLETE})"
    return "skip (checkpoint complete, unchanged)"


def would_do(phase: Phase, repo: Path, *, interactive: bool = False) -> str:
    """One line: what the run does with this phase."""
    from plan_parser.validate import phase_writes
    from tasks.agent.definitions import can_write, resolve_agent

    kind = phase.owner_kind
    if kind is OwnerKind.HUMAN:
        if interactive:
            return "human work (the run waits for a person), then gates"
        return "human work (blocked unless --interactive), then gates"
    if kind is OwnerKind.ORCHESTRATOR or phase.owner is None:
        return "gates only"
    definition = resolve_agent(phase.owner.raw, repo)
    if definition is None:
        return "gates only"
    if definition.warning:
        return f"agent {definition.name} (no definition for {phase.owner.raw!r}), then gates"
    if not can_write(definition) and phase_writes(phase):
        return (
            f"agent {definition.name} (READ-ONLY: it cannot create or change the files this "
            "phase needs), then gates"
        )
    return f"agent {definition.name}, then gates"


def _agent_calls(
    plan: Plan,
    phase: Phase,
    repo: Path,
    skills: list[str],
    options: RunOptions,
    prices: PriceTable,
    settings: ForecastSettings,
    agents: dict[str, AgentDefinition],
    repository: str,
    criteria: list[CriterionPlan],
) -> tuple[list[CallForecast], list[AgentPlan]]:
    """The agent calls of the phase, each with the prompt the run would send (same functions)."""
    from tasks.agent.definitions import resolve_agent
    from tasks.agent.models import model_id
    from tasks.agent.prompts import SKILLS_HEADING, phase_task, system_prompt
    from tasks.agent.roles import (
        VERIFIER_AGENT,
        VERIFIER_MAX_TURNS,
        VerifierCriterion,
        agent_roles,
        verifier_task,
    )
    from tasks.agent.tools import tool_params_for

    kind = phase.owner_kind
    if kind in (OwnerKind.HUMAN, OwnerKind.ORCHESTRATOR):
        return [], []
    calls: list[CallForecast] = []
    plans: list[AgentPlan] = []

    def add(
        role: str, model_role: str, owner_raw: str, task: str, verdicts: list[str], cap: int
    ) -> None:
        definition = resolve_agent(owner_raw, repo, agents=agents)
        if definition is None:
            return
        model = model_id(options.model, definition)
        # The loop puts the skills in the system prompt unless the task lists them (phase_task).
        system = system_prompt(definition, [] if SKILLS_HEADING in task else skills, repository)
        tools = tool_params_for(definition.tools, repo=repo, verdict_criteria=verdicts)
        calls.append(
            forecast_call(
                role=model_role,
                agent=definition.name,
                model=model,
                prompt_chars=len(system) + len(task),
                tools=tools,
                settings=settings,
                prices=prices,
                max_turns=cap,
            )
        )
        plans.append(
            AgentPlan(
                role=role,
                owner=owner_raw,
                agent=definition.name,
                # as written: a built-in's source (`builtin:plan`) is no path to resolve
                definition=lexical_relative(repo, definition.source) or definition.source,
                model=model,
                tools=[str(t.get("name")) for t in tools],
                read_only=definition.read_only or role == "verifier",
                warning=definition.warning,
            )
        )

    design = phase.type is PhaseType.DESIGN
    for role, owner_raw in agent_roles(phase, repo):
        task = phase_task(plan, phase, skills, role=role, repo=repo)
        model_role = "design" if design and role == "owner" else role
        add(role, model_role, owner_raw, task, [], options.max_turns)
    judged = [
        VerifierCriterion(id=str(c.number), text=c.text)
        for c in criteria
        if c.decided_by == "verifier"
    ]
    if judged:
        task = verifier_task(plan, phase, judged)
        ids = [c.id for c in judged]
        cap = min(options.max_turns, VERIFIER_MAX_TURNS)
        add("verifier", "verifier", VERIFIER_AGENT, task, ids, cap)
    return calls, plans


# -- the gates a phase would run ----------------------------------------------------------------


def planned_gates(
    repo: Path, phase: Phase, config: GateConfig
) -> tuple[list[PlannedCommand], list[PlannedCommand], list[CriterionPlan]]:
    """(blast radius, build/lint/fmt, criteria) as the phase's gates would run them.

    The gate functions themselves (:func:`blast_radius_entries`, :func:`criteria_entries`) are
    called with a test runner and a grep that record the command instead of running it, so the
    commands and the criteria's split between gates and verifier are the run's own."""
    from tasks.gates.phase_gates import blast_radius_entries, criteria_entries

    design = phase.type is PhaseType.DESIGN
    runs = _PlannedRuns(repo, config)
    blast_entries: list[LedgerEntry] = []
    if design:
        blast: list[PlannedCommand] = [
            PlannedCommand(check="tests", note="not run: design phase: tests are not required")
        ]
    else:
        blast_entries = blast_radius_entries(repo, phase, config, runs, grep=_planned_grep)
        blast = [_from_entry(e) for e in [*runs.entries, *blast_entries]]
    before = len(runs.entries)
    entries = criteria_entries(repo, phase, config, runs, design=design, grep=_planned_grep)
    criteria_commands = runs.entries[before:]
    criteria = _criteria_plans(phase, entries, criteria_commands)
    if design:
        quality = [
            PlannedCommand(
                check="build",
                command=_render(config.build),
                note="only when the phase changed code"
                if config.build
                else "not run: no command configured",
            ),
            PlannedCommand(check="lint", note="not run: design phase"),
            PlannedCommand(check="fmt", note="not run: design phase"),
        ]
    else:
        quality = [
            _planned("build", config.build),
            _planned("lint", config.lint),
            _planned("fmt", config.fmt),
        ]
    return blast, quality, criteria


def _render(argv: list[str]) -> str:
    from tasks.gates.evidence import render

    return render(argv) if argv else ""


def _from_entry(entry: LedgerEntry) -> PlannedCommand:
    if entry.verdict is Verdict.NOT_RUN and entry.evidence.startswith("would run"):
        return PlannedCommand(check=entry.check, command=entry.command or "")
    note = entry.evidence if entry.evidence.startswith("not run") else f"not run: {entry.evidence}"
    return PlannedCommand(check=entry.check, command=entry.command or "", note=note)


def _planned_grep(repo: Path, check: str, command: str, criterion_text: str) -> LedgerEntry:
    """The grep a run would start, or, for one a run refuses to start (a pipe, command
    substitution), the verifier's judgement a run would ask for instead."""
    argv, why = grep_argv(command)
    if argv is None:
        return LedgerEntry(
            check=check, command=command, verdict=Verdict.NEEDS_JUDGEMENT, evidence=why
        )
    return LedgerEntry(check=check, command=command, verdict=Verdict.NOT_RUN, evidence="would run")


def _criteria_plans(
    phase: Phase, entries: list[LedgerEntry], commands: list[LedgerEntry]
) -> list[CriterionPlan]:
    by_number: dict[int, list[LedgerEntry]] = {}
    for entry in entries:
        number = criterion_number(entry)
        if number is not None:
            by_number.setdefault(number, []).append(entry)
    plans: list[CriterionPlan] = []
    for number, criterion in enumerate(phase.acceptance_criteria, 1):
        found = by_number.get(number, [])
        mechanical = [e for e in found if e.verdict is not Verdict.NEEDS_JUDGEMENT]
        if mechanical:
            how = "; ".join(dict.fromkeys(_how(e) for e in mechanical))
            plans.append(
                CriterionPlan(number=number, text=criterion.text, decided_by="gates", how=how)
            )
        else:
            why = next((e.evidence for e in found if e.evidence != criterion.text), "")
            plans.append(
                CriterionPlan(
                    number=number,
                    text=criterion.text,
                    decided_by="verifier",
                    how=why or "no mechanical check recognises it",
                )
            )
    return plans


def _how(entry: LedgerEntry) -> str:
    if entry.command:
        return f"runs `{entry.command}`"
    return "reads the files it names"


class _PlannedRuns(_TestRuns):
    """The gates' test runner that runs nothing: records each command once, as the run would
    start it. A recorded command counts as having run tests, as the run's would (so criteria
    counting tests stay with the gates)."""

    def __init__(self, repo: Path, config: GateConfig) -> None:
        super().__init__(repo, config, None)

    def run(self, check: str, argv: list[str], *, scoped: bool) -> TestRun:
        from tasks.gates.cargo_output import TestRun
        from tasks.gates.evidence import render

        key = tuple(argv)
        if key in self.runs:
            return self.runs[key]
        if not argv:
            self.runs[key] = TestRun()
            self.entries.append(
                LedgerEntry(
                    check=check, verdict=Verdict.NOT_RUN, evidence="not run: no command configured"
                )
            )
            return self.runs[key]
        self.runs[key] = TestRun(command=render(argv), summaries=1)
        self.entries.append(
            LedgerEntry(
                check=check, command=render(argv), verdict=Verdict.NOT_RUN, evidence="would run"
            )
        )
        return self.runs[key]

    def tested(self) -> list[TestRun]:
        return [run for run in self.runs.values() if run.summaries > 0]

    def combined(self) -> TestRun | None:
        from tasks.gates.cargo_output import TestRun

        runs = self.tested()
        if not runs:
            return None
        return TestRun(summaries=len(runs), command=" ; ".join(r.command or "" for r in runs))


# -- the text ------------------------------------------------------------------------------------


def render_text(report: DryRunReport, *, dirty_policy: str = "stop") -> str:
    """The dry run as text: the waves (one line per phase, as before), each phase's details
    indented under it, then the final validation and the forecast."""
    lines = [f"Dry run of {report.plan_title} ({report.plan_path})", ""]
    if dirty_policy in TREE_CHANGING_POLICIES:
        lines.append(f"(a real run would {dirty_policy} uncommitted changes first)")
    if report.working_tree:
        lines.append(f"Working tree: {report.working_tree}")
    lines.append(f"Pre-flight: {report.preflight_status}".rstrip())
    if report.preflight_ok is None:
        lines.append("  would run: " + _commands(report.preflight))
    lines.append(f"Gate commands from: {report.gate_config_source}")
    if report.gate_config_note:
        lines.append(f"  ({report.gate_config_note})")
    for number, wave in enumerate(report.waves, 1):
        lines.append(f"Wave {number}:")
        for pid in wave:
            phase = next(p for p in report.phases if p.phase_id == pid)
            deps = f" after {', '.join(phase.depends_on)}" if phase.depends_on else ""
            lines.append(
                f"  - phase {pid}: {phase.title} [{phase.owner}; {phase.type}]{deps} -> {phase.action}"
            )
            lines.extend(f"      {line}" for line in _phase_details(phase))
    lines.append("Final validation (after the last phase): " + _commands(report.final_validation))
    lines.append(f"Forecast for the run: {report.forecast.summary()}")
    lines.append(
        "  (a range from a stated model, not a quote: docs/cost.md; retries, reruns and "
        "integration fixes are not included)"
    )
    if report.warnings:
        lines.append("Warnings:")
        lines.extend(f"  - {warning}" for warning in report.warnings)
    return "\n".join(lines) + "\n"


def _commands(commands: list[PlannedCommand]) -> str:
    return "; ".join(_command(c) for c in commands)


def _command(planned: PlannedCommand) -> str:
    if planned.command and not planned.note.startswith("not run"):
        # `blast-radius: cargo test x` names its command already: show it once.
        label = "" if planned.check.endswith(planned.command) else f"{planned.check} "
        condition = f" ({planned.note})" if planned.note else ""
        return f"{label}`{planned.command}`{condition}"
    return f"{planned.check} ({planned.note or planned.command})"


def _phase_details(phase: PhasePlan) -> list[str]:
    if phase.skipped:
        return []
    lines: list[str] = []
    for agent in phase.agents:
        lines.append(
            f"agent ({agent.role}): {agent.agent} ({agent.definition}), model {agent.model}, "
            f"tools: {', '.join(agent.tools) or 'none'}"
            + (" [read-only]" if agent.read_only else "")
        )
    if phase.skills_found or phase.skills_missing:
        lines.append(
            f"skills: found {', '.join(phase.skills_found) or 'none'}; "
            f"missing {', '.join(phase.skills_missing) or 'none'}"
        )
    t = phase.timeouts
    lines.append(
        f"timeouts: phase {t['phase_s']:g}s, agent call {t['agent_call_s']:g}s "
        f"(at most {t['max_turns']:g} turns), each gate command {t['gate_command_s']:g}s"
    )
    lines.append("blast radius: " + (_commands(phase.blast_radius) or "none"))
    lines.append("then: " + _commands(phase.quality))
    gates = [c for c in phase.criteria if c.decided_by == "gates"]
    judged = [c for c in phase.criteria if c.decided_by == "verifier"]
    lines.append(
        f"criteria: {len(gates)} decided by the gates, {len(judged)} by the verifier agent"
    )
    lines.extend(f"  {c.number}. gates: {c.how}: {_short(c.text)}" for c in gates)
    lines.extend(f"  {c.number}. verifier: {_short(c.text)}" for c in judged)
    forecast = phase.forecast
    if forecast.calls:
        per_call = ", ".join(
            f"{c.role} {_turns(c.turns)} turns from a {c.prompt_tokens.tokens()}-token prompt"
            for c in forecast.calls
        )
        share = forecast.calls[0].cache_read_share
        lines.append(
            f"forecast: {forecast.tokens.tokens()} tokens, {forecast.cost_usd.usd()} "
            f"({per_call}; {share.low:.0%}–{share.high:.0%} of the owner's input from the cache)"
        )
    else:
        lines.append(f"forecast: no agent call, $0 ({forecast.note})")
    return lines


def _turns(turns: Span) -> str:
    return f"{turns.low:g}" if turns.low == turns.high else f"{turns.low:g}–{turns.high:g}"


def _short(text: str, limit: int = 90) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
