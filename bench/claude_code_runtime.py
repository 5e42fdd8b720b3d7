"""The two agent runtimes on the same scripted plan: requests, tokens, wall time.

    python bench/claude_code_runtime.py [--runs 1] [--backend auto]

Runs `plan-executor demo`'s plan (three phases: 1 and 2 in parallel, 3 after both and judged
by a verifier) on a fresh demo crate once per runtime, the agents played by the stand-in
(`cli.demo.ScriptedAgents`), everything else real (Prefect, gates, cargo, bubblewrap).
Prints, per runtime: the verdicts, the Messages API requests the stand-in answered, the tokens
it counted (its emulation: whitespace-separated words, so the SIZE of what each runtime sends,
not a bill), the run's wall time and the agent calls' own time (from the details logs). The
figures go to docs/agent-runtime.md (## Two runtimes).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

# `python bench/…` puts bench/ first on sys.path, where bench/flows.py hides the flows package.
ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]

from cli.demo import ScriptedAgents, demo_scripts, make_crate  # noqa: E402
from cli.run import run_plan  # noqa: E402
from flows.context import RunOptions  # noqa: E402
from plan_parser.checkpoints import read_plan_state  # noqa: E402
from tasks.agent.runtimes import RUNTIMES  # noqa: E402
from tasks.agent.standin import StandinMessagesAPI  # noqa: E402

DURATION = re.compile(r"^- duration: ([0-9.]+) s$", re.M)


def one_run(runtime: str, backend: str) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix=f"bench-{runtime}-") as tmp:
        plan_path = make_crate(Path(tmp) / "crate")
        repo = plan_path.parents[2]
        with StandinMessagesAPI(
            responder=ScriptedAgents(demo_scripts()), auto_summary=False
        ) as api:
            os.environ["ANTHROPIC_BASE_URL"] = api.base_url
            os.environ["ANTHROPIC_API_KEY"] = "stand-in-bench-key"
            started = time.perf_counter()
            code = run_plan(
                plan_path,
                RunOptions(repo=repo, agent_runtime=runtime),
                live=False,
                backend_mode=backend,
                echo=lambda *a, **k: None,
            )
            wall = time.perf_counter() - started
            requests = api.message_requests
        state = read_plan_state(plan_path)
        verdicts = {pid: cp.status for pid, cp in state.phases.items()} if state else {}
        logs = sorted((repo / ".ai" / "logs").glob("*-phase-*.md"))
        calls = {
            log.name.split("-phase-")[1].removesuffix(".md"): float(m[1])
            for log in logs
            if (m := DURATION.search(log.read_text()))
        }
    owners = [r for r in requests if not r.is_summary_request]
    return {
        "exit": code,
        "verdicts": verdicts,
        "requests": len(requests),
        "summary requests": len(requests) - len(owners),
        "input tokens (incl. cache)": sum(
            r.input_tokens + r.cache_read_input_tokens + r.cache_creation_input_tokens
            for r in requests
        ),
        "cache read": sum(r.cache_read_input_tokens for r in requests),
        "output tokens": sum(r.output_tokens for r in requests),
        "largest request (tokens)": max(
            (r.input_tokens + r.cache_read_input_tokens + r.cache_creation_input_tokens)
            for r in requests
        )
        if requests
        else 0,
        "wall s": round(wall, 1),
        "agent calls s": {name: round(s, 1) for name, s in sorted(calls.items())},
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--runtime", choices=RUNTIMES, action="append")
    args = parser.parse_args()
    for runtime in args.runtime or list(RUNTIMES):
        results = [one_run(runtime, args.backend) for _ in range(args.runs)]
        print(f"== {runtime}")
        for key in results[0]:
            values = [r[key] for r in results]
            if all(isinstance(v, int | float) for v in values) and len(values) > 1:
                print(f"  {key:28s} median {statistics.median(values)}  all {values}")
            else:
                print(f"  {key:28s} {values[0] if len(values) == 1 else values}")


if __name__ == "__main__":
    main()
