"""Cold start: from `plan-executor run` (a fresh process) to the first agent request.

    python bench/cold_start.py [--reps 3] [--fresh-home] [--write-docs]

A 1-phase synthetic plan (bench/_synthetic.py: every gate `true`, so the pre-flight baseline
costs nothing; on a real crate the baseline `cargo test` comes on top) is run with
`plan-executor run --backend server --no-live` in a child process; the stand-in (in this
process) notes when the first Messages API request arrives. Scenarios:

- `warm server`: `plan-executor server` already running (a private home and port);
- `server stopped`: the home exists (database initialized) but no server runs: the run starts the
  embedded PostgreSQL and the Prefect server itself and stops them at the end;
- `fresh home` (`--fresh-home`): an empty PLAN_EXECUTOR_HOME (initdb and migrations too).

The target (<= 5 s) applies to the warm server, the way nightly runs are meant to be used
(`plan-executor server start` once); the others are reported for the gap. The timeline splits
the time with the lines the run prints on stderr (stamped on arrival) and separate measurements:
the import of the flow modules and `plan-executor --help`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _synthetic as syn  # noqa: E402


def one_run(env: dict[str, str]) -> dict[str, Any]:
    from cli.demo import ScriptedAgents
    from tasks.agent.standin import StandinMessagesAPI

    root = Path(tempfile.mkdtemp(prefix="bench-cold-"))
    plan = syn.make_repo(root / "crate", "chain", 1)
    lines: list[tuple[float, str]] = []
    with StandinMessagesAPI(
        responder=ScriptedAgents(syn.scripts(1, 0.0)), auto_summary=False
    ) as api:  # type: ignore[arg-type]
        child_env = {**os.environ, **env, "ANTHROPIC_BASE_URL": api.base_url}
        child_env["ANTHROPIC_API_KEY"] = "stand-in"
        child_env.pop("PREFECT_API_URL", None)
        started = time.monotonic()
        proc = subprocess.Popen(
            [
                str(syn.CLI),
                "run",
                str(plan),
                "--repo",
                str(root / "crate"),
                "--backend",
                "server",
                "--no-live",
            ],
            env=child_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )

        def read() -> None:
            assert proc.stderr is not None
            for line in proc.stderr:
                lines.append((time.monotonic() - started, line.rstrip()))

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        code = proc.wait(timeout=600)
        reader.join(timeout=5)
        requests = api.message_requests
    first = requests[0].started_at - started if requests else float("nan")
    shutil.rmtree(root, ignore_errors=True)
    return {
        "first_request_s": first,
        "exit": code,
        "total_s": time.monotonic() - started,
        "lines": lines,
    }


def timed_command(argv: list[str], env: dict[str, str] | None = None) -> float:
    started = time.monotonic()
    subprocess.run(argv, env=env, capture_output=True, check=False)
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--fresh-home", action="store_true")
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    header = syn.stamp(" ".join(["python", "bench/cold_start.py", *sys.argv[1:]]))
    python = str(syn.ROOT / ".venv" / "bin" / "python")
    results: dict[str, list[dict[str, Any]]] = {}
    with syn.private_server() as env:
        results["warm server"] = [one_run(env) for _ in range(args.reps)]
        # Same home (database initialized), server stopped: each run starts and stops its own.
        subprocess.run(
            [str(syn.CLI), "server", "stop"], env={**os.environ, **env}, capture_output=True
        )
        results["server stopped"] = [one_run(env) for _ in range(args.reps)]
    if args.fresh_home:
        fresh = []
        for _ in range(args.reps):
            home = tempfile.mkdtemp(prefix="bench-fresh-home-")
            fresh.append(
                one_run({"PLAN_EXECUTOR_HOME": home, "PLAN_EXECUTOR_PORT": str(syn.free_port())})
            )
            shutil.rmtree(home, ignore_errors=True)
        results["fresh home"] = fresh
    imports = [
        timed_command(
            [python, "-c", "import flows.execute_plan, cli.run"],
            env={**os.environ, "PYTHONPATH": str(syn.ROOT)},
        )
        for _ in range(args.reps)
    ]
    helps = [timed_command([str(syn.CLI), "--help"]) for _ in range(args.reps)]
    lines = [
        "| scenario | first agent request s (median) | runs | whole run s (median) | met (<= 5 s) |",
        "|---|---:|---|---:|---|",
    ]
    for name, runs in results.items():
        firsts = [r["first_request_s"] for r in runs]
        ok = all(r["exit"] == 0 for r in runs)
        lines.append(
            f"| {name} | {syn.median(firsts):.2f} | "
            + ", ".join(f"{v:.2f}" for v in firsts)
            + ("" if ok else f" (exit codes {[r['exit'] for r in runs]})")
            + f" | {syn.median([r['total_s'] for r in runs]):.2f} | "
            + ("yes" if syn.median(firsts) <= 5 else "no")
            + (" (target)" if name == "warm server" else "")
            + " |"
        )
    lines += [
        "",
        f"Parts: import of the flow modules in a fresh interpreter {syn.median(imports):.2f} s; "
        f"`plan-executor --help` {syn.median(helps):.2f} s.",
    ]
    for name, runs in results.items():
        stamped = [f"{t:6.2f} s  {text[:110]}" for t, text in runs[-1]["lines"] if text.strip()]
        if stamped:
            lines += ["", f"stderr of the last `{name}` run, stamped on arrival:", "", "```"]
            lines += stamped[:15] + ["```"]
    text = "\n".join(lines)
    print(text)
    if args.write_docs:
        syn.write_section("Cold start", f"{header}\n{text}\n")


if __name__ == "__main__":
    main()
