"""Read a plan file into the :mod:`plan_parser.model` (markdown-it tokens, not line regexes).

Pipeline: decode bytes → cut the frontmatter off (its lines blanked so line numbers hold) →
repair mis-nested fences → markdown-it block tokens → headings → phase sections → labelled
fields → normalised values → validation. Nothing here raises on bad input: problems are
diagnostics on the returned plan.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from markdown_it.token import Token

from plan_parser import blocks, fences, frontmatter, graphs, parallel, source, values
from plan_parser.budget import plan_budget
from plan_parser.gate_commands import CommandCheck
from plan_parser.model import (
    Criterion,
    DocKind,
    FileRef,
    ParallelGroup,
    Phase,
    PhaseType,
    Plan,
    Severity,
    diagnostic,
)
from plan_parser.owners import clean_owner_text, normalise_owner
from plan_parser.validate import UnknownOwners, validate

_REFERENCE_CONTAINER = re.compile(
    r"execution order|implementation order|parallel|dependency graph|execution strategy"
    r"|synchroni[sz]ation|review summary|implementation summary|lessons learned"
    r"|execution checkpoints",
    re.IGNORECASE,
)
_REPORT_CONTAINER = re.compile(
    r"review summary|implementation summary|lessons learned|execution checkpoints", re.IGNORECASE
)
"""Sections that report on phases (never define one), as opposed to ordering sections, which
may hold the only definition of a phase in an ad-hoc plan."""
_TITLE_SKIP = re.compile(r"^planning process$", re.IGNORECASE)
_TEMPLATE_PLACEHOLDER = re.compile(
    r"\{\s*(fill in[^}]*|datetime|date|time|plan[ _-]?name|name|title|description)\s*\}",
    re.IGNORECASE,
)
_FILES_LABEL = re.compile(
    r"^(key |relevant )?files?( to (create|modify|update|delete|change|touch)"
    r"(\s*(/|and|or)\s*(create|modify|update|delete))?)?( \(.*\))?$"
)
MAX_PHASES = 500
"""The corpus maximum is 17; beyond this a document is not a plan a person wrote, and reading
on would only make validation and scheduling slow."""
_GROUP_HEADER = re.compile(r"group", re.IGNORECASE)
_PHASE_HEADER = re.compile(r"phase", re.IGNORECASE)

FIELD_KEYS = {
    "principal owner": "owner",
    "owner": "owner",
    "subagent": "owner",
    "agent": "owner",
    "assigned agent": "owner",
    "assigned to": "owner",
    "assignee": "owner",
    "dependencies": "depends_on",
    "prerequisites": "depends_on",
    "blocked by": "depends_on",
    "dependency": "depends_on",
    "deps": "depends_on",
    "depends on": "depends_on",
    "blast radius": "blast_radius",
    "deliverables": "deliverables",
    "deliverable": "deliverables",
    "deliver": "deliverables",
    "tasks": "deliverables",
    "acceptance criteria": "acceptance_criteria",
    "pass when": "acceptance_criteria",
    "success criteria": "acceptance_criteria",
    "exit criteria": "acceptance_criteria",
    "completion criteria": "acceptance_criteria",
    "done when": "acceptance_criteria",
    "definition of done": "acceptance_criteria",
    "goal": "goal",
    "objective": "goal",
    "purpose": "goal",
    "required skills": "skills",
    "suggested skills": "skills",
    "skills": "skills",
    "complexity": "complexity",
    "parallel": "parallel",
    "parallelizable": "parallel",
    "if failed": "on_failure",
    "technical details": "technical_details",
    "status": "status",
    "type": "type",
    "phase type": "type",
}
_MERGED_KEYS = {"skills", "files"}

_DESIGN_WORDS = re.compile(
    r"\b(design|architecture|architectural|investigat\w*|spike|adr|rfc|proposal"
    r"|pre-implementation research|strategy research)\b",
    re.IGNORECASE,
)
_IMPLEMENTATION_WORDS = re.compile(
    r"\b(implement\w*|fix\w*|add\w*|migrat\w*|refactor\w*|integrat\w*|tests?|testing|build"
    r"|create|update|remove|port|wire|cli)\b",
    re.IGNORECASE,
)
_DOC_DELIVERABLE = re.compile(r"\b(document|design doc|adr|spec|proposal|diagram)\b|\.md\b", re.I)
_CODE_DELIVERABLE = re.compile(r"\.(rs|py|ts|go|toml)\b|\b(implement|test|fn|struct|enum)\b", re.I)


def parse_plan(
    path: str | Path,
    *,
    repo: Path | None = None,
    agents: set[str] | None = None,
    command_check: CommandCheck | None = None,
    read_only_agents: set[str] | None = None,
    unknown_owners: UnknownOwners = "error",
) -> Plan:
    """Parse the plan file at `path`; unreadable or malformed input becomes diagnostics.

    With `repo` (or `agents`, the agent names it defines) owners must name an agent;
    `command_check` is the repository's rule for blast-radius commands, `read_only_agents` the
    agents whose definitions cannot write, `unknown_owners` whether an owner that names no agent
    is an error or runs as general-purpose (see validate)."""
    file_path = Path(path)
    checks = _Checks(repo, agents, command_check, read_only_agents, unknown_owners)
    return _parse(source.read(file_path), str(path), file_path.name, checks)


def parse_text(
    text: str,
    path: str = "<text>",
    *,
    repo: Path | None = None,
    agents: set[str] | None = None,
    command_check: CommandCheck | None = None,
    read_only_agents: set[str] | None = None,
    unknown_owners: UnknownOwners = "error",
) -> Plan:
    """Parse plan text as if it were the file `path` (the name decides execution logs)."""
    if len(text) > source.MAX_BYTES:
        src = source.too_large(len(text.encode("utf-8", errors="surrogatepass")))
    else:
        src = source.decode(text.encode("utf-8", errors="surrogatepass"))
    return _parse(
        src,
        path,
        Path(path).name,
        _Checks(repo, agents, command_check, read_only_agents, unknown_owners),
    )


def parse_bytes(
    data: bytes,
    path: str = "<bytes>",
    *,
    repo: Path | None = None,
    agents: set[str] | None = None,
    command_check: CommandCheck | None = None,
    read_only_agents: set[str] | None = None,
    unknown_owners: UnknownOwners = "error",
) -> Plan:
    """Parse file content already in memory (same checks as :func:`parse_plan`)."""
    checks = _Checks(repo, agents, command_check, read_only_agents, unknown_owners)
    return _parse(source.decode(data), path, Path(path).name, checks)


@dataclass(frozen=True)
class _Checks:
    """What validation knows about the target repository."""

    repo: Path | None = None
    agents: set[str] | None = None
    command_check: CommandCheck | None = None
    read_only_agents: set[str] | None = None
    unknown_owners: UnknownOwners = "error"


@dataclass
class _Candidate:
    heading: blocks.Heading
    parsed: values.PhaseHeading


def _slug_title(name: str) -> str:
    stem = name[:-3] if name.endswith(".md") else name
    stem = re.sub(r"^\d{4}-?\d{2}-?\d{2}\.?\s*", "", stem)
    stem = re.sub(r"^plan-for-", "", stem)
    return stem.strip() or name


def _parse(src: source.Source, path: str, name: str, checks: _Checks) -> Plan:
    plan = Plan(path=path, kind=DocKind.NOTE, title=_slug_title(name), title_source="slug")
    plan.diagnostics.extend(src.diagnostics)
    if not src.readable:
        return plan
    lines = src.text.split("\n")
    front = frontmatter.split(lines)
    if front.raw is not None:
        plan.frontmatter_raw = front.raw
        plan.frontmatter = front.data
        plan.frontmatter_valid = front.valid
        for index in range(front.end_line):
            lines[index] = ""
        if not front.valid and front.problem is None:
            plan.diagnostics.append(
                diagnostic(
                    "W-FM-INVALID",
                    Severity.WARNING,
                    f"frontmatter is not valid YAML ({front.error}); top-level keys read loosely",
                    front.error_line,
                )
            )
    if front.problem is not None:
        plan.frontmatter_valid = False
        plan.diagnostics.append(
            diagnostic(front.problem_code, Severity.ERROR, front.problem, front.error_line)
        )
    if front.raw is not None:  # the plan's phase budgets: a typo must not lift a limit
        plan.diagnostics.extend(plan_budget(front.data, front.key_lines)[1])
    fence_report = fences.check(lines)
    if fence_report.repaired_lines:
        where = ", ".join(str(line) for line in fence_report.repaired_lines)
        plan.diagnostics.append(
            diagnostic(
                "W-FENCE-NESTING",
                Severity.WARNING,
                f"code fences nested without longer outer fences; read as the author meant "
                f"(outer fences at lines {where})",
                fence_report.repaired_lines[0],
            )
        )
    if fence_report.unterminated_line is not None:
        plan.diagnostics.append(
            diagnostic(
                "W-FENCE-UNTERMINATED",
                Severity.WARNING,
                "a code fence is never closed: everything after it is read as code",
                fence_report.unterminated_line,
            )
        )
    tokens = blocks.tokenize("\n".join(fence_report.lines))
    heads = blocks.headings(tokens)
    _read_plan_header(plan, tokens, heads, front)
    is_log = "execution-of-" in name.lower() or "plan_file" in plan.frontmatter
    candidates = _phase_candidates(plan, heads)
    if is_log:
        plan.kind = DocKind.EXECUTION_LOG
    elif candidates:
        plan.kind = DocKind.PLAN
    elif _TEMPLATE_PLACEHOLDER.search(src.text):
        plan.kind = DocKind.TEMPLATE
    else:
        plan.kind = DocKind.NOTE
    if plan.kind is DocKind.PLAN:
        plan.phases = _read_phases(plan, candidates, tokens, heads, src.raw_lines)
        plan.groups = _read_groups(tokens, plan)
        plan.serial_notes, notes = parallel.read_serial_notes(tokens, plan.phases)
        plan.diagnostics.extend(notes)
        plan.graph_edges = [
            (before, after, graph.line)
            for graph in graphs.read_mermaid(tokens)
            for before, after in sorted(graph.edges)
        ]
        if not any(phase.depends_raw is not None for phase in plan.phases):
            defined = {phase.id.lower() for phase in plan.phases}
            drawn = any(a in defined and b in defined for a, b, _ in plan.graph_edges)
            plan.deps_source = "mermaid" if drawn else "document_order"
    plan.diagnostics.extend(
        validate(
            plan,
            repo=checks.repo,
            agents=checks.agents,
            command_check=checks.command_check,
            read_only_agents=checks.read_only_agents,
            unknown_owners=checks.unknown_owners,
        )
    )
    return plan


def _read_plan_header(
    plan: Plan, tokens: list[Token], heads: list[blocks.Heading], front: frontmatter.Frontmatter
) -> None:
    for head in heads:
        if head.level == 1 and not _TITLE_SKIP.match(head.text):
            plan.title = head.text
            plan.title_source = "h1"
            break
    first_h2 = next((h.index for h in heads if h.level >= 2), len(tokens))
    for index in range(first_h2):
        token = tokens[index]
        if token.type != "paragraph_open" or token.level != 0:
            continue
        line = token.map[0] + 1 if token.map else 0
        for found in blocks.paragraph_fields(tokens[index + 1].content, line):
            if found.key == "status" and plan.status is None:
                plan.status = found.value.strip()
                plan.status_line = found.line
            elif found.key in ("created", "date") and plan.created is None:
                plan.created = found.value.strip()
    if plan.status is None and isinstance(plan.frontmatter.get("status"), str):
        plan.status = str(plan.frontmatter["status"])
        plan.status_line = front.key_lines.get("status")
    if plan.created is None and isinstance(plan.frontmatter.get("created_at"), str):
        plan.created = str(plan.frontmatter["created_at"])
    if plan.created is None:
        match = re.match(r"^(\d{4}-\d{2}-\d{2})", Path(plan.path).name)
        plan.created = match.group(1) if match else None
    skills = plan.frontmatter.get("required_skills")
    if isinstance(skills, list):
        plan.skills = [str(skill) for skill in skills]
    important = plan.frontmatter.get("important_skills")
    if isinstance(important, dict):
        plan.skills.extend(str(key) for key in important if str(key) not in plan.skills)


def _phase_candidates(plan: Plan, heads: list[blocks.Heading]) -> list[_Candidate]:
    """Phase headings that define phases: not under a reference container, at the modal level."""
    stack: list[blocks.Heading] = []
    found: list[_Candidate] = []
    referenced: list[tuple[_Candidate, blocks.Heading]] = []
    for head in heads:
        while stack and stack[-1].level >= head.level:
            stack.pop()
        parsed = values.parse_phase_heading(head.text) if 2 <= head.level <= 4 else None
        if parsed is not None:
            container = next((h for h in stack if _REFERENCE_CONTAINER.search(h.text)), None)
            if container is not None:
                referenced.append((_Candidate(head, parsed), container))
            else:
                found.append(_Candidate(head, parsed))
        elif re.match(r"^\W*phase\s+\d", head.text, re.IGNORECASE):
            plan.diagnostics.append(
                diagnostic(
                    "I-PHASE-REF",
                    Severity.INFO,
                    f"'{head.text}' names a phase but is not a phase heading "
                    "(no ':' or '-' after the id)",
                    head.line,
                )
            )
        stack.append(head)
    # A phase heading under an execution-order, summary or parallelization section repeats a
    # phase defined elsewhere (real plans repeat their phase list there); one whose id is defined
    # nowhere else is kept, so a plan that puts all its phases under such a heading still has them.
    defined = {c.parsed.id.lower() for c in found}
    parents = {re.sub(r"[a-z]$", "", phase_id) for phase_id in defined}
    for candidate, container in referenced:
        phase_id = candidate.parsed.id.lower()
        if phase_id in defined or phase_id in parents or _REPORT_CONTAINER.search(container.text):
            plan.diagnostics.append(
                diagnostic(
                    "I-PHASE-REF",
                    Severity.INFO,
                    f"'{candidate.heading.text}' sits under '{container.text}' (line "
                    f"{container.line}): read as a reference, not a phase definition",
                    candidate.heading.line,
                )
            )
        else:
            found.append(candidate)
    found.sort(key=lambda c: c.heading.index)
    if not found:
        return found
    levels = [c.heading.level for c in found]
    modal = min(set(levels), key=lambda level: (-levels.count(level), level))
    for candidate in found:
        if candidate.heading.level != modal:
            plan.diagnostics.append(
                diagnostic(
                    "I-PHASE-REF",
                    Severity.INFO,
                    f"'{candidate.heading.text}' is an H{candidate.heading.level} while the "
                    f"plan's phases are H{modal}: not read as a phase",
                    candidate.heading.line,
                )
            )
    return [c for c in found if c.heading.level == modal]


def _section_ends(heads: list[blocks.Heading]) -> dict[int, blocks.Heading | None]:
    """For each heading (by token index), the next heading of the same or a higher level."""
    ends: dict[int, blocks.Heading | None] = {}
    open_heads: list[blocks.Heading] = []
    for head in heads:
        while open_heads and open_heads[-1].level >= head.level:
            ends[open_heads.pop().index] = head
        open_heads.append(head)
    for head in open_heads:
        ends[head.index] = None
    return ends


def _read_phases(
    plan: Plan,
    candidates: list[_Candidate],
    tokens: list[Token],
    heads: list[blocks.Heading],
    raw_lines: list[str],
) -> list[Phase]:
    phases: list[Phase] = []
    dep_values: list[tuple[str, int] | None] = []
    if len(candidates) > MAX_PHASES:
        plan.diagnostics.append(
            diagnostic(
                "E-TOO-MANY-PHASES",
                Severity.ERROR,
                f"{len(candidates)} phase headings; only the first {MAX_PHASES} are read",
                candidates[MAX_PHASES].heading.line,
            )
        )
        candidates = candidates[:MAX_PHASES]
    ends = _section_ends(heads)
    for candidate in candidates:
        head = candidate.heading
        boundary = ends.get(head.index)
        end_index = boundary.index if boundary else len(tokens)
        end_line = boundary.line - 1 if boundary else len(raw_lines)
        phase = Phase(
            id=candidate.parsed.id,
            title=candidate.parsed.title,
            heading_raw=head.text,
            line=head.line,
            end_line=max(end_line, head.line),
            optional=candidate.parsed.optional,
            completed_in_plan=candidate.parsed.completed,
            heading_level=head.level,
            markers=candidate.parsed.markers,
            body="".join(raw_lines[head.line - 1 : end_line]),
        )
        fields = blocks.section_fields(tokens, head.index + 3, end_index, head.level)
        dep_values.append(_apply_fields(plan, phase, fields))
        _classify_type(phase)
        phases.append(phase)
    defined = [phase.id for phase in phases]
    for position, (phase, dep) in enumerate(zip(phases, dep_values, strict=True)):
        if dep is None:
            continue
        raw, line = dep
        deps = values.parse_dependencies(raw, defined, position)
        phase.depends_on = deps.ids
        phase.depends_soft = deps.soft_ids
        phase.depends_note = deps.note
        for parent in deps.parents:
            plan.diagnostics.append(
                diagnostic(
                    "W-DEP-PARENT",
                    Severity.WARNING,
                    f"'Phase {parent}' is not defined; read as its lettered sub-phases",
                    line,
                    phase.id,
                    "depends_on",
                )
            )
    return phases


def _apply_fields(plan: Plan, phase: Phase, fields: list[blocks.Field]) -> tuple[str, int] | None:
    """Copy recognised fields onto `phase`; returns the raw dependency value for later."""
    seen: set[str] = set()
    dependency: tuple[str, int] | None = None
    direct = [item for item in fields if item.source != "list"]
    listed = [item for item in fields if item.source == "list"]
    for item in direct + listed:
        key = FIELD_KEYS.get(item.key)
        if key is None and _FILES_LABEL.match(item.key):
            key = "files"
        if key is None:
            if item.source not in ("heading", "list") and item.key not in phase.extra_fields:
                phase.extra_fields[item.label] = item.value
            continue
        if key in seen and (key not in _MERGED_KEYS or item.source == "list"):
            continue
        if item.source == "list" and key in phase.field_lines:
            continue
        seen.add(key)
        phase.field_lines.setdefault(key, item.line)
        value = item.value.strip()
        if not value and item.block is not None and item.block.kind == "paragraph":
            value = " ".join(item.block.text.split())
            item.value, item.block = value, None
        if key == "owner":
            text = clean_owner_text(value)
            if text and not values.is_placeholder(text):
                phase.owner = normalise_owner(text)
        elif key == "depends_on":
            phase.depends_raw = value
            dependency = (value, item.line)
        elif key == "blast_radius":
            blast = values.parse_blast_radius(value)
            phase.blast_radius = blast.text
            phase.blast_commands = blast.commands
            phase.blast_runnable = blast.runnable
            phase.blast_prose = blast.prose
        elif key == "files":
            phase.files.extend(_files(item))
        elif key == "deliverables":
            phase.deliverables = _items(item)
            if item.block is not None and item.block.kind == "code":
                phase.extra_fields["deliverable_code"] = item.block.text
        elif key == "acceptance_criteria":
            phase.acceptance_criteria = _criteria(item)
        elif key == "goal":
            phase.goal = _joined(item)
        elif key == "skills":
            phase.skills.extend(s for s in values.parse_skills(value) if s not in phase.skills)
        elif key == "complexity":
            phase.complexity = value or None
        elif key == "parallel":
            phase.parallel_hint = value or None
            phase.exclusive = parallel.forbids_parallel(value)
        elif key == "type":
            _explicit_type(phase, value)
        else:
            phase.extra_fields[key] = _joined(item)
    return dependency


def _joined(item: blocks.Field) -> str:
    parts = [item.value] if item.value else []
    if item.block is not None:
        if item.block.items:
            parts.extend(f"- {entry.text}" for entry in item.block.items)
        elif item.block.text:
            parts.append(item.block.text.rstrip())
    return "\n".join(parts).strip()


def _items(item: blocks.Field) -> list[str]:
    if item.block is not None and item.block.kind == "list":
        return [entry.text for entry in item.block.items]
    value = item.value.strip()
    return [value] if value and not value.endswith(":") else []


def _criteria(item: blocks.Field) -> list[Criterion]:
    if item.block is not None and item.block.kind == "list":
        return [
            Criterion(text=entry.text, checked=entry.checked, line=entry.line)
            for entry in item.block.items
        ]
    value = item.value.strip()
    if value and not value.endswith(":"):
        return [Criterion(text=value, checked=None, line=item.line)]
    return []


def _files(item: blocks.Field) -> list[FileRef]:
    action = values.file_action(item.key)
    refs: list[FileRef] = []
    entries: list[tuple[str, int]] = []
    if item.block is not None and item.block.kind == "list":
        entries = [(entry.text, entry.line) for entry in item.block.items]
    value = item.value.strip()
    if value and not value.endswith(":"):
        entries = [(part, item.line) for part in values.split_inline_list(value)] + entries
    for text, line in entries:
        ref = values.parse_file_item(text, action, line)
        if ref is not None:
            refs.append(ref)
    return refs


def _explicit_type(phase: Phase, value: str) -> None:
    lowered = value.lower()
    if "design" in lowered:
        phase.type, phase.type_source = PhaseType.DESIGN, "explicit"
    elif "implement" in lowered:
        phase.type, phase.type_source = PhaseType.IMPLEMENTATION, "explicit"


def _classify_type(phase: Phase) -> None:
    """Design vs implementation from the name, goal and deliverables; `research` is no signal
    (it names a product package in the corpus). An explicit `**Type:**` field wins."""
    if phase.type_source == "explicit":
        return
    title_design = bool(_DESIGN_WORDS.search(phase.title))
    title_code = bool(_IMPLEMENTATION_WORDS.search(phase.title))
    goal = phase.goal or ""
    goal_design = bool(re.match(r"^\W*(design|investigate|decide|evaluate|draft)\b", goal, re.I))
    deliverables = phase.deliverables
    docs_only = bool(deliverables) and all(
        _DOC_DELIVERABLE.search(d) and not _CODE_DELIVERABLE.search(d) for d in deliverables
    )
    if (title_design and not title_code) or (goal_design and (docs_only or title_design)):
        phase.type, phase.type_source = PhaseType.DESIGN, "heuristic"


def _read_groups(tokens: list[Token], plan: Plan) -> list[ParallelGroup]:
    """Rows of group tables (`Parallel Group | Phases | ...`) anywhere in the plan."""
    groups: list[ParallelGroup] = []
    defined = [phase.id for phase in plan.phases]
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if token.type != "table_open":
            index += 1
            continue
        block, index = blocks.read_block(tokens, index)
        rows = block.rows
        if not rows or not rows[0] or not _GROUP_HEADER.search(rows[0][0]):
            continue
        phase_column = next(
            (n for n, cell in enumerate(rows[0]) if _PHASE_HEADER.search(cell) and n > 0), None
        )
        if phase_column is None:
            continue
        for offset, row in enumerate(rows[1:], start=1):
            if len(row) <= phase_column:
                continue
            deps = values.parse_dependencies(
                values.strip_parens(row[phase_column]).replace("\u2192", ","), defined
            )
            if deps.ids:
                name = row[0].replace("**", "").strip()
                groups.append(
                    ParallelGroup(name=name, phase_ids=deps.ids, line=block.line + offset + 1)
                )
    return groups
