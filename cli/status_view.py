"""What `plan-executor status` prints: a narrow table of the phases, then each unfinished
phase's reason and failing checks as indented text.

The reasons and ledger lines are long (a command, its counts, a diff); in a table column they
wrapped one word a line at 80 columns and were cut. Below the table they get the whole width,
wrapped with a hanging indent, and a ledger line keeps its `[fail]` and its own line breaks.
"""

from __future__ import annotations

import textwrap
from datetime import datetime

from rich.console import Console
from rich.table import Table
from rich.text import Text

from plan_parser.checkpoints import ExecutionState, PhaseCheckpoint

STATUS_STYLE = {
    "pending": "dim",
    "running": "yellow",
    "complete": "green",
    "failed": "red",
    "blocked": "red",
    "timeout": "magenta",
    "budget": "yellow",
    "skipped": "dim",
}


def _moment(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _took(checkpoint: PhaseCheckpoint) -> str:
    start = _moment(checkpoint.started_at)
    end = _moment(checkpoint.completed_at or checkpoint.failed_at)
    if start is None or end is None:
        return ""
    seconds = max(0, int((end - start).total_seconds()))
    return f"{seconds}s" if seconds < 60 else f"{seconds // 60}m{seconds % 60:02d}s"


def _started(checkpoint: PhaseCheckpoint) -> str:
    moment = _moment(checkpoint.started_at)
    if moment is None:
        return checkpoint.started_at or ""
    return f"{moment:%Y-%m-%d %H:%M}"


def phase_table(state: ExecutionState) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("phase", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("started (UTC)", no_wrap=True)
    table.add_column("took", no_wrap=True, justify="right")
    table.add_column("tokens", no_wrap=True, justify="right")
    priced = any(checkpoint.cost_usd is not None for checkpoint in state.phases.values())
    if priced:
        table.add_column("cost", no_wrap=True, justify="right")
    table.add_column("flow run", no_wrap=True)
    for pid, checkpoint in state.phases.items():
        cost = "" if checkpoint.cost_usd is None else f"${checkpoint.cost_usd:.4f}"
        table.add_row(
            pid,
            Text(checkpoint.status, style=STATUS_STYLE.get(checkpoint.status, "")),
            _started(checkpoint),
            _took(checkpoint),
            str(sum((checkpoint.tokens or {}).values()) or ""),
            *([cost] if priced else []),
            (checkpoint.flow_run_id or "")[:8],
        )
    return table


def _hanging(text: str, width: int, first: str, rest: str) -> list[str]:
    """``text`` wrapped to ``width`` after the prefix ``first``, continuation lines after
    ``rest`` (words are never split unless longer than a line)."""
    return textwrap.wrap(
        text,
        width=max(width, len(rest) + 20),
        initial_indent=first,
        subsequent_indent=rest,
        break_on_hyphens=False,
        replace_whitespace=False,
        drop_whitespace=True,
    ) or [first.rstrip()]


def phase_details(state: ExecutionState, width: int) -> list[Text]:
    """Per phase that has one: `phase N <status>: <error>`, then its failing checks indented,
    each line at most ``width`` characters."""
    lines: list[Text] = []
    for pid, checkpoint in state.phases.items():
        if not checkpoint.error and not checkpoint.ledger:
            continue
        head = f"phase {pid} {checkpoint.status}" + (
            f": {checkpoint.error}" if checkpoint.error else ""
        )
        for number, line in enumerate(_hanging(head, width, "", "    ")):
            text = Text(line)
            if number == 0:
                text.stylize("bold", 0, len(f"phase {pid}"))
                at = len(f"phase {pid} ")
                text.stylize(
                    STATUS_STYLE.get(checkpoint.status, ""), at, at + len(checkpoint.status)
                )
            lines.append(text)
        for entry in checkpoint.ledger:
            first, *rest = entry.splitlines() or [""]
            lines += [Text(line) for line in _hanging(first, width, "  ", "      ")]
            for detail in rest:  # a diff or an output tail: its own lines, indented
                lines += [Text(line) for line in _hanging(detail, width, "    ", "      ")]
    return lines


def print_status(
    plan: str,
    status: str,
    state: ExecutionState | None,
    console: Console | None = None,
    *,
    footer: str = "",
) -> None:
    """The plan, its status, the phase table, ``footer`` (e.g. the cost line), then each
    unfinished phase's reason and failing checks."""
    console = console or Console()

    def say(line: Text) -> None:
        console.print(line, markup=False, highlight=False, soft_wrap=True)

    say(Text(f"Plan: {plan}"))
    say(Text(f"Status: {status or '(none)'}"))
    if state is None or not state.phases:
        say(Text("No execution checkpoints: the plan has not been run."))
        return
    console.print()
    console.print(phase_table(state))
    for footer_line in _hanging(footer, console.width, "", "    ") if footer else []:
        say(Text(footer_line))
    details = phase_details(state, console.width)
    if details:
        console.print()
        for line in details:
            say(line)
