"""Crash and resume: SIGKILL `plan-executor run` at many moments, rerun, and tally what survived.

    python bench/crash_trials.py [--trials 50] [--seed 1] [--write-docs] [--json out.json]

Each trial (tests/reliability/crash_harness.py) makes a fresh demo crate (3 phases, real cargo
gates, the scripted stand-in Messages API with a 2 s first turn per phase), kills the victim run
at one moment (during an agent call, during a gate command, at the N-th plan write before or
after the rename, or after a random delay), then reruns the plan and checks: the plan parses, no
phase complete before the kill is lost or executed again, the rerun finishes (exit 0, all
complete). The moments are mixed evenly in a seeded order; each trial's seed is printed with
its result so a failure can be replayed (`--only-trial N`). One PostgreSQL-backed Prefect server
serves all trials. `--write-docs` replaces the tally in docs/reliability.md (## Crash and resume).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DOC = ROOT / "docs" / "reliability.md"
BEGIN, END = "<!-- crash_trials: begin -->", "<!-- crash_trials: end -->"


@contextmanager
def prefect_server() -> Any:
    from backend.server import ServerConfig, drain_client_workers, start_server, stop_server
    from backend.settings import offline_env
    from tests.prefect_fixture import TEST_DIR_PREFIX, free_port, private_tmp_dir

    root = private_tmp_dir(f"{TEST_DIR_PREFIX}crash-bench-")
    config = ServerConfig(home=root / "home", port=free_port())
    (root / "client").mkdir()
    info = start_server(config, timeout_s=120)
    os.environ.update({**offline_env(), **info.client_env(), "PREFECT_HOME": str(root / "client")})
    try:
        yield info
    finally:
        drain_client_workers()
        stop_server(config)
        shutil.rmtree(root, ignore_errors=True)


def tally(results: list[Any]) -> dict[str, Any]:
    killed = [r for r in results if r.killed]
    return {
        "trials": len(results),
        "killed": len(killed),
        "kills_per_moment": dict(sorted(Counter(r.moment for r in killed).items())),
        "finished_before_kill": len(results) - len(killed),
        "plan_parsed": sum(r.plan_parsed and r.state_readable for r in results),
        "completed_phases_before_kill": sum(len(r.complete_before) for r in results),
        "lost": sum(len(r.lost) for r in results),
        "reexecuted": sum(len(r.reexecuted) for r in results),
        "reruns_finished": sum(r.rerun_finished for r in results),
        "with_leftover_processes": sum(r.leftovers > 0 for r in results),
        "median_rerun_s": round(statistics.median(r.rerun_s for r in results), 1)
        if results
        else 0.0,
        "failures": [r.as_dict() for r in results if not r.ok],
    }


def markdown(summary: dict[str, Any], command: str, results: list[Any]) -> str:
    during = Counter(r.killed_during.split(" running")[0] for r in results if r.killed)
    lines = [
        BEGIN,
        f"Command: `{command}` ({time.strftime('%Y-%m-%d')}, 2 cores, the stand-in agents "
        "with a 2 s first turn, real cargo gates, one PostgreSQL-backed Prefect server).",
        "",
        "| | |",
        "|---|---:|",
        f"| trials | {summary['trials']} |",
        f"| killed with SIGKILL | {summary['killed']} |",
        *(
            f"| &nbsp; at `{moment}` | {count} |"
            for moment, count in summary["kills_per_moment"].items()
        ),
        f"| finished before the kill came | {summary['finished_before_kill']} |",
        f"| plan parsed (and its checkpoints read) after the kill | "
        f"{summary['plan_parsed']} / {summary['trials']} |",
        f"| phases complete before a kill | {summary['completed_phases_before_kill']} |",
        f"| &nbsp; lost on the rerun | {summary['lost']} |",
        f"| &nbsp; executed again on the rerun | {summary['reexecuted']} |",
        f"| reruns finished (exit 0, all complete) | "
        f"{summary['reruns_finished']} / {summary['trials']} |",
        f"| trials where processes of the killed run were alive at the rerun | "
        f"{summary['with_leftover_processes']} |",
        f"| median rerun time | {summary['median_rerun_s']} s |",
        "",
        "What the kills interrupted (from the checkpoints left behind): "
        + ", ".join(f"{what}: {n}" for what, n in sorted(during.items()))
        + ".",
    ]
    if summary["failures"]:
        lines += ["", "Failures (seed, moment, what):", ""]
        for failure in summary["failures"]:
            lines.append(
                f"- trial {failure['trial']} seed {failure['seed']} `{failure['moment']}` "
                f"({failure['detail']}): lost {failure['lost']}, re-executed "
                f"{failure['reexecuted']}, rerun exit {failure['rerun_exit']}; "
                f"{(failure['error'] or '').strip().splitlines()[-1:] or ''}"
            )
    lines.append(END)
    return "\n".join(lines)


def write_docs(block: str) -> None:
    text = DOC.read_text(encoding="utf-8")
    if BEGIN in text:
        text = re.sub(re.escape(BEGIN) + r".*?" + re.escape(END), lambda _: block, text, flags=re.S)
    else:
        heading = "## Crash and resume\n"
        at = text.index(heading) + len(heading)
        following = text.find("\n## ", at)
        insert_at = following if following != -1 else len(text)
        text = text[:insert_at].rstrip("\n") + "\n\n" + block + "\n" + text[insert_at:]
    DOC.write_text(text, encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--only-trial", type=int, default=None)
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    from tests.reliability.crash_harness import run_trial, trial_moments

    rng = random.Random(args.seed)
    moments = trial_moments(args.trials, rng)
    seeds = [rng.randrange(2**32) for _ in moments]
    results = []
    with prefect_server():
        for index, (moment, seed) in enumerate(zip(moments, seeds, strict=True), start=1):
            if args.only_trial is not None and index != args.only_trial:
                continue
            workdir = Path(tempfile.mkdtemp(prefix=f"crash-trial-{index}-"))
            result = run_trial(workdir, index, seed, moment)
            results.append(result)
            print(
                f"trial {index:3d} seed {seed:10d} {moment:6s} {result.detail:28s} "
                f"killed={result.killed!s:5s} during={result.killed_during:24s} "
                f"complete_before={','.join(result.complete_before) or '-':6s} "
                f"rerun={result.rerun_exit} {result.rerun_s:5.1f}s leftovers={result.leftovers} "
                f"{'ok' if result.ok else 'FAIL ' + (result.error or '')[-300:]}",
                flush=True,
            )
            if result.ok:
                shutil.rmtree(workdir, ignore_errors=True)
    summary = tally(results)
    command = f"python bench/crash_trials.py --trials {args.trials} --seed {args.seed} --write-docs"
    print(json.dumps({k: v for k, v in summary.items() if k != "failures"}, indent=2))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    if args.write_docs and args.only_trial is None:
        write_docs(markdown(summary, command, results))
    return 0 if not summary["failures"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
