"""Where the time of a plan run goes: the demo plan (3 phases, 2 waves) end to end.

    python bench/flows.py [--runs 3] [--backend server|ephemeral]

Each run makes a fresh demo crate, plays the agents with the scripted stand-in (1 s per first
turn, as in the demo) and runs `execute-plan` in this process through `run_plan`. Prints, per
run: the wall time of `run_plan` (backend selection, flow, reports), the flow's own duration,
each phase's duration and how much of it the gate commands took (sum of ledger durations).
Results for docs/benchmarks.md `## Flows`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def one_run(backend: str) -> dict[str, float]:
    from backend.select import backend as select_backend
    from cli.demo import ScriptedAgents, demo_scripts, make_crate
    from flows import execute_plan as module
    from flows.context import RunOptions
    from tasks.agent.standin import StandinMessagesAPI

    root = Path(tempfile.mkdtemp(prefix="bench-flows-"))
    plan = make_crate(root / "crate")
    with StandinMessagesAPI(responder=ScriptedAgents(demo_scripts()), auto_summary=False) as api:
        os.environ["ANTHROPIC_BASE_URL"] = api.base_url
        os.environ["ANTHROPIC_API_KEY"] = "stand-in"
        started = time.monotonic()
        with select_backend(backend, console=lambda *_: None):
            state = asyncio.run(
                module.execute_plan(plan, RunOptions(repo=root / "crate"), return_state=True)
            )
        wall = time.monotonic() - started
    report = state.result(raise_on_failure=False)
    row = {"wall_s": wall, "flow_s": report.duration_s, "exit": float(report.exit_code)}
    for outcome in report.outcomes:
        gates = sum(e.duration_s for e in outcome.ledger.entries)
        row[f"phase{outcome.phase_id}_s"] = outcome.duration_s
        row[f"phase{outcome.phase_id}_gates_s"] = gates
    if report.final_ledger is not None:
        row["final_validation_s"] = sum(e.duration_s for e in report.final_ledger.entries)
    return row


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--backend", default="server", choices=["server", "ephemeral"])
    args = parser.parse_args()
    rows = [one_run(args.backend) for _ in range(args.runs)]
    keys = list(rows[0])
    print(f"backend={args.backend} runs={args.runs}")
    for key in keys:
        values = [r.get(key, float("nan")) for r in rows]
        print(
            f"{key:22s} "
            + " ".join(f"{v:7.2f}" for v in values)
            + f"   median {statistics.median(values):.2f}"
        )


if __name__ == "__main__":
    main()
