"""The checkpoint mirror: every phase transition, written to the plan file and the execution log.

Prefect holds the real states; the plan file's `## Execution Checkpoints` section is a mirror for
the people who read plans and the source of truth for resume. The mirror works only from what
this process holds (the outcome each phase subflow returned), never from API reads: task and flow
runs reach the API asynchronously, so a query right after a run can miss some of them.

One :class:`PlanMirror` per run. Its asyncio lock serialises the writes of concurrent phases, and
`PlanFileWriter` (the only writer of plan files) locks the file and replaces it atomically.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from plan_parser.checkpoints import ExecutionState, PhaseCheckpoint, read_plan_state
from plan_parser.vocabulary import FAILED_LIKE_STATUSES, TERMINAL_STATUSES, utc_now, utc_stamp
from plan_parser.writer import PlanFileWriter
from tasks.secrets import scrub_known, scrub_value

# The status sets are defined in plan_parser.vocabulary; these names stay importable here.
TERMINAL = TERMINAL_STATUSES
FAILED_LIKE = FAILED_LIKE_STATUSES

Listener = Callable[[PhaseCheckpoint], Awaitable[None] | None]


# `utc_now` (a datetime) and `stamp` (its checkpoint string) are defined in
# plan_parser.vocabulary; both names stay importable here.
stamp = utc_stamp


class PlanMirror:
    """Holds every phase checkpoint of one run in memory and writes each change through."""

    def __init__(
        self,
        plan_path: Path,
        repo: Path,
        *,
        plan_title: str = "",
        enabled: bool = True,
    ) -> None:
        self.plan_path = Path(plan_path)
        self.repo = Path(repo)
        self.plan_title = plan_title or self.plan_path.stem
        self.enabled = enabled
        self.writer = PlanFileWriter(self.plan_path)
        self.checkpoints: dict[str, PhaseCheckpoint] = {}
        self.listeners: list[Listener] = []
        self._lock = asyncio.Lock()
        self.log_path = self.repo / ".ai" / "logs" / f"{utc_now():%Y-%m-%d}.plan-execution-log.md"

    # -- reading -----------------------------------------------------------------------------

    def previous_state(self) -> ExecutionState | None:
        """What the plan file says about an earlier run (None when it has no checkpoints)."""
        return read_plan_state(self.plan_path)

    # -- writing -----------------------------------------------------------------------------

    async def transition(
        self,
        phase_id: str,
        status: str,
        *,
        note: str = "",
        **fields: object,
    ) -> PhaseCheckpoint:
        """Move one phase to ``status`` and mirror it; ``fields`` are PhaseCheckpoint fields
        (validated by the model)."""
        async with self._lock:
            checkpoint = _clean(self._next_checkpoint(phase_id, status, fields))
            self.checkpoints[phase_id] = checkpoint
            if self.enabled:
                await asyncio.to_thread(self.writer.set_phase, checkpoint)
                await asyncio.to_thread(self._append_log, _log_entry(checkpoint, scrub_known(note)))
        await self._notify(checkpoint)
        return checkpoint

    async def update(self, phase_id: str, **fields: object) -> PhaseCheckpoint:
        """Change fields of a phase without a transition (e.g. its flow-run id once known)."""
        async with self._lock:
            current = self.checkpoints.get(phase_id) or PhaseCheckpoint(
                phase_id=phase_id, status="pending"
            )
            checkpoint = _clean(current.model_copy(update=fields))
            self.checkpoints[phase_id] = checkpoint
            if self.enabled:
                await asyncio.to_thread(self.writer.set_phase, checkpoint)
        await self._notify(checkpoint)
        return checkpoint

    async def initialise(self, checkpoints: list[PhaseCheckpoint], header: str) -> None:
        """Write the starting state of every phase in one go, before any phase starts."""
        checkpoints = [_clean(checkpoint) for checkpoint in checkpoints]
        async with self._lock:
            for checkpoint in checkpoints:
                self.checkpoints[checkpoint.phase_id] = checkpoint
            if self.enabled:
                await asyncio.to_thread(self.writer.set_phases, checkpoints)
                await asyncio.to_thread(self._append_log, header)
        for checkpoint in checkpoints:
            await self._notify(checkpoint)

    async def set_status(self, status: str) -> None:
        if self.enabled:
            async with self._lock:
                await asyncio.to_thread(self.writer.set_status, scrub_known(status))

    async def set_summary(self, markdown: str) -> None:
        if self.enabled:
            async with self._lock:
                await asyncio.to_thread(self.writer.set_summary, scrub_known(markdown))

    async def log(self, markdown: str) -> None:
        if self.enabled:
            async with self._lock:
                await asyncio.to_thread(self._append_log, markdown)

    async def close(self) -> None:
        """Remove the writer's lock file once the run is done with the plan.

        `PlanFileWriter` leaves `.<plan>.lock` beside the plan, an untracked file in the user's
        tree. The writer unlinks it while holding the lock, so a writer of another process
        waiting on it retries on a fresh lock file instead of racing on the old one.
        """
        async with self._lock:
            if self.enabled:
                await asyncio.to_thread(self.writer.remove_lock_file)

    # -- internals ---------------------------------------------------------------------------

    def _next_checkpoint(
        self, phase_id: str, status: str, fields: dict[str, object]
    ) -> PhaseCheckpoint:
        current = self.checkpoints.get(phase_id)
        base: dict[str, object] = current.model_dump() if current else {"phase_id": phase_id}
        now = stamp()
        base["status"] = status
        if status == "running":
            base.update(started_at=now, completed_at=None, failed_at=None, error=None, ledger=[])
        elif status == "complete":
            base.update(completed_at=now, failed_at=None, error=None)
        elif status in FAILED_LIKE:
            base.update(failed_at=now, completed_at=None)
        elif status == "skipped":  # it did not run, so it did not fail: no finish time at all
            base.update(failed_at=None, completed_at=None)
        elif status == "pending":
            base.update(started_at=None, completed_at=None, failed_at=None)
        base.update(fields)
        return PhaseCheckpoint.model_validate(base)

    def _append_log(self, text: str) -> None:
        text = scrub_known(text)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        is_new = not self.log_path.exists()
        with self.log_path.open("a", encoding="utf-8") as handle:
            if is_new:
                handle.write(f"# Plan Execution Log ({self.log_path.name[:10]})\n\n")
            handle.write(text.rstrip("\n") + "\n\n")

    async def _notify(self, checkpoint: PhaseCheckpoint) -> None:
        for listener in list(self.listeners):
            outcome = listener(checkpoint)
            if inspect.isawaitable(outcome):
                await outcome


def _clean(checkpoint: PhaseCheckpoint) -> PhaseCheckpoint:
    """The checkpoint without known secrets: its error and ledger lines quote command output
    and agent summaries, and the plan file is committed and read by agents."""
    return scrub_value(checkpoint)


def _log_entry(checkpoint: PhaseCheckpoint, note: str) -> str:
    """One execution-log entry: a `### <timestamp> - Phase N <status>` heading and bullets."""
    status = checkpoint.status
    if status == "skipped":  # no finish time of its own; an earlier start is not this entry's
        when: object = stamp()
    else:
        when = checkpoint.completed_at or checkpoint.failed_at or checkpoint.started_at or stamp()
    lines = [f"### {_text(when)} - Phase {checkpoint.phase_id} {status.capitalize()}"]
    if checkpoint.flow_run_id:
        lines.append(f"- Flow run: `{checkpoint.flow_run_id}`")
    duration = _duration(checkpoint)
    if duration:
        lines.append(f"- Duration: {duration}")
    lines.append(f"- Status: {status}")
    if checkpoint.error:
        lines.append(f"- Error: {checkpoint.error}")
    if checkpoint.tokens:
        kinds = ", ".join(f"{kind} {count}" for kind, count in checkpoint.tokens.items())
        lines.append(f"- Tokens: {sum(checkpoint.tokens.values())} ({kinds})")
    if checkpoint.cost_usd is not None:
        lines.append(f"- Cost: ${checkpoint.cost_usd:.4f}")
    if checkpoint.artifacts:
        lines.append("- Artifacts: " + ", ".join(f"`{a}`" for a in checkpoint.artifacts))
    for line in checkpoint.ledger:
        lines.append(f"- Failing check: {line}")
    if note:
        lines.append(f"- Key outcomes: {note}")
    return "\n".join(lines)


def _text(value: object) -> str:
    if isinstance(value, datetime):
        return stamp(value)
    return str(value)


def _as_datetime(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    return None


def _duration(checkpoint: PhaseCheckpoint) -> str:
    start = _as_datetime(checkpoint.started_at)
    end = _as_datetime(checkpoint.completed_at or checkpoint.failed_at)
    if not start or not end:
        return ""
    return format_duration((end - start).total_seconds())


def format_duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}m{rest:02d}s"


# -- Prefect tasks: each mirror write is a task run, so the UI shows when the mirror moved ----


@task(name="mirror-plan-status", cache_policy=NO_CACHE, persist_result=False, retries=0)
async def mirror_plan_status(mirror: PlanMirror, status: str, summary: str) -> None:
    await mirror.set_status(status)
    await mirror.set_summary(summary)
