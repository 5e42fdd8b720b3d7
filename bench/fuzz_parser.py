"""Run the parser's hypothesis properties with many examples and report what they found.

Usage (from the project root):
    python bench/fuzz_parser.py [--examples N] [--seed S] [--only NAME ...] [--write-docs]

The properties and strategies are those of the CI fuzz tests (`tests/parser/strategies.py`); CI
runs 150 examples each, this runs --examples (default 10,000) each. For every property it
records the examples run (calls of the property, shrinking included), the failures (with the
falsifying example hypothesis reports), and the wall-clock time. `--write-docs` replaces the
figures block in docs/reliability.md `## Bad input`. Exit status 1 when any property failed.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DOC = ROOT / "docs" / "reliability.md"
BEGIN = "<!-- fuzz_parser: begin -->"
END = "<!-- fuzz_parser: end -->"


@dataclass
class Outcome:
    name: str
    examples: int
    failures: int
    seconds: float
    detail: str = ""


def run_property(name: str, examples: int, seed: int | None) -> Outcome:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import seed as fixed_seed
    from hypothesis import strategies as st
    from hypothesis.errors import InvalidArgument

    from tests.parser.strategies import PROPERTIES

    prop, strategies = PROPERTIES[name]
    calls = 0

    def counted(args: tuple[object, ...]) -> None:
        nonlocal calls
        calls += 1
        prop(*args)

    test = settings(
        max_examples=examples,
        deadline=None,
        database=None,  # every run starts fresh: the figures are not replays of old failures
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )(given(st.tuples(*strategies))(counted))
    if seed is not None:
        test = fixed_seed(seed)(test)
    started = time.perf_counter()
    try:
        test()
    except InvalidArgument:
        raise  # a broken harness, not a finding
    except Exception as exc:  # a falsified property: keep its report, go on with the others
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        notes = "\n".join(getattr(exc, "__notes__", []))
        return Outcome(name, calls, 1, time.perf_counter() - started, f"{detail}\n{notes}")
    return Outcome(name, calls, 0, time.perf_counter() - started)


def table(outcomes: list[Outcome], examples: int, seed: int | None, command: str) -> str:
    import hypothesis

    total_examples = sum(o.examples for o in outcomes)
    total_s = sum(o.seconds for o in outcomes)
    lines = [
        f"Command: `{command}`",
        "",
        f"Machine: {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"hypothesis {hypothesis.__version__}; load average before the run "
        f"{os.getloadavg()[0]:.2f}; {examples:,} examples requested per property, "
        f"seed {seed if seed is not None else 'random'}.",
        "",
        "| property | examples run | failures | time (s) | ms / example |",
        "|---|---:|---:|---:|---:|",
    ]
    for o in outcomes:
        per = o.seconds * 1000 / o.examples if o.examples else 0.0
        lines.append(
            f"| `{o.name}` | {o.examples:,} | {o.failures} | {o.seconds:.1f} | {per:.2f} |"
        )
    lines.append(
        f"| **all** | **{total_examples:,}** | **{sum(o.failures for o in outcomes)}** "
        f"| **{total_s:.1f}** | |"
    )
    for o in outcomes:
        if o.failures:
            lines += ["", f"Failure in `{o.name}`:", "", "```", o.detail.strip()[:3000], "```"]
    return "\n".join(lines)


def write_docs(block: str) -> None:
    text = DOC.read_text(encoding="utf-8")
    wrapped = f"{BEGIN}\n{block}\n{END}"
    if BEGIN in text and END in text:
        text = re.sub(
            re.escape(BEGIN) + r".*?" + re.escape(END), lambda _: wrapped, text, flags=re.S
        )
    else:
        raise SystemExit(f"{DOC} has no {BEGIN} ... {END} block in `## Bad input`")
    DOC.write_text(text, encoding="utf-8")


def main() -> int:
    from tests.parser.strategies import PROPERTIES

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--only", nargs="*", choices=sorted(PROPERTIES), default=None)
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()

    outcomes = []
    for name in args.only or list(PROPERTIES):
        outcome = run_property(name, args.examples, args.seed)
        status = "ok" if not outcome.failures else "FAILED"
        print(
            f"{name}: {outcome.examples:,} examples, {status}, {outcome.seconds:.1f} s",
            flush=True,
        )
        if outcome.failures:
            print(outcome.detail, flush=True)
        outcomes.append(outcome)
    command = "python bench/fuzz_parser.py " + " ".join(sys.argv[1:])
    block = table(outcomes, args.examples, args.seed, command.strip())
    print()
    print(block)
    if args.write_docs:
        write_docs(block)
    return 1 if any(o.failures for o in outcomes) else 0


if __name__ == "__main__":
    raise SystemExit(main())
