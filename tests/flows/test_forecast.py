"""Issue 16: the cost forecast is a range that grows with the work and follows the prices, and
the final report sets it against the actual usage."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.context import PhaseOutcome
from flows.report import RunReport, final_report, forecast_section
from tasks.agent.pricing import PriceTable, price_table_from_texts
from tasks.forecast import (
    ForecastSettings,
    PhaseForecast,
    RunForecast,
    Span,
    conversation_usage,
    forecast_call,
    settings_from_texts,
)

TOOLS = [{"type": "bash_20250124", "name": "bash"}]


def call(chars: int, *, prices: PriceTable | None = None, role: str = "owner", **settings: object):
    return forecast_call(
        role=role,
        agent="rust-developer",
        model="claude-sonnet-5-5",
        prompt_chars=chars,
        tools=TOOLS,
        settings=ForecastSettings.model_validate(settings) if settings else ForecastSettings(),
        prices=prices or PriceTable(),
    )


def test_a_range_low_at_most_high_for_every_role() -> None:
    for role in ("owner", "design", "tester", "verifier"):
        forecast = call(8_000, role=role)
        assert forecast.tokens.low <= forecast.tokens.high
        assert 0 < forecast.cost_usd.low <= forecast.cost_usd.high
        assert forecast.prompt_tokens.low <= forecast.prompt_tokens.high
        assert forecast.usage_low.output_tokens <= forecast.usage_high.output_tokens
    with pytest.raises(ValueError):
        Span(low=2, high=1)


def test_monotone_in_the_size_of_the_task() -> None:
    sizes = [1_000, 10_000, 50_000, 200_000]
    forecasts = [call(size) for size in sizes]
    for smaller, larger in zip(forecasts, forecasts[1:], strict=False):
        assert smaller.tokens.low < larger.tokens.low
        assert smaller.tokens.high < larger.tokens.high
        assert smaller.cost_usd.low < larger.cost_usd.low
        assert smaller.cost_usd.high < larger.cost_usd.high
    # More turns cost more too.
    assert (
        conversation_usage(2000, 20, 300, 800, 200, 0.9).total
        > conversation_usage(2000, 10, 300, 800, 200, 0.9).total
    )


def test_most_of_the_growing_history_is_read_from_the_cache() -> None:
    usage = conversation_usage(5000, 30, 400, 1000, 300, 0.95)
    assert usage.cache_read_input_tokens > 5 * usage.cache_creation_input_tokens
    first_only = conversation_usage(5000, 0, 400, 1000, 300, 0.95)
    assert first_only.cache_read_input_tokens == 0
    assert first_only.cache_creation_input_tokens == 5000


def test_a_price_override_moves_the_cost_not_the_tokens() -> None:
    shipped = call(20_000)
    dearer = price_table_from_texts(
        None, '[pricing."claude-sonnet-5-5"]\ninput = 20.0\noutput = 100.0\n'
    )
    overridden = call(20_000, prices=dearer)
    assert overridden.tokens == shipped.tokens
    assert overridden.cost_usd.low > shipped.cost_usd.low * 5
    assert overridden.cost_usd.high > shipped.cost_usd.high * 5


def test_the_stated_model_is_adjustable_per_repository() -> None:
    settings = settings_from_texts(
        "[tool.plan-executor.forecast]\nchars_per_token = {low = 2.0, high = 3.0}\n",
        "[forecast.roles.owner]\nturns = {low = 40, high = 80}\n",
    )
    assert settings.chars_per_token.low == 2.0
    assert settings.role("owner").turns.high == 80
    assert settings.role("tester").turns.high == ForecastSettings().role("tester").turns.high
    assert settings.sources[-1] == ".ai/plan-executor.toml [forecast]"
    tuned = forecast_call(
        role="owner", agent="a", model="claude-sonnet-5-5", prompt_chars=10_000, tools=TOOLS,
        settings=settings, prices=PriceTable(),
    )  # fmt: skip
    assert tuned.cost_usd.low > call(10_000).cost_usd.low
    with pytest.raises(ValueError, match="unknown key `turnz`"):
        settings_from_texts(None, "[forecast]\nturnz = 3\n")


def test_the_report_shows_forecast_against_actual(tmp_path: Path) -> None:
    owner = call(20_000)
    forecast = RunForecast.of(
        [PhaseForecast.of("1", [owner]), PhaseForecast.of("2", [], note="gates only")],
        ForecastSettings(),
        PriceTable(),
    )
    outcomes = [
        PhaseOutcome(
            phase_id="1",
            status="complete",
            cost_usd=1.2345,
            tokens={
                "input": 10,
                "output": 4_000,
                "cache_creation_input": 30_000,
                "cache_read_input": 200_000,
            },
        ),  # fmt: skip
        PhaseOutcome(phase_id="2", status="complete"),
    ]
    report = RunReport(
        plan_path=str(tmp_path / "p.md"), status="Implemented", outcomes=outcomes, forecast=forecast
    )
    text = final_report(report)
    assert "### Cost: forecast against actual" in text
    usd = outcomes[0].cost_usd
    row = next(line for line in text.splitlines() if line.startswith("| 1 | claude-sonnet-5-5"))
    assert f"${usd:.2f}" in row and owner.cost_usd.usd() in row and "234010" in row
    assert any(line.startswith("| **run** |") for line in text.splitlines())
    assert "Prices of 2026-11-30" in text
    # No forecast, or a dry run: no section.
    assert forecast_section(report.model_copy(update={"forecast": None})) == []
    assert forecast_section(report.model_copy(update={"dry_run": True})) == []
