"""The pure parts of the engine benchmarks: DAG shapes, critical paths, prefix shares, docs.

The benchmarks themselves (timings) run from bench/, never here; these check the arithmetic
their tables rest on.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def syn():  # type: ignore[no-untyped-def]
    sys.path.insert(0, str(BENCH))
    try:
        yield importlib.import_module("_synthetic")
    finally:
        sys.path.remove(str(BENCH))


@pytest.fixture(scope="module")
def prefix(syn):  # type: ignore[no-untyped-def]
    return importlib.import_module("prefix_share")


def test_shapes_have_the_declared_structure(syn) -> None:  # type: ignore[no-untyped-def]
    assert syn.dag("chain", 4) == {1: [], 2: [1], 3: [2], 4: [3]}
    assert syn.dag("wide", 4) == {1: [], 2: [1], 3: [1], 4: [1]}
    diamond = syn.dag("diamond", 7)
    assert diamond[1] == [] and diamond[2] == diamond[5] == [1]
    assert diamond[6] == [2, 3, 4, 5] and diamond[7] == [6]


def test_critical_path_unbounded_and_under_the_agent_limit(syn) -> None:  # type: ignore[no-untyped-def]
    wide = syn.dag("wide", 20)
    assert syn.critical_path(wide, 2.0) == 4.0
    # 19 phases after the root in rounds of 4: 5 rounds.
    assert syn.limited_schedule(wide, 2.0, 4) == 12.0
    assert syn.limited_schedule(wide, 2.0, 100) == 4.0
    chain = syn.dag("chain", 50)
    assert syn.critical_path(chain, 1.0) == syn.limited_schedule(chain, 1.0, 4) == 50.0
    diamond = syn.dag("diamond", 20)  # layers 1,4,1,4,...: 8 layers, each fits in 4 slots
    assert syn.critical_path(diamond, 1.0) == syn.limited_schedule(diamond, 1.0, 4) == 8.0
    assert syn.limited_schedule(diamond, 1.0, 2) == 12.0


def test_synthetic_plan_parses_with_the_declared_dependencies(syn) -> None:  # type: ignore[no-untyped-def]
    from plan_parser.parser import parse_text

    plan = parse_text(syn.plan_text("diamond", 7))
    deps = {p.id: sorted(p.depends_on) for p in plan.phases}
    assert deps["6"] == ["2", "3", "4", "5"] and deps["1"] == []


def test_prefix_of_a_growing_conversation_is_kept(prefix) -> None:  # type: ignore[no-untyped-def]
    first = {
        "tools": [{"name": "bash"}],
        "system": [{"type": "text", "text": "sys"}],
        "messages": [
            {
                "role": "user",
                "content": [{"type": "text", "text": "go", "cache_control": {"type": "ephemeral"}}],
            }
        ],
    }
    second = {
        "tools": [{"name": "bash"}],
        "system": [{"type": "text", "text": "sys"}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "go"}]},
            {
                "role": "assistant",
                "content": [{"type": "text", "text": "ok", "cache_control": {"type": "ephemeral"}}],
            },
        ],
    }
    a, b = prefix.serialize(first, markers=False), prefix.serialize(second, markers=False)
    assert prefix.common_prefix(a, b) == len(a) < len(b)
    # With the markers, the moved marker breaks the byte prefix inside the first message.
    raw_a, raw_b = prefix.serialize(first), prefix.serialize(second)
    assert prefix.common_prefix(raw_a, raw_b) < len(raw_a)
    assert prefix.common_prefix(b"abcdef", b"abcxyz") == 3


def test_write_section_replaces_only_its_section(syn, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    docs = tmp_path / "benchmarks.md"
    docs.write_text("# B\n\n## One\n\nold\n\n## Two\n\nkeep\n")
    monkeypatch.setattr(syn, "DOCS", docs)
    syn.write_section("One", "new")
    syn.write_section("Three", "added")
    assert docs.read_text() == "# B\n\n## One\n\nnew\n\n## Two\n\nkeep\n\n## Three\n\nadded\n"
