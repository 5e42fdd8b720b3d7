"""What a plan's own text says about whether its work is done: pure reading, no git.

The nightly run asks "is this plan already implemented?" before any agent call
(`tasks.plan_evidence` adds what git knows). From the text alone come: the paths a phase names
(its declared files and every backticked path in its deliverables, tasks and criteria: compact
plans name their files only in prose), the phases a person marked done (a `✅ … COMPLETE`
heading, every acceptance checkbox ticked), and whether an execution log is about the plan.

Frontmatter `status` is never read here: it records the planning session, not the implementation
(`done` means the plan was written).
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from plan_parser.model import DocKind, Phase, Plan

_FENCE = re.compile(r"^\s*(`{3,}|~{3,})")
_CODE_SPAN = re.compile(r"`([^`\n]+)`")
_LINE_SUFFIX = re.compile(r":\d+(?:-\d+)?$")
_EXTENSION = re.compile(r"\.[A-Za-z][A-Za-z0-9]{0,7}$")
_NOT_IN_PATHS = re.compile(r"[\s()\[\]{}<>*?$|;,'\"=]|::|://")
_DATE_SLUG = re.compile(r"^\d{4}-\d{2}-\d{2}\.\s*")


def _outside_fences(text: str) -> str:
    """``text`` without fenced code blocks: a TOML or shell snippet is not a list of files."""
    kept: list[str] = []
    fence: str | None = None
    for line in text.splitlines():
        match = _FENCE.match(line)
        if fence is None and match:
            fence = match.group(1)[0]
            continue
        if fence is not None:
            if match and match.group(1)[0] == fence:
                fence = None
            continue
        kept.append(line)
    return "\n".join(kept)


def as_path(token: str) -> str | None:
    """``token`` (a code span's text) as a repository-relative file path, or None.

    A path has a `/` or a file extension and nothing a path in a plan never has (spaces,
    brackets, globs, `::`, URLs); `src/x.rs:12-20` names `src/x.rs`.
    """
    token = token.strip().rstrip(".,;:")
    token = _LINE_SUFFIX.sub("", token)
    while token.startswith("./"):
        token = token[2:]
    if not token or token.startswith(("/", "~", "-")) or _NOT_IN_PATHS.search(token):
        return None
    name = PurePosixPath(token).name
    if "/" not in token and (not _EXTENSION.search(name) or name.startswith(".")):
        return None  # `.db` is an extension named in prose, not a file
    if not re.search(r"[A-Za-z]", name) or ".." in PurePosixPath(token).parts:
        return None
    return token.rstrip("/")


def named_paths(phase: Phase) -> list[str]:
    """The paths a phase names: declared files first, then backticked paths in its text."""
    found: list[str] = []
    for ref in phase.files:
        if not ref.is_glob and ref.path not in found:
            found.append(ref.path.removeprefix("./"))
    for span in _CODE_SPAN.finditer(_outside_fences(phase.body)):
        path = as_path(span.group(1))
        if path is not None and path not in found:
            found.append(path)
    return found


def created_paths(phase: Phase) -> list[str]:
    """The files a phase declares it creates (`**Files to create:**`, `(new)`)."""
    return [ref.path for ref in phase.files if ref.action.value == "create" and not ref.is_glob]


def marked_done(phase: Phase) -> str | None:
    """Why a person's markers say the phase is done (None when they do not).

    A `✅ … COMPLETE` heading (not `PARTIAL COMPLETE`), or acceptance criteria that are all
    ticked checkboxes. Markers are a person's or another tool's: plan-executor never ticks them.
    """
    heading = phase.heading_raw.upper()
    if "✅" in phase.heading_raw and "PARTIAL" not in heading:
        return "✅ in its heading"
    for marker in phase.markers:
        upper = marker.upper()
        if "COMPLETE" in upper and "PARTIAL" not in upper:
            return f"heading marker {marker!r}"
    boxes = [c for c in phase.acceptance_criteria if c.checked is not None]
    if boxes and all(c.checked for c in boxes):
        return f"all {len(boxes)} acceptance criteria ticked [x]"
    return None


def plan_slug(file_name: str) -> str:
    """The plan's name without date, `plan-for-` / `execution-of-` and `.md`, lower-case."""
    stem = _DATE_SLUG.sub("", file_name.strip()).removesuffix(".md").strip().lower()
    for prefix in ("plan-for-", "execution-of-"):
        stem = stem.removeprefix(prefix)
    return stem


def logs_plan(log: Plan, plan_file_name: str) -> bool:
    """Whether the execution log ``log`` is about the plan file named ``plan_file_name``:
    its frontmatter `plan_file` names it, or its `execution-of-<name>` matches the plan's."""
    if log.kind is not DocKind.EXECUTION_LOG:
        return False
    target = log.frontmatter.get("plan_file") if isinstance(log.frontmatter, dict) else None
    if target:
        return PurePosixPath(str(target).strip()).name == plan_file_name
    log_name = PurePosixPath(log.path).name
    return "execution-of-" in log_name.lower() and plan_slug(log_name) == plan_slug(plan_file_name)
