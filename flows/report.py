"""The reports of a run: plan status, Implementation Summary, phase table, final report.

Pure functions of the outcomes the flow holds in memory; the flow publishes them as artifacts
and the mirror writes the status and summary into the plan file.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from flows.context import PhaseOutcome, RunContext
from plan_parser.checkpoints import PhaseCheckpoint
from tasks.agent.budget import format_cost
from tasks.agent.result import InfraFaults
from tasks.dry_run import DryRunReport
from tasks.forecast import RunForecast, Span
from tasks.gates.ledger import Ledger, LedgerEntry, Verdict
from tasks.mirror import format_duration, stamp
from tasks.resume import MARKED_COMPLETE, marked_complete_ids

if TYPE_CHECKING:  # the pure report does not import Prefect's artifacts
    from tasks.artifacts import TableRow


class RunReport(BaseModel):
    """What `execute-plan` returns; the CLI's exit status comes from it."""

    plan_path: str
    plan_title: str = ""
    repo: str = ""
    status: str
    """The plan status written to the file: `Implemented`, `Partially Implemented (3/5 ...)`."""
    outcomes: list[PhaseOutcome] = Field(default_factory=list)
    preflight_ok: bool = True
    preflight_message: str = ""
    final_ledger: Ledger | None = None
    dry_run: bool = False
    would_run: list[list[str]] = Field(default_factory=list)
    """Dry runs: the waves of phase ids that would run (resumed phases left out)."""
    flow_run_id: str | None = None
    ui_url: str | None = None
    duration_s: float = 0.0
    markdown: str = ""
    invalid: bool = False
    errors: list[str] = Field(default_factory=list)
    branch: str | None = None
    """The integration branch the verified phases landed on (None: phases shared the checkout)."""
    unlanded: dict[str, str] = Field(default_factory=dict)
    """Phase id → the branch holding the work of a phase that did not land."""
    security_warnings: list[str] = Field(default_factory=list)
    """What exposed the run (e.g. a Prefect API without authentication while agents had the
    network): at the top of the final report."""
    budget: str = ""
    """The run's limits as set (`run: $5.00; per phase: no limit`); empty: not priced."""
    budget_stop: str | None = None
    """The run's limit that was reached, if one was (no agent call started after it)."""

    @property
    def cost_usd(self) -> float:
        return round(sum(o.cost_usd for o in self.outcomes), 6)

    @property
    def tokens(self) -> dict[str, int]:
        """Tokens of the whole run by kind (input, output, cache_creation_input, ...)."""
        return total_tokens(self.outcomes)

    forecast: RunForecast | None = None
    """The cost forecast made at the start (the dry run's): the report sets it against the
    actual usage."""
    dry_run_detail: DryRunReport | None = None
    """Dry runs: what each phase would do (`run --dry-run --with-preflight --json` prints it)."""

    @property
    def complete(self) -> int:
        return sum(1 for o in self.outcomes if o.status == "complete")

    @property
    def all_complete(self) -> bool:
        return bool(self.outcomes) and self.complete == len(self.outcomes)

    @property
    def exit_code(self) -> int:
        if self.invalid:
            return 2
        if self.dry_run:
            return 0 if self.preflight_ok else 1
        final_ok = self.final_ledger is None or not self.final_ledger.failing()
        return 0 if self.all_complete and self.preflight_ok and final_ok else 1


def plan_status(outcomes: list[PhaseOutcome]) -> str:
    """`Implemented` only when every phase is complete; otherwise how far the run got."""
    total = len(outcomes)
    done = sum(1 for o in outcomes if o.status == "complete")
    if total and done == total:
        return "Implemented"
    if done == 0:
        return f"Not Implemented (0/{total} phases complete)"
    return f"Partially Implemented ({done}/{total} phases complete)"


def run_verdict(report: RunReport) -> str:
    if report.all_complete and report.exit_code == 0:
        return "SUCCESS"
    if report.complete:
        return "PARTIAL SUCCESS"
    return "FAILED"


def table_rows(outcomes: list[PhaseOutcome]) -> list[TableRow]:
    return [
        {
            "phase": o.phase_id,
            "name": o.title,
            "owner": o.owner,
            "wave": o.wave,
            "status": o.status,
            "duration": format_duration(o.duration_s) if o.duration_s else "",
            "tokens": sum(o.tokens.values()),
            "cost_usd": round(o.cost_usd, 4),
            "verdict": o.verdict,
        }
        for o in outcomes
    ]


def implementation_summary(report: RunReport, *, when: datetime | None = None) -> str:
    """The plan file's `## Implementation Summary` body: date, duration, status, cost, phases."""
    when = when or datetime.now(UTC)
    lines = [
        f"**Completed:** {when:%Y-%m-%d}"
        if report.all_complete
        else f"**Last run:** {when:%Y-%m-%d}",
        f"**Total Duration:** {format_duration(report.duration_s)}",
        f"**Status:** {report.status}",
        f"**Cost:** {cost_line(report.outcomes)}",
        "",
        "**Phases:**",
    ]
    for o in report.outcomes:
        detail = f" - {o.error}" if o.error and o.status != "complete" else ""
        cost = f" ({format_cost(o.cost_usd)})" if o.tokens and not o.resumed else ""
        lines.append(f"- Phase {o.phase_id}: {o.title} - {o.status.capitalize()}{cost}{detail}")
    if report.flow_run_id:
        lines += ["", f"**Prefect flow run:** `{report.flow_run_id}`"]
    return "\n".join(lines)


def final_report(report: RunReport, *, log_path: Path | None = None) -> str:
    """The final report to the user (phases, files changed, test results, quality checks), built
    from evidence only (agent claims are labelled)."""
    verdict = run_verdict(report)
    heading = "Plan Execution Complete" if verdict == "SUCCESS" else "Plan Execution Report"
    lines = [
        f"## {heading}",
        "",
        f"**Plan:** {report.plan_title} (`{report.plan_path}`)",
        f"**Execution Time:** {format_duration(report.duration_s)}",
        f"**Status:** {verdict} - {report.status}",
    ]
    if report.flow_run_id:
        lines.append(f"**Prefect flow run:** `{report.flow_run_id}`")
    if report.ui_url:
        lines.append(f"**Prefect UI:** {report.ui_url}")
    for warning in report.security_warnings:
        lines += ["", f"**SECURITY:** {warning}"]
    if not report.preflight_ok:
        lines += ["", "**Pre-flight failed:**", "", report.preflight_message]
    unsandboxed = [o.phase_id for o in report.outcomes if o.unsandboxed]
    if unsandboxed:
        lines += [
            "",
            f"**UNSANDBOXED:** bubblewrap was unusable and the run allowed it "
            f"(`--allow-unsandboxed`): the agents of phase(s) {', '.join(unsandboxed)} ran shell "
            "commands directly on this machine.",
        ]

    if report.branch:
        lines += ["", f"**Branch:** `{report.branch}`: one commit per verified phase."]
    if report.unlanded:
        kept = ", ".join(f"phase {pid} on `{branch}`" for pid, branch in report.unlanded.items())
        lines += [f"**Work that did not land** (kept for review and reruns): {kept}."]

    infrastructure = infrastructure_line(report.outcomes)
    if infrastructure:
        lines += ["", infrastructure]
    lines += ["", f"**Cost:** {cost_line(report.outcomes)}"]
    if report.budget:
        lines.append(f"**Budget:** {report.budget}")
    if report.budget_stop:
        lines.append(
            f"**Run budget reached:** {report.budget_stop}; no agent call started after it."
        )

    lines += [
        "",
        "### Phase Summary",
        "",
        "| Phase | Name | Owner | Wave | Status | Duration | Tokens | Cost | API faults | Run |",
    ]
    lines.append("|---|---|---|---|---|---|---|---|---|---|")
    for o in report.outcomes:
        run_link = _run_link(report, o)
        status = f"{o.status} (infrastructure)" if o.infra_failure else o.status
        lines.append(
            f"| {o.phase_id} | {_cell(o.title)} | {_cell(o.owner)} | {o.wave} | {status} | "
            f"{format_duration(o.duration_s) if o.duration_s else '-'} | {sum(o.tokens.values())} | "
            f"{format_cost(o.cost_usd) if o.tokens else '-'} | {_faults_cell(o)} | {run_link} |"
        )

    lines += forecast_section(report)

    lines += ["", "### Files Changed", ""]
    artifacts = [(o.phase_id, a) for o in report.outcomes for a in o.artifacts]
    if artifacts:
        lines += [f"- `{path}` (phase {pid})" for pid, path in artifacts]
    else:
        lines.append("- none recorded")

    lines += ["", "### Test Results", ""]
    lines += _check_lines(report, ("test", "blast"))
    lines += ["", "### Quality Checks", ""]
    lines += _check_lines(report, ("clippy", "fmt", "build", "check"))

    issues = [o for o in report.outcomes if o.status != "complete"]
    lines += ["", "### Issues", ""]
    if not issues and (report.final_ledger is None or not report.final_ledger.failing()):
        lines.append("- none")
    for o in issues:
        cause = " (infrastructure, not the agent)" if o.infra_failure else ""
        lines.append(f"- Phase {o.phase_id} **{o.status}**{cause}: {o.error or o.verdict}")
        lines += [f"  - `{line}`" for line in o.failing[:5]]
    if report.final_ledger is not None:
        lines += [f"- final validation: `{short_line(e)}`" for e in report.final_ledger.failing()]

    claims = [(o.phase_id, role, text) for o in report.outcomes for role, text in o.claims.items()]
    if claims:
        lines += ["", "### Agent Claims (recorded, not evidence)", ""]
        lines += [f"- Phase {pid} {role}: {_first(text)}" for pid, role, text in claims]

    lines += ["", "### Next Steps", ""]
    lines += _next_steps(report)
    lines += ["", "### Logs", ""]
    if log_path:
        lines.append(f"- Execution log: `{log_path}`")
    lines.append(f"- Plan file: `{report.plan_path}` (section `## Execution Checkpoints`)")
    return "\n".join(lines) + "\n"


TOKEN_KINDS = (
    ("input", "input"),
    ("output", "output"),
    ("cache_creation_input", "cache writes"),
    ("cache_read_input", "cache reads"),
)
"""`PhaseOutcome.tokens` keys and how reports name them."""


def total_tokens(outcomes: list[PhaseOutcome]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for o in outcomes:
        for kind, count in o.tokens.items():
            totals[kind] = totals.get(kind, 0) + count
    return totals


def tokens_by_kind(tokens: dict[str, int]) -> str:
    """`1,234 input, 567 output, 8,900 cache writes, 12,000 cache reads`."""
    return ", ".join(f"{tokens.get(key, 0):,} {name}" for key, name in TOKEN_KINDS)


def cost_line(outcomes: list[PhaseOutcome]) -> str:
    """The run's cost and tokens by kind (resumed phases' earlier cost included, and said)."""
    tokens = total_tokens(outcomes)
    cost = sum(o.cost_usd for o in outcomes)
    earlier = sum(o.cost_usd for o in outcomes if o.resumed)
    line = f"{format_cost(cost)} ({tokens_by_kind(tokens)} tokens)"
    if earlier:
        line += f"; {format_cost(earlier)} of it spent by earlier runs on resumed phases"
    return line


def forecast_section(report: RunReport) -> list[str]:
    """`### Cost: forecast against actual`: per phase and for the run, the forecast's range and
    the cost the run recorded (each response's usage priced with its call's model).
    Empty without a forecast (dry runs, a forecast that could not be made)."""
    forecast = report.forecast
    if forecast is None or report.dry_run or not report.outcomes:
        return []
    lines = [
        "",
        "### Cost: forecast against actual",
        "",
        "| Phase | Model | Forecast tokens | Actual tokens | Forecast USD | Actual USD | In range |",
        "|---|---|---|---|---|---|---|",
    ]
    total_tokens, total_usd = 0, 0.0
    for outcome in report.outcomes:
        predicted = forecast.phase(outcome.phase_id)
        if predicted is None:
            continue
        tokens = sum(outcome.tokens.values())
        usd = outcome.cost_usd
        total_tokens, total_usd = total_tokens + tokens, total_usd + usd
        note = " (resumed: not run)" if outcome.resumed else ""
        lines.append(
            f"| {outcome.phase_id} | {predicted.model or '-'} | {predicted.tokens.tokens()} | "
            f"{tokens} | {predicted.cost_usd.usd()} | ${usd:.2f}{note} | "
            f"{_in_range(predicted.cost_usd, usd)} |"
        )
    lines.append(
        f"| **run** | | {forecast.tokens.tokens()} | {total_tokens} | {forecast.cost_usd.usd()} | "
        f"${total_usd:.2f} | {_in_range(forecast.cost_usd, total_usd)} |"
    )
    lines += [
        "",
        f"Prices of {forecast.price_table_date} ({'; '.join(forecast.price_sources)}); "
        "actual usage as the API reported it, each call priced with its own model. The "
        "forecast is a range from a stated model (docs/cost.md), not a quote.",
    ]
    return lines


def _in_range(span: Span, value: float) -> str:
    if span.contains(round(value, 2)) or span.contains(value):
        return "yes"
    return "below" if value < span.low else "ABOVE"


def infrastructure_line(outcomes: list[PhaseOutcome]) -> str:
    """API faults and agent failures, kept apart: a retried 529 is not an agent's failure.

    `**Infrastructure:** 7 API faults (429×2, 529×3, dropped×2), 7 retried, 2.1 s lost;
    0 phases failed on infrastructure; 0 agent failures (5 agent calls)`; empty when the run
    made no agent call.
    """
    calls = sum(o.agent_calls for o in outcomes)
    if not calls and not any(o.infra_failure for o in outcomes):
        return ""
    infra = InfraFaults()
    for o in outcomes:
        infra = infra + o.infra
    failed = [o.phase_id for o in outcomes if o.infra_failure]
    down = (
        f"phase(s) {', '.join(failed)} failed on infrastructure (the API stayed unusable)"
        if failed
        else "0 phases failed on infrastructure"
    )
    agent_failures = sum(o.agent_failures for o in outcomes)
    return (
        f"**Infrastructure:** {infra.describe()}; {down}; "
        f"{agent_failures} agent failure{'s' if agent_failures != 1 else ''} "
        f"({calls} agent call{'s' if calls != 1 else ''})"
    )


def _faults_cell(outcome: PhaseOutcome) -> str:
    if not outcome.infra.total:
        return "0"
    kinds = ", ".join(f"{k}×{n}" for k, n in sorted(outcome.infra.faults.items()))
    return f"{outcome.infra.total} ({kinds})"


def _check_lines(report: RunReport, words: tuple[str, ...]) -> list[str]:
    lines: list[str] = []
    ledgers = [(f"phase {o.phase_id}", o.ledger) for o in report.outcomes if not o.resumed]
    if report.final_ledger is not None:
        ledgers.append(("final validation", report.final_ledger))
    for where, ledger in ledgers:
        for entry in ledger.entries:
            if entry.judged or not any(w in entry.check.lower() for w in words):
                continue
            if entry.verdict is Verdict.NOT_RUN and entry.check.startswith("agent claim"):
                continue
            lines.append(f"- {where}: `{short_line(entry)}`")
    return lines or ["- not run"]


def failing_line(entry: LedgerEntry, max_lines: int = 4, limit: int = 600) -> str:
    """A failing ledger line for the checkpoint: its head, enough to see why."""
    text = "\n".join(entry.line().splitlines()[:max_lines])
    return text if len(text) <= limit else text[: limit - 1] + "…"


def short_line(entry: LedgerEntry, limit: int = 200) -> str:
    """A ledger entry on one line: verdict, check, exit code and the first line of evidence."""
    first = entry.line().splitlines()[0] if entry.line() else entry.check
    return first if len(first) <= limit else first[: limit - 1] + "…"


def _next_steps(report: RunReport) -> list[str]:
    steps: list[str] = []
    statuses = {o.status for o in report.outcomes}
    if "blocked" in statuses:
        steps.append(
            "Fix the failing checks of the blocked phases, then run the plan again (completed phases are skipped)."
        )
    if "timeout" in statuses:
        steps.append("Timed-out phases: split them or raise --phase-timeout / --agent-timeout.")
    if "budget" in statuses:
        steps.append(
            "Phases stopped by a budget or by the no-progress rule keep their work on their "
            "branch: read their details logs, then raise --max-cost / --phase-max-cost / "
            "--max-tokens or split the phase, and run the plan again."
        )
    if "skipped" in statuses:
        steps.append("Skipped phases run once the phases they depend on are complete.")
    if any(o.infra_failure for o in report.outcomes):
        steps.append(
            "Phases that failed on infrastructure did no agent work that counts: run the plan "
            "again once the API answers (completed phases are skipped)."
        )
    if any(o.status == "failed" and not o.infra_failure for o in report.outcomes):
        steps.append("Failed phases hit an error outside the gates: read their flow-run logs.")
    if not steps:
        steps = ["Review the changes and the generated tests.", "Commit the work."]
    return [f"{n}. {step}" for n, step in enumerate(steps, 1)]


def _run_link(report: RunReport, outcome: PhaseOutcome) -> str:
    if not outcome.flow_run_id:
        if outcome.resumed:
            return outcome.resume_reason
        return "-"
    if report.ui_url and "/runs/flow-run/" in report.ui_url:
        base = report.ui_url.split("/runs/flow-run/")[0]
        return f"[{outcome.flow_run_id[:8]}]({base}/runs/flow-run/{outcome.flow_run_id})"
    return f"`{outcome.flow_run_id[:8]}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _first(text: str) -> str:
    line = next((part.strip() for part in text.splitlines() if part.strip()), "")
    return line[:200]


# -- the run's log (the plan's `.ai/logs` file, through the mirror) --------------------------


def transition_note(outcome: PhaseOutcome) -> str:
    """The note a phase's ending leaves in the run log: its verdict, or why it did not complete."""
    note = outcome.verdict if outcome.status == "complete" else outcome.error or outcome.verdict
    if outcome.infra.total or outcome.infra.restarts:  # API faults are not the agents' doing
        note += f" (infrastructure: {outcome.infra.describe()})"
    return note


def run_log_header(
    context: RunContext, flow_run_id: str | None, resumed: dict[str, PhaseCheckpoint]
) -> str:
    """The run log's header: what runs, with what skills and budget, in which waves."""
    lines = [
        f"## {stamp()} - Run of {context.plan.title}",
        f"- Plan: `{context.plan_path}`",
        f"- Flow run: `{flow_run_id}`",
        f"- Skills: {', '.join(context.skills) or 'none'}",
    ]
    if context.budget is not None:
        options = context.options
        lines.append(
            f"- Budget: {context.budget.describe()}; no-progress stop after "
            f"{options.no_progress_turns or 'off'} turns; turn cap {options.max_turns}; "
            f"prices: {', '.join(context.budget.prices.sources)}"
        )
    for number, wave in enumerate(context.waves, 1):
        lines.append(f"- Wave {number}: phases {', '.join(wave)}")
    if resumed:
        lines.append(f"- Resumed (complete, unchanged): {', '.join(resumed)}")
        marked = marked_complete_ids(resumed)
        if marked:
            lines.append(f"- Not run, {MARKED_COMPLETE}: {', '.join(marked)}")
    return "\n".join(lines)
