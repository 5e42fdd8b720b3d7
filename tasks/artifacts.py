"""Prefect artifacts of a plan run: progress, the phase table, the reports.

The progress artifact is the run's live to-do list: it moves at every phase transition,
the table shows each phase's owner, wave, status, duration, tokens and verdict, and the markdown
artifacts hold the validation report (invalid plans) and the final report.
Artifact keys must be lowercase letters, digits and dashes; each run adds a new version.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from uuid import UUID

from prefect.artifacts import (
    acreate_markdown_artifact,
    acreate_progress_artifact,
    acreate_table_artifact,
    aupdate_progress_artifact,
)
from prefect.context import FlowRunContext, TaskRunContext

from tasks.secrets import scrub_known, scrub_value


def artifact_key(plan_path: Path | str, suffix: str) -> str:
    """`2026-01-01.better-tables.md` + `progress` → `plan-2026-01-01-better-tables-progress`."""
    stem = Path(plan_path).name.removesuffix(".md")
    slug = re.sub(r"[^a-z0-9]+", "-", stem.lower()).strip("-")
    return f"plan-{slug}-{suffix}"[:200]


def in_run_context() -> bool:
    """Artifacts need a flow or task run to attach to; outside one we skip them."""
    return FlowRunContext.get() is not None or TaskRunContext.get() is not None


async def create_progress(plan_path: Path, total: int, done: int = 0) -> UUID | None:
    if not in_run_context():
        return None
    return await acreate_progress_artifact(
        progress=_percent(done, total),
        key=artifact_key(plan_path, "progress"),
        description=f"{done}/{total} phases finished",
    )


async def update_progress(
    artifact_id: UUID | None, done: int, total: int, description: str
) -> None:
    if artifact_id is None:
        return
    await aupdate_progress_artifact(
        artifact_id=artifact_id,
        progress=_percent(done, total),
        description=scrub_known(description),
    )


class ProgressUpdates:
    """Moves the progress artifact in the background, one request at a time, latest value wins.

    A phase transition must not wait for the API round trip before the next phase starts (it is
    on the critical path of every chain), and two updates in flight could land out of order and
    leave an older figure showing: one sender, coalescing to the newest posted value, avoids both.
    """

    def __init__(self, artifact_id: UUID | None, total: int) -> None:
        self.artifact_id = artifact_id
        self.total = total
        self._latest: tuple[int, str] | None = None
        self._sender: asyncio.Task[None] | None = None

    def post(self, done: int, description: str) -> None:
        if self.artifact_id is None:
            return
        self._latest = (done, description)
        if self._sender is None or self._sender.done():
            self._sender = asyncio.get_running_loop().create_task(self._send())

    async def _send(self) -> None:
        while self._latest is not None:
            done, description = self._latest
            self._latest = None
            await update_progress(self.artifact_id, done, self.total, description)

    async def drain(self) -> None:
        """Wait until the newest posted value has been sent (an API failure propagates)."""
        while self._sender is not None and not self._sender.done():
            await self._sender
        if self._sender is not None and self._sender.done() and not self._sender.cancelled():
            self._sender.result()


TableRow = dict[str, str | int | float]
"""One row of a table artifact (a phase: its id, owner, status, tokens, cost, ...)."""


async def publish_table(plan_path: Path, rows: list[TableRow]) -> UUID | None:
    if not in_run_context():
        return None
    return await acreate_table_artifact(
        table=scrub_value(rows),
        key=artifact_key(plan_path, "phases"),
        description="Phases: owner, wave, status, duration, tokens, verdict",
    )


async def publish_markdown(
    plan_path: Path, suffix: str, markdown: str, description: str
) -> UUID | None:
    if not in_run_context():
        return None
    # Reports quote ledger output tails and agent summaries: the UI is no place for a key.
    return await acreate_markdown_artifact(
        markdown=scrub_known(markdown), key=artifact_key(plan_path, suffix), description=description
    )


def _percent(done: int, total: int) -> float:
    return 100.0 if total == 0 else round(100.0 * done / total, 1)
