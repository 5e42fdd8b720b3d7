"""`plan-executor run | status | demo`.

`run` executes a plan on a Prefect backend (the embedded server by default, or the one named by
PREFECT_API_URL) and exits 0 when every phase is complete, 1 when any is not, 2 for invalid input.
`status` prints the checkpoint mirror of a plan file. `demo` runs a sample plan on a throwaway
crate with the Messages API stand-in playing the agents.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from contextlib import AbstractContextManager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from plan_parser.vocabulary import DEFAULT_AGENT_TIMEOUT_S, DEFAULT_PHASE_TIMEOUT_S, DirtyPolicy
from tasks.agent.budget import DEFAULT_MAX_TURNS, DEFAULT_NO_PROGRESS_TURNS

if TYPE_CHECKING:
    from prefect import State

    from backend.select import BackendInfo
    from flows.report import RunReport
    from plan_parser.checkpoints import ExecutionState
    from tasks.options import RunOptions

EXIT_INVALID = 2

Echo = Callable[..., object]
"""Where the command's lines go: `typer.echo` (message, `err=True` for stderr), or a test's list."""


class UnknownOwners(StrEnum):
    error = "error"
    general_purpose = "general-purpose"


UNKNOWN_OWNERS_HELP = (
    "An owner that names no .claude/agents/<name>.md: `error` refuses the plan, "
    "`general-purpose` runs the phase with the general-purpose agent (a warning)."
)


PREFECT_LOGS_HELP = (
    "Print Prefect's INFO lines (every flow and task run's start and end) on the console too; "
    "by default it prints only warnings, errors and the run's link (the UI has them all)."
)


class AgentRuntimeChoice(StrEnum):
    anthropic = "anthropic"
    claude_code = "claude-code"


AGENT_RUNTIME_HELP = (
    "Who runs the agents: `anthropic` (plan-executor's own tool loop) or `claude-code` "
    "(Claude Code in bubblewrap; needs `pip install 'plan-executor[claude-code]'`). An agent "
    "definition's own `runtime:` wins; verifiers always use `anthropic`."
)


class Backend(StrEnum):
    auto = "auto"
    server = "server"
    ephemeral = "ephemeral"


def register(app: typer.Typer) -> None:
    app.command("run")(run_command)
    app.command("status")(status_command)
    app.command("demo")(demo_command)


def run_command(
    plan: Annotated[Path, typer.Argument(help="The plan file (.ai/plans/YYYY-MM-DD.name.md).")],
    repo: Annotated[
        Path | None,
        typer.Option(help="Repository to work in (default: the plan's git repository)."),
    ] = None,
    skill: Annotated[
        list[str] | None,
        typer.Option("--skill", "-s", help="A skill to pass to every agent (repeatable)."),
    ] = None,
    dirty: Annotated[
        DirtyPolicy, typer.Option(help="Uncommitted changes: stop, stash, commit or proceed.")
    ] = "stop",
    include_optional: Annotated[bool, typer.Option(help="Run phases marked optional too.")] = False,
    phase_timeout: Annotated[
        float, typer.Option(help="Seconds per phase (default 600: 10 minutes).")
    ] = DEFAULT_PHASE_TIMEOUT_S,
    agent_timeout: Annotated[
        float, typer.Option(help="Seconds per agent call (default 300: 5 minutes).")
    ] = DEFAULT_AGENT_TIMEOUT_S,
    model: Annotated[
        str | None, typer.Option(help="Model for every agent, overriding the definitions.")
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            help="Show what the run would do and may cost: waves, agents, models, skills, "
            "timeouts, gate commands, criteria (gates or verifier), a cost range. Free and fast: "
            "no Prefect server, no agent call, no command of the repository, nothing written."
        ),
    ] = False,
    with_preflight: Annotated[
        bool,
        typer.Option(
            "--with-preflight",
            help="With --dry-run: run the pre-flight too (baseline tests, build, lint, fmt) as "
            "a Prefect flow run on the backend, as a real run would.",
        ),
    ] = False,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="With --dry-run: print the dry run as JSON."),
    ] = False,
    interactive: Annotated[
        bool,
        typer.Option(
            help="Ask a person (Prefect pause, or suspend in deployment runs) at a dirty tree, "
            "after a failed phase and for human-owned phases; answer in the UI or with "
            "`plan-executor answer`."
        ),
    ] = False,
    network: Annotated[
        bool,
        typer.Option(
            "--network/--no-network",
            help="Network inside the agents' sandbox (builds may fetch crates).",
        ),
    ] = True,
    allow_unsandboxed: Annotated[
        bool,
        typer.Option(
            "--allow-unsandboxed",
            help="UNSAFE: run agent commands without bubblewrap when it is missing "
            "(the report says so).",
        ),
    ] = False,
    worktrees: Annotated[
        bool,
        typer.Option(
            "--worktrees/--shared-tree",
            help="Each phase in its own git worktree, verified phases landing one commit each "
            "on the branch plan-executor/<plan> (default); or every phase in the checkout.",
        ),
    ] = True,
    on_current_branch: Annotated[
        bool,
        typer.Option(help="Put the verified phases' commits on the current branch instead."),
    ] = False,
    keep_worktrees: Annotated[
        bool, typer.Option(help="Leave the phases' worktrees on disk after the run.")
    ] = False,
    unsandboxed_gates: Annotated[
        bool,
        typer.Option(
            "--unsandboxed-gates",
            help="UNSAFE: run gate commands (the agents' tests and build scripts) on the host, "
            "outside bubblewrap. A repository's `sandbox = false` is ignored: only this decides.",
        ),
    ] = False,
    unknown_owners: Annotated[
        UnknownOwners, typer.Option(help=UNKNOWN_OWNERS_HELP)
    ] = UnknownOwners.error,
    max_cost: Annotated[
        float | None,
        typer.Option(
            help="USD the run's agent calls may spend together (shared by concurrent phases); "
            "once spent no new agent call starts and running ones stop after their turn.",
        ),
    ] = None,
    max_tokens: Annotated[
        int | None,
        typer.Option(help="Tokens (input, output, cache writes and reads) the run may use."),
    ] = None,
    phase_max_cost: Annotated[
        float | None,
        typer.Option(help="USD one phase may spend (the plan's `phase_max_cost_usd` too)."),
    ] = None,
    phase_max_tokens: Annotated[
        int | None,
        typer.Option(help="Tokens one phase may use (the plan's `phase_max_tokens` too)."),
    ] = None,
    max_turns: Annotated[
        int, typer.Option(help="Turn cap of one agent call: a safety net above real phases.")
    ] = DEFAULT_MAX_TURNS,
    no_progress_turns: Annotated[
        int,
        typer.Option(
            help="Stop an agent after this many consecutive turns that change no file and run "
            "no new command (0: off); the phase ends `budget`.",
        ),
    ] = DEFAULT_NO_PROGRESS_TURNS,
    agent_runtime: Annotated[
        AgentRuntimeChoice, typer.Option(help=AGENT_RUNTIME_HELP)
    ] = AgentRuntimeChoice.anthropic,
    distribute: Annotated[
        bool,
        typer.Option(
            "--distribute",
            help="Run each phase as a run of the execute-phase deployment on the work pool's "
            "workers, each in its own clone of the repository's origin (docs/scaling.md).",
        ),
    ] = False,
    backend: Annotated[
        Backend, typer.Option(help="Prefect backend: auto, server or ephemeral.")
    ] = Backend.auto,
    live: Annotated[
        bool | None,
        typer.Option("--live/--no-live", help="Rich live view (default: on a terminal)."),
    ] = None,
    prefect_logs: Annotated[bool, typer.Option(help=PREFECT_LOGS_HELP)] = False,
) -> None:
    """Run a plan as a Prefect DAG; exit 0 all complete, 1 any not complete, 2 invalid input."""
    fields: dict[str, object] = dict(
        repo=repo,
        skills=skill or [],
        dirty_policy=dirty,
        include_optional=include_optional,
        phase_timeout_s=phase_timeout,
        agent_timeout_s=agent_timeout,
        model=model,
        dry_run=dry_run,
        interactive=interactive,
        network=network,
        allow_unsandboxed=allow_unsandboxed,
        worktrees=worktrees,
        on_current_branch=on_current_branch,
        keep_worktrees=keep_worktrees,
        sandbox_gates=not unsandboxed_gates,
        unknown_owners=unknown_owners.value,
        max_cost_usd=max_cost,
        max_tokens=max_tokens,
        phase_max_cost_usd=phase_max_cost,
        phase_max_tokens=phase_max_tokens,
        max_turns=max_turns,
        no_progress_turns=no_progress_turns,
        agent_runtime=agent_runtime.value,
        distribute=distribute,
    )
    problem = options_problem(**fields)
    if problem is not None:  # in the options' own words, before RunOptions refuses them
        typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(EXIT_INVALID)
    from tasks.options import RunOptions

    options = RunOptions.model_validate(fields)
    code = run_plan(
        plan,
        options,
        backend_mode=backend.value,
        live=live,
        with_preflight=with_preflight,
        as_json=as_json,
        prefect_logs=prefect_logs,
    )
    raise typer.Exit(code)


def run_plan(
    plan: Path,
    options: RunOptions | None = None,
    *,
    backend_mode: str = "auto",
    live: bool | None = None,
    prefect_logs: bool = False,
    echo: Echo = typer.echo,
    with_preflight: bool = False,
    as_json: bool = False,
) -> int:
    """The `run` command as a function (the demo and tests call it); returns the exit status.

    ``options`` are the flow's (None: every default); the rest is how this command runs it.
    """
    from tasks.options import RunOptions

    options = options or RunOptions()
    plan = plan.expanduser().resolve()
    if not plan.is_file():
        echo(f"error: {plan}: no such plan file", err=True)
        return EXIT_INVALID
    repo = options.repo
    if repo is not None and not repo.expanduser().is_dir():
        echo(f"error: {repo}: no such directory", err=True)
        return EXIT_INVALID
    from tasks.env_settings import EnvSettingError, check_env_settings
    from tasks.plan_input import PlanInputError, check_agent_runtime

    try:
        check_agent_runtime(options.agent_runtime)
        check_env_settings()
    except (PlanInputError, EnvSettingError) as exc:
        echo(f"error: {exc}", err=True)
        return EXIT_INVALID
    if (with_preflight or as_json) and not options.dry_run:
        echo("error: --with-preflight and --json go with --dry-run", err=True)
        return EXIT_INVALID
    # The free dry run: no backend, no flow, nothing of the repository runs.
    if options.dry_run and not with_preflight:
        return _free_dry_run(plan, options, echo, as_json=as_json)
    invalid = _invalid_plan(plan, repo, options.include_optional, options.unknown_owners)
    if invalid is not None:  # before any backend: bad input needs no server, calls no agent
        echo("error: invalid plan:", err=True)
        echo(invalid, err=True)
        return EXIT_INVALID
    if repo is not None:
        options = options.model_copy(update={"repo": repo.expanduser().resolve()})

    from backend.postgres import PostgresError
    from backend.select import backend as select_backend
    from backend.server import ServerError

    try:
        return _run_on_backend(
            plan,
            options,
            backend_mode,
            echo,
            live=live,
            prefect_logs=prefect_logs,
            select_backend=select_backend,
            as_json=as_json,
        )
    except (ServerError, PostgresError) as exc:  # PortInUseError says which port and what to do
        echo(f"error: the Prefect backend could not start: {exc}", err=True)
        return EXIT_INVALID


def options_problem(**fields: object) -> str | None:
    """What is wrong with the run's options, in the words of the CLI's options (None: nothing).
    The rules are RunOptions' own (tasks/options.py); this only names the option that broke one."""
    from pydantic import ValidationError

    from tasks.options import RunOptions

    try:
        RunOptions.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0])
        option = "--" + name.removesuffix("_usd").removesuffix("_s").replace("_", "-")
        floor = (first.get("ctx") or {}).get("ge")
        if first["type"] == "greater_than_equal" and floor == 0:
            return f"{option} must be 0 (off) or more (got {first['input']})"
        if first["type"] in ("greater_than", "greater_than_equal"):
            return f"{option} must be positive (got {first['input']})"
        return f"{option}: {first['msg']} (got {first['input']!r})"
    return None


def _invalid_plan(
    plan: Path, repo: Path | None, include_optional: bool, unknown_owners: str = "error"
) -> str | None:
    """The validation report when the plan cannot run (file:line per error), else None."""
    from tasks.plan_input import PlanInputError, check_plan, find_repo

    target = repo.expanduser().resolve() if repo else find_repo(plan)
    try:
        check_plan(
            plan,
            target,
            include_optional=include_optional,
            unknown_owners="general-purpose" if unknown_owners == "general-purpose" else "error",
        )
    except PlanInputError as exc:
        return str(exc)
    return None


def _run_on_backend(
    plan: Path,
    options: RunOptions,
    backend_mode: str,
    echo: Echo,
    *,
    live: bool | None,
    prefect_logs: bool,
    select_backend: Callable[..., AbstractContextManager[BackendInfo]],
    as_json: bool = False,
) -> int:
    with select_backend(
        backend_mode, console=lambda *a, **k: echo(" ".join(map(str, a)), err=True)
    ) as info:
        report = _execute(plan, options, live=live, prefect_logs=prefect_logs)
        if as_json and report is not None and not report.invalid:
            return _print_json(report, echo)
        if report is None:
            echo("error: the run ended without a report (see the Prefect logs)", err=True)
            return 1
        if report.invalid and report.status == "locked":  # another run holds the plan
            for line in report.errors:
                echo(f"error: {line}", err=True)
            return EXIT_INVALID
        if report.invalid:
            echo("error: invalid plan:", err=True)
            for line in report.errors:
                echo(line, err=True)
            return EXIT_INVALID
        echo(report.markdown)
        if info.ui_url and report.flow_run_id:
            echo(f"Prefect UI: {info.ui_url.rstrip('/')}/runs/flow-run/{report.flow_run_id}")
        return report.exit_code


def _free_dry_run(plan: Path, options: RunOptions, echo: Echo, *, as_json: bool) -> int:
    """`run --dry-run` without `--with-preflight`: :func:`tasks.dry_run.dry_run`, printed."""
    from tasks.dry_run import dry_run, render_text
    from tasks.plan_input import PlanInputError
    from tasks.run_lock import RunLockError, RunLockHeld

    repo = options.repo.expanduser() if options.repo else None
    # The same options the flow's dry run shows (flows.execute_plan), max_turns included.
    described = options
    try:
        report = dry_run(plan, repo, described)
    except (RunLockHeld, RunLockError) as exc:
        echo(f"error: {exc}", err=True)
        return EXIT_INVALID
    except PlanInputError as exc:
        echo("error: invalid plan:", err=True)
        echo(str(exc), err=True)
        return EXIT_INVALID
    except ValueError as exc:  # a broken configuration file (gate commands, prices, forecast)
        echo(f"error: {exc}", err=True)
        return EXIT_INVALID
    if as_json:
        echo(report.model_dump_json(indent=2))
    else:
        echo(render_text(report, dirty_policy=options.dirty_policy), nl=False)
    return 0


def _print_json(report: RunReport, echo: Echo) -> int:
    """`--dry-run --with-preflight --json`: the flow's dry run as data."""
    detail = getattr(report, "dry_run_detail", None)
    echo(
        detail.model_dump_json(indent=2) if detail is not None else report.model_dump_json(indent=2)
    )
    return report.exit_code


def _execute(
    plan: Path, options: RunOptions, *, live: bool | None, prefect_logs: bool = False
) -> RunReport | None:
    from cli.console import quiet_prefect_console
    from cli.live import LiveView
    from flows import execute_plan as module
    from flows.context import observing
    from flows.report import RunReport

    view = LiveView(live=live)
    with view, observing(view), quiet_prefect_console(not prefect_logs):
        # Prefect types the flow's returned State as wrapped in another and the call as an
        # Awaitable: it is a coroutine, and the State the flow returns is the run's final state.
        state: State[RunReport] = asyncio.run(
            module.execute_plan(plan, options, return_state=True)  # type: ignore[arg-type]
        )
    try:
        report = state.result(raise_on_failure=False)
    except Exception:
        return None
    if isinstance(report, RunReport):
        return report
    return None


def status_command(
    plan: Annotated[Path, typer.Argument(help="The plan file.")],
) -> None:
    """Print the plan's checkpoint mirror: each phase's state, times, errors, failing checks."""
    from cli.status_view import print_status
    from plan_parser.checkpoints import read_plan_state

    if not plan.is_file():
        typer.echo(f"error: {plan}: no such plan file", err=True)
        raise typer.Exit(EXIT_INVALID)
    state = read_plan_state(plan)
    footer = checkpoint_cost_line(state) if state is not None and state.phases else ""
    print_status(str(plan), _plan_status_line(plan), state, footer=footer)


def checkpoint_cost_line(state: ExecutionState) -> str:
    """`Cost: $0.1234 (1,234 input, 56 output, ... tokens) over 3 phases` from the checkpoints."""
    from flows.report import tokens_by_kind

    tokens: dict[str, int] = {}
    cost = 0.0
    priced = 0
    for cp in state.phases.values():
        for kind, count in (cp.tokens or {}).items():
            tokens[kind] = tokens.get(kind, 0) + count
        if cp.cost_usd is not None:
            cost += cp.cost_usd
            priced += 1
    return (
        f"Cost: ${cost:.4f} ({tokens_by_kind(tokens)} tokens) over {priced} "
        f"phase{'s' if priced != 1 else ''} with agent calls"
    )


def _plan_status_line(plan: Path) -> str:
    import re

    for line in plan.read_text(encoding="utf-8").splitlines():
        match = re.match(r"\s*\*\*Status:\*\*\s*(.*)", line)
        if match:
            return match.group(1).strip()
    return ""


def demo_command(
    directory: Annotated[
        Path | None,
        typer.Option("--dir", help="Where to make the demo crate (default: a new temp dir)."),
    ] = None,
    backend: Annotated[
        Backend, typer.Option(help="Prefect backend: auto, server or ephemeral.")
    ] = Backend.auto,
    live: Annotated[bool | None, typer.Option("--live/--no-live")] = None,
    prefect_logs: Annotated[bool, typer.Option(help=PREFECT_LOGS_HELP)] = False,
    agent_runtime: Annotated[
        AgentRuntimeChoice, typer.Option(help=AGENT_RUNTIME_HELP)
    ] = AgentRuntimeChoice.anthropic,
) -> None:
    """Run a sample plan on a throwaway crate, agents played by a scripted STAND-IN Messages API."""
    from cli.demo import run_demo

    raise typer.Exit(
        run_demo(
            directory,
            backend_mode=backend.value,
            live=live,
            environ=os.environ,
            prefect_logs=prefect_logs,
            agent_runtime=agent_runtime.value,
        )
    )
