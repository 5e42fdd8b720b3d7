"""What tokens cost: a per-model price table that ships with the tool, overridable per repository.

Prices change, so the table says when it was written (:data:`PRICE_TABLE_DATE`) and a repository
can override any model's prices in `[tool.plan-executor.pricing]` of its `pyproject.toml` or the
`[pricing]` table of `.ai/plan-executor.toml` (later wins), for example::

    [pricing."claude-sonnet-5-5"]
    input = 2.0          # USD per million input tokens
    output = 10.0
    cache_write = 2.5    # optional: 1.25 x input when absent (5-minute cache writes)
    cache_read = 0.2     # optional: 0.1 x input when absent

A run reads the overrides from the committed `HEAD` (:func:`load_committed_price_table`), like
its gate commands: an agent that lowered prices in the working tree must not widen its budget.
A model the table does not know is priced as the dearest known model, so a budget errs on the
side of stopping early; :meth:`PriceTable.is_known` tells callers to say so.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import BaseModel, Field

from tasks.agent.result import Usage
from tasks.gates.config import committed_file

PRICE_TABLE_DATE = "2026-11-30"
"""When the shipped prices were copied from Anthropic's pricing pages."""

CACHE_WRITE_FACTOR = 1.25
"""A 5-minute cache write costs 1.25x the input price (the loop uses the 5-minute cache)."""
CACHE_READ_FACTOR = 0.1

PRICING_TABLE = "pricing"
OWN_FILE = ".ai/plan-executor.toml"
PYPROJECT = "pyproject.toml"


class ModelPrice(BaseModel):
    """USD per million tokens of each kind."""

    input: float
    output: float
    cache_write: float | None = None
    cache_read: float | None = None

    @property
    def cache_write_rate(self) -> float:
        return self.cache_write if self.cache_write is not None else self.input * CACHE_WRITE_FACTOR

    @property
    def cache_read_rate(self) -> float:
        return self.cache_read if self.cache_read is not None else self.input * CACHE_READ_FACTOR

    def cost(self, usage: Usage) -> float:
        """USD for ``usage``, each kind of token at its own rate."""
        return (
            usage.input_tokens * self.input
            + usage.output_tokens * self.output
            + usage.cache_creation_input_tokens * self.cache_write_rate
            + usage.cache_read_input_tokens * self.cache_read_rate
        ) / 1_000_000


DEFAULT_PRICES: dict[str, ModelPrice] = {
    "claude-fable-5-1": ModelPrice(input=10.0, output=50.0),
    "claude-opus-5-5": ModelPrice(input=4.0, output=20.0),
    "claude-opus-5": ModelPrice(input=5.0, output=25.0),
    "claude-sonnet-5-5": ModelPrice(input=2.0, output=10.0),
    "claude-sonnet-5": ModelPrice(input=3.0, output=15.0),
    "claude-haiku-5-5": ModelPrice(input=1.0, output=5.0),
    "claude-haiku-4-5": ModelPrice(input=1.0, output=5.0),
    # The offline stand-in of the Messages API (tests, `plan-executor demo`): priced like the
    # default model so that budgets and reports behave as they would against the real API.
    "claude-standin": ModelPrice(input=2.0, output=10.0),
}


class PriceTable(BaseModel):
    """Prices by model id, the date of the shipped table, and where overrides came from."""

    prices: dict[str, ModelPrice] = Field(default_factory=lambda: dict(DEFAULT_PRICES))
    table_date: str = PRICE_TABLE_DATE
    sources: list[str] = Field(default_factory=lambda: [f"shipped table of {PRICE_TABLE_DATE}"])

    def is_known(self, model: str) -> bool:
        return _base_model(model) in self.prices

    def price_of(self, model: str) -> ModelPrice:
        """The price of ``model``; an unknown model is priced as the dearest known one."""
        price = self.prices.get(_base_model(model))
        if price is not None:
            return price
        return max(self.prices.values(), key=lambda p: (p.output, p.input))

    def cost(self, model: str, usage: Usage) -> float:
        return self.price_of(model).cost(usage)


def _base_model(model: str) -> str:
    """`claude-haiku-4-5-20251001` → `claude-haiku-4-5`: dated ids cost what their family does."""
    head, _, tail = model.rpartition("-")
    return head if tail.isdigit() and len(tail) == 8 else model


def _pricing_overrides(table: object, where: str) -> dict[str, ModelPrice]:
    if table is None:
        return {}
    if not isinstance(table, dict):
        raise ValueError(f"{where}: `{PRICING_TABLE}` must be a table of models")
    overrides: dict[str, ModelPrice] = {}
    for model, fields in table.items():
        if not isinstance(fields, dict):
            raise ValueError(f"{where}: `{PRICING_TABLE}.{model}` must be a table")
        try:
            overrides[model] = ModelPrice.model_validate(fields)
        except ValueError as error:
            raise ValueError(f"{where}: `{PRICING_TABLE}.{model}`: {error}") from None
    return overrides


def price_table_from_texts(pyproject: str | None, own: str | None) -> PriceTable:
    """The shipped table with the overrides found in the two configuration texts applied."""
    table = PriceTable()
    layers = []
    if pyproject is not None:
        tool = tomllib.loads(pyproject).get("tool", {}).get("plan-executor", {})
        if isinstance(tool, dict):
            layers.append((tool.get(PRICING_TABLE), f"{PYPROJECT} [tool.plan-executor.pricing]"))
    if own is not None:
        layers.append((tomllib.loads(own).get(PRICING_TABLE), f"{OWN_FILE} [pricing]"))
    for raw, where in layers:
        overrides = _pricing_overrides(raw, where)
        if overrides:
            table.prices.update(overrides)
            table.sources.append(where)
    return table


def load_price_table(repo: Path) -> PriceTable:
    """Prices as the working tree of ``repo`` says (for a dry run's forecast)."""
    repo = Path(repo)

    def text(path: Path) -> str | None:
        return path.read_text(encoding="utf-8") if path.is_file() else None

    return price_table_from_texts(text(repo / PYPROJECT), text(repo / OWN_FILE))


def load_committed_price_table(repo: Path, ref: str = "HEAD") -> PriceTable:
    """Prices as commit ``ref`` of ``repo`` says (what a run budgets with)."""
    return price_table_from_texts(
        committed_file(repo, PYPROJECT, ref), committed_file(repo, OWN_FILE, ref)
    )
