"""The price table: kinds of tokens priced apart, dated ids, unknown models, repository overrides."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tasks.agent.pricing import (
    PRICE_TABLE_DATE,
    load_committed_price_table,
    load_price_table,
    price_table_from_texts,
)
from tasks.agent.result import Usage


def test_each_kind_of_token_has_its_own_rate() -> None:
    table = price_table_from_texts(None, None)
    million = 1_000_000
    sonnet = "claude-sonnet-5-5"
    assert table.cost(sonnet, Usage(input_tokens=million)) == pytest.approx(2.0)
    assert table.cost(sonnet, Usage(output_tokens=million)) == pytest.approx(10.0)
    assert table.cost(sonnet, Usage(cache_creation_input_tokens=million)) == pytest.approx(2.5)
    assert table.cost(sonnet, Usage(cache_read_input_tokens=million)) == pytest.approx(0.2)
    assert table.table_date == PRICE_TABLE_DATE


def test_dated_ids_cost_what_their_family_does_and_unknown_models_the_most() -> None:
    table = price_table_from_texts(None, None)
    assert table.is_known("claude-haiku-4-5-20251001")
    assert table.price_of("claude-haiku-4-5-20251001") == table.price_of("claude-haiku-4-5")
    assert not table.is_known("claude-new-9")
    dearest = max(p.output for p in table.prices.values())
    assert table.price_of("claude-new-9").output == dearest


def test_the_own_file_overrides_pyproject_which_overrides_the_shipped_table() -> None:
    pyproject = '[tool.plan-executor.pricing."claude-sonnet-5-5"]\ninput = 1.0\noutput = 3.0\n'
    own = '[pricing."claude-sonnet-5-5"]\ninput = 0.5\noutput = 1.5\ncache_read = 0.01\n'
    table = price_table_from_texts(pyproject, own)
    price = table.price_of("claude-sonnet-5-5")
    assert (price.input, price.output, price.cache_read_rate) == (0.5, 1.5, 0.01)
    assert len(table.sources) == 3
    only_pyproject = price_table_from_texts(pyproject, None).price_of("claude-sonnet-5-5")
    assert (only_pyproject.input, only_pyproject.cache_write_rate) == (1.0, 1.25)


def test_a_malformed_override_names_the_file_and_the_model() -> None:
    with pytest.raises(ValueError, match=r"\.ai/plan-executor\.toml.*claude-x"):
        price_table_from_texts(None, '[pricing."claude-x"]\ninput = "cheap"\n')


def test_a_run_prices_from_the_commit_not_the_working_tree(tmp_path: Path) -> None:
    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    own = tmp_path / ".ai" / "plan-executor.toml"
    own.parent.mkdir()
    own.write_text('[pricing."claude-sonnet-5-5"]\ninput = 7.0\noutput = 70.0\n')
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "prices")
    own.write_text('[pricing."claude-sonnet-5-5"]\ninput = 0.0\noutput = 0.0\n')
    assert load_committed_price_table(tmp_path).price_of("claude-sonnet-5-5").output == 70.0
    assert load_price_table(tmp_path).price_of("claude-sonnet-5-5").output == 0.0
