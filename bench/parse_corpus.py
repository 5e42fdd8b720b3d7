"""Benchmark the plan parser: plans per second over the corpus in one process, and CLI start time.

Usage (from the project root):  python bench/parse_corpus.py [--plans DIR] [--repeat N] [--runs N]

Prints Markdown tables (copied into docs/benchmarks.md `## Parser`). Wall-clock figures depend on
the machine and its load, so the load average is printed too; nothing here is asserted in tests.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _best(fn, repeat: int) -> tuple[float, float]:
    """Best wall-clock and best CPU seconds over `repeat` calls (CPU time is steadier on a
    shared machine)."""
    walls, cpus = [], []
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - start_cpu)
    return min(walls), min(cpus)


def in_process(plans: list[Path], repeat: int) -> list[tuple[str, str]]:
    start = time.perf_counter()
    import plan_parser
    from plan_parser import blocks

    import_s = time.perf_counter() - start
    start = time.perf_counter()
    first = [plan_parser.parse_plan(path) for path in plans]
    cold_s = time.perf_counter() - start
    best, best_cpu = _best(lambda: [plan_parser.parse_plan(path) for path in plans], repeat)
    texts = [path.read_text(encoding="utf-8") for path in plans]
    _, tokenize_cpu = _best(lambda: [blocks.tokenize(text) for text in texts], repeat)
    per_file = []
    for path in plans:
        one, _ = _best(lambda path=path: plan_parser.parse_plan(path), 3)
        per_file.append((one, path.name))
    slowest_s, slowest_name = max(per_file)
    size = sum(path.stat().st_size for path in plans)
    phases = sum(len(plan.phases) for plan in first)
    return [
        ("files / phases / bytes", f"{len(plans)} / {phases} / {size:,}"),
        ("import plan_parser", f"{import_s * 1000:.0f} ms"),
        ("first pass over the corpus (cold)", f"{cold_s * 1000:.0f} ms"),
        (
            f"whole corpus, best of {repeat}: wall / CPU",
            f"{best * 1000:.0f} ms / {best_cpu * 1000:.0f} ms",
        ),
        ("plans per second (CPU)", f"{len(plans) / best_cpu:.0f}"),
        ("MB per second (CPU)", f"{size / best_cpu / 1e6:.2f}"),
        (
            "of which markdown-it block tokenizing (CPU)",
            f"{tokenize_cpu * 1000:.0f} ms ({tokenize_cpu / best_cpu:.0%})",
        ),
        ("slowest file", f"{slowest_s * 1000:.1f} ms ({slowest_name})"),
    ]


def _median_run(argv: list[str], runs: int) -> float:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, capture_output=True, env=env, cwd=ROOT, check=False)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def cli_start(plans: list[Path], runs: int) -> list[tuple[str, str]]:
    script = Path(sys.executable).parent / "plan-executor"
    cli = [str(script)] if script.exists() else [shutil.which("plan-executor") or "plan-executor"]
    sample = ROOT.parent / "shared" / "corpus" / "plans" / "2026-01-03.mermaid-module.md"
    one = str(sample if sample.exists() else plans[0])
    cases = [
        ("`python -c pass` (interpreter floor)", [sys.executable, "-c", "pass"]),
        ("`plan-executor --help`", [*cli, "--help"]),
        ("`plan-executor parse --json` one plan", [*cli, "parse", "--json", one]),
        ("`plan-executor validate` one plan", [*cli, "validate", one]),
        (
            f"`plan-executor parse --json` all {len(plans)} files",
            [*cli, "parse", "--json", *map(str, plans)],
        ),
        (
            "`python -c 'import prefect'` (what the read-only commands avoid)",
            [sys.executable, "-c", "import prefect"],
        ),
    ]
    return [(name, f"{_median_run(argv, runs) * 1000:.0f} ms") for name, argv in cases]


def _table(title: str, rows: list[tuple[str, str]]) -> str:
    lines = [f"| {title} | |", "|---|---|"]
    lines.extend(f"| {name} | {value} |" for name, value in rows)
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plans", type=Path, default=ROOT.parent / "shared" / "corpus" / "plans")
    parser.add_argument("--repeat", type=int, default=5, help="in-process passes (best taken)")
    parser.add_argument("--runs", type=int, default=5, help="CLI runs per case (median taken)")
    args = parser.parse_args()
    plans = sorted(args.plans.glob("*.md"))
    if not plans:
        print(f"no plans under {args.plans}", file=sys.stderr)
        return 1
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {load:.2f}\n"
    )
    print(_table("In one process", in_process(plans, args.repeat)))
    print()
    print(_table(f"CLI start (median of {args.runs})", cli_start(plans, args.runs)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
