"""Benchmark the verification gates: their own overhead over the commands they run, and how many
acceptance criteria of the corpus they decide mechanically.

Usage (from the project root):  python bench/gates.py [--runs N] [--plans DIR]

Prints Markdown tables (copied into docs/benchmarks.md `## Gates`). Needs cargo; uses a private
CARGO_TARGET_DIR in a temporary directory. Nothing here is asserted in tests.
"""

from __future__ import annotations

import argparse
import collections
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def gate_overhead(runs: int) -> list[tuple[str, str]]:
    from plan_parser.parser import parse_text
    from tasks.gates.phase_gates import run_phase_gates, snapshot
    from tasks.gates.preflight import run_preflight
    from tasks.gates.verdict import decide
    from tests.gates.helpers import make_repo
    from tests.gates.test_parsed_plan import PLAN
    from tests.gates.test_phase_gates import add_halve, math_phase

    criteria = [
        "File `src/math.rs` exists with >30 lines",
        '`grep "pub fn halve" src/math.rs` succeeds',
        "`cargo test math::` runs 4+ tests",
        "The function name reads naturally",
    ]
    snap, gates, commands, pre, pre_commands = [], [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["CARGO_TARGET_DIR"] = str(Path(tmp) / "target")
        os.environ["CARGO_TERM_COLOR"] = "never"
        for index in range(runs + 1):  # the first run warms the target dir and is dropped
            repo = make_repo("single", Path(tmp) / f"r{index}")
            plan = parse_text(PLAN, "plan.md")
            started = time.perf_counter()
            result = run_preflight(repo, plan, plan_path=repo / "plan.md", policy="proceed")
            pre_wall = time.perf_counter() - started
            started = time.perf_counter()
            start = snapshot(repo, baseline=result.baseline)
            snap_wall = time.perf_counter() - started
            add_halve(repo)
            started = time.perf_counter()
            ledger = run_phase_gates(
                repo, math_phase(criteria), start=start, baseline=result.baseline
            )
            gate_wall = time.perf_counter() - started
            assert decide(ledger).status.value == "complete"
            if index == 0:
                continue
            pre.append(pre_wall)
            pre_commands.append(sum(e.duration_s for e in result.ledger.entries))
            snap.append(snap_wall)
            gates.append(gate_wall)
            commands.append(sum(e.duration_s for e in ledger.entries if e.command))
    med = statistics.median
    return [
        ("pre-flight (tests, build, clippy, fmt + git, tools, agents)", f"{med(pre):.2f} s"),
        ("  of which the commands themselves", f"{med(pre_commands):.2f} s"),
        ("snapshot (git status, digests, Rust inventory)", f"{med(snap) * 1000:.0f} ms"),
        (
            "phase gates (blast radius, 3 criteria, build, clippy, fmt, scope, integrity)",
            f"{med(gates):.2f} s",
        ),
        ("  of which the commands themselves", f"{med(commands):.2f} s"),
        ("  gate overhead (git diff, inventory, parsing)", f"{med(gates) - med(commands):.2f} s"),
    ]


def corpus_criteria(plans_dir: Path) -> list[tuple[str, str]]:
    from plan_parser.parser import parse_plan
    from tasks import shell
    from tasks.gates.cargo_output import TestRun
    from tasks.gates.criteria import evaluate_criterion
    from tasks.gates.ledger import LedgerEntry, Verdict

    kinds: collections.Counter[str] = collections.Counter()
    blast: collections.Counter[str] = collections.Counter()
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp)
        shell.run(["git", "init", "-q"], cwd=repo)

        def counts(argv: list[str] | None) -> tuple[TestRun | None, str]:
            return TestRun(passed=1, summaries=1), "counted"

        def runner(argv: list[str]) -> LedgerEntry:
            return LedgerEntry(check="run", verdict=Verdict.PASS)

        for path in sorted(plans_dir.glob("*.md")):
            for phase in parse_plan(path).phases:
                if phase.blast_radius is None:
                    blast["absent: default scope"] += 1
                elif phase.blast_commands:
                    blast["commands"] += 1
                else:
                    blast["prose: not run"] += 1
                for criterion in phase.acceptance_criteria:
                    entries = evaluate_criterion(
                        repo,
                        1,
                        criterion.text,
                        count_tests=counts,
                        allowed_programs={"cargo", "just"},
                        run_command=runner,
                    )
                    judged = entries[0].verdict is Verdict.NEEDS_JUDGEMENT
                    kinds["needs judgement" if judged else "mechanical"] += 1
    total = sum(kinds.values())
    rows = [(f"criteria {k}", f"{v} ({v / total:.0%})") for k, v in kinds.most_common()]
    rows += [(f"phases with blast radius {k}", str(v)) for k, v in blast.most_common()]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--plans", type=Path, default=ROOT.parent / "shared" / "corpus" / "plans")
    args = parser.parse_args()
    print(f"load average: {os.getloadavg()[0]:.1f}\n")
    print("| Gates on the `single` fixture crate (median) | |\n|---|---|")
    for name, value in gate_overhead(args.runs):
        print(f"| {name} | {value} |")
    if args.plans.is_dir():
        print("\n| Corpus acceptance criteria | |\n|---|---|")
        for name, value in corpus_criteria(args.plans):
            print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
