"""Faults from the API: whole demo runs while the stand-in faults a share of the requests.

    python bench/api_faults.py [--shares 0,0.1,0.3,0.5] [--seeds 5] [--backend server]

Each run makes a fresh demo crate (3 phases, 2 waves, 4 agent calls), plays the agents with the
scripted stand-in (1 s per first turn, as in the demo) and runs `execute-plan` in this process.
The stand-in answers the drawn share of message requests with a fault, all kinds mixed
(`tasks.agent.standin.FAULT_KINDS`: 429, 529, 500, dropped, dropped mid-stream, stream error
event, silence past the request timeout), seeded per run (`n * 1000 + share * 100`).

Settings (short, so a fault costs seconds, not minutes; the counts do not depend on them):
request timeout `PLAN_EXECUTOR_API_TIMEOUT_S=2` with silences of 3 s, Prefect restarts of a
failed call after 1 s and 1 s (`PLAN_EXECUTOR_AGENT_RETRY_DELAYS_S=1,1`), the SDK's own 4
retries and backoff, the loop's mid-stream retries (1, 2, 4 s).

Prints one row per run (finished = exit 0 with every phase complete; faults as the report
counted them; faults the stand-in injected; retries; call restarts; agent calls; agent failures;
wall time) and, per share, the medians and the extra wall time over the fault-free median.
Results for docs/reliability.md `## Faults from the API`.
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
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TIMEOUT_S = 2.0
SLOW_S = 3.0


def one_run(share: float, seed: int) -> dict[str, Any]:
    from cli.demo import ScriptedAgents, demo_scripts, make_crate
    from flows import execute_plan as module
    from flows.context import RunOptions
    from tasks.agent.result import InfraFaults
    from tasks.agent.standin import FaultPlan, StandinMessagesAPI

    root = Path(tempfile.mkdtemp(prefix="bench-faults-"))
    plan = make_crate(root / "crate")
    faults = FaultPlan(share, seed=seed, slow_s=SLOW_S)
    with StandinMessagesAPI(
        responder=ScriptedAgents(demo_scripts()), auto_summary=False, faults=faults
    ) as api:
        os.environ["ANTHROPIC_BASE_URL"] = api.base_url
        started = time.monotonic()
        state = asyncio.run(
            module.execute_plan(plan, RunOptions(repo=root / "crate"), return_state=True)
        )
        wall = time.monotonic() - started
        injected = sum(api.faults.values())
        requests = len(api.message_requests)
    report = state.result(raise_on_failure=False)
    infra = InfraFaults()
    for outcome in report.outcomes:
        infra = infra + outcome.infra
    return {
        "share": share,
        "seed": seed,
        "finished": report.exit_code == 0 and report.all_complete,
        "requests": requests,
        "injected": injected,
        "counted": infra.total,
        "retried": infra.retries,
        "restarts": infra.restarts,
        "lost_s": infra.lost_s,
        "calls": sum(o.agent_calls for o in report.outcomes),
        "agent_failures": sum(o.agent_failures for o in report.outcomes),
        "kinds": dict(sorted(infra.faults.items())),
        "wall_s": wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shares", default="0,0.1,0.3,0.5")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--backend", default="server", choices=["server", "ephemeral"])
    args = parser.parse_args()

    from backend.select import backend as select_backend

    os.environ["ANTHROPIC_API_KEY"] = "stand-in"
    os.environ["PLAN_EXECUTOR_API_TIMEOUT_S"] = str(TIMEOUT_S)
    os.environ["PLAN_EXECUTOR_AGENT_RETRY_DELAYS_S"] = "1,1"
    shares = [float(s) for s in args.shares.split(",")]
    rows: list[dict[str, Any]] = []
    print(f"load average before: {os.getloadavg()[0]:.2f}; cores: {os.cpu_count()}")
    with select_backend(args.backend, console=lambda *_: None):
        for share in shares:
            for n in range(1, args.seeds + 1):
                # Seeds differ per share too, so the shares do not replay one random sequence.
                row = one_run(share, seed=n * 1000 + round(share * 100))
                rows.append(row)
                print(
                    f"share={row['share']:.1f} seed={row['seed']} finished={row['finished']} "
                    f"requests={row['requests']} injected={row['injected']} "
                    f"counted={row['counted']} retried={row['retried']} "
                    f"restarts={row['restarts']} calls={row['calls']} "
                    f"agent_failures={row['agent_failures']} lost={row['lost_s']:.1f}s "
                    f"wall={row['wall_s']:.1f}s kinds={row['kinds']}",
                    flush=True,
                )
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    baseline = statistics.median(r["wall_s"] for r in rows if r["share"] == 0) if 0 in shares else 0
    print(
        "\nshare | runs finished | faults injected (median, total) | counted = injected | "
        "restarts | agent failures | wall (median) | extra wall vs share 0 (median)"
    )
    for share in shares:
        chosen = [r for r in rows if r["share"] == share]
        wall = statistics.median(r["wall_s"] for r in chosen)
        print(
            f"{share:.1f} | {sum(r['finished'] for r in chosen)}/{len(chosen)} | "
            f"{statistics.median(r['injected'] for r in chosen):g}, "
            f"{sum(r['injected'] for r in chosen)} | "
            f"{all(r['counted'] == r['injected'] for r in chosen)} | "
            f"{sum(r['restarts'] for r in chosen)} | "
            f"{sum(r['agent_failures'] for r in chosen)} | {wall:.1f} s | "
            f"{wall - baseline:+.1f} s"
        )


if __name__ == "__main__":
    main()
