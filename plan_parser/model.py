"""The plan model: what a plan file says, as data.

Everything downstream (scheduling, flows, gates, the checkpoint mirror) reads these models and
never the Markdown. Line numbers are 1-based lines of the original file.
"""

from __future__ import annotations

import hashlib
import re
from enum import StrEnum

from pydantic import BaseModel, Field

from plan_parser.ids import id_key as id_key  # re-exported: importers use this name

_RULE_LINE = re.compile(r"\s{0,3}([-*_])(\s*\1){2,}\s*")


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


class Diagnostic(BaseModel):
    """One result of validation: a code, how bad it is, and where."""

    code: str
    severity: Severity
    message: str
    line: int | None = None
    phase_id: str | None = None
    field: str | None = None

    def render(self, file: str) -> str:
        where = f"{file}:{self.line}" if self.line else file
        scope = f" phase {self.phase_id}" if self.phase_id else ""
        field = f" [{self.field}]" if self.field else ""
        return f"{where}: {self.severity.value} {self.code}{scope}{field}: {self.message}"


def diagnostic(
    code: str,
    severity: Severity,
    message: str,
    line: int | None,
    phase_id: str | None = None,
    field: str | None = None,
) -> Diagnostic:
    """A Diagnostic from positional parts (the parser and the validator build many)."""
    return Diagnostic(
        code=code, severity=severity, message=message, line=line, phase_id=phase_id, field=field
    )


class DocKind(StrEnum):
    PLAN = "plan"
    EXECUTION_LOG = "execution-log"
    NOTE = "note"
    TEMPLATE = "template"


class PhaseType(StrEnum):
    DESIGN = "design"
    IMPLEMENTATION = "implementation"


class OwnerKind(StrEnum):
    AGENT_FILE = "agent_file"
    """Names an agent definition in `.claude/agents/` (by file stem or display name)."""
    BUILTIN = "builtin"
    """A built-in agent type (general-purpose, Bash, Explore, Plan): a role prompt of ours."""
    HUMAN = "human"
    """A person does the work: the run pauses for them."""
    ORCHESTRATOR = "orchestrator"
    """`self` / `None (orchestrator)`: no agent call; plan-executor runs only the gates."""
    UNKNOWN = "unknown"
    """A name with no known definition: a warning, and general-purpose is used."""


class Owner(BaseModel):
    raw: str
    """The owner text as written, without backticks or emphasis."""
    kind: OwnerKind
    agent: str | None = None
    """Normalised agent id: an agent file stem (`rust-developer`) or a built-in type
    (`general-purpose`, `bash`, `explore`, `plan`); None for human and orchestrator."""


class FileAction(StrEnum):
    CREATE = "create"
    MODIFY = "modify"
    DELETE = "delete"
    UNSPECIFIED = "unspecified"


class FileRef(BaseModel):
    path: str
    action: FileAction = FileAction.UNSPECIFIED
    description: str = ""
    line: int | None = None
    is_glob: bool = False


class Criterion(BaseModel):
    text: str
    checked: bool | None = None
    """None when the item is not a checkbox."""
    line: int | None = None


class Phase(BaseModel):
    id: str
    """The author's id text (`0`, `2.5`, `7a`, `1A`); compare with :func:`id_key`."""
    title: str
    """The heading name with markers such as `(PARALLEL)`, `(NEW)` and status emoji removed."""
    heading_raw: str
    line: int
    end_line: int
    owner: Owner | None = None
    depends_on: list[str] = Field(default_factory=list)
    depends_raw: str | None = None
    blast_radius: str | None = None
    """The test scope as written (commands in backticks unwrapped), or None when absent."""
    blast_commands: list[str] = Field(default_factory=list)
    """Runnable commands extracted from the blast radius; empty for prose."""
    blast_runnable: bool = False
    blast_prose: str | None = None
    """What the blast radius asks beyond its commands (`manual testing with -v flag`): the gates
    record it as not run."""
    files: list[FileRef] = Field(default_factory=list)
    deliverables: list[str] = Field(default_factory=list)
    acceptance_criteria: list[Criterion] = Field(default_factory=list)
    goal: str | None = None
    optional: bool = False
    type: PhaseType = PhaseType.IMPLEMENTATION
    type_source: str = "default"
    """`explicit` (a `**Type:**` field), `heuristic`, or `default`."""
    skills: list[str] = Field(default_factory=list)
    parallel_hint: str | None = None
    exclusive: bool = False
    """The author said it must not run alongside other phases (`**Parallel:** No`): it gets a
    wave of its own even when its dependencies would let it share one."""
    completed_in_plan: bool = False
    """The heading says a person already finished it (`✅ COMPLETE`); the flow decides what that
    means (it treats it like a `complete` checkpoint)."""
    complexity: str | None = None
    field_lines: dict[str, int] = Field(default_factory=dict)
    """Source line of each recognised field, keyed by canonical field name."""
    heading_level: int = 3
    markers: list[str] = Field(default_factory=list)
    """Heading markers removed from the title (`PARALLEL`, `Optional Cleanup`, `✅ COMPLETE`)."""
    depends_soft: list[str] = Field(default_factory=list)
    """Ids named after a `;` in the dependency value: ordering hints, not hard dependencies."""
    depends_note: str | None = None
    extra_fields: dict[str, str] = Field(default_factory=dict)
    body: str = ""
    """The exact source text of the phase section, heading included (for prompts and hashing)."""

    @property
    def owner_kind(self) -> OwnerKind:
        """Who does the phase's work; a phase that names no owner is the orchestrator's own."""
        return self.owner.kind if self.owner else OwnerKind.ORCHESTRATOR

    @property
    def owner_label(self) -> str:
        """The owner as reports and checkpoints show it: `self` when the phase names none (an
        agent call of such a phase runs general-purpose: tasks.agent.roles.agent_owner)."""
        return self.owner.raw if self.owner else "self"

    @property
    def body_hash(self) -> str:
        """Fingerprint of the phase text for resume: insensitive to line endings, trailing
        spaces and trailing blank or `---` lines, so a section appended after the last phase
        (checkpoints, summary) or a status-line edit elsewhere does not change it."""
        lines = [line.rstrip() for line in self.body.replace("\r\n", "\n").split("\n")]
        while lines and (not lines[-1] or _RULE_LINE.fullmatch(lines[-1])):
            lines.pop()
        return hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()[:16]


class ParallelGroup(BaseModel):
    name: str
    phase_ids: list[str]
    line: int | None = None
    source: str = "group_table"


class SerialNote(BaseModel):
    """Prose saying that some phases must not run at the same time."""

    text: str
    line: int
    phase_ids: list[str]


class Plan(BaseModel):
    path: str
    kind: DocKind
    title: str
    created: str | None = None
    status: str | None = None
    """Implementation status as written in the body's `**Status:**` line (or frontmatter)."""
    status_line: int | None = None
    frontmatter_raw: str | None = None
    frontmatter: dict[str, object] = Field(default_factory=dict)
    frontmatter_valid: bool = True
    phases: list[Phase] = Field(default_factory=list)
    groups: list[ParallelGroup] = Field(default_factory=list)
    skills: list[str] = Field(default_factory=list)
    """Plan-level skills (frontmatter required_skills / important_skills)."""
    serial_notes: list[SerialNote] = Field(default_factory=list)
    """Prose notes naming phases that must not share a wave (the schedule honours them)."""
    graph_edges: list[tuple[str, str, int]] = Field(default_factory=list)
    """Edges `(before, after, line)` of mermaid dependency graphs written in the plan (phase ids
    lower-cased); only cross-checked against the dependency fields, never scheduled."""
    title_source: str = "h1"
    """`h1` (a title heading) or `slug` (from the file name)."""
    deps_source: str = "deps"
    """Where the schedule comes from: `deps` when any phase has a dependency field, else
    `mermaid` when the plan draws a dependency graph over its phases, else `document_order`
    (phases run one at a time)."""
    diagnostics: list[Diagnostic] = Field(default_factory=list)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity is Severity.ERROR]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity is Severity.WARNING]

    def phase(self, phase_id: str) -> Phase:
        wanted = id_key(phase_id)
        for phase in self.phases:
            if id_key(phase.id) == wanted:
                return phase
        raise KeyError(phase_id)
