"""`plan-executor run | status | demo`.

`run` executes a plan on a Prefect backend (the embedded server by default, or the one named by
PREFECT_API_URL) and exits 0 when every phase is complete, 1 when any is not, 2 for invalid input.
`status` prints the checkpoint mirror of a plan file. `demo` runs a sample plan on a throwaway
crate with the Messages API stand-in playing the agents.
"""

from __future__ import annotations

import asyncio
import os
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

EXIT_INVALID = 2


class Dirty(StrEnum):
    stop = "stop"
    stash = "stash"
    commit = "commit"
    proceed = "proceed"


class UnknownOwners(StrEnum):
    error = "error"
    general_purpose = "general-purpose"


UNKNOWN_OWNERS_HELP = (
    "An owner that names no .claude/agents/<name>.md: `error` refuses the plan, "
    "`general-purpose` runs the phase with the general-purpose agent (a warning)."
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
        Dirty, typer.Option(help="Uncommitted changes: stop, stash, commit or proceed.")
    ] = Dirty.stop,
    include_optional: Annotated[bool, typer.Option(help="Run phases marked optional too.")] = False,
    phase_timeout: Annotated[
        float, typer.Option(help="Seconds per phase (seed default 600).")
    ] = 600.0,
    agent_timeout: Annotated[
        float, typer.Option(help="Seconds per agent call (seed default 300).")
    ] = 300.0,
    model: Annotated[
        str | None, typer.Option(help="Model for every agent, overriding the definitions.")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option(help="Walk the DAG and the pre-flight; no agent calls, no changes.")
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
) -> None:
    """Run a plan as a Prefect DAG; exit 0 all complete, 1 any not complete, 2 invalid input."""
    code = run_plan(
        plan,
        repo=repo,
        skills=skill or [],
        dirty_policy=dirty.value,
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
        distribute=distribute,
        backend_mode=backend.value,
        live=live,
    )
    raise typer.Exit(code)


def run_plan(
    plan: Path,
    *,
    repo: Path | None = None,
    skills: list[str] | None = None,
    dirty_policy: str = "stop",
    include_optional: bool = False,
    phase_timeout_s: float = 600.0,
    agent_timeout_s: float = 300.0,
    model: str | None = None,
    dry_run: bool = False,
    interactive: bool = False,
    network: bool = True,
    allow_unsandboxed: bool = False,
    worktrees: bool = True,
    on_current_branch: bool = False,
    keep_worktrees: bool = False,
    sandbox_gates: bool = True,
    unknown_owners: str = "error",
    distribute: bool = False,
    backend_mode: str = "auto",
    live: bool | None = None,
    echo: Any = typer.echo,
) -> int:
    """The `run` command as a function (the demo and tests call it); returns the exit status."""
    plan = plan.expanduser().resolve()
    if not plan.is_file():
        echo(f"error: {plan}: no such plan file", err=True)
        return EXIT_INVALID
    if repo is not None and not repo.expanduser().is_dir():
        echo(f"error: {repo}: no such directory", err=True)
        return EXIT_INVALID
    if phase_timeout_s <= 0 or agent_timeout_s <= 0:
        echo("error: timeouts must be positive", err=True)
        return EXIT_INVALID
    invalid = _invalid_plan(plan, repo, include_optional, unknown_owners)
    if invalid is not None:  # before any backend: bad input needs no server, calls no agent
        echo("error: invalid plan:", err=True)
        echo(invalid, err=True)
        return EXIT_INVALID

    from tasks.backend.postgres import PostgresError
    from tasks.backend.select import backend as select_backend
    from tasks.backend.server import ServerError

    try:
        return _run_on_backend(
            plan,
            backend_mode,
            echo,
            repo=repo,
            parameters=dict(
                skills=skills or [],
                dirty_policy=dirty_policy,
                include_optional=include_optional,
                phase_timeout_s=phase_timeout_s,
                agent_timeout_s=agent_timeout_s,
                model=model,
                dry_run=dry_run,
                interactive=interactive,
                network=network,
                allow_unsandboxed=allow_unsandboxed,
                worktrees=worktrees,
                on_current_branch=on_current_branch,
                keep_worktrees=keep_worktrees,
                sandbox_gates=sandbox_gates,
                unknown_owners=unknown_owners,
                distribute=distribute,
                live=live,
            ),
            select_backend=select_backend,
        )
    except (ServerError, PostgresError) as exc:  # PortInUseError says which port and what to do
        echo(f"error: the Prefect backend could not start: {exc}", err=True)
        return EXIT_INVALID


def _invalid_plan(
    plan: Path, repo: Path | None, include_optional: bool, unknown_owners: str = "error"
) -> str | None:
    """The validation report when the plan cannot run (file:line per error), else None."""
    from flows.execute_plan import PlanInputError, check_plan, find_repo

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
    backend_mode: str,
    echo: Any,
    *,
    repo: Path | None,
    parameters: dict[str, Any],
    select_backend: Any,
) -> int:
    with select_backend(
        backend_mode, console=lambda *a, **k: echo(" ".join(map(str, a)), err=True)
    ) as info:
        report = _execute(plan, repo=repo.expanduser().resolve() if repo else None, **parameters)
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
        if getattr(info, "ui_url", None) and report.flow_run_id:
            echo(f"Prefect UI: {info.ui_url.rstrip('/')}/runs/flow-run/{report.flow_run_id}")
        return report.exit_code


def _execute(plan: Path, *, live: bool | None, **parameters: Any) -> Any:
    from flows import execute_plan as module
    from flows.live import LiveView

    view = LiveView(live=live)
    module.OBSERVERS.append(view.observe)
    try:
        with view:
            state = asyncio.run(module.execute_plan(plan, return_state=True, **parameters))
    finally:
        module.OBSERVERS.remove(view.observe)
    try:
        report = state.result(raise_on_failure=False)
    except Exception:
        return None
    if hasattr(report, "exit_code"):
        return report
    return None


def status_command(
    plan: Annotated[Path, typer.Argument(help="The plan file.")],
) -> None:
    """Print the plan's checkpoint mirror: each phase's state, times, errors, failing checks."""
    from rich.console import Console
    from rich.table import Table

    from plan_parser.checkpoints import read_plan_state

    if not plan.is_file():
        typer.echo(f"error: {plan}: no such plan file", err=True)
        raise typer.Exit(EXIT_INVALID)
    state = read_plan_state(plan)
    status = _plan_status_line(plan)
    console = Console()
    console.print(f"Plan: {plan}\nStatus: {status or '(none)'}", highlight=False)
    if state is None or not state.phases:
        console.print("No execution checkpoints: the plan has not been run.")
        return
    table = Table()
    for column in ("phase", "status", "started", "finished", "tokens", "flow run", "error"):
        table.add_column(column)
    for pid, cp in state.phases.items():
        finished = cp.completed_at or cp.failed_at or ""
        table.add_row(
            pid,
            cp.status,
            str(cp.started_at or ""),
            str(finished),
            str(sum((cp.tokens or {}).values()) or ""),
            (cp.flow_run_id or "")[:8],
            (cp.error or "")[:80],
        )
    console.print(table)
    for pid, cp in state.phases.items():
        for line in cp.ledger or []:
            console.print(f"  phase {pid}: {line}", markup=False, highlight=False)


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
) -> None:
    """Run a sample plan on a throwaway crate, agents played by a scripted STAND-IN Messages API."""
    from flows.demo import run_demo

    raise typer.Exit(run_demo(directory, backend_mode=backend.value, live=live, environ=os.environ))
