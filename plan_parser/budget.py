"""A plan's own spending limits per phase, from its frontmatter.

    ---
    phase_max_cost_usd: 2.50     # USD one phase's agent calls may spend
    phase_max_tokens: 3000000    # tokens (input, output, cache writes and reads) per phase
    ---

Both are optional. The run's own `--phase-max-cost` / `--phase-max-tokens` apply as well: the
lower limit binds. A value that is not a positive number is an error with its line, so a typo
never silently lifts a limit.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel

from plan_parser.model import Diagnostic, Severity, diagnostic

PHASE_MAX_COST = "phase_max_cost_usd"
PHASE_MAX_TOKENS = "phase_max_tokens"
BUDGET_KEYS = (PHASE_MAX_COST, PHASE_MAX_TOKENS)


class PlanBudget(BaseModel):
    """Per-phase limits the plan sets (None: the plan sets none of that kind)."""

    phase_max_cost_usd: float | None = None
    phase_max_tokens: int | None = None


def plan_budget(
    frontmatter: Mapping[str, object], key_lines: Mapping[str, int] | None = None
) -> tuple[PlanBudget, list[Diagnostic]]:
    """The limits the frontmatter sets, and an E-FM-BUDGET error per value that is not one."""
    lines = key_lines or {}
    problems: list[Diagnostic] = []
    values: dict[str, float | int] = {}
    for key in BUDGET_KEYS:
        raw = frontmatter.get(key)
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            continue
        text = str(raw).strip().removeprefix("$").replace("_", "").replace(",", "")
        try:
            number: float | int = float(text) if key == PHASE_MAX_COST else int(text)
        except ValueError:
            number = 0
        if number <= 0:
            kind = "USD amount" if key == PHASE_MAX_COST else "whole number of tokens"
            problems.append(
                diagnostic(
                    "E-FM-BUDGET",
                    Severity.ERROR,
                    f"frontmatter `{key}: {raw}` is not a positive {kind}",
                    lines.get(key),
                    field=key,
                )
            )
            continue
        values[key] = number
    return PlanBudget.model_validate(values), problems
