"""The client tools an agent gets: the Anthropic-defined text editor and bash, implemented by us,
and for verifier calls `record_verdict`, the only way a verifier gives a verdict.

Each tool is a small class with ``params()`` (what the API is told) and ``__call__`` (what runs),
returning one :class:`ToolResult`. A :class:`ToolCollection` dispatches by tool name and turns
every mistake of the model (bad input, a path outside the repository) into an error result,
never an exception: the model reads the error and can correct itself.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal, Protocol

from pydantic import BaseModel, Field

from plan_parser.errors import PlanExecutorError
from plan_parser.paths import lexical_relative
from tasks.agent.result import RecordedVerdict
from tasks.agent.sandbox import Sandbox, SandboxUnavailable
from tasks.shell import DEFAULT_OUTPUT_CAP

if TYPE_CHECKING:  # the SDK's shapes of what the API is told, for the type checker only
    from anthropic.types import (
        ToolBash20250124Param,
        ToolParam,
        ToolResultBlockParam,
        ToolTextEditor20250728Param,
        ToolUnionParam,
    )

EDITOR_TYPE: Final = "text_editor_20250728"
EDITOR_NAME: Final = "str_replace_based_edit_tool"
BASH_TYPE: Final = "bash_20250124"
BASH_NAME: Final = "bash"
VERDICT_NAME = "record_verdict"
REASON_CAP = 500
"""Characters of a verdict's reason kept (it goes into the ledger and the checkpoint)."""
VIEW_CAP = DEFAULT_OUTPUT_CAP
"""Characters of a file shown by one `view`; the model pages with `view_range`."""
DIRECTORY_LISTING_LIMIT = 500
MAX_FILE_BYTES = 10_000_000
"""Files larger than this are not loaded by the editor."""

# Claude Code tool names in an agent's `tools:` frontmatter, mapped to our two tools.
EDITOR_ALIASES = {"read", "write", "edit", "multiedit", "glob", "grep", "ls", "notebookedit"}
BASH_ALIASES = {"bash"}
EDITOR_WRITE_ALIASES = {"write", "edit", "multiedit", "notebookedit"}
"""Of the editor aliases, those that change files: `tools: Read, Grep` gets a viewing editor."""


class ToolResult(BaseModel):
    output: str
    is_error: bool = False
    path: str | None = None
    """The repository-relative path an editor call changed (for files_touched)."""
    command: str | None = None
    """The command a bash call ran (for commands_run)."""
    details: dict[str, object] = Field(default_factory=dict)
    """Flags for the loop and the details log (`misuse`, `internal`, a verdict's fields)."""

    def to_block(self, tool_use_id: str) -> ToolResultBlockParam:
        block: ToolResultBlockParam = {
            "type": "tool_result",
            "tool_use_id": tool_use_id,
            "content": self.output or "(no output)",
        }
        if self.is_error:
            block["is_error"] = True
        return block


class ToolInputError(PlanExecutorError, ValueError):
    """The model called a tool wrongly; the message goes back to it as an error result."""


ToolInput = dict[str, object]
"""A tool call's ``input`` as the model wrote it: every value is checked before it is used."""


class Tool(Protocol):
    name: str

    def params(self) -> ToolUnionParam: ...

    def __call__(self, tool_input: ToolInput) -> ToolResult: ...


def resolve_in_repo(root: Path, raw: object) -> Path:
    """``raw`` as an absolute path inside ``root``, symlinks resolved; else ToolInputError.

    Absolute paths are accepted only when they already point inside the repository. Every
    symlink on the way (a dangling leaf link too) is followed before the check.
    """
    if not isinstance(raw, str) or not raw.strip():
        raise ToolInputError("`path` must be a non-empty string")
    if "\x00" in raw:
        raise ToolInputError("`path` contains a NUL byte")
    candidate = Path(raw)
    target = Path(os.path.realpath(candidate if candidate.is_absolute() else root / candidate))
    if not target.is_relative_to(root):
        raise ToolInputError(
            f"path {raw!r} resolves outside the repository ({target}); "
            "only files inside the repository can be used"
        )
    return target


def _shown(root: Path, path: Path) -> str:
    """A path the editor already placed inside ``root``, as the agent sees it. As written, not
    resolved: a symlink in a listing is shown where it is, wherever it points."""
    rel = lexical_relative(root, path)
    if rel is None:  # resolve_in_repo let no such path through: a bug of the editor
        raise ValueError(f"{path} is not inside {root}")
    return rel


def _cap(text: str, cap: int, hint: str) -> str:
    if len(text) <= cap:
        return text
    return text[:cap] + f"\n[... cut at {cap} of {len(text)} characters; {hint} ...]"


class EditorTool:
    """`text_editor_20250728`: view, create, str_replace, insert (no undo_edit in this version)."""

    name = EDITOR_NAME

    def __init__(
        self,
        repo: Path,
        *,
        read_only: bool = False,
        max_characters: int | None = None,
        protected: list[Path] | None = None,
        hidden: list[Path] | None = None,
    ) -> None:
        from tasks.secrets import secret_paths

        self.root = Path(repo).resolve()
        self.read_only = read_only
        self.max_characters = max_characters
        self.protected = {Path(p).resolve() for p in protected or []}
        # The editor runs on the host, not in the sandbox: it must hide what the sandbox hides.
        # A hidden place that holds the repository hides only what lies outside it.
        self.hidden = [
            path
            for path in (Path(p).resolve() for p in (secret_paths() if hidden is None else hidden))
            if not self.root.is_relative_to(path)
        ]

    def params(self) -> ToolTextEditor20250728Param:
        params: ToolTextEditor20250728Param = {"type": EDITOR_TYPE, "name": EDITOR_NAME}
        if self.max_characters:
            params["max_characters"] = self.max_characters
        return params

    def __call__(self, tool_input: ToolInput) -> ToolResult:
        command = tool_input.get("command")
        handlers = {
            "view": self.view,
            "create": self.create,
            "str_replace": self.str_replace,
            "insert": self.insert,
        }
        if not isinstance(command, str) or command not in handlers:
            raise ToolInputError(f"unknown command {command!r}; use one of: {', '.join(handlers)}")
        target = resolve_in_repo(self.root, tool_input.get("path"))
        if self._is_hidden(target):
            raise ToolInputError(
                f"{_shown(self.root, target)} is hidden from agents (plan-executor's and "
                "Prefect's own files)"
            )
        if command != "view":
            self._check_writable(target)
        return handlers[command](target, tool_input)

    def _is_hidden(self, target: Path) -> bool:
        return any(target.is_relative_to(hidden) for hidden in self.hidden)

    def _check_writable(self, target: Path) -> None:
        if self.read_only:
            raise ToolInputError("this call is read-only: files can be viewed, not changed")
        if target in self.protected:
            raise ToolInputError(
                f"{_shown(self.root, target)} is read-only for agents: plan-executor keeps "
                "the plan and its checkpoints"
            )
        rel = target.relative_to(self.root).parts
        if rel and rel[0] == ".git":
            raise ToolInputError("files under .git/ are not edited directly; use git commands")

    def _read(self, target: Path, *, for_edit: bool = False) -> str:
        rel = _shown(self.root, target)
        if not target.exists():
            raise ToolInputError(f"{rel} does not exist")
        if not target.is_file():
            raise ToolInputError(f"{rel} is not a regular file")
        size = target.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ToolInputError(
                f"{rel} has {size} bytes (limit {MAX_FILE_BYTES}); read parts with bash (sed -n, head)"
            )
        data = target.read_bytes()
        if not for_edit:
            return data.decode("utf-8", errors="replace")
        try:  # editing a non-UTF-8 file through text would corrupt it
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ToolInputError(f"{rel} is not UTF-8 text; edit it with bash instead") from exc

    def view(self, target: Path, tool_input: ToolInput) -> ToolResult:
        rel = _shown(self.root, target)
        if target.is_dir():
            return ToolResult(output=self._listing(target))
        text = self._read(target)
        lines = text.splitlines()
        start, end = 1, len(lines)
        view_range = tool_input.get("view_range")
        if view_range is not None:
            if (
                not isinstance(view_range, list)
                or len(view_range) != 2
                or not all(isinstance(n, int) for n in view_range)
            ):
                raise ToolInputError("`view_range` must be [start, end] (1-based, end -1 = EOF)")
            start, end = view_range
            end = len(lines) if end == -1 else end
            if start < 1 or start > max(len(lines), 1) or end < start:
                raise ToolInputError(f"`view_range` {view_range} is outside 1..{len(lines)}")
            end = min(end, len(lines))
        numbered = "\n".join(f"{n}: {lines[n - 1]}" for n in range(start, end + 1))
        cap = min(self.max_characters or VIEW_CAP, VIEW_CAP)
        return ToolResult(output=_cap(numbered, cap, f"view {rel} with a view_range"))

    def _listing(self, directory: Path) -> str:
        entries: list[str] = []
        for current, dirs, files in os.walk(directory):
            here = Path(current)
            depth = len(here.relative_to(directory).parts)
            dirs[:] = sorted(
                d
                for d in dirs
                if not d.startswith(".") and d != "target" and not self._is_hidden(here / d)
            )
            if depth >= 2:
                dirs[:] = []
            for name in sorted(dirs):
                entries.append(_shown(self.root, here / name) + "/")
            for name in sorted(files):
                if not name.startswith("."):
                    entries.append(_shown(self.root, here / name))
            if len(entries) > DIRECTORY_LISTING_LIMIT:
                entries = entries[:DIRECTORY_LISTING_LIMIT] + ["[... listing cut ...]"]
                break
        header = f"Files and directories up to 2 levels deep in {_shown(self.root, directory)}:"
        return "\n".join([header, *entries])

    def create(self, target: Path, tool_input: ToolInput) -> ToolResult:
        text = tool_input.get("file_text")
        if not isinstance(text, str):
            raise ToolInputError("`file_text` (a string) is required for create")
        if target.is_dir():
            raise ToolInputError(f"{_shown(self.root, target)} is a directory")
        existed = target.exists()
        if existed and not target.is_file():
            # A FIFO made with bash would block this process forever on open; a device or
            # socket is no file to overwrite either.
            raise ToolInputError(f"{_shown(self.root, target)} is not a regular file")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        rel = _shown(self.root, target)
        verb = "Overwrote" if existed else "Created"
        return ToolResult(output=f"{verb} {rel} ({len(text)} characters)", path=rel)

    def str_replace(self, target: Path, tool_input: ToolInput) -> ToolResult:
        old, new = tool_input.get("old_str"), tool_input.get("new_str", "")
        if not isinstance(old, str) or not old:
            raise ToolInputError("`old_str` (a non-empty string) is required for str_replace")
        if not isinstance(new, str):
            raise ToolInputError("`new_str` must be a string")
        text = self._read(target, for_edit=True)
        rel = _shown(self.root, target)
        count = text.count(old)
        if count == 0:
            raise ToolInputError(f"no match for `old_str` in {rel}; it must match exactly")
        if count > 1:
            lines = [
                i + 1 for i, line in enumerate(text.splitlines()) if old.splitlines()[0] in line
            ]
            raise ToolInputError(
                f"`old_str` matches {count} times in {rel} (lines {lines[:10]}); "
                "include more context to make it unique"
            )
        target.write_text(text.replace(old, new, 1), encoding="utf-8")
        return ToolResult(output=f"Replaced 1 occurrence in {rel}", path=rel)

    def insert(self, target: Path, tool_input: ToolInput) -> ToolResult:
        # Older docs call the text `new_str`, newer ones `insert_text`: accept both.
        text = tool_input.get("insert_text", tool_input.get("new_str"))
        line = tool_input.get("insert_line")
        if not isinstance(text, str):
            raise ToolInputError("`insert_text` (a string) is required for insert")
        if not isinstance(line, int) or isinstance(line, bool):
            raise ToolInputError("`insert_line` (an integer, 0 = top of file) is required")
        content = self._read(target, for_edit=True)
        lines = content.splitlines(keepends=True)
        if line < 0 or line > len(lines):
            raise ToolInputError(f"`insert_line` {line} is outside 0..{len(lines)}")
        if lines and not lines[-1].endswith("\n") and line == len(lines):
            lines[-1] += "\n"
        addition = text if text.endswith("\n") else text + "\n"
        lines.insert(line, addition)
        target.write_text("".join(lines), encoding="utf-8")
        rel = _shown(self.root, target)
        return ToolResult(output=f"Inserted text after line {line} of {rel}", path=rel)


class BashTool:
    """`bash_20250124`, stateless: every command is a fresh shell in the sandbox.

    `cd` and `export` do not carry over between calls (the prompt says so); `restart` is a no-op
    that reports success.
    """

    name = BASH_NAME

    def __init__(
        self,
        sandbox: Sandbox,
        *,
        timeout_s: float = 120.0,
        output_cap: int = DEFAULT_OUTPUT_CAP,
    ) -> None:
        self.sandbox = sandbox
        self.timeout_s = timeout_s
        self.output_cap = output_cap

    def params(self) -> ToolBash20250124Param:
        return {"type": BASH_TYPE, "name": BASH_NAME}

    def __call__(self, tool_input: ToolInput) -> ToolResult:
        if tool_input.get("restart"):
            return ToolResult(output="bash restarted (every command already runs in a fresh shell)")
        command = tool_input.get("command")
        if not isinstance(command, str) or not command.strip():
            raise ToolInputError("`command` (a non-empty string) is required")
        try:
            result = self.sandbox.run(command, timeout_s=self.timeout_s, output_cap=self.output_cap)
        except SandboxUnavailable as exc:
            return ToolResult(output=str(exc), is_error=True, command=command)
        output = result.output
        if result.truncated:
            output += (
                f"\n[output was cut to {self.output_cap} of {result.output_chars} characters; "
                "redirect to a file and view parts of it if you need more]"
            )
        if result.timed_out:
            output += f"\n[killed after {self.timeout_s:g} s: the command timed out]"
        elif result.exit_code != 0:
            output += f"\n[exit code {result.exit_code}]"
        return ToolResult(
            output=output,
            is_error=not result.ok,
            command=command,
            details={
                "exit_code": result.exit_code,
                "timed_out": result.timed_out,
                "duration_s": result.duration_s,
                "output_chars": result.output_chars,
                "truncated": result.truncated,
            },
        )


def citation_problem(repo: Path, path: str, line: int) -> str:
    """Why ``path``:``line`` proves nothing in ``repo`` (empty when it is a line of a file there).

    Lines are counted as the editor's `view` numbers them, so a line the verifier saw is in range.
    """
    root = Path(repo).resolve()
    target = Path(os.path.realpath(root / path))
    if not target.is_relative_to(root) or not target.is_file():
        return f"cited file {path} does not exist"
    try:
        if target.stat().st_size > MAX_FILE_BYTES:
            with target.open("rb") as handle:
                count = sum(1 for _ in handle)
        else:
            count = len(target.read_text(encoding="utf-8", errors="replace").splitlines())
    except OSError:
        return f"cited file {path} cannot be read"
    if not 1 <= line <= count:
        return f"cited line {line} is outside {path} ({count} lines)"
    return ""


_VERDICTS: dict[str, Literal["PASS", "FAIL"]] = {"PASS": "PASS", "FAIL": "FAIL"}
_CRITERION_ID = re.compile(r"^\s*(?:criterion\s*)?#?\s*(?P<id>\d+)\s*$", re.I)


class VerdictTool:
    """`record_verdict`: one verdict on one acceptance criterion, by the plan's own number.

    The verifier's prose is never read for verdicts, so its phrasing (either numbering,
    `**PASS**`, a table) cannot turn a pass into a block. Mistakes come back as error results
    the model can correct; a criterion recorded twice keeps the last verdict.
    """

    name = VERDICT_NAME

    def __init__(self, repo: Path, criteria: list[str]) -> None:
        self.root = Path(repo).resolve()
        self.criteria = list(dict.fromkeys(str(c) for c in criteria))
        self.recorded: dict[str, RecordedVerdict] = {}

    def params(self) -> ToolParam:
        return {
            "name": VERDICT_NAME,
            "description": (
                "Record your verdict on one acceptance criterion. Call it once per criterion "
                "listed in the task; calling it again for a criterion replaces the earlier "
                "verdict. Only verdicts recorded here count: your text is not read. A PASS "
                "counts only with a citation of a file in the repository and a line inside it."
            ),
            "input_schema": {
                "type": "object",
                "properties": {
                    "criterion": {
                        "type": "string",
                        "enum": self.criteria,
                        "description": "The criterion's number as the task lists it "
                        "('criterion 3' is \"3\").",
                    },
                    "verdict": {"type": "string", "enum": ["PASS", "FAIL"]},
                    "path": {
                        "type": "string",
                        "description": "The file that proves the verdict, relative to the "
                        "repository root.",
                    },
                    "line": {
                        "type": "integer",
                        "minimum": 1,
                        "description": "The line of that file (1-based, as `view` numbers it).",
                    },
                    "reason": {"type": "string", "description": "One sentence: why."},
                },
                "required": ["criterion", "verdict", "path", "line", "reason"],
            },
        }

    def __call__(self, tool_input: ToolInput) -> ToolResult:
        verdict = RecordedVerdict(
            criterion=self._criterion(tool_input.get("criterion")),
            verdict=self._verdict(tool_input.get("verdict")),
            path=self._path(tool_input.get("path")),
            line=self._line(tool_input.get("line")),
            reason=self._reason(tool_input.get("reason")),
        )
        replaced = verdict.criterion in self.recorded
        self.recorded[verdict.criterion] = verdict
        details: dict[str, object] = {"criterion": verdict.criterion, "verdict": verdict.verdict}
        said = f"Recorded criterion {verdict.criterion}: {verdict.verdict}" + (
            " (replacing the earlier verdict)" if replaced else ""
        )
        missing = self.missing()
        left = (
            f" Still to record: {', '.join(f'criterion {c}' for c in missing)}."
            if missing
            else " Every criterion has a verdict."
        )
        problem = citation_problem(self.root, verdict.path, verdict.line)
        if problem:
            # Kept, but flagged: the flow checks the citation again and a PASS without a
            # valid one counts as FAIL, so the model is told while it can still correct it.
            return ToolResult(
                output=f"{said}, but {problem}: a verdict without a valid citation counts as "
                f"FAIL. Record it again citing a file and line that exist.{left}",
                is_error=True,
                details={**details, "citation": problem},
            )
        return ToolResult(output=f"{said}.{left}", details=details)

    def verdicts(self) -> list[RecordedVerdict]:
        """The last verdict of each criterion, in the order the criteria were given."""
        return [self.recorded[c] for c in self.criteria if c in self.recorded]

    def missing(self) -> list[str]:
        return [c for c in self.criteria if c not in self.recorded]

    def _criterion(self, raw: object) -> str:
        # "3", 3 and "criterion 3" name the same criterion: the model's form must not matter.
        match = _CRITERION_ID.match(str(raw)) if isinstance(raw, str | int) else None
        value = str(int(match["id"])) if match else str(raw)
        if value not in self.criteria:
            raise ToolInputError(
                f"unknown criterion {raw!r}: judge one of {', '.join(self.criteria)} "
                '(the numbers the task lists, e.g. "criterion 3" is "3")'
            )
        return value

    @staticmethod
    def _verdict(raw: object) -> Literal["PASS", "FAIL"]:
        # "pass" and "PASS" are the same verdict; "**PASS**" or "Passes" are not verdicts.
        found = _VERDICTS.get(raw.strip().upper()) if isinstance(raw, str) else None
        if found is None:
            raise ToolInputError(f"`verdict` must be PASS or FAIL, not {raw!r}")
        return found

    @staticmethod
    def _path(raw: object) -> str:
        if not isinstance(raw, str) or not raw.strip() or "\x00" in raw:
            raise ToolInputError("`path` (the file that proves the verdict) is required")
        return raw.strip()

    @staticmethod
    def _line(raw: object) -> int:
        if isinstance(raw, str) and raw.strip().isdigit():
            raw = int(raw)
        if not isinstance(raw, int) or isinstance(raw, bool) or raw < 1:
            raise ToolInputError(f"`line` must be a line number (1 or more), not {raw!r}")
        return raw

    @staticmethod
    def _reason(raw: object) -> str:
        if not isinstance(raw, str) or not raw.strip():
            raise ToolInputError("`reason` (one sentence) is required")
        return " ".join(raw.split())[:REASON_CAP]


class ToolCollection:
    """The tools of one call, dispatched by name."""

    def __init__(self, *tools: Tool) -> None:
        self.tools = tools
        self.by_name = {tool.name: tool for tool in tools}

    def params(self) -> list[ToolUnionParam]:
        return [tool.params() for tool in self.tools]

    def run(self, name: str, tool_input: object) -> ToolResult:
        tool = self.by_name.get(name)
        if tool is None:
            return ToolResult(
                output=f"unknown tool {name!r}; available: {', '.join(self.by_name)}",
                is_error=True,
                details={"misuse": True},
            )
        if not isinstance(tool_input, dict):
            return ToolResult(
                output="tool input must be a JSON object", is_error=True, details={"misuse": True}
            )
        try:
            return tool(tool_input)
        except ToolInputError as exc:
            return ToolResult(output=f"Error: {exc}", is_error=True, details={"misuse": True})
        except (OSError, UnicodeError) as exc:
            return ToolResult(output=f"Error: {type(exc).__name__}: {exc}", is_error=True)
        except Exception as exc:  # a bug of ours must not end the agent call
            return ToolResult(
                output=f"Internal tool error: {exc!r}", is_error=True, details={"internal": True}
            )


def allowed_tools(allowed: list[str] | None) -> tuple[bool, bool, bool]:
    """(editor, editor only views, bash) for a definition's `tools:` list (None allows both)."""
    names = (
        {name.strip().lower().split("(")[0] for name in allowed} if allowed is not None else None
    )
    editor = names is None or bool(names & (EDITOR_ALIASES | {EDITOR_NAME}))
    views_only = names is not None and not names & (EDITOR_WRITE_ALIASES | {EDITOR_NAME})
    bash = names is None or bool(names & BASH_ALIASES)
    return editor, views_only, bash


def tool_params_for(
    allowed: list[str] | None, *, repo: Path, verdict_criteria: list[str] | None = None
) -> list[ToolUnionParam]:
    """The `tools` of the requests :func:`tools_for` would send, built without a sandbox (the
    dry run's forecast counts them). Only the definitions: nothing here can run."""
    editor, _views_only, bash = allowed_tools(allowed)
    params: list[ToolUnionParam] = []
    if editor:
        params.append({"type": EDITOR_TYPE, "name": EDITOR_NAME})
    if bash:
        params.append({"type": BASH_TYPE, "name": BASH_NAME})
    if verdict_criteria:
        params.append(VerdictTool(repo, verdict_criteria).params())
    return params


def tools_for(
    allowed: list[str] | None,
    *,
    repo: Path,
    sandbox: Sandbox,
    read_only: bool,
    timeout_s: float,
    protected: list[Path] | None = None,
    verdict_criteria: list[str] | None = None,
) -> ToolCollection:
    """The tools an agent definition's `tools:` list allows (None allows both), and
    `record_verdict` for a read-only call that judges ``verdict_criteria``."""
    editor, views_only, bash = allowed_tools(allowed)
    tools: list[Tool] = []
    if editor:
        tools.append(EditorTool(repo, read_only=read_only or views_only, protected=protected))
    if bash:
        tools.append(BashTool(sandbox, timeout_s=timeout_s))
    if verdict_criteria:
        # Whatever the definition allows: without it the verifier could not answer at all.
        if not read_only:
            raise ValueError("record_verdict is for read-only (verifier) calls only")
        tools.append(VerdictTool(repo, verdict_criteria))
    return ToolCollection(*tools)
