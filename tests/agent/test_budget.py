"""Budgets: the account and the no-progress detector (units), then the rules in the real agent
loop against the stand-in Messages API (agents that never stop on their own)."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from typing import Any

import pytest

from cli.demo import new_commands_forever, reading_forever
from tasks.agent.budget import (
    BudgetAccount,
    Limits,
    NoProgress,
    RunBudget,
    account_for,
    close_account,
    open_account,
)
from tasks.agent.loop import run_agent
from tasks.agent.pricing import ModelPrice, PriceTable
from tasks.agent.result import ErrorCode, FailureKind, Usage
from tests.agent.conftest import client_for, make_request
from tests.fakes import editor_create, editor_view, text_turn, tool_turn

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap not installed")

# One dollar per million tokens of every kind: costs are easy to check by hand.
FLAT = PriceTable(
    prices={"flat": ModelPrice(input=1.0, output=1.0, cache_write=1.0, cache_read=1.0)}
)


def usage(tokens: int) -> Usage:
    return Usage(input_tokens=tokens)


# -- the account ------------------------------------------------------------------------------


def test_a_phase_charge_counts_against_the_phase_and_the_run() -> None:
    run = BudgetAccount("run", Limits(max_tokens=1_000), FLAT)
    phase = BudgetAccount("phase 1", Limits(max_cost_usd=0.0005), FLAT, parent=run)
    other = BudgetAccount("phase 2", Limits(), FLAT, parent=run)

    assert phase.charge("flat", usage(400)) == pytest.approx(0.0004)
    assert phase.limit_reached() is None
    other.charge("flat", usage(400))
    assert run.spent.usage.total == 800 and other.spent.usage.total == 400
    assert phase.limit_reached() is None and other.limit_reached() is None

    phase.charge("flat", Usage(output_tokens=50, cache_read_input_tokens=50))
    reached = phase.limit_reached()
    assert reached is not None and reached.code == ErrorCode.COST_LIMIT
    assert reached.message.startswith("phase 1 cost budget spent")
    assert other.limit_reached() is None  # one phase over its own limit stops only itself

    other.charge("flat", usage(100))  # the run is at 1,000 of 1,000 tokens: everyone stops
    for account in (phase, other):
        stop = account.limit_reached()
        assert stop is not None and stop.code == ErrorCode.TOKEN_LIMIT
        assert stop.message == "run token budget spent: 1,000 of 1,000 tokens"


def test_cache_reads_and_writes_are_priced_apart() -> None:
    prices = PriceTable(prices={"m": ModelPrice(input=2.0, output=10.0)})
    account = BudgetAccount("run", Limits(), prices)
    account.charge(
        "m",
        Usage(
            input_tokens=1_000_000,
            output_tokens=1_000_000,
            cache_creation_input_tokens=1_000_000,
            cache_read_input_tokens=1_000_000,
        ),
    )
    assert account.spent.cost_usd == pytest.approx(2.0 + 10.0 + 2.5 + 0.2)


def test_concurrent_charges_are_all_counted() -> None:
    run = BudgetAccount("run", Limits(), FLAT)
    phases = [BudgetAccount(f"phase {n}", Limits(), FLAT, parent=run) for n in range(4)]

    def spend(account: BudgetAccount) -> None:
        for _ in range(500):
            account.charge("flat", Usage(input_tokens=1, output_tokens=2))

    threads = [threading.Thread(target=spend, args=(phase,)) for phase in phases]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert run.spent.usage.total == 4 * 500 * 3
    assert run.spent.usage.output_tokens == 4 * 500 * 2
    assert all(phase.spent.usage.total == 1_500 for phase in phases)


def test_limits_combine_to_the_tighter_and_refuse_nonsense() -> None:
    combined = Limits(max_cost_usd=5.0).tighter(Limits(max_cost_usd=2.0, max_tokens=10))
    assert combined == Limits(max_cost_usd=2.0, max_tokens=10)
    assert Limits().tighter(Limits()) == Limits() and not Limits().any
    with pytest.raises(ValueError):
        Limits(max_cost_usd=0)
    with pytest.raises(ValueError):
        Limits(max_tokens=-5)


def test_registry_hands_out_each_phase_its_own_account_under_the_run() -> None:
    budget = RunBudget(Limits(max_cost_usd=1.0), Limits(max_tokens=100), FLAT)
    key = budget.open_phase("2a")
    account = account_for(key)
    assert account is not None and account.parent is budget.account
    assert account.name == "phase 2a" and account.limits == Limits(max_tokens=100)
    assert budget.open_phase("2a") != key  # every attempt starts from zero
    close_account(key)
    assert account_for(key) is None and account_for(None) is None
    other = open_account(BudgetAccount("x", Limits(), FLAT))
    assert account_for(other) is not None
    close_account(other)


# -- the no-progress detector -----------------------------------------------------------------


def test_no_progress_counts_turns_without_a_change_or_a_new_command() -> None:
    rule = NoProgress(3)
    rule.turn(files_changed=False, commands=["cargo test"])  # new: progress
    rule.turn(files_changed=False, commands=[])
    rule.turn(files_changed=False, commands=["cargo  test"])  # the same command again
    assert rule.stale_turns == 2 and not rule.stalled
    rule.turn(files_changed=True, commands=[])  # an edit resets the count
    assert rule.stale_turns == 0
    rule.turn(files_changed=False, commands=["cargo test", "ls"])  # `ls` is new
    assert rule.stale_turns == 0
    for _ in range(3):
        rule.turn(files_changed=False, commands=["ls", "cargo test"])
    assert rule.stalled and "3 consecutive turns" in rule.message()


def test_no_progress_zero_is_off() -> None:
    rule = NoProgress(0)
    for _ in range(100):
        rule.turn(files_changed=False, commands=[])
    assert not rule.stalled


# -- the rules in the agent loop --------------------------------------------------------------


def forever(standin: Any, turn_calls: Any) -> Any:
    """A stand-in whose agent never ends its turn: turn n gets ``turn_calls(n)``."""

    def respond(body: dict[str, Any]) -> Any:
        if (body.get("tool_choice") or {}).get("type") == "none":
            return text_turn("Summary: I was still looking.")
        turns = sum(1 for m in body["messages"] if m["role"] == "assistant")
        return tool_turn(*turn_calls(turns))

    return standin(responder=respond, auto_summary=False)


def test_an_agent_reading_the_same_file_for_ever_is_stopped_by_no_progress(
    standin: Any, repo: Path
) -> None:
    fake = forever(standin, reading_forever("README.md"))
    result = run_agent(make_request(repo, no_progress_turns=4), client=client_for(fake))

    assert result.failure is FailureKind.BUDGET and result.error_code == ErrorCode.NO_PROGRESS
    assert "no progress: 4 consecutive turns" in (result.error or "")
    assert result.turns == 4
    # No-progress spends nothing more than the turns it took: the summary is still asked for.
    assert len(fake.message_requests) == 5 and fake.message_requests[-1].is_summary_request
    assert result.summary == "Summary: I was still looking."
    log = (repo / result.details_log).read_text() if result.details_log else ""
    assert "- failure: budget (no progress" in log


def test_writing_the_same_content_again_is_not_progress(standin: Any, repo: Path) -> None:
    """Turn 1 writes a file (progress), turns 2.. write the same bytes again (none)."""
    fake = forever(standin, lambda turn: [editor_create("notes.txt", "same text\n")])
    result = run_agent(make_request(repo, no_progress_turns=3), client=client_for(fake))
    assert result.error_code == ErrorCode.NO_PROGRESS and result.turns == 4
    assert (repo / "notes.txt").read_text() == "same text\n"


def test_an_agent_that_changes_a_file_every_turn_is_not_stopped_by_no_progress(
    standin: Any, repo: Path
) -> None:
    fake = forever(standin, lambda turn: [editor_create("notes.txt", f"version {turn}\n")])
    result = run_agent(
        make_request(repo, no_progress_turns=2, max_turns=6), client=client_for(fake)
    )
    assert result.error_code == "turn_cap" and result.turns == 6  # only the safety net


@needs_bwrap
def test_an_agent_running_ever_new_commands_is_stopped_by_its_token_budget(
    standin: Any, repo: Path
) -> None:
    fake = forever(standin, new_commands_forever())
    budget = RunBudget(Limits(), Limits(max_tokens=6_000), PriceTable())
    key = budget.open_phase("1")
    try:
        result = run_agent(
            make_request(repo, no_progress_turns=2, budget_account=key, network=False),
            client=client_for(fake),
        )
        account = account_for(key)
        assert account is not None
        spent = account.spent
    finally:
        close_account(key)

    assert result.failure is FailureKind.BUDGET and result.error_code == ErrorCode.TOKEN_LIMIT
    assert result.error and result.error.startswith("phase 1 token budget spent")
    # Every command was new (progress by the rule), so only the budget stopped it; each command
    # of every turn ran, and the call stopped between turns.
    assert result.turns > 2 and len(result.commands_run) == result.turns
    assert len(set(result.commands_run)) == result.turns
    # Usage is the API's own: the account holds exactly what the responses reported, and a
    # spent budget sends no summary request.
    requests = fake.message_requests
    assert len(requests) == result.turns and not any(r.is_summary_request for r in requests)
    assert spent.usage == result.usage
    assert spent.usage.total == sum(
        r.input_tokens + r.output_tokens + r.cache_creation_input_tokens + r.cache_read_input_tokens
        for r in requests
    )
    assert spent.usage.total >= 6_000
    assert (
        spent.usage.total
        - requests[-1].input_tokens
        - requests[-1].output_tokens
        - (requests[-1].cache_creation_input_tokens + requests[-1].cache_read_input_tokens)
        < 6_000
    )  # it stopped at the first turn boundary past the limit
    assert spent.cost_usd == pytest.approx(PriceTable().cost("claude-sonnet-5-5", spent.usage))


def test_a_spent_run_budget_starts_no_new_agent_call(standin: Any, repo: Path) -> None:
    budget = RunBudget(Limits(max_cost_usd=0.01), Limits(), FLAT)
    budget.account.charge("flat", usage(10_000))  # other phases spent the run's budget
    key = budget.open_phase("2")
    fake = standin([tool_turn(editor_view("README.md")), text_turn("done")])
    try:
        result = run_agent(make_request(repo, budget_account=key), client=client_for(fake))
    finally:
        close_account(key)
    assert result.failure is FailureKind.BUDGET and result.error_code == ErrorCode.COST_LIMIT
    assert result.error == "run cost budget spent: $0.0100 of $0.01"
    assert result.turns == 0 and fake.message_requests == []


def test_a_running_call_finishes_its_turn_when_another_phase_spends_the_run_budget(
    standin: Any, repo: Path
) -> None:
    budget = RunBudget(Limits(max_tokens=1_000_000), Limits(), FLAT)
    key = budget.open_phase("1")

    def respond(body: dict[str, Any]) -> Any:
        turns = sum(1 for m in body["messages"] if m["role"] == "assistant")
        if turns == 2:  # meanwhile a concurrent phase spends the rest of the run's budget
            budget.account.charge("flat", usage(1_000_000))
        return tool_turn(editor_create(f"turn{turns}.txt", f"{turns}\n"))

    fake = standin(responder=respond, auto_summary=False)
    try:
        result = run_agent(make_request(repo, budget_account=key), client=client_for(fake))
    finally:
        close_account(key)
    assert result.failure is FailureKind.BUDGET and result.error_code == ErrorCode.TOKEN_LIMIT
    assert result.error and result.error.startswith("run token budget spent")
    # Turn 3 (the one in flight when the budget went) was finished: its tool ran.
    assert result.turns == 3 and (repo / "turn2.txt").read_text() == "2\n"
    assert not (repo / "turn3.txt").exists() and len(fake.message_requests) == 3


def test_the_no_progress_digest_reads_only_regular_files_inside_the_tree(tmp_path: Path) -> None:
    """It runs in our process, outside the sandbox, on a path an agent chose: a FIFO must not
    block it, a device must not be read, a symlink or a path outside the tree is not followed."""
    import os

    from tasks.agent.loop import tree_file_digest

    repo = tmp_path / "repo"
    repo.mkdir()
    outside = tmp_path / "secret.txt"
    outside.write_text("secret")
    (repo / "a.txt").write_text("one")
    os.mkfifo(repo / "pipe")
    (repo / "link.txt").symlink_to(outside)
    first = tree_file_digest(repo, repo / "a.txt")
    assert first not in {"-", ""}
    (repo / "a.txt").write_text("two")
    assert tree_file_digest(repo, repo / "a.txt") != first
    for path in [repo / "pipe", repo / "link.txt", outside, Path("/dev/zero"), repo / "none"]:
        assert tree_file_digest(repo, path) == "-", path
