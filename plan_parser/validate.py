"""The plan validation checklist (owners, dependencies, acceptance criteria, files, blast radius,
no cycles) as diagnostics with codes, severities and lines.

Errors make a plan unfit to execute (`plan-executor validate` exits 2): nothing to run (no
phases, unreadable input), an ambiguous or impossible order (duplicate ids, a cycle, a
dependency on an undefined phase), and phases missing what the executor needs to start and to
judge them (an owner, acceptance criteria), and input whose meaning is lost before any money
is spent: frontmatter that is not YAML, an owner that names no agent (when the repository is
known: a typo would otherwise run general-purpose, unless the run asks for exactly that), a
blast radius that is neither a command the gates can run nor an explicit "none". Everything with
a safe default is a warning: a missing blast radius (the default test scope is used), an
explicit no-tests blast radius, a group table that contradicts the dependency fields (the fields
win), the plan's own words splitting a wave (a phase marked not parallel), a read-only owner on
a phase that writes files (it will fail its checks, but a person may mean to fix the owner), a
required skill the repository has no SKILL.md for.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Literal

from plan_parser import frontmatter
from plan_parser.gate_commands import CommandCheck, blast_problem
from plan_parser.ids import id_sort_key
from plan_parser.model import (
    Diagnostic,
    DocKind,
    OwnerKind,
    Phase,
    Plan,
    Severity,
    diagnostic,
)
from plan_parser.owners import BUILTIN_TYPES, READ_ONLY_TYPES, resolve_owner, slug

_FATAL_READ = {"E-BINARY", "E-TOO-LARGE", "E-UNREADABLE", "E-EMPTY"}

UnknownOwners = Literal["error", "general-purpose"]
"""What an owner that names no agent means: refuse the plan, or run it as general-purpose."""

UNKNOWN_OWNERS_OPTION = "--unknown-owners general-purpose"

_WRITING_WORDS = re.compile(
    r"\b(creat\w*|add\w*|implement\w*|modif\w*|updat\w*|writ\w*|refactor\w*|migrat\w*"
    r"|renam\w*|remov\w*|delet\w*|fix\w*|port\w*|extract\w*|wire|replace\w*|move\w*)\b",
    re.IGNORECASE,
)


def known_agents(repo: Path) -> set[str]:
    """Agent names defined in `repo/.claude/agents/*.md`: file stems (lower-cased) and the slug
    of each file's frontmatter `name`, as the agent runtime matches them."""
    folder = repo / ".claude" / "agents"
    names: set[str] = set()
    try:
        paths = sorted(folder.glob("*.md"))
    except OSError:
        return names
    for path in paths:
        names.add(path.stem.lower())
        try:
            head = path.read_text(encoding="utf-8", errors="replace").split("\n", 200)[:200]
        except OSError:
            continue
        name = frontmatter.split(head).data.get("name")
        if isinstance(name, str) and slug(name):
            names.add(slug(name))
    return names


def known_skills(repo: Path) -> set[str]:
    """Skill names `repo/.claude/skills/<dir>/SKILL.md` defines: directory names and frontmatter
    `name`s, lower-cased (as the agent runtime finds them)."""
    names: set[str] = set()
    try:
        paths = sorted((repo / ".claude" / "skills").glob("*/SKILL.md"))
    except OSError:
        return names
    for path in paths:
        names.add(path.parent.name.lower())
        try:
            head = path.read_text(encoding="utf-8", errors="replace").split("\n", 200)[:200]
        except OSError:
            continue
        name = frontmatter.split(head).data.get("name")
        if isinstance(name, str) and name.strip():
            names.add(name.strip().lower())
    return names


def _check_skills(plan: Plan, repo: Path) -> list[Diagnostic]:
    """Skills the plan requires that the repository has no SKILL.md for: one warning per name,
    at the first place that names it (the agents get the bodies of the skills that exist)."""
    known = known_skills(repo)
    first: dict[str, tuple[int, list[str]]] = {}
    if plan.skills:
        for name in plan.skills:
            first.setdefault(name.lower(), (1, []))
    for phase in plan.phases:
        for name in phase.skills:
            line, phases = first.setdefault(
                name.lower(), (phase.field_lines.get("skills", phase.line), [])
            )
            phases.append(phase.id)
    out = []
    for key, (line, phases) in first.items():
        if key in known:
            continue
        where = f" (phases {', '.join(phases)})" if phases else " (plan frontmatter)"
        out.append(
            diagnostic(
                "W-SKILL-MISSING",
                Severity.WARNING,
                f"skill '{key}'{where} has no .claude/skills/{key}/SKILL.md in the repository: "
                "agents get only its name",
                line,
                field="skills",
            )
        )
    return out


def validate(
    plan: Plan,
    *,
    repo: Path | None = None,
    agents: set[str] | None = None,
    command_check: CommandCheck | None = None,
    read_only_agents: set[str] | None = None,
    unknown_owners: UnknownOwners = "error",
) -> list[Diagnostic]:
    """Checks that need the whole plan; the parser adds read and field-level diagnostics.

    Owners are checked against ``agents`` (agent names the repository defines), else against
    ``known_agents(repo)`` when a repository is given, else not at all; with ``unknown_owners``
    `general-purpose` an owner naming no agent is a warning (it runs as general-purpose).
    ``read_only_agents`` are agent names whose definitions cannot write (the built-in `plan`
    and `explore` always are). ``command_check`` is the repository's rule for blast-radius
    commands (default: the default gate programs)."""
    if any(d.code in _FATAL_READ for d in plan.diagnostics):
        return []
    out: list[Diagnostic] = []
    if plan.kind is not DocKind.PLAN or not plan.phases:
        what = {
            DocKind.EXECUTION_LOG: "an execution log",
            DocKind.TEMPLATE: "an unfilled plan template",
            DocKind.NOTE: "a note without phase headings",
        }.get(plan.kind, "a plan without phases")
        out.append(
            diagnostic(
                "E-NO-PHASES",
                Severity.ERROR,
                f"no phases to execute: this document is {what} "
                "(a phase is a '## Phase N: Name' or '### Phase N: Name' heading)",
                1,
            )
        )
        return out
    out.extend(_check_ids(plan))
    out.extend(_check_dependencies(plan))
    if agents is None and repo is not None:
        agents = known_agents(repo)
    out.extend(_check_phases(plan, repo, agents, command_check, unknown_owners))
    out.extend(_check_read_only_owners(plan, read_only_agents or set()))
    out.extend(_check_groups(plan))
    out.extend(_check_graph(plan))
    out.extend(_check_wave_files(plan))
    out.extend(_check_serialised(plan))
    if repo is not None:
        out.extend(_check_skills(plan, repo))
    return out


def _check_ids(plan: Plan) -> list[Diagnostic]:
    out = []
    first: dict[str, int] = {}
    for phase in plan.phases:
        key = phase.id.lower()
        if key in first:
            out.append(
                diagnostic(
                    "E-DUP-ID",
                    Severity.ERROR,
                    f"duplicate phase id {phase.id}: already defined at line {first[key]}",
                    phase.line,
                    phase.id,
                )
            )
        else:
            first[key] = phase.line
    return out


def _check_dependencies(plan: Plan) -> list[Diagnostic]:
    from plan_parser.schedule import find_cycle

    out = []
    defined = {phase.id.lower(): index for index, phase in enumerate(plan.phases)}
    by_id = {phase.id: phase for phase in plan.phases}
    if plan.deps_source == "document_order" and len(plan.phases) > 1:
        out.append(
            diagnostic(
                "W-DEPS-MISSING",
                Severity.WARNING,
                "no phase has a dependency field: phases will run one at a time in document order",
                plan.phases[0].line,
            )
        )
    elif plan.deps_source == "mermaid":
        out.append(
            diagnostic(
                "W-DEPS-MISSING",
                Severity.WARNING,
                "no phase has a dependency field: the order comes from the mermaid graph",
                plan.graph_edges[0][2],
            )
        )
    for index, phase in enumerate(plan.phases):
        line = phase.field_lines.get("depends_on", phase.line)
        if phase.depends_raw is None and plan.deps_source == "deps":
            out.append(
                diagnostic(
                    "W-DEPS-MISSING",
                    Severity.WARNING,
                    "no dependency field: treated as depending on nothing",
                    phase.line,
                    phase.id,
                    "depends_on",
                )
            )
        for dep in phase.depends_on:
            position = defined.get(dep.lower())
            if position is None:
                ids = [p.id for p in plan.phases]
                known = ", ".join(ids[:20]) + (", ..." if len(ids) > 20 else "")
                out.append(
                    diagnostic(
                        "E-DEP-UNKNOWN",
                        Severity.ERROR,
                        f"depends on Phase {dep}, which is not defined (phases: {known})",
                        line,
                        phase.id,
                        "depends_on",
                    )
                )
            elif position > index:
                out.append(
                    diagnostic(
                        "I-FORWARD-DEP",
                        Severity.INFO,
                        f"depends on Phase {dep}, defined later in the document",
                        line,
                        phase.id,
                        "depends_on",
                    )
                )
    cycle = find_cycle(plan)
    if cycle:
        path = " -> ".join(f"Phase {phase_id}" for phase_id in [*cycle, cycle[0]])
        start = by_id.get(cycle[0]) or plan.phases[0]
        out.append(
            diagnostic(
                "E-DEP-CYCLE",
                Severity.ERROR,
                f"dependency cycle: {path}",
                start.field_lines.get("depends_on", start.line),
                start.id,
                "depends_on",
            )
        )
    return out


def close_owner(raw: str, agents: set[str]) -> str | None:
    """The defined agent (or built-in type) a mistyped owner most likely means: by spelling,
    else by a shared word (`tester` → `feature-tester-rust`)."""
    wanted = slug(raw) or raw.lower()
    choices = [*sorted(agents), *sorted(set(BUILTIN_TYPES.values())), "human", "self"]
    close = difflib.get_close_matches(wanted, choices, n=1, cutoff=0.6)
    if close:
        return close[0]
    words = set(wanted.split("-")) - {"agent", "the", "a"}
    sharing = [name for name in sorted(agents) if words & set(name.split("-"))]
    return sharing[0] if len(sharing) == 1 else None


def _unknown_owner_message(
    raw: str, agent: str | None, agents: set[str], unknown_owners: UnknownOwners = "error"
) -> str:
    defined = sorted(agents)
    close = close_owner(raw, agents)
    hint = f"; did you mean '{close}'?" if close else ""
    listed = ", ".join(defined) if defined else "none"
    head = (
        f"owner '{raw}' names no agent: no .claude/agents/{agent or slug(raw)}.md, not a "
        f"built-in type (general-purpose, bash, explore, plan), not human or self. Agents "
        f"defined in the repository: {listed}{hint}"
    )
    if unknown_owners == "general-purpose":
        return f"{head}. It runs as general-purpose ({UNKNOWN_OWNERS_OPTION})"
    return (
        f"{head}. Fix the owner, add .claude/agents/{agent or slug(raw)}.md, or run unknown "
        f"owners as general-purpose with {UNKNOWN_OWNERS_OPTION}"
    )


def phase_writes(phase: Phase) -> bool:
    """Whether a phase's work is writing files: it declares files, or its title, goal or
    deliverables say it creates or changes something (design phases write documents too)."""
    if phase.files or phase.deliverables:
        return True
    return bool(_WRITING_WORDS.search(f"{phase.title} {phase.goal or ''}"))


def _check_read_only_owners(plan: Plan, read_only_agents: set[str]) -> list[Diagnostic]:
    """A read-only owner (the built-in `Plan` / `Explore`, or a definition without write
    tools) on a phase that creates or modifies files cannot do its work."""
    out = []
    for phase in plan.phases:
        owner = phase.owner
        if owner is None or owner.agent is None or not phase_writes(phase):
            continue
        builtin = owner.kind is OwnerKind.BUILTIN and owner.agent in READ_ONLY_TYPES
        defined = owner.kind is OwnerKind.AGENT_FILE and bool(
            {owner.agent, slug(owner.raw)} & read_only_agents
        )
        if not (builtin or defined):
            continue
        what = f"the built-in '{owner.agent}' agent" if builtin else f"agent '{owner.agent}'"
        out.append(
            diagnostic(
                "W-OWNER-READONLY",
                Severity.WARNING,
                f"owner '{owner.raw}' is {what}, which is read-only (it cannot create or change "
                "files), but this phase creates or modifies files: it will fail its file checks; "
                "give it a writing agent (e.g. general-purpose or one of .claude/agents/)",
                phase.field_lines.get("owner", phase.line),
                phase.id,
                "owner",
            )
        )
    return out


def _check_phases(
    plan: Plan,
    repo: Path | None,
    agents: set[str] | None,
    command_check: CommandCheck | None,
    unknown_owners: UnknownOwners = "error",
) -> list[Diagnostic]:
    out = []
    optional_ids = {phase.id.lower() for phase in plan.phases if phase.optional}
    if repo is not None and not (repo / ".claude" / "agents").is_dir():
        out.append(
            diagnostic(
                "W-AGENTS-MISSING",
                Severity.WARNING,
                f"{repo / '.claude' / 'agents'} does not exist: no owner has an agent definition",
                1,
            )
        )
    for phase in plan.phases:
        if phase.owner is None:
            out.append(
                diagnostic(
                    "E-OWNER-MISSING",
                    Severity.ERROR,
                    "no principal owner (Principal Owner / Subagent / Agent field)",
                    phase.line,
                    phase.id,
                    "owner",
                )
            )
        else:
            owner_line = phase.field_lines.get("owner", phase.line)
            if agents is not None:
                phase.owner = resolve_owner(phase.owner, agents)
                if phase.owner.kind is OwnerKind.UNKNOWN:
                    refuse = unknown_owners == "error"
                    out.append(
                        diagnostic(
                            "E-OWNER-UNKNOWN" if refuse else "W-OWNER-UNKNOWN",
                            Severity.ERROR if refuse else Severity.WARNING,
                            _unknown_owner_message(
                                phase.owner.raw, phase.owner.agent, agents, unknown_owners
                            ),
                            owner_line,
                            phase.id,
                            "owner",
                        )
                    )
            if phase.owner.kind is OwnerKind.HUMAN:
                out.append(
                    diagnostic(
                        "W-OWNER-HUMAN",
                        Severity.WARNING,
                        "owner is a person: the run pauses for them at this phase",
                        owner_line,
                        phase.id,
                        "owner",
                    )
                )
        if not phase.acceptance_criteria:
            out.append(
                diagnostic(
                    "E-AC-MISSING",
                    Severity.ERROR,
                    "no acceptance criteria (Acceptance Criteria / Pass when list)",
                    phase.line,
                    phase.id,
                    "acceptance_criteria",
                )
            )
        if phase.blast_radius is None:
            out.append(
                diagnostic(
                    "W-BLAST-MISSING",
                    Severity.WARNING,
                    "no blast radius: the default test scope will be used",
                    phase.line,
                    phase.id,
                    "blast_radius",
                )
            )
        else:
            problem = blast_problem(
                phase.blast_radius,
                phase.blast_commands,
                full_suite=not phase.blast_radius,
                check=command_check,
            )
            if problem is not None:
                out.append(
                    diagnostic(
                        problem.code,
                        Severity.ERROR if problem.error else Severity.WARNING,
                        problem.message,
                        phase.field_lines.get("blast_radius", phase.line),
                        phase.id,
                        "blast_radius",
                    )
                )
        optional_deps = [
            dep for dep in phase.depends_on if dep.lower() in optional_ids and not phase.optional
        ]
        if optional_deps:
            out.append(
                diagnostic(
                    "W-OPTIONAL-DEPENDENCY",
                    Severity.WARNING,
                    f"depends on optional Phase {', '.join(optional_deps)}: without optional "
                    "phases it runs without that phase's work (after its prerequisites)",
                    phase.field_lines.get("depends_on", phase.line),
                    phase.id,
                    "depends_on",
                )
            )
        if phase.completed_in_plan:
            out.append(
                diagnostic(
                    "I-MARKED-COMPLETE",
                    Severity.INFO,
                    f"heading marked '{', '.join(phase.markers)}': not run when its declared "
                    "files exist (like a complete checkpoint)",
                    phase.line,
                    phase.id,
                )
            )
        if phase.optional:
            markers = ", ".join(phase.markers) or "optional"
            out.append(
                diagnostic(
                    "W-SKIP-MARKER",
                    Severity.WARNING,
                    f"marked '{markers}': skipped unless optional phases are requested",
                    phase.line,
                    phase.id,
                    "optional",
                )
            )
        if not phase.files:
            out.append(
                diagnostic(
                    "I-FILES-MISSING",
                    Severity.INFO,
                    "no files to create/modify listed: file-existence checks are weak",
                    phase.line,
                    phase.id,
                    "files",
                )
            )
    return out


def _check_groups(plan: Plan) -> list[Diagnostic]:
    out = []
    depends = {phase.id.lower(): {d.lower() for d in phase.depends_on} for phase in plan.phases}
    for group in plan.groups:
        if "sequential" in group.name.lower():
            continue
        members = [member.lower() for member in group.phase_ids]
        for member in members:
            inside = sorted(depends.get(member, set()) & set(members), key=id_sort_key)
            if inside:
                out.append(
                    diagnostic(
                        "W-GROUP-CONFLICT",
                        Severity.WARNING,
                        f"group '{group.name}' runs Phase {member} alongside Phase "
                        f"{', '.join(inside)}, which it depends on; the dependency fields win",
                        group.line,
                        member,
                    )
                )
    return out


def _check_graph(plan: Plan) -> list[Diagnostic]:
    """A mermaid graph whose ordering (transitive closure) differs from the dependency fields."""
    from plan_parser.graphs import closure

    if plan.deps_source != "deps":
        return []  # the graph is the schedule itself
    out = []
    by_line: dict[int, set[tuple[str, str]]] = {}
    for before, after, line in plan.graph_edges:
        by_line.setdefault(line, set()).add((before, after))
    defined = {phase.id.lower() for phase in plan.phases}
    field_edges = {
        (dep.lower(), phase.id.lower())
        for phase in plan.phases
        for dep in phase.depends_on
        if dep.lower() in defined
    }
    for line, edges in sorted(by_line.items()):
        nodes = {node for edge in edges for node in edge} & defined
        drawn = {e for e in closure(edges) if e[0] in nodes and e[1] in nodes}
        written = {e for e in closure(field_edges) if e[0] in nodes and e[1] in nodes}
        if drawn == written:
            continue
        extra = ", ".join(f"{a}->{b}" for a, b in sorted(drawn - written)[:4]) or "none"
        missing = ", ".join(f"{a}->{b}" for a, b in sorted(written - drawn)[:4]) or "none"
        out.append(
            diagnostic(
                "W-GRAPH-CONFLICT",
                Severity.WARNING,
                f"the mermaid graph orders phases differently from the dependency fields (only "
                f"in the graph: {extra}; only in the fields: {missing}); the fields win",
                line,
            )
        )
    return out


def _check_wave_files(plan: Plan) -> list[Diagnostic]:
    from plan_parser.schedule import CycleError, waves

    try:
        layers = waves(plan, include_optional=True)
    except CycleError:
        return []
    by_id = {phase.id: phase for phase in plan.phases}
    out = []
    for layer in layers:
        owners: dict[str, str] = {}
        for phase_id in layer:
            phase = by_id[phase_id]
            for ref in phase.files:
                other = owners.get(ref.path)
                if other is not None and other != phase_id:
                    out.append(
                        diagnostic(
                            "W-WAVE-FILE-CONFLICT",
                            Severity.WARNING,
                            f"Phases {other} and {phase_id} run in the same wave and both "
                            f"declare {ref.path}",
                            ref.line or phase.line,
                            phase_id,
                            "files",
                        )
                    )
                else:
                    owners[ref.path] = phase_id
    return out


def _check_serialised(plan: Plan) -> list[Diagnostic]:
    """Say where the plan's own words (not its dependency fields) shaped the waves."""
    from plan_parser.schedule import CycleError, serialised

    try:
        reasons = serialised(plan, include_optional=True)
    except CycleError:
        return []
    by_id = {phase.id: phase for phase in plan.phases}
    return [
        diagnostic(
            "W-SERIALISED",
            Severity.WARNING,
            reason,
            by_id[phase_id].field_lines.get("parallel", by_id[phase_id].line),
            phase_id,
            "parallel",
        )
        for phase_id, reason in sorted(reasons.items(), key=lambda item: id_sort_key(item[0]))
    ]
