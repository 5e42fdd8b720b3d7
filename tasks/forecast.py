"""What a run may cost, before it starts: a range of tokens and USD per phase and for the run.

Input side: the prompts the run would send, built with the functions the run uses (the system
prompt of the agent definition with the repository's memory and skills index, the phase task
with its memory files and skill bodies, the verifier's task, the tool definitions). There is no
tokenizer offline, so characters become tokens at a stated number of characters per token, as a
range (prose ~4, code and paths nearer 3). Turns and output per turn come from a stated model per
role (:class:`RoleModel`), and the loop's prompt caching shapes the bill: every request after the
first reads the previous request's prefix from the cache and writes only what was appended.

Everything is a range (``low`` ≤ ``high``), never a single figure. The defaults and how they were
chosen are in `docs/cost.md`; a repository overrides any of them in `[forecast]` of
`.ai/plan-executor.toml` or `[tool.plan-executor.forecast]` of `pyproject.toml`.

No Prefect, no network, no subprocess here beyond what the caller passes in: a pure function of
texts and numbers, so the flow computes it at the start of a run as well (the final report puts
it beside the actual usage).
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping, Sequence

from pydantic import BaseModel, Field, model_validator

from tasks.agent.pricing import PriceTable
from tasks.agent.result import Usage

FORECAST_TABLE = "forecast"


class Span(BaseModel):
    """A range: ``low`` ≤ ``high``."""

    low: float
    high: float

    @model_validator(mode="after")
    def _ordered(self) -> Span:
        if self.low > self.high:
            raise ValueError(f"low {self.low} is above high {self.high}")
        return self

    def __add__(self, other: Span) -> Span:
        return Span(low=self.low + other.low, high=self.high + other.high)

    def tokens(self) -> str:
        return f"{_k(self.low)}–{_k(self.high)}"

    def usd(self) -> str:
        return f"${self.low:.2f}–${self.high:.2f}"

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high


def _k(value: float) -> str:
    if value >= 1_000_000:
        return f"{value / 1_000_000:.1f}M"
    if value >= 10_000:
        return f"{value / 1000:.0f}k"
    if value >= 1000:
        return f"{value / 1000:.1f}k"
    return f"{value:.0f}"


class RoleModel(BaseModel):
    """How one kind of agent call tends to go: turns, output per turn, and what each turn adds to
    the conversation besides the output (tool results: files viewed, command output)."""

    turns: Span
    output_per_turn: Span
    """Output tokens per turn (text, tool calls; thinking counts as output too)."""
    results_per_turn: Span
    """Input tokens each turn appends as tool results."""


DEFAULT_ROLES: dict[str, RoleModel] = {
    # An implementation owner reads, writes, builds and tests until its tests pass; in a large
    # repository a phase takes more than the run's turn cap, which then bounds the high end.
    "owner": RoleModel(
        turns=Span(low=15, high=60),
        output_per_turn=Span(low=150, high=400),
        results_per_turn=Span(low=400, high=1200),
    ),
    # A design phase writes documents and stubs: fewer turns, longer writes.
    "design": RoleModel(
        turns=Span(low=8, high=30),
        output_per_turn=Span(low=300, high=800),
        results_per_turn=Span(low=300, high=1000),
    ),
    "tester": RoleModel(
        turns=Span(low=10, high=40),
        output_per_turn=Span(low=150, high=400),
        results_per_turn=Span(low=400, high=1200),
    ),
    # The read-only verifier views files and records a verdict per criterion.
    "verifier": RoleModel(
        turns=Span(low=3, high=12),
        output_per_turn=Span(low=100, high=300),
        results_per_turn=Span(low=500, high=1500),
    ),
}


class ForecastSettings(BaseModel):
    """The stated model of the forecast; every field can be overridden by the repository."""

    chars_per_token: Span = Field(default_factory=lambda: Span(low=3.0, high=4.0))
    """Characters per token: the HIGH token estimate divides by ``low``, the low one by ``high``."""
    cache_hit: Span = Field(default_factory=lambda: Span(low=0.90, high=0.98))
    """Share of the previous request's prefix read from the cache; the rest is written again
    (a turn that ran longer than the cache's 5 minutes, a broken prefix). The high estimate uses
    ``low``."""
    summary_output: Span = Field(default_factory=lambda: Span(low=150, high=500))
    """Output tokens of the summary request that ends every call (capped at 500)."""
    builtin_tool_tokens: dict[str, int] = Field(
        default_factory=lambda: {"bash": 245, "str_replace_based_edit_tool": 700}
    )
    """Input tokens the API adds for each Anthropic-defined tool (its own schema and prompt)."""
    tool_use_system_tokens: int = 346
    """Input tokens the API adds to the system prompt of a request that has tools."""
    roles: dict[str, RoleModel] = Field(default_factory=lambda: dict(DEFAULT_ROLES))
    sources: list[str] = Field(default_factory=lambda: ["defaults (docs/cost.md)"])

    def role(self, name: str) -> RoleModel:
        return self.roles.get(name) or self.roles["owner"]


def settings_from_texts(pyproject: str | None, own: str | None) -> ForecastSettings:
    """The default settings with `[tool.plan-executor.forecast]` and `.ai/plan-executor.toml`
    `[forecast]` applied (later wins; a role's table replaces that role's numbers it names)."""
    settings = ForecastSettings()
    layers: list[tuple[object, str]] = []
    if pyproject is not None:
        tool = tomllib.loads(pyproject).get("tool", {}).get("plan-executor", {})
        if isinstance(tool, dict):
            layers.append(
                (tool.get(FORECAST_TABLE), "pyproject.toml [tool.plan-executor.forecast]")
            )
    if own is not None:
        layers.append((tomllib.loads(own).get(FORECAST_TABLE), ".ai/plan-executor.toml [forecast]"))
    for table, where in layers:
        if table is None:
            continue
        if not isinstance(table, dict):
            raise ValueError(f"{where}: must be a table")
        settings = _apply(settings, table, where)
    return settings


def _apply(settings: ForecastSettings, table: Mapping[str, object], where: str) -> ForecastSettings:
    data = settings.model_dump()
    for key, value in table.items():
        if key == "roles" and isinstance(value, dict):
            for role, fields in value.items():
                if not isinstance(fields, dict):
                    raise ValueError(f"{where}: `roles.{role}` must be a table")
                merged = dict(data["roles"].get(role) or data["roles"]["owner"])
                merged.update(fields)
                data["roles"][role] = merged
        elif key in data and key != "sources":
            data[key] = value
        else:
            raise ValueError(f"{where}: unknown key `{key}`")
    data["sources"] = [*settings.sources, where]
    try:
        return ForecastSettings.model_validate(data)
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from None


# -- one agent call ---------------------------------------------------------------------------


class CallForecast(BaseModel):
    """One agent call the run would make."""

    role: str
    """owner | tester | verifier (the role model used: design for a design phase's owner)."""
    agent: str
    model: str
    prompt_chars: int
    """System prompt + first user message (the task) + custom tool definitions, in characters."""
    prompt_tokens: Span
    """The first request's input: those characters as tokens, plus the API's own tool overhead."""
    turns: Span
    tokens: Span
    """All tokens of the call (input, cache writes and reads, output)."""
    cost_usd: Span
    usage_low: Usage
    usage_high: Usage
    cache_read_share: Span
    """Cache reads / all input tokens of the call."""


def prompt_tokens(
    chars: int, tools: Sequence[Mapping[str, object]], settings: ForecastSettings
) -> tuple[int, Span]:
    """(characters counted, token range) of a prompt: text plus tool definitions."""
    fixed = 0
    for tool in tools:
        if "type" in tool and tool.get("name") in settings.builtin_tool_tokens:
            fixed += settings.builtin_tool_tokens[str(tool["name"])]
        else:
            chars += len(json.dumps(tool, separators=(",", ":")))
    if tools:
        fixed += settings.tool_use_system_tokens
    low = chars / settings.chars_per_token.high + fixed
    high = chars / settings.chars_per_token.low + fixed
    return chars, Span(low=round(low), high=round(high))


def conversation_usage(
    prompt: float,
    turns: float,
    output_per_turn: float,
    results_per_turn: float,
    summary_output: float,
    cache_hit: float,
) -> Usage:
    """The usage of one call of ``turns`` tool turns and the summary request.

    Request k (1 … turns+1) sends the prompt and everything the earlier turns appended
    (``g = output + results`` per turn). The first request writes its whole prefix to the cache;
    each later one reads the previous request's prefix (``cache_hit`` of it; the rest is
    written again) and writes what was appended. Uncached input is left at 0: the loop puts a
    cache marker on the newest block of every request.
    """
    whole_turns = max(0, round(turns))
    growth = output_per_turn + results_per_turn
    reads = writes = 0.0
    writes += prompt
    for k in range(2, whole_turns + 2):  # the requests after the first (the last: the summary)
        previous = prompt + (k - 2) * growth
        reads += cache_hit * previous
        writes += (1 - cache_hit) * previous + growth
    return Usage(
        input_tokens=0,
        output_tokens=round(whole_turns * output_per_turn + summary_output),
        cache_creation_input_tokens=round(writes),
        cache_read_input_tokens=round(reads),
    )


def forecast_call(
    *,
    role: str,
    agent: str,
    model: str,
    prompt_chars: int,
    tools: Sequence[Mapping[str, object]],
    settings: ForecastSettings,
    prices: PriceTable,
    max_turns: int | None = None,
) -> CallForecast:
    """One call's forecast; ``max_turns`` (the run's cap for the call) bounds its turns."""
    chars, prompt = prompt_tokens(prompt_chars, tools, settings)
    shape = settings.role(role)
    if max_turns is not None:
        shape = shape.model_copy(
            update={
                "turns": Span(
                    low=min(shape.turns.low, max_turns), high=min(shape.turns.high, max_turns)
                )
            }
        )
    low = conversation_usage(
        prompt.low,
        shape.turns.low,
        shape.output_per_turn.low,
        shape.results_per_turn.low,
        settings.summary_output.low,
        settings.cache_hit.high,
    )
    high = conversation_usage(
        prompt.high,
        shape.turns.high,
        shape.output_per_turn.high,
        shape.results_per_turn.high,
        settings.summary_output.high,
        settings.cache_hit.low,
    )
    return CallForecast(
        role=role,
        agent=agent,
        model=model,
        prompt_chars=chars,
        prompt_tokens=prompt,
        turns=shape.turns,
        tokens=Span(low=low.total, high=high.total),
        cost_usd=Span(low=prices.cost(model, low), high=prices.cost(model, high)),
        usage_low=low,
        usage_high=high,
        cache_read_share=_ordered(_read_share(low), _read_share(high)),
    )


def _read_share(usage: Usage) -> float:
    inputs = usage.input_tokens + usage.cache_creation_input_tokens + usage.cache_read_input_tokens
    return usage.cache_read_input_tokens / inputs if inputs else 0.0


def _ordered(a: float, b: float) -> Span:
    return Span(low=min(a, b), high=max(a, b))


# -- a phase and a run -------------------------------------------------------------------------


class PhaseForecast(BaseModel):
    phase_id: str
    model: str = ""
    """The owner's model: the phase's actual tokens are priced with it ."""
    calls: list[CallForecast] = Field(default_factory=list)
    tokens: Span = Field(default_factory=lambda: Span(low=0, high=0))
    cost_usd: Span = Field(default_factory=lambda: Span(low=0, high=0))
    note: str = ""
    """Why there is no agent call (human, orchestrator, resumed), when there is none."""

    @classmethod
    def of(cls, phase_id: str, calls: list[CallForecast], note: str = "") -> PhaseForecast:
        tokens = Span(low=0, high=0)
        cost = Span(low=0, high=0)
        for call in calls:
            tokens = tokens + call.tokens
            cost = cost + call.cost_usd
        return cls(
            phase_id=phase_id,
            model=calls[0].model if calls else "",
            calls=calls,
            tokens=tokens,
            cost_usd=cost,
            note=note,
        )


class RunForecast(BaseModel):
    phases: list[PhaseForecast] = Field(default_factory=list)
    tokens: Span = Field(default_factory=lambda: Span(low=0, high=0))
    cost_usd: Span = Field(default_factory=lambda: Span(low=0, high=0))
    price_table_date: str = ""
    price_sources: list[str] = Field(default_factory=list)
    settings: ForecastSettings = Field(default_factory=ForecastSettings)
    prices: PriceTable = Field(default_factory=PriceTable)
    """The table the forecast used; the final report prices the actual usage with it too."""
    unknown_models: list[str] = Field(default_factory=list)
    """Models the price table does not know: priced as the dearest known model."""

    @classmethod
    def of(
        cls, phases: list[PhaseForecast], settings: ForecastSettings, prices: PriceTable
    ) -> RunForecast:
        tokens = Span(low=0, high=0)
        cost = Span(low=0, high=0)
        for phase in phases:
            tokens = tokens + phase.tokens
            cost = cost + phase.cost_usd
        models = sorted({c.model for p in phases for c in p.calls})
        return cls(
            phases=phases,
            tokens=tokens,
            cost_usd=cost,
            price_table_date=prices.table_date,
            price_sources=list(prices.sources),
            settings=settings,
            prices=prices,
            unknown_models=[m for m in models if not prices.is_known(m)],
        )

    def phase(self, phase_id: str) -> PhaseForecast | None:
        return next((p for p in self.phases if p.phase_id == phase_id), None)

    def summary(self) -> str:
        """`run total: 120k–900k tokens, $0.40–$3.10 (prices of 2026-11-30: shipped table)`."""
        unknown = (
            f"; unknown model(s) {', '.join(self.unknown_models)} priced as the dearest known"
            if self.unknown_models
            else ""
        )
        return (
            f"{self.tokens.tokens()} tokens, {self.cost_usd.usd()} "
            f"(prices of {self.price_table_date}: {'; '.join(self.price_sources)}; "
            f"{self.settings.chars_per_token.low:g}–{self.settings.chars_per_token.high:g} "
            f"characters per token{unknown})"
        )


# -- actual cost -------------------------------------------------------------------------------
