"""Makespan of a distributed run on 1 vs 2 workers, and what distribution costs (issue 20).

    python bench/distribute.py [--phases 4] [--delay 30] [--limit 2] [--local] [--write-docs]

A plan of ``--phases`` independent phases (one parallel wave), each agent taking ``--delay``
seconds (the stand-in delays its first work turn; gates are instant, bench/_synthetic.py), is run
with ``distribute=True`` against a private plan-executor server (embedded PostgreSQL): once with
one process worker, once with two (each ``--limit`` flow runs at a time, its own PREFECT_HOME and
clone cache), a bare repository as the remote. ``--local`` adds the same plan run locally
(phases as subflows in one process) for comparison.

Reported per configuration: the flow's duration (makespan), and per phase, from the phase runs
and the outcomes' steps: the wait from submission to the phase flow's start (worker poll,
process start, imports), the clone/fetch on the worker, the push of the branch, and on the
parent the fetch and the landing (replay + integration checks).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

sys.path.insert(0, str(Path(__file__).resolve().parent))

import contextlib

import _synthetic as syn  # noqa: E402

CHECKOUT = Path(__file__).resolve().parents[1]
PREFECT = str(Path(sys.executable).with_name("prefect"))
POOL = "bench-distributed"
DEPLOYMENT = "execute-phase/bench"
RESULTS_BLOCK = "bench-distributed-results"


def _env(home: Path, client: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "ANTHROPIC_"))}
    env.update(client)
    env.update(
        PREFECT_HOME=str(home),
        DO_NOT_TRACK="1",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL="INFO",
    )
    return env


def _run(argv: list[str], env: dict[str, str], cwd: Path = CHECKOUT) -> None:
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{done.stdout}\n{done.stderr}")


def start_workers(
    count: int, root: Path, client: dict[str, str], standin_url: str, limit: int
) -> list[subprocess.Popen[bytes]]:
    workers = []
    for index in range(count):
        home = root / f"worker-{index}"
        home.mkdir(parents=True)
        env = _env(home, client)
        env.update(
            PREFECT_WORKER_QUERY_SECONDS="1",
            PREFECT_WORKER_PREFETCH_SECONDS="5",
            PREFECT_DEFAULT_RESULT_STORAGE_BLOCK=f"local-file-system/{RESULTS_BLOCK}",
            PLAN_EXECUTOR_CLONES=str(home / "clones"),
            PLAN_EXECUTOR_WORKER_NAME=f"worker-{index}",
            ANTHROPIC_BASE_URL=standin_url,
            ANTHROPIC_API_KEY="stand-in",  # the stand-in's; a real pool uses the Secret block
        )
        argv = [PREFECT, "worker", "start", "--pool", POOL, "--name", f"worker-{index}"]
        argv += ["--limit", str(limit)]
        with (home / "worker.log").open("wb") as log:
            workers.append(
                subprocess.Popen(
                    argv,
                    cwd=home,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )  # fmt: skip
            )
    return workers


def stop_workers(workers: list[subprocess.Popen[bytes]]) -> None:
    import signal

    for worker in workers:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)


def make_remote_repo(root: Path, phases: int) -> Path:
    plan = syn.make_repo(root / "crate", "parallel", phases)
    repo = root / "crate"
    remote = root / "remote.git"
    for argv, cwd in (
        (["git", "init", "-q", "--bare", str(remote)], root),
        (["git", "remote", "add", "origin", str(remote)], repo),
        (["git", "push", "-q", "origin", "main"], repo),
    ):
        subprocess.run(argv, cwd=cwd, check=True, capture_output=True)
    return plan


def _seconds(steps: list[str], pattern: str) -> float | None:
    for step in steps:
        match = re.search(pattern, step)
        if match:
            return float(match.group(1))
    return None


async def _phase_runs(flow_run_ids: list[str]) -> dict[str, object]:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        return {i: await client.read_flow_run(i) for i in flow_run_ids if i}


def run_once(phases: int, delay: float, *, distribute: bool) -> dict[str, object]:
    from flows import execute_plan as module
    from flows.context import RunOptions

    root = Path(tempfile.mkdtemp(prefix="bench-distribute-"))
    plan = make_remote_repo(root, phases)
    started = time.monotonic()
    state = asyncio.run(
        module.execute_plan(
            plan, RunOptions(repo=root / "crate", distribute=distribute), return_state=True
        )
    )
    wall = time.monotonic() - started
    report = state.result(raise_on_failure=False)
    outcomes = report.outcomes
    runs = asyncio.run(_phase_runs([o.flow_run_id for o in outcomes])) if distribute else {}
    waits = []
    for outcome in outcomes:
        run = runs.get(outcome.flow_run_id or "")
        if run is not None and run.start_time and run.created:
            waits.append((run.start_time - run.created).total_seconds())
    shutil.rmtree(root, ignore_errors=True)

    def med(pattern: str) -> float | None:
        values = [v for o in outcomes if (v := _seconds(o.steps, pattern)) is not None]
        return round(median(values), 1) if values else None

    return {
        "makespan": report.duration_s,
        "wall": round(wall, 1),
        "statuses": sorted({o.status for o in outcomes}),
        "errors": sorted({o.error for o in outcomes if o.error})[:2],
        "ran_on": sorted({o.ran_on.split(" in ")[0] for o in outcomes if o.ran_on}),
        "start_wait": round(median(waits), 1) if waits else None,
        "clone": med(r"^clone .* in ([\d.]+)s"),
        "push": med(r"^pushed .* in ([\d.]+)s"),
        "fetch": med(r"^fetched .* in ([\d.]+)s"),
        "landing": med(r"^landing took ([\d.]+)s"),
    }


def table(rows: list[tuple[str, dict[str, object]]], delay: float) -> str:
    def cell(value: object) -> str:
        return "-" if value is None else f"{value}"

    lines = [
        "| configuration | makespan (s) | ideal (s) | phases | ran on | submit→start (median s) "
        "| clone/fetch on worker | push | fetch on parent | landing |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in rows:
        lines.append(
            f"| {name} | {row['makespan']} | {row['ideal']} | {', '.join(row['statuses'])} "  # type: ignore[arg-type]
            f"| {len(row['ran_on']) or '-'} worker(s) | {cell(row['start_wait'])} "  # type: ignore[arg-type]
            f"| {cell(row['clone'])} | {cell(row['push'])} | {cell(row['fetch'])} "
            f"| {cell(row['landing'])} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phases", type=int, default=4)
    parser.add_argument("--delay", type=float, default=30.0)
    parser.add_argument("--limit", type=int, default=2, help="flow runs per worker")
    parser.add_argument("--local", action="store_true", help="also run the plan locally")
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    command = "python bench/distribute.py " + " ".join(sys.argv[1:])
    stamp = syn.stamp(command)

    from backend.server import ServerConfig, start_server, stop_server
    from cli.demo import ScriptedAgents
    from tasks.agent.standin import StandinMessagesAPI

    home = Path(tempfile.mkdtemp(prefix="bench-home-"))
    config = ServerConfig(home=home, port=syn.free_port())
    info = start_server(config, timeout_s=180)
    client = info.client_env()
    os.environ.update(client)
    os.environ.update(DO_NOT_TRACK="1", PLAN_EXECUTOR_PHASE_DEPLOYMENT=DEPLOYMENT)
    rows: list[tuple[str, dict[str, object]]] = []
    try:
        from prefect.filesystems import LocalFileSystem

        cli_env = _env(home / "cli", client)
        LocalFileSystem(basepath=str(home / "results")).save(RESULTS_BLOCK, overwrite=True)
        _run([PREFECT, "work-pool", "create", POOL, "--type", "process", "--overwrite"], cli_env)
        _run(
            [PREFECT, "deploy", "flows/distribute.py:execute_phase", "--name", "bench"]
            + ["--pool", POOL, "--no-prompt"],
            cli_env,
        )
        agents = ScriptedAgents(syn.scripts(args.phases, args.delay))  # type: ignore[arg-type]
        with StandinMessagesAPI(responder=agents, auto_summary=False) as standin:
            os.environ["ANTHROPIC_BASE_URL"] = standin.base_url
            os.environ["ANTHROPIC_API_KEY"] = "stand-in"
            if args.local:
                row = run_once(args.phases, args.delay, distribute=False)
                row["ideal"] = args.delay
                rows.append(("local (subflows, one process)", row))
                print(rows[-1], flush=True)
            for count in (1, 2):
                workers = start_workers(
                    count, home / f"w{count}", client, standin.base_url, args.limit
                )
                try:
                    row = run_once(args.phases, args.delay, distribute=True)
                finally:
                    stop_workers(workers)
                rounds = -(-args.phases // (count * args.limit))
                row["ideal"] = rounds * args.delay
                rows.append((f"{count} worker(s) x --limit {args.limit}", row))
                print(rows[-1], flush=True)
    finally:
        stop_server(config)
        shutil.rmtree(home, ignore_errors=True)
    body = stamp + "\n" + table(rows, args.delay)
    print(body)
    if args.write_docs:
        syn.write_section("Distributed phases (issue 20)", body + "\n\n" + NOTES)


NOTES = """`ideal` = rounds of the wave x the agents' delay: phases / (workers x limit), rounded up,
with no cost for starting a phase run. The columns after it are medians over the phases, in
seconds: `submit→start` is from the phase run's creation to its flow starting on a worker
(worker poll, a new Python process, the deployment's pull step, importing plan-executor);
`clone/fetch` the worker's `git clone` (first phase on a worker) or `git fetch` (later ones) plus
the worktree; `push` the phase branch to the remote; on the parent, `fetch` the branch back and
`landing` the replay onto the integration branch with its integration checks (instant gates
here: a real build adds its own time)."""


if __name__ == "__main__":
    main()
