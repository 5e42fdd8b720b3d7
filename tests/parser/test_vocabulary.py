"""The shared vocabulary: the status sets are subsets of the status names, the old import paths
name the same objects, and the two forms of "now" agree."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from plan_parser import checkpoints, model, vocabulary
from tasks import mirror
from tasks.gates import ledger


def test_status_sets_are_made_of_phase_statuses() -> None:
    names = set(vocabulary.PHASE_STATUSES)
    assert vocabulary.FAILED_LIKE_STATUSES < vocabulary.TERMINAL_STATUSES < names
    assert names - vocabulary.TERMINAL_STATUSES == {"pending", "running"}


def test_old_names_are_the_vocabulary() -> None:
    assert checkpoints.PHASE_STATUSES is vocabulary.PHASE_STATUSES
    assert mirror.TERMINAL is vocabulary.TERMINAL_STATUSES
    assert mirror.FAILED_LIKE is vocabulary.FAILED_LIKE_STATUSES
    assert mirror.utc_now is vocabulary.utc_now and mirror.stamp is vocabulary.utc_stamp
    assert model.id_key is vocabulary.id_key
    # The ledger's verdict is not a phase status: one name, one meaning (it was `PhaseStatus`).
    assert not hasattr(ledger, "PhaseStatus") and ledger.VerdictStatus.COMPLETE == "complete"


def test_dirty_policies_in_the_order_the_cli_shows_them() -> None:
    assert vocabulary.DIRTY_POLICIES == ("stop", "stash", "commit", "proceed")


def test_now_as_datetime_and_as_checkpoint_string() -> None:
    now = vocabulary.utc_now()
    assert now.tzinfo is UTC and now.microsecond == 0
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", checkpoints.utc_now())
    moment = datetime(2025, 12, 19, 14, 30, tzinfo=UTC)
    assert vocabulary.utc_stamp(moment) == "2025-12-19T14:30:00Z"


def test_id_key_ignores_case_and_blanks() -> None:
    assert vocabulary.id_key(" 1A ") == "1a"


def test_the_dirty_tree_form_offers_every_policy_and_only_those() -> None:
    from typing import get_args

    from flows.approvals import DirtyTreeAction
    from plan_parser.vocabulary import DIRTY_POLICIES

    assert sorted(get_args(DirtyTreeAction)) == sorted(DIRTY_POLICIES)


def test_each_shared_word_is_assigned_in_one_product_module() -> None:
    """A module-level assignment to a vocabulary name anywhere but its one home would be a
    second definition (the review found the phase statuses defined four times)."""
    import ast
    from pathlib import Path

    shared = set(vocabulary.__all__) - {"id_key", "utc_now", "utc_stamp"}
    root = Path(vocabulary.__file__).resolve().parents[1]
    homes: dict[str, list[str]] = {name: [] for name in shared}
    for package in ("plan_parser", "tasks", "flows", "cli", "backend"):
        for path in sorted((root / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in tree.body:
                targets = (
                    node.targets
                    if isinstance(node, ast.Assign)
                    else [node.target]
                    if isinstance(node, ast.AnnAssign)
                    else []
                )
                for target in targets:
                    if isinstance(target, ast.Name) and target.id in shared:
                        homes[target.id].append(str(path.relative_to(root)))
    assert {name: places for name, places in homes.items() if len(places) != 1} == {}
    assert homes["DEFAULT_GATE_PROGRAMS"] == ["plan_parser/gate_commands.py"]
    assert homes["PhaseStatus"] == ["plan_parser/vocabulary.py"]
