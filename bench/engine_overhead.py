"""Engine overhead per phase: what a phase costs beyond its agent and its gate commands.

    python bench/engine_overhead.py [--reps 3] [--phases 20] [--shape chain] [--profile]
                                    [--write-docs]

A synthetic plan of N phases (bench/_synthetic.py: default a chain, so nothing overlaps) with
instant agents (the stand-in answers at once: one tool turn that writes the phase's note, then
"done", then the summary) and every gate stubbed as `true`. Per run:

    overhead per phase = (flow duration - agent time) / N

where agent time is the stand-in's own time answering the work requests (about 0). The run
also reports the marginal cost: (flow(N) - flow(1)) / (N - 1), which leaves out the fixed
pre-flight and final validation. The breakdown reads the run back from the Prefect API (each
phase subflow's task runs: snapshot, agent call, gates, mirror, ...; the time in the subflow
that no task covers; the gap between consecutive phases). `--profile` adds an all-thread
sampling profile of this process (every 2 ms, attributed to the innermost frame of ours in
flows/, tasks/ or plan_parser/, else to the library) for one run.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import re
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _synthetic as syn  # noqa: E402

OURS = tuple(str(syn.ROOT / d) + os.sep for d in ("flows", "tasks", "plan_parser"))
IDLE = {
    ("selectors.py", "select"),
    ("threading.py", "wait"),
    ("threading.py", "_wait_for_tstate_lock"),
    ("queue.py", "get"),
    ("socket.py", "accept"),
    ("socketserver.py", "serve_forever"),
    ("base_events.py", "_run_once"),
    ("socket.py", "readinto"),
    ("thread.py", "_worker"),
    ("flow_engine.py", "heartbeat_loop"),  # sleeps between heartbeats
    ("__init__.py", "poll"),  # sh's reader threads waiting on a pipe
}


class Sampler:
    """Samples every thread's stack; counts where busy (or waiting-in-our-code) time goes."""

    def __init__(self, interval_s: float = 0.002) -> None:
        self.interval_s = interval_s
        self.counts: collections.Counter[str] = collections.Counter()
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        own = threading.get_ident()
        while not self._stop.wait(self.interval_s):
            self.samples += 1
            for ident, frame in sys._current_frames().items():
                if ident != own:
                    key = self._classify(frame)
                    if key:
                        self.counts[key] += 1

    @staticmethod
    def _classify(frame: Any) -> str | None:
        inner = frame
        f = frame
        while f is not None:
            path = f.f_code.co_filename
            if path.startswith(OURS):
                where = Path(path).relative_to(syn.ROOT)
                idle = (Path(inner.f_code.co_filename).name, inner.f_code.co_name) in IDLE
                state = "waits" if idle else "runs"
                return f"ours {state}: {where}:{f.f_code.co_name}"
            f = f.f_back
        if (Path(inner.f_code.co_filename).name, inner.f_code.co_name) in IDLE:
            return None
        path = inner.f_code.co_filename
        marker = "site-packages/"
        if marker in path:
            module = path.split(marker, 1)[1].removesuffix(".py")
            return f"library: {module}:{inner.f_code.co_name}"
        return "stdlib: " + Path(path).name + ":" + inner.f_code.co_name


async def breakdown(flow_run_id: str) -> dict[str, Any]:
    """Per phase: subflow duration, task durations by name, uncovered time, gap to the next."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterId,
        FlowRunFilterParentTaskRunId,
    )

    async with get_client() as client:
        own = await client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])), limit=200
        )
        # A subflow's run points at the parent's task run that stands for it.
        phases = await client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_task_run_id=FlowRunFilterParentTaskRunId(any_=[t.id for t in own])
            ),
            limit=200,
        )
        ids = [flow_run_id] + [str(p.id) for p in phases]
        tasks = await client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)), limit=200
        )
        while len(tasks) % 200 == 0 and tasks:  # page on
            more = await client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)),
                limit=200,
                offset=len(tasks),
            )
            if not more:
                break
            tasks += more
    by_flow: dict[str, list[Any]] = collections.defaultdict(list)
    for task in tasks:
        by_flow[str(task.flow_run_id)].append(task)

    def seconds(run: Any) -> float:
        if run.start_time is None or run.end_time is None:
            return 0.0
        return (run.end_time - run.start_time).total_seconds()

    def kind(name: str) -> str:
        if name.startswith("agent "):
            return "agent call (SDK, tool loop, stand-in)"
        if re.fullmatch(r"phase-\d+(: .*)?", name):  # `phase-3: Shouting Module`
            return "phase subflows (their task runs in the parent)"
        name = name.split(" phase ")[0] if name.startswith("mirror") else name
        return name.rsplit("-", 1)[0] if name[-3:].isalnum() and "-" in name else name

    per_task: collections.Counter[str] = collections.Counter()
    uncovered = 0.0
    ordered = sorted((p for p in phases if p.start_time), key=lambda p: p.start_time)
    for phase in ordered:
        total = seconds(phase)
        covered = 0.0
        for task in by_flow[str(phase.id)]:
            per_task[kind(task.name)] += seconds(task)
            covered += seconds(task)
        uncovered += max(0.0, total - covered)
    parent_tasks: collections.Counter[str] = collections.Counter()
    for task in by_flow[flow_run_id]:
        parent_tasks[kind(task.name)] += seconds(task)
    gaps = [
        (b.start_time - a.end_time).total_seconds()
        for a, b in zip(ordered, ordered[1:], strict=False)
        if a.end_time and b.start_time
    ]
    n = max(1, len(ordered))
    return {
        "phases": len(ordered),
        "subflow_s": sum(seconds(p) for p in ordered) / n,
        "tasks_s": {k: v / n for k, v in per_task.most_common()},
        "uncovered_s": uncovered / n,
        "gap_s": syn.median(gaps) if gaps else 0.0,
        "parent_tasks_s": dict(parent_tasks.most_common()),
    }


def agent_time(result: dict[str, Any]) -> float:
    return sum(max(0.0, r.finished_at - r.started_at) for r in result["requests"])


def one(shape: str, n: int) -> dict[str, Any]:
    result = syn.run_synthetic(shape, n, 0.0)
    report = result["report"]
    agent = agent_time(result)
    flow = float(result["flow_s"])
    return {
        "flow_s": flow,
        "agent_s": agent,
        "per_phase_s": (flow - agent) / n,
        "complete": sum(1 for s in result["statuses"] if s == "complete"),
        "flow_run_id": report.flow_run_id,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--phases", type=int, default=20)
    parser.add_argument("--shape", default="chain", choices=syn.SHAPES)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    n = args.phases
    header = syn.stamp(" ".join(["python", "bench/engine_overhead.py", *sys.argv[1:]]))
    rows: list[dict[str, Any]] = []
    singles: list[float] = []
    sampler: Sampler | None = None
    with syn.private_server() as env:
        os.environ.update(env)
        one(args.shape, 1)  # warm-up: imports, the concurrency limit, the first flow
        for rep in range(args.reps):
            singles.append(one(args.shape, 1)["flow_s"])
            row = one(args.shape, n)
            rows.append(row)
            print(
                f"rep {rep + 1}: flow {row['flow_s']:.2f}s for {n} phases "
                f"({row['complete']} complete), agent {row['agent_s']:.2f}s, "
                f"{row['per_phase_s']:.3f}s/phase; 1-phase flow {singles[-1]:.2f}s",
                flush=True,
            )
        from backend.select import backend as select_backend

        with select_backend("server", console=lambda *_: None):  # sets PREFECT_API_URL
            parts = asyncio.run(breakdown(rows[-1]["flow_run_id"]))
        if args.profile:
            started = time.monotonic()
            with Sampler() as sampler:
                one(args.shape, n)
            profiled_s = time.monotonic() - started
    per_phase = syn.median([r["per_phase_s"] for r in rows])
    marginal = (syn.median([r["flow_s"] for r in rows]) - syn.median(singles)) / max(1, n - 1)
    lines = [
        f"| {n}-phase {args.shape}, instant agents and gates | median of {args.reps} |",
        "|---|---:|",
        f"| flow duration | {syn.median([r['flow_s'] for r in rows]):.2f} s |",
        f"| 1-phase flow duration | {syn.median(singles):.2f} s |",
        f"| agent time (stand-in answering) | {syn.median([r['agent_s'] for r in rows]):.2f} s |",
        f"| **overhead per phase** (flow - agent) / N | **{per_phase:.3f} s** |",
        f"| marginal per phase (flow(N) - flow(1)) / (N-1) | {marginal:.3f} s |",
        f"| target | 0.25 s: {'met' if per_phase <= 0.25 else 'NOT met'} |",
        "",
        f"Where a phase's time goes (last run, from the Prefect API; seconds per phase, "
        f"{parts['phases']} phases):",
        "",
        "| part | s per phase |",
        "|---|---:|",
        f"| phase subflow, start to end | {parts['subflow_s']:.3f} |",
    ]
    lines += [f"| task `{k}` | {v:.3f} |" for k, v in parts["tasks_s"].items()]
    lines += [
        f"| in the subflow, outside tasks (subflow engine, Prefect API calls, parsing) "
        f"| {parts['uncovered_s']:.3f} |",
        f"| between phases (median gap from one subflow's end to the next one's start) "
        f"| {parts['gap_s']:.3f} |",
    ]
    lines += [
        "",
        "Parent flow's tasks (whole run, seconds): "
        + ", ".join(f"`{k}` {v:.2f}" for k, v in parts["parent_tasks_s"].items()),
    ]
    if sampler is not None:
        total = sum(sampler.counts.values()) or 1
        lines += [
            "",
            f"Sampling profile of one {n}-phase run ({profiled_s:.1f} s wall, "
            f"{sampler.samples} samples every 2 ms of every thread; a thread blocked in our code "
            "is counted under `waits`; share of all attributed samples, top 25):",
            "",
            "| where | share |",
            "|---|---:|",
        ]
        lines += [f"| {k} | {100 * v / total:.1f} % |" for k, v in sampler.counts.most_common(25)]
    text = "\n".join(lines)
    print(text)
    if args.write_docs:
        syn.write_section("Engine overhead", f"{header}\n{text}\n")


if __name__ == "__main__":
    main()
