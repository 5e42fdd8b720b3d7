"""Agent runtime overheads: a sandboxed command vs a plain one, and a loop turn vs the stand-in.

    python bench/agent_runtime.py [--commands 50] [--turns 40]

Prints medians; the figures go to docs/benchmarks.md (## Agent runtime). The stand-in answers
instantly, so a turn's time is our loop + the SDK + one editor or bash tool call.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import anthropic

from tasks.agent.loop import run_agent
from tasks.agent.result import AgentRequest
from tasks.agent.sandbox import Sandbox, SandboxSettings
from tasks.agent.standin import (
    StandinMessagesAPI,
    bash_command,
    editor_create,
    text_turn,
    tool_turn,
)
from tasks.shell import run


def time_commands(repo: Path, count: int) -> dict[str, float]:
    sandbox = Sandbox(repo, SandboxSettings())
    timings: dict[str, list[float]] = {"plain bash -c true": [], "bwrap bash -c true": []}
    for _ in range(count):
        started = time.perf_counter()
        run(["bash", "--noprofile", "--norc", "-c", "true"], cwd=repo, timeout_s=30)
        timings["plain bash -c true"].append(time.perf_counter() - started)
        started = time.perf_counter()
        sandbox.run("true", timeout_s=30)
        timings["bwrap bash -c true"].append(time.perf_counter() - started)
    return {name: statistics.median(values) * 1000 for name, values in timings.items()}


def time_loop(repo: Path, turns: int, *, use_bash: bool) -> float:
    calls = [
        tool_turn(
            bash_command(f"echo {i} > f{i}.txt") if use_bash else editor_create(f"f{i}.txt", "x")
        )
        for i in range(turns)
    ]
    with StandinMessagesAPI([*calls, text_turn("done")]) as fake:
        client = anthropic.Anthropic(base_url=fake.base_url, api_key="bench", max_retries=0)
        request = AgentRequest(
            repo=repo,
            plan_name="bench",
            phase_id="bash" if use_bash else "editor",
            owner="general-purpose",
            task="bench",
            max_turns=turns + 2,
        )
        started = time.perf_counter()
        result = run_agent(request, client=client)
        elapsed = time.perf_counter() - started
    assert result.ok and result.turns == turns + 1, result
    return elapsed / (turns + 2) * 1000  # per request (turns + final text turn + summary)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--commands", type=int, default=50)
    parser.add_argument("--turns", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp)
        for name, ms in time_commands(repo, args.commands).items():
            print(f"{name:24s} median {ms:6.1f} ms over {args.commands} runs")
        editor_ms = time_loop(repo, args.turns, use_bash=False)
        bash_ms = time_loop(repo, args.turns, use_bash=True)
        print(f"loop turn + editor call   mean {editor_ms:6.1f} ms over {args.turns} turns")
        print(f"loop turn + bwrap command mean {bash_ms:6.1f} ms over {args.turns} turns")


if __name__ == "__main__":
    main()
