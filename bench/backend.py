"""Concurrent subflows on the plan-executor backend (PostgreSQL) against Prefect's ephemeral
SQLite server.

    python bench/backend.py [--sizes 20 50] [--sleep 1] [--reps 2] [--sqlite-timeout 300]

Each measurement runs in a fresh child process: it first runs one warm-up flow (which, on
SQLite, starts the ephemeral server), then times a parent flow that gathers N async subflows
each sleeping SLEEP seconds, then reads the child runs back. Overhead per subflow is
(wall - SLEEP) / N. Results: docs/benchmarks.md, section "Backend".
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from backend.server import ServerConfig, start_server, stop_server  # noqa: E402
from backend.settings import offline_env  # noqa: E402
from tasks.shell import run  # noqa: E402


def child_main(n: int, sleep_s: float) -> None:
    """Runs inside the measured process; prints one JSON line."""
    import asyncio

    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

    @flow(name="bench-phase")
    async def phase(i: int) -> int:
        await asyncio.sleep(sleep_s)
        return i

    @flow(name="bench-plan")
    async def plan(count: int) -> list[int]:
        return list(await asyncio.gather(*[phase(i) for i in range(count)]))

    @flow(name="bench-warmup")
    async def warmup() -> int:
        return 0

    async def main() -> dict:
        started = time.perf_counter()
        await warmup()
        warmup_s = time.perf_counter() - started
        started = time.perf_counter()
        cpu_started = time.process_time()
        state = await plan(n, return_state=True)
        wall = time.perf_counter() - started
        client_cpu = time.process_time() - cpu_started
        async with get_client() as client:
            children = await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    parent_flow_run_id=FlowRunFilterParentFlowRunId(
                        any_=[state.state_details.flow_run_id]
                    )
                )
            )
        states: dict[str, int] = {}
        for child in children:
            states[child.state_name or "?"] = states.get(child.state_name or "?", 0) + 1
        return {
            "n": n,
            "wall_s": round(wall, 2),
            "overhead_per_subflow_s": round((wall - sleep_s) / n, 3),
            "parent_state": state.name,
            "child_runs": len(children),
            "child_states": states,
            "warmup_s": round(warmup_s, 2),
            "client_cpu_s": round(client_cpu, 2),
        }

    print("RESULT " + json.dumps(asyncio.run(main())), flush=True)


def cpu_seconds(pids: list[int]) -> float:
    """CPU time of these processes, their live children and their reaped children."""
    total = 0.0
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            for member in [proc, *proc.children(recursive=True)]:
                times = member.cpu_times()
                total += times.user + times.system + times.children_user + times.children_system
        except psutil.NoSuchProcess:
            continue
    return total


def measure(
    n: int, sleep_s: float, env: dict[str, str], timeout_s: float, server_pids: list[int]
) -> dict:
    """One child process; with `server_pids`, also the CPU the server side spent meanwhile."""
    server_cpu_before = [cpu_seconds([pid]) for pid in server_pids]
    started = time.perf_counter()
    result = run(
        [sys.executable, __file__, "--child", str(n), str(sleep_s)],
        cwd=REPO,
        env=env,
        timeout_s=timeout_s,
    )
    elapsed = round(time.perf_counter() - started, 1)
    server_cpu = [
        round(cpu_seconds([pid]) - before, 2)
        for pid, before in zip(server_pids, server_cpu_before, strict=True)
    ]
    if result.timed_out:
        return {"n": n, "timed_out_after_s": timeout_s, "process_s": elapsed}
    for line in result.output.splitlines():
        if line.startswith("RESULT "):
            row = {**json.loads(line[len("RESULT ") :]), "process_s": elapsed}
            if server_pids:  # while the child ran: includes its warm-up flow and read-back
                row["prefect_server_cpu_s"], row["postgres_cpu_s"] = server_cpu
            return row
    return {"n": n, "error": result.tail(15), "exit_code": result.exit_code}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(offline_env())
    env["PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL"] = "ERROR"
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20, 50])
    parser.add_argument("--sleep", type=float, default=1.0)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--sqlite-timeout", type=float, default=300)
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--child", nargs=2, metavar=("N", "SLEEP"))
    args = parser.parse_args()
    if args.child:
        child_main(int(args.child[0]), float(args.child[1]))
        return

    print(f"load average before: {os.getloadavg()}, cpus: {os.cpu_count()}")
    root = Path(tempfile.mkdtemp(prefix="plan-executor-bench-"))
    try:
        config = ServerConfig(home=root / "home", port=free_port())
        started = time.perf_counter()
        info = start_server(config, timeout_s=180)
        print(f"postgres backend: server healthy after {time.perf_counter() - started:.1f} s")
        pg_env = {
            **base_env(),
            **info.client_env(),
            "PREFECT_HOME": str(root / "client"),
        }
        try:
            for n in args.sizes:
                for rep in range(args.reps):
                    server_pids = [info.server_pid, info.postgres_pid]
                    row = measure(n, args.sleep, pg_env, 300, server_pids)
                    print(json.dumps({"backend": "postgresql", "rep": rep, **row}), flush=True)
        finally:
            stop_server(config)

        if args.skip_sqlite:
            return
        for n in args.sizes:
            # a fresh SQLite database per measurement, as a first `run --backend ephemeral` has
            sqlite_home = root / f"sqlite-{n}"
            sqlite_env = {**base_env(), "PREFECT_HOME": str(sqlite_home)}
            row = measure(n, args.sleep, sqlite_env, args.sqlite_timeout, [])
            print(json.dumps({"backend": "sqlite-ephemeral", "rep": 0, **row}), flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
        print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
