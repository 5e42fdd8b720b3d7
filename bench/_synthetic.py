"""Shared pieces of the engine benchmarks (makespan, engine overhead, cold start, prefix share).

- synthetic plans of N phases in a few DAG shapes, over the demo crate, with every gate command
  stubbed as `true` (`.ai/plan-executor.toml`), so a phase costs its agent time plus the engine;
- scripted stand-in agents that take a fixed time per phase (the first work turn is delayed);
- critical paths: unbounded (fixed time x longest chain) and under the agents' concurrency limit
  (list scheduling of the DAG with at most `limit` phases at once, the engine's own policy:
  start every ready phase as soon as a slot frees);
- a private plan-executor server (own PLAN_EXECUTOR_HOME and port: other runs on the machine are
  left alone);
- `write_section`: replace one `## ` section of docs/benchmarks.md.
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "benchmarks.md"
CLI = ROOT / ".venv" / "bin" / "plan-executor"
sys.path.insert(0, str(ROOT))

# Before Prefect is imported anywhere: quiet console, offline (as the CLI runs it).
from backend.settings import offline_env  # noqa: E402

os.environ.update(offline_env())

# Every gate is an instant command: the benchmark measures the engine, not cargo.
INSTANT_GATES = """# plan-executor benchmark: every gate is an instant command
test = "true"
build = "true"
lint = "true"
fmt = "true"
doc_test = "true"
test_filter = "true"
allowed_programs = ["true", "cargo"]
required_tools = ["git", "true"]
"""

SHAPES = ("wide", "chain", "diamond")


def dag(shape: str, n: int) -> dict[int, list[int]]:
    """Dependencies of phases 1..n: `wide` (one root, then all in parallel), `chain`, or
    `diamond` layers (1 -> 4 in parallel -> 1 join -> 4 ...)."""
    deps: dict[int, list[int]] = {}
    if shape == "chain":
        for i in range(1, n + 1):
            deps[i] = [i - 1] if i > 1 else []
    elif shape == "parallel":  # all independent (bench/distribute.py)
        for i in range(1, n + 1):
            deps[i] = []
    elif shape == "wide":
        for i in range(1, n + 1):
            deps[i] = [1] if i > 1 else []
    elif shape == "diamond":
        # layers of 1, 4, 1, 4, ... : each node depends on every node of the layer before.
        layers: list[list[int]] = []
        i = 1
        while i <= n:
            size = 1 if len(layers) % 2 == 0 else 4
            layer = list(range(i, min(n, i + size - 1) + 1))
            layers.append(layer)
            i += len(layer)
        for index, layer in enumerate(layers):
            for node in layer:
                deps[node] = list(layers[index - 1]) if index else []
    else:
        raise ValueError(shape)
    return deps


def critical_path(deps: dict[int, list[int]], unit_s: float) -> float:
    """Longest chain x unit time (no limit on parallel phases)."""
    depth: dict[int, int] = {}
    for node in sorted(deps):
        depth[node] = 1 + max((depth[d] for d in deps[node]), default=0)
    return max(depth.values()) * unit_s


def limited_schedule(deps: dict[int, list[int]], unit_s: float, limit: int) -> float:
    """Makespan of greedy list scheduling with `limit` slots and equal durations (lowest id
    first among ready phases). With equal durations this is the optimum for these shapes."""
    done: set[int] = set()
    running: list[tuple[float, int]] = []
    now = 0.0
    pending = sorted(deps)
    while pending or running:
        ready = [p for p in pending if all(d in done for d in deps[p])]
        while ready and len(running) < limit:
            node = ready.pop(0)
            pending.remove(node)
            running.append((now + unit_s, node))
        running.sort()
        now, node = running.pop(0)
        done.add(node)
        while running and running[0][0] <= now:
            done.add(running.pop(0)[1])
    return now


def plan_text(shape: str, n: int) -> str:
    deps = dag(shape, n)
    phases = []
    for i in range(1, n + 1):
        after = ", ".join(f"Phase {d}" for d in deps[i]) or "None"
        phases.append(
            f"""### Phase {i}: Note {i}

**Principal Owner:** Rust Developer
**Goal:** Write note {i}.
**Dependencies:** {after}
**Blast Radius:** `true`

**Files to create:**
- `notes/p{i}.md` - note {i}

**Deliverables:**
- `notes/p{i}.md`

**Acceptance Criteria:**
- [ ] `notes/p{i}.md` exists
"""
        )
    return f"""# Benchmark: {n} phases, {shape}

**Created:** {datetime.now(UTC):%Y-%m-%d}
**Status:** Reviewed - Ready for Implementation

## Executive Summary

A synthetic plan for the engine benchmarks: each phase writes one note.

## Phases

""" + "\n---\n\n".join(phases)


def make_repo(root: Path, shape: str, n: int) -> Path:
    """The demo crate with a synthetic plan and instant gates, committed; returns the plan."""
    from cli.demo import make_crate

    (root / ".ai").mkdir(parents=True, exist_ok=True)
    (root / ".ai" / "plan-executor.toml").write_text(INSTANT_GATES, encoding="utf-8")
    return make_crate(root, plan_text=plan_text(shape, n), plan_name=f"bench-{shape}-{n}.md")


def scripts(n: int, delay_s: float) -> dict[str, object]:
    from cli.demo import PhaseScript
    from tasks.agent.standin import editor_create

    return {
        str(i): PhaseScript(
            edits=[editor_create(f"notes/p{i}.md", f"# Note {i}\n")], delay_s=delay_s
        )
        for i in range(1, n + 1)
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def private_server() -> Iterator[dict[str, str]]:
    """A plan-executor server of our own (own home and port); yields the env that selects it."""
    home = Path(tempfile.mkdtemp(prefix="bench-home-"))
    env = {
        **os.environ,
        "PLAN_EXECUTOR_HOME": str(home),
        "PLAN_EXECUTOR_PORT": str(free_port()),
    }
    env.pop("PREFECT_API_URL", None)
    subprocess.run([str(CLI), "server", "start"], env=env, check=True, capture_output=True)
    try:
        yield {k: env[k] for k in ("PLAN_EXECUTOR_HOME", "PLAN_EXECUTOR_PORT")}
    finally:
        subprocess.run([str(CLI), "server", "stop"], env=env, capture_output=True)
        shutil.rmtree(home, ignore_errors=True)  # ~50 MB of PostgreSQL data per home


def machine() -> str:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{platform.node()} ({os.cpu_count()} cores), load average {load}"


def stamp(command: str) -> str:
    return (
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine()} (at the start of the "
        f"run).\nReproduce: `{command}`\n"
    )


def write_section(title: str, body: str) -> None:
    """Replace the `## {title}` section of docs/benchmarks.md (append it when missing)."""
    text = DOCS.read_text(encoding="utf-8")
    heading = f"## {title}\n"
    section = heading + "\n" + body.strip() + "\n\n"
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text, count=1)
    else:
        text = text.rstrip() + "\n\n" + section
    DOCS.write_text(text.rstrip() + "\n", encoding="utf-8")


def median(values: list[float]) -> float:
    import statistics

    return statistics.median(values) if values else float("nan")


def timed() -> float:
    return time.monotonic()


def run_synthetic(
    shape: str, n: int, delay_s: float, *, root: Path | None = None
) -> dict[str, object]:
    """One run of a synthetic plan on the selected server backend, in this process.

    Returns the flow's duration (`report.duration_s`), the wall time of the whole call, the
    phases' outcomes and the stand-in's request log (start times of the work turns)."""
    import asyncio

    from backend.select import backend as select_backend
    from cli.demo import ScriptedAgents
    from flows import execute_plan as module
    from flows.context import RunOptions
    from tasks.agent.standin import StandinMessagesAPI

    own_root = root is None
    root = root or Path(tempfile.mkdtemp(prefix=f"bench-{shape}-{n}-"))
    plan = make_repo(root / "crate", shape, n)
    agents = ScriptedAgents(scripts(n, delay_s))  # type: ignore[arg-type]
    with StandinMessagesAPI(responder=agents, auto_summary=False) as api:
        os.environ["ANTHROPIC_BASE_URL"] = api.base_url
        os.environ["ANTHROPIC_API_KEY"] = "stand-in"
        started = time.monotonic()
        with select_backend("server", console=lambda *_: None):
            state = asyncio.run(
                module.execute_plan(plan, RunOptions(repo=root / "crate"), return_state=True)
            )
        wall = time.monotonic() - started
        requests = api.message_requests
    report = state.result(raise_on_failure=False)
    statuses = [o.status for o in report.outcomes]
    if own_root:
        shutil.rmtree(root, ignore_errors=True)
    return {
        "flow_s": report.duration_s,
        "wall_s": wall,
        "statuses": statuses,
        "report": report,
        "requests": requests,
        "started": started,
    }
