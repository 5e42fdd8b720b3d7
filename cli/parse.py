"""`plan-executor parse | validate | graph`: read-only plan commands.

They import only `plan_parser` (never Prefect), and only when one of them runs, so neither they
nor `--help` pay for Prefect or pydantic model building; rich is imported only for the
human-readable summary, the gate configuration only for `validate --repo`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from plan_parser import Diagnostic, Plan

EXIT_INVALID = 2

CHECKLIST: list[tuple[str, tuple[str, ...]]] = [
    (
        "Document has executable phases",
        (
            "E-NO-PHASES",
            "E-EMPTY",
            "E-BINARY",
            "E-ENCODING",
            "E-TOO-LARGE",
            "E-FM-NOT-YAML",
            "E-FM-NOT-MAPPING",
            "E-FM-UNTERMINATED",
            "E-UNREADABLE",
            "E-DUP-ID",
        ),
    ),
    (
        "All phases have assigned principal owners",
        (
            "E-OWNER-MISSING",
            "E-OWNER-UNKNOWN",
            "W-OWNER-UNKNOWN",
            "W-OWNER-HUMAN",
            "W-AGENTS-MISSING",
            "W-OWNER-READONLY",
        ),
    ),
    (
        "Dependencies between phases are explicitly listed",
        ("E-DEP-UNKNOWN", "W-DEPS-MISSING", "W-DEP-PARENT"),
    ),
    ("Each phase has acceptance criteria", ("E-AC-MISSING",)),
    (
        "Parallelization groups agree with the dependencies",
        (
            "W-GROUP-CONFLICT",
            "W-GRAPH-CONFLICT",
            "W-OPTIONAL-DEPENDENCY",
            "W-SERIALISED",
            "W-SERIAL-NOTE",
        ),
    ),
    ("No circular dependencies exist", ("E-DEP-CYCLE",)),
    (
        "Files to create/modify are specified for each phase",
        ("I-FILES-MISSING", "W-WAVE-FILE-CONFLICT"),
    ),
    (
        "Blast radius is defined for each phase",
        ("W-BLAST-MISSING", "W-BLAST-NONRUNNABLE", "E-BLAST-COMMAND", "E-BLAST-NOT-COMMAND"),
    ),
    ("Required skills have a SKILL.md in the repository (with --repo)", ("W-SKILL-MISSING",)),
]


def _diagnostic_json(diagnostic: Diagnostic, file: str) -> dict[str, object]:
    return {
        "code": diagnostic.code,
        "severity": diagnostic.severity.value,
        "line": diagnostic.line,
        "phase": diagnostic.phase_id,
        "field": diagnostic.field,
        "message": diagnostic.message,
        "text": diagnostic.render(file),
    }


def plan_json(plan: Plan) -> dict[str, object]:
    """The `parse --json` object for one file."""
    file = plan.path
    return {
        "file": file,
        "kind": plan.kind.value,
        "title": plan.title,
        "status": plan.status,
        "created": plan.created,
        "phases": [
            {
                "id": phase.id,
                "title": phase.title,
                "heading": phase.heading_raw,
                "line": phase.line,
                "owner": phase.owner.raw if phase.owner else None,
                "agent": phase.owner.agent if phase.owner else None,
                "owner_kind": phase.owner.kind.value if phase.owner else None,
                "depends_on": phase.depends_on,
                "blast_radius": phase.blast_radius,
                "blast_commands": phase.blast_commands,
                "acceptance_criteria": [c.text for c in phase.acceptance_criteria],
                "files": [{"path": f.path, "action": f.action.value} for f in phase.files],
                "deliverables": phase.deliverables,
                "optional": phase.optional,
                "type": phase.type.value,
                "skills": phase.skills,
                "goal": phase.goal,
                "complexity": phase.complexity,
                "parallel_hint": phase.parallel_hint,
                "exclusive": phase.exclusive,
                "completed_in_plan": phase.completed_in_plan,
                "blast_prose": phase.blast_prose,
                "markers": phase.markers,
                "end_line": phase.end_line,
                "field_lines": phase.field_lines,
            }
            for phase in plan.phases
        ],
        "serial_notes": [note.model_dump() for note in plan.serial_notes],
        "errors": [_diagnostic_json(d, file) for d in plan.errors],
        "warnings": [_diagnostic_json(d, file) for d in plan.warnings],
    }


def _print_summary(plans: list[Plan]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for plan in plans:
        head = f"[bold]{plan.path}[/bold]  {plan.kind.value}: {plan.title}"
        if plan.status:
            head += f"  [dim](status: {plan.status})[/dim]"
        console.print(head)
        if plan.phases:
            table = Table(show_edge=False, pad_edge=False)
            for column in ("id", "title", "owner", "depends on", "AC", "blast radius", "flags"):
                table.add_column(column)
            for phase in plan.phases:
                flags = [phase.type.value]
                if phase.optional:
                    flags.append("optional")
                table.add_row(
                    phase.id,
                    phase.title,
                    phase.owner.raw if phase.owner else "[red]-[/red]",
                    ", ".join(phase.depends_on) or "-",
                    str(len(phase.acceptance_criteria)),
                    phase.blast_radius or "-",
                    " ".join(flags),
                )
            console.print(table)
        for error in plan.errors:
            console.print(f"  [red]{error.render(plan.path)}[/red]", highlight=False)
        console.print(f"  {len(plan.errors)} error(s), {len(plan.warnings)} warning(s)\n")


def parse(
    files: Annotated[list[Path], typer.Argument(help="Plan files to read.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
) -> None:
    """Parse plan files and print their phases (exit 2 when a file cannot be read)."""
    from plan_parser import parse_plan

    plans = [parse_plan(path) for path in files]
    if as_json:
        typer.echo(json.dumps([plan_json(plan) for plan in plans], indent=1, ensure_ascii=False))
    else:
        _print_summary(plans)
    unreadable = any(
        d.code in ("E-UNREADABLE", "E-BINARY", "E-TOO-LARGE") for p in plans for d in p.errors
    )
    raise typer.Exit(EXIT_INVALID if unreadable else 0)


COUNTED_NOTES = {"I-FILES-MISSING": "list no files to create/modify"}
"""Info notes that still mean the checklist item is not met: the row warns with their count."""
NEEDS_REPO = {"Required skills have a SKILL.md in the repository (with --repo)"}


def _mark(diagnostics: list[Diagnostic]) -> str:
    from plan_parser import Severity

    if any(d.severity is Severity.ERROR for d in diagnostics):
        return "FAIL"
    if any(d.severity is Severity.WARNING or d.code in COUNTED_NOTES for d in diagnostics):
        return "warn"
    return " ok "


def _lines_suffix(related: list[Diagnostic]) -> str:
    where = sorted({d.line for d in related if d.line})
    if not where:
        return ""
    shown = ", ".join(str(line) for line in where[:8])
    return f"  (line{'s' if len(where) > 1 else ''} {shown}{', ...' if len(where) > 8 else ''})"


def _counted(plan: Plan, related: list[Diagnostic]) -> str:
    """`9 of 10 phases list no files ...` for the info notes that fail a checklist item."""
    parts = []
    for code, what in COUNTED_NOTES.items():
        phases = sorted({d.phase_id for d in related if d.code == code and d.phase_id})
        if phases:
            parts.append(f"{len(phases)} of {len(plan.phases)} phases {what}")
    return f": {'; '.join(parts)}" if parts else ""


def render_validation(plan: Plan, *, verbose: bool = False, repo_checked: bool = False) -> str:
    from plan_parser import Severity

    lines = [f"{plan.path}: {plan.kind.value} '{plan.title}', {len(plan.phases)} phase(s)"]
    lines.append("Checklist:")
    for title, codes in CHECKLIST:
        if title in NEEDS_REPO and not repo_checked:
            lines.append(f"  [ -- ] {title}: not checked")
            continue
        related = [d for d in plan.diagnostics if d.code in codes]
        lines.append(
            f"  [{_mark(related)}] {title}{_counted(plan, related)}{_lines_suffix(related)}"
        )
    shown = [d for d in plan.diagnostics if verbose or d.severity is not Severity.INFO]
    order = {Severity.ERROR: 0, Severity.WARNING: 1, Severity.INFO: 2}
    shown.sort(key=lambda d: (order[d.severity], d.line or 0))
    if shown:
        lines.append("Diagnostics:")
        lines.extend(f"  {d.render(plan.path)}" for d in shown)
    errors, warnings = len(plan.errors), len(plan.warnings)
    verdict = "VALID" if not errors else "INVALID"
    lines.append(f"{verdict}: {errors} error(s), {warnings} warning(s)")
    return "\n".join(lines)


def _command_check(repo: Path | None) -> Callable[[list[str]], str | None] | None:
    """The repository's rule for blast-radius commands (its gate configuration), as `run`
    applies it; None (the default gate programs) without a repository or a readable config."""
    if repo is None:
        return None
    from tasks.gates.config import load_gate_config

    try:
        return load_gate_config(repo).refusal
    except (OSError, ValueError):
        return None


def _read_only_agents(repo: Path | None) -> set[str] | None:
    """The repository's agents whose `tools:` cannot write (with --repo), as `run` sees them."""
    if repo is None:
        return None
    from tasks.agent.definitions import read_only_agent_names

    return read_only_agent_names(repo)


def validate(
    plan_file: Annotated[Path, typer.Argument(metavar="PLAN", help="The plan file.")],
    repo: Annotated[
        Path | None,
        typer.Option(help="Target repository: owners are checked against .claude/agents/."),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show info notes.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the diagnostics as JSON.")] = False,
    unknown_owners: Annotated[
        str,
        typer.Option(
            help="An owner naming no .claude/agents/<name>.md (with --repo): `error`, or "
            "`general-purpose` (a warning: `run --unknown-owners general-purpose` runs it so)."
        ),
    ] = "error",
) -> None:
    """Check a plan against the validation checklist: exit 0 without errors, 2 otherwise."""
    from plan_parser import parse_plan

    if unknown_owners not in ("error", "general-purpose"):
        typer.echo("error: --unknown-owners is `error` or `general-purpose`", err=True)
        raise typer.Exit(EXIT_INVALID)
    plan = parse_plan(
        plan_file,
        repo=repo,
        command_check=_command_check(repo),
        read_only_agents=_read_only_agents(repo),
        unknown_owners="general-purpose" if unknown_owners == "general-purpose" else "error",
    )
    if as_json:
        typer.echo(json.dumps(plan_json(plan), indent=1, ensure_ascii=False))
    else:
        typer.echo(render_validation(plan, verbose=verbose, repo_checked=repo is not None))
    raise typer.Exit(EXIT_INVALID if plan.errors else 0)


def graph(
    plan_file: Annotated[Path, typer.Argument(metavar="PLAN", help="The plan file.")],
    include_optional: Annotated[
        bool, typer.Option("--include-optional", help="Schedule optional phases too.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print waves, skipped phases and the graph as JSON.")
    ] = False,
) -> None:
    """Print the execution waves and a mermaid graph of the phase dependencies."""
    from plan_parser import DocKind, parse_plan, schedule

    plan = parse_plan(plan_file)
    if plan.kind is not DocKind.PLAN or not plan.phases:
        for diagnostic in plan.errors or plan.diagnostics:
            typer.echo(diagnostic.render(plan.path), err=True)
        raise typer.Exit(EXIT_INVALID)
    try:
        layers = schedule.waves(plan, include_optional=include_optional)
    except schedule.CycleError as exc:
        cycle = next((d for d in plan.errors if d.code == "E-DEP-CYCLE"), None)
        typer.echo(cycle.render(plan.path) if cycle else f"{plan.path}: error: {exc}", err=True)
        raise typer.Exit(EXIT_INVALID) from None
    skipped = [p.id for p in plan.phases if p.optional and not include_optional]
    blocking = [d for d in plan.errors if d.code in ("E-DUP-ID", "E-DEP-UNKNOWN")]
    if as_json:
        document = {
            "file": plan.path,
            "source": plan.deps_source,
            "waves": layers,
            "serialised": schedule.serialised(plan, include_optional=include_optional),
            "skipped": skipped,
            "mermaid": schedule.mermaid(plan),
            "errors": [d.render(plan.path) for d in blocking],
        }
        typer.echo(json.dumps(document, indent=1, ensure_ascii=False))
        raise typer.Exit(EXIT_INVALID if blocking else 0)
    typer.echo(f"{plan.path}: {len(plan.phases)} phase(s) in {len(layers)} wave(s)")
    if plan.deps_source == "document_order":
        typer.echo("(no dependency fields: phases run in document order)")
    elif plan.deps_source == "mermaid":
        typer.echo("(no dependency fields: order taken from the plan's mermaid graph)")
    reasons = schedule.serialised(plan, include_optional=include_optional)
    for number, layer in enumerate(layers, start=1):
        typer.echo(f"Wave {number}: " + ", ".join(f"Phase {phase_id}" for phase_id in layer))
        for phase_id in layer:
            if phase_id in reasons:
                typer.echo(f"  (Phase {phase_id} {reasons[phase_id]})")
    if skipped:
        typer.echo("Skipped (optional): " + ", ".join(f"Phase {s}" for s in skipped))
    typer.echo("")
    typer.echo("```mermaid")
    typer.echo(schedule.mermaid(plan).rstrip("\n"))
    typer.echo("```")
    for diagnostic in blocking:
        typer.echo(diagnostic.render(plan.path), err=True)
    raise typer.Exit(EXIT_INVALID if blocking else 0)


def register(app: typer.Typer) -> None:
    app.command("parse")(parse)
    app.command("validate")(validate)
    app.command("graph")(graph)
