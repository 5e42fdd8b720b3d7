"""The terminal view of a run: waves of phases and their states, refreshed at each transition.

On a terminal it is a rich Live table; otherwise (pipes, CI, tests) one line per transition.
It observes the checkpoint mirror, so it shows exactly what the plan file says.
"""

from __future__ import annotations

import sys
import time
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, TypedDict

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from plan_parser.checkpoints import PhaseCheckpoint


class _Row(TypedDict):
    """One phase's line of the live table."""

    status: str
    error: str
    tokens: int
    cost: str


STYLE = {
    "pending": "dim",
    "running": "bold yellow",
    "complete": "bold green",
    "failed": "bold red",
    "blocked": "bold red",
    "timeout": "bold magenta",
    "budget": "bold yellow",
    "skipped": "dim red",
}


def transition_line(phase_id: str, status: str, error: str | None = None) -> Text:
    """`[phase N] status: reason`, the tag bold and the status in its colour (plain text when
    the output is not a terminal), so it stands out from log lines."""
    line = Text(f"[phase {phase_id}]", style="bold")
    line.append(" ")
    line.append(status, style=STYLE.get(status, ""))
    if error:
        line.append(f": {error}")
    return line


class LiveView(AbstractContextManager["LiveView"]):
    """Register :meth:`observe` on the mirror; use as a context manager around the run."""

    def __init__(self, *, live: bool | None = None, console: Console | None = None) -> None:
        self.console = console or Console(stderr=False)
        self.live_enabled = sys.stdout.isatty() if live is None else live
        self.rows: dict[str, _Row] = {}
        self.waves: dict[str, int] = {}
        self._live: Live | None = None
        self._started: dict[str, float] = {}

    def set_waves(self, waves: list[list[str]]) -> None:
        for number, wave in enumerate(waves, 1):
            for pid in wave:
                self.waves[pid] = number

    def observe(self, checkpoint: PhaseCheckpoint) -> None:
        pid = checkpoint.phase_id
        previous = self.rows[pid]["status"] if pid in self.rows else None
        self.rows[pid] = {
            "status": checkpoint.status,
            "error": checkpoint.error or "",
            "tokens": sum((checkpoint.tokens or {}).values()),
            "cost": _cost(getattr(checkpoint, "cost_usd", None)),
        }
        if checkpoint.status == "running" and previous != "running":
            self._started[pid] = time.monotonic()
        if self._live is not None:
            self._live.refresh()
        elif previous != checkpoint.status:
            self.console.print(transition_line(pid, checkpoint.status, checkpoint.error))

    def render(self) -> Table:
        table = Table(title="plan-executor", expand=False)
        for column in ("wave", "phase", "status", "time", "tokens", "cost", "note"):
            table.add_column(column)
        ordered = sorted(self.rows, key=lambda pid: (self.waves.get(pid, 0), pid))
        for pid in ordered:
            row = self.rows[pid]
            status = row["status"]
            elapsed = ""
            if pid in self._started and status == "running":
                elapsed = f"{time.monotonic() - self._started[pid]:.0f}s"
            table.add_row(
                str(self.waves.get(pid, "")),
                pid,
                f"[{STYLE.get(status, '')}]{status}[/]",
                elapsed,
                str(row["tokens"] or ""),
                row["cost"],
                row["error"][:80],
            )
        return table

    def __enter__(self) -> LiveView:
        if self.live_enabled:
            self._live = Live(
                console=self.console,
                refresh_per_second=2,
                transient=False,
                get_renderable=self.render,  # re-rendered at each refresh: elapsed times move
            )
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.refresh()
            self._live.__exit__(None, None, None)
            self._live = None


def _cost(usd: float | None) -> str:
    return "" if usd is None else f"${usd:.4f}"
