"""What a person sees in the Prefect UI: run names, state messages, each phase's page, skipped
phases in the flow run graph.

The texts are pure functions of the outcomes the flow holds (like `flows.report`, whose pieces
they reuse); the flow publishes them. A phase that does not run still gets a subflow run of its
own, ending in a Cancelled state named `Skipped` (grey in the graph, labelled "Skipped", and not
red: nothing failed in it), whose message and page say which phase it waited for.
"""

from __future__ import annotations

import re
from pathlib import Path

from prefect import State, flow
from prefect.context import FlowRunContext
from prefect.runtime import flow_run as runtime_flow_run
from prefect.states import Cancelled

from flows.context import PhaseOutcome
from flows.report import RunReport
from plan_parser.paths import repo_relative
from tasks import artifacts
from tasks.gates.ledger import LedgerEntry, Verdict
from tasks.gates.verdict import blocks
from tasks.mirror import format_duration

SKIPPED = "Skipped"
"""The name of the state a phase that was not run ends in (a Cancelled state)."""

REASON_LIMIT = 160
"""A reason in a state message: one line, short enough for the runs list."""

VERDICT_MARKS = {
    Verdict.PASS: "pass",
    Verdict.FAIL: "**FAIL**",
    Verdict.WARN: "warn",
    Verdict.NOT_RUN: "*not run*",
    Verdict.NEEDS_JUDGEMENT: "*needs judgement*",
}
"""Words, not emoji: a browser without an emoji font (headless Chromium on a server) shows boxes."""


# -- names -----------------------------------------------------------------------------------


def flow_run_url(flow_run_id: str | None) -> str | None:
    """The flow run's page in the Prefect UI (None when the backend has no UI)."""
    from prefect.settings import PREFECT_UI_URL

    base = PREFECT_UI_URL.value()
    if not base or not flow_run_id:
        return None
    return f"{str(base).rstrip('/')}/runs/flow-run/{flow_run_id}"


def plan_run_name(plan_path: Path | str, repo: Path | str) -> str:
    """`tiny-crate: 2026-11-24.tiny-features`: the repository first, then the plan."""
    return f"{Path(repo).name or repo}: {Path(plan_path).name.removesuffix('.md')}"


def phase_run_name(phase_id: str, title: str = "") -> str:
    """`phase-3: Shouting Module` (`phase-3` when the title is unknown)."""
    return f"phase-{phase_id}: {title}" if title else f"phase-{phase_id}"


def current_phase_run_name() -> str:
    """The phase subflow's run name, from its parameters and the run's parsed plan."""
    from flows.context import current_run

    params = runtime_flow_run.parameters
    phase_id = str(params.get("phase_id", "?"))
    title = str(params.get("title") or "")
    plan_path = params.get("plan_path")
    if not title and plan_path:
        context = current_run(Path(str(plan_path)))
        if context is not None:
            try:
                title = context.plan.phase(phase_id).title
            except (KeyError, LookupError, ValueError):
                title = ""
    return phase_run_name(phase_id, title)


# -- state messages --------------------------------------------------------------------------


def one_line(text: str, limit: int = REASON_LIMIT) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def failing_entries(outcome: PhaseOutcome) -> list[LedgerEntry]:
    """The ledger entries that block the phase, in ledger order."""
    return [entry for entry in outcome.ledger.entries if blocks(entry)]


def check_reason(entry: LedgerEntry) -> str:
    """`file src/shout.rs: missing`: the check and the first line of its evidence."""
    evidence = next(iter(_evidence_lines(entry)), "")
    code = f" (exit {entry.exit_code})" if entry.exit_code not in (None, 0) else ""
    text = f"{entry.check}{code}: {evidence}" if evidence else f"{entry.check}{code}"
    return one_line(text)


def phase_reason(outcome: PhaseOutcome) -> str:
    """Why a phase did not complete, on one line: its first failing check, else its error."""
    failing = failing_entries(outcome)
    if outcome.status == "blocked" and failing:
        more = f" (+{len(failing) - 1} more failing)" if len(failing) > 1 else ""
        return check_reason(failing[0]) + more
    if outcome.error:
        return one_line(re.sub(r"^\[fail\]\s*", "", outcome.error))
    return outcome.status


def phase_message(outcome: PhaseOutcome) -> str:
    """The phase subflow's state message: the verdict, and for a phase that did not complete
    the first failing check (`blocked: file src/shout.rs: missing`)."""
    if outcome.status == "complete":
        return outcome.verdict
    return f"{outcome.status}: {phase_reason(outcome)}"


def run_state_name(report: RunReport) -> str:
    """The name of the plan run's final state: the runs list shows it as the run's badge (and
    not the message), so a run that got part of the way does not look like an invalid plan.
    `Completed` (every phase), `Partial` (some), `Invalid` (the plan cannot run), else `Failed`.
    """
    if report.invalid:
        return "Locked" if report.status == "locked" else "Invalid"
    if report.exit_code == 0:
        return "Completed"
    return "Partial" if report.complete else "Failed"


def run_message(report: RunReport) -> str:
    """The plan run's final state message: the outcome in one line, e.g.
    `2/3 complete; phase 3 blocked: file src/shout.rs: missing`."""
    total = len(report.outcomes)
    if report.invalid:
        return f"invalid plan: {one_line('; '.join(report.errors) or report.status)}"
    if not report.preflight_ok:
        return f"pre-flight failed, no phase ran: {one_line(report.preflight_message)}"
    parts = [f"{report.complete}/{total} complete"]
    for outcome in report.outcomes:
        if outcome.status == "complete":
            continue
        if outcome.status == "skipped":
            parts.append(f"phase {outcome.phase_id} skipped ({_skip_cause(outcome)})")
        else:
            parts.append(f"phase {outcome.phase_id} {outcome.status}: {phase_reason(outcome)}")
    if report.final_ledger is not None and report.final_ledger.failing():
        parts.append(f"final validation failed: {check_reason(report.final_ledger.failing()[0])}")
    return "; ".join(parts)


def _skip_cause(outcome: PhaseOutcome) -> str:
    error = outcome.error or ""
    match = re.search(r"depends on phase (\S+?),", error)
    if match:
        return f"depends on phase {match[1]}"
    return one_line(error.removeprefix("not run: "), 80) or "not run"


# -- a phase's page --------------------------------------------------------------------------


def phase_page(
    outcome: PhaseOutcome, *, transcripts: dict[str, str] | None = None, repo: str = ""
) -> str:
    """The phase subflow's markdown artifact: verdict, the ledger of checks, each agent's claim
    beside what the checks found, and where the transcripts are."""
    heading = f"# Phase {outcome.phase_id}: {outcome.title}" if outcome.title else "# Phase"
    lines = [
        heading,
        "",
        f"**Verdict:** {outcome.status.upper()}"
        + (
            f" ({outcome.verdict})"
            if outcome.status == "complete"
            else f": {phase_reason(outcome)}"
        ),
    ]
    facts = [f"**Owner:** {outcome.owner or 'self'}", f"**Wave:** {outcome.wave}"]
    if outcome.duration_s:
        facts.append(f"**Duration:** {format_duration(outcome.duration_s)}")
    if outcome.tokens:
        facts.append(f"**Tokens:** {sum(outcome.tokens.values())}")
    lines += ["", " · ".join(facts)]
    if outcome.status not in ("complete", "blocked") and outcome.error:
        lines += ["", "**Error:**", "", "```", outcome.error.strip(), "```"]

    failing = failing_entries(outcome)
    if outcome.claims:
        found = "; ".join(check_reason(e) for e in failing[:3]) if failing else _all_passed(outcome)
        lines += [
            "",
            "## What the agents claimed, beside the evidence",
            "",
            "| Agent | Claimed (recorded, never trusted) | The checks found |",
            "|---|---|---|",
        ]
        for role, claim in outcome.claims.items():
            lines.append(f"| {role} | {_cell(one_line(claim, 400))} | {_cell(found)} |")

    lines += ["", f"## Transcripts (in `{repo}`)" if repo else "## Transcripts", ""]
    if transcripts:
        lines += [f"- {role}: `{path}`" for role, path in transcripts.items()]
    else:
        lines.append("- none (no agent was called)")
    lines += ["", "## Checks (the evidence)", ""]
    entries = [
        e
        for e in outcome.ledger.entries
        if not (e.verdict is Verdict.NOT_RUN and e.check.startswith("agent claim"))
    ]
    if entries:
        lines += ["| Verdict | Check | Required | How | Evidence |", "|---|---|---|---|---|"]
        for entry in entries:
            lines.append(
                f"| {VERDICT_MARKS.get(entry.verdict, entry.verdict.value)} | {_cell(entry.check)}"
                f"{_exit(entry)} | {'yes' if entry.required else 'no'} | "
                f"{'judged' if entry.judged else 'verified'} | {_cell(_evidence(entry))} |"
            )
    else:
        lines.append("- no check ran (see the verdict above)")

    if outcome.steps:
        lines += ["", "## Steps", ""]
        lines += [f"- {step}" for step in outcome.steps]
    return "\n".join(lines) + "\n"


def skipped_page(phase_id: str, title: str, reason: str) -> str:
    return (
        f"# Phase {phase_id}: {title}\n\n**Verdict:** SKIPPED: {reason}\n\n"
        "Nothing of this phase ran: no agent, no check. It runs in a later run of the plan "
        "once the phases it depends on are complete.\n"
    )


def _all_passed(outcome: PhaseOutcome) -> str:
    counted = [e for e in outcome.ledger.entries if not e.check.startswith("agent claim")]
    passed = sum(1 for e in counted if e.verdict is Verdict.PASS)
    return f"{passed}/{len(counted)} checks passed; no required check failed"


def _exit(entry: LedgerEntry) -> str:
    return "" if entry.exit_code is None else f" (exit {entry.exit_code})"


def _evidence(entry: LedgerEntry) -> str:
    lines = _evidence_lines(entry)
    head = " / ".join(lines[:3])
    if len(lines) > 3:
        head += f" … ({len(lines) - 3} more lines)"
    return one_line(head, 400) if head else "-"


def _evidence_lines(entry: LedgerEntry) -> list[str]:
    """The evidence's lines, without the output tail's marker (`--- output tail ---`): it says
    nothing where the tail's own lines are shown."""
    lines = [line.strip() for line in entry.evidence.splitlines() if line.strip()]
    return [line for line in lines if not re.fullmatch(r"-{2,}[^-]*-{2,}", line)]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def transcripts_of(outcome: PhaseOutcome, repo: Path) -> dict[str, str]:
    """The agents' transcript files (role → path relative to the repository when inside it)."""
    found: dict[str, str] = {}
    for role, path in outcome.transcripts.items():
        found[role] = repo_relative(repo, path) or str(Path(path))
    return found


async def publish_phase_page(plan_path: Path, outcome: PhaseOutcome, repo: Path) -> None:
    """The phase's page: a markdown artifact attached to the phase subflow run."""
    await artifacts.publish_markdown(
        plan_path,
        phase_artifact_suffix(outcome.phase_id),
        phase_page(outcome, transcripts=transcripts_of(outcome, repo), repo=str(repo)),
        f"Phase {outcome.phase_id}: {phase_message(outcome)}",
    )


def phase_artifact_suffix(phase_id: str) -> str:
    return "phase-" + (re.sub(r"[^a-z0-9]+", "-", phase_id.lower()).strip("-") or "x")


# -- progress --------------------------------------------------------------------------------


def progress_text(
    done: int, total: int, phase_id: str, status: str, running: list[tuple[str, str]]
) -> str:
    """`1/3 phases finished; phase 1 complete; running: phase 2 (Beta), phase 3 (Gamma)`."""
    names = ", ".join(phase_run_name(pid, title).replace("-", " ", 1) for pid, title in running)
    return f"{done}/{total} phases finished; phase {phase_id} {status}; running: {names or 'none'}"


# -- skipped phases --------------------------------------------------------------------------


def _skipped_run_name() -> str:
    params = runtime_flow_run.parameters
    return phase_run_name(str(params.get("phase_id", "?")), str(params.get("title") or ""))


@flow(name="phase", flow_run_name=_skipped_run_name, validate_parameters=True)
async def skipped_phase(plan_path: Path, phase_id: str, title: str, reason: str) -> State[None]:
    """A phase that was not run, as a subflow run of its own: `Skipped` in the graph and the
    runs list, with the reason as its message and a page saying so."""
    await artifacts.publish_markdown(
        plan_path,
        phase_artifact_suffix(phase_id),
        skipped_page(phase_id, title, reason),
        f"Phase {phase_id}: skipped: {reason}",
    )
    return Cancelled(name=SKIPPED, message=reason)


async def mark_skipped(plan_path: Path, phase_id: str, title: str, reason: str) -> str | None:
    """Run the `Skipped` subflow of a phase; its flow run id (None outside a flow run)."""
    if FlowRunContext.get() is None:
        return None
    state = await skipped_phase(plan_path, phase_id, title, reason, return_state=True)
    run_id = state.state_details.flow_run_id
    return str(run_id) if run_id else None
