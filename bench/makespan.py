"""Makespan of synthetic plans against their critical path (issue 8, item 7).

    python bench/makespan.py [--reps 1] [--sizes 20 50] [--shapes wide diamond chain]
                             [--delay 1.0] [--write-docs]

Each plan has N phases in one DAG shape (`wide`: a root then N-1 in parallel; `chain`; `diamond`:
layers of 1 and 4 phases alternately), every phase's agent takes `--delay` seconds (the stand-in
delays its first work turn), and every gate is `true` (bench/_synthetic.py). The run uses a
private plan-executor server (embedded PostgreSQL), started once before the runs.

Critical path: `unbounded` = delay x longest chain; `limited` = the schedule under the agents'
global concurrency limit (4 slots, tasks/concurrency.py), the honest lower bound: a wide wave of
19 phases needs 5 rounds of 4. The target (makespan <= 1.05 x CP + 2 s) is checked against the
limited bound. Makespan = the flow's own duration (`RunReport.duration_s`: pre-flight, waves,
final validation, reports), not the backend selection.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _synthetic as syn  # noqa: E402


def measure(shape: str, n: int, delay: float, reps: int, limit: int) -> dict[str, object]:
    deps = syn.dag(shape, n)
    cp = syn.critical_path(deps, delay)
    cp_limited = syn.limited_schedule(deps, delay, limit)
    flows: list[float] = []
    bad: list[str] = []
    for _ in range(reps):
        result = syn.run_synthetic(shape, n, delay)
        flows.append(float(result["flow_s"]))  # type: ignore[arg-type]
        statuses = result["statuses"]
        if any(s != "complete" for s in statuses):  # type: ignore[union-attr]
            bad.append(",".join(sorted(set(statuses))))  # type: ignore[arg-type]
    makespan = syn.median(flows)
    return {
        "shape": shape,
        "n": n,
        "cp": cp,
        "cp_limited": cp_limited,
        "makespan": makespan,
        "runs": flows,
        "ratio": makespan / cp,
        "ratio_limited": makespan / cp_limited,
        "excess": makespan - cp_limited,
        "target": 1.05 * cp_limited + 2,
        "ok": makespan <= 1.05 * cp_limited + 2,
        "bad": bad,
    }


def table(rows: list[dict[str, object]]) -> str:
    lines = [
        "| plan | CP unbounded s | CP limit 4 s | makespan s (median) | / CP | / CP limit 4 | "
        "excess s | target s | met |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['n']} {r['shape']} | {r['cp']:.1f} | {r['cp_limited']:.1f} | "
            f"{r['makespan']:.1f} | {r['ratio']:.2f} | {r['ratio_limited']:.2f} | "
            f"{r['excess']:.1f} | {r['target']:.1f} | {'yes' if r['ok'] else 'NO'}"
            + (f" (phases not completed: {'; '.join(r['bad'])})" if r["bad"] else "")  # type: ignore[arg-type]
            + " |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--sizes", type=int, nargs="+", default=[20, 50])
    parser.add_argument("--shapes", nargs="+", default=list(syn.SHAPES), choices=syn.SHAPES)
    parser.add_argument("--delay", type=float, default=1.0, help="agent seconds per phase")
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    from tasks.concurrency import default_agent_limit

    limit = default_agent_limit()
    header = syn.stamp(" ".join(["python", "bench/makespan.py", *sys.argv[1:]]))
    rows = []
    with syn.private_server() as env:
        os.environ.update(env)
        for n in args.sizes:
            for shape in args.shapes:
                row = measure(shape, n, args.delay, args.reps, limit)
                rows.append(row)
                print(
                    f"{n} {shape}: makespan {row['makespan']:.1f}s runs {row['runs']} "
                    f"CP {row['cp']:.1f}s limited {row['cp_limited']:.1f}s",
                    flush=True,
                )
    text = table(rows)
    print(text)
    if args.write_docs:
        syn.write_section(
            "Makespan",
            f"{header}\nAgent time {args.delay:g} s per phase, gates `true`, {args.reps} run(s) "
            f"per plan (median), agents' concurrency limit {limit}. The target applies to the "
            f"limit-aware critical path (column *CP limit 4*).\n\n{text}\n",
        )


if __name__ == "__main__":
    main()
