"""The free dry run (issue 16): `plan-executor run PLAN --dry-run` wall time on real plans.

    python bench/dry_run.py [--reps 5] [--write-docs]

Each corpus plan of 10 or more phases (/work/shared/corpus/plans, test data: copied into a
temporary fixture repository, never into this one) is dry-run in a fresh process, the way a user
runs it: `plan-executor run PLAN --dry-run --unknown-owners general-purpose` (the fixture
defines the usual Rust agents; other owners run as general-purpose). The fixture is a committed
Rust crate with a justfile, a CLAUDE.md and two skills, so the dry run reads the gate
configuration from HEAD, the memory files and the skills as a run would.

Reported: the median and the slowest of ``--reps`` runs per plan (text and `--json`), a split of
one run into Python start-up + imports and the dry run itself, and whether Prefect was imported
(it must not be). The target is <= 3 s for a 10-phase plan on this 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _synthetic as syn  # noqa: E402

CORPUS = Path("/work/shared/corpus/plans")
CLI = syn.ROOT / ".venv" / "bin" / "plan-executor"
PYTHON = syn.ROOT / ".venv" / "bin" / "python"

AGENT = """---
name: {name}
description: {name}
model: sonnet
tools: Read, Edit, Write, Bash, Grep, Glob
---
You are the {name}. Follow the repository's conventions; run the tests you touch.
"""
SKILL = """---
name: {name}
description: Conventions for {name}.
---
# {name}

Write small functions; test every public function; log with context.
"""
JUSTFILE = "test *args='':\n    cargo test {{args}}\n\nbuild:\n    cargo build\n"

SPLIT = """
import sys, time
t0 = time.monotonic()
from tasks.options import RunOptions
from tasks.dry_run import dry_run, render_text
t1 = time.monotonic()
report = dry_run(sys.argv[1], None, RunOptions(unknown_owners="general-purpose"))
render_text(report)
t2 = time.monotonic()
prefect = any(m == "prefect" or m.startswith("prefect.") for m in sys.modules)
print(f"{t1 - t0:.3f} {t2 - t1:.3f} {int(prefect)} {len(report.phases)}")
"""


def git(repo: Path, *args: str) -> None:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "b",
        "GIT_AUTHOR_EMAIL": "b@localhost",
        "GIT_COMMITTER_NAME": "b",
        "GIT_COMMITTER_EMAIL": "b@localhost",
    }
    subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)


def fixture(root: Path, plan: Path) -> Path:
    (root / "src").mkdir(parents=True)
    (root / "Cargo.toml").write_text(
        '[package]\nname = "bench"\nversion = "0.1.0"\nedition = "2021"\n'
    )
    (root / "src" / "lib.rs").write_text("pub fn one() -> u32 { 1 }\n")
    (root / "justfile").write_text(JUSTFILE)
    (root / "CLAUDE.md").write_text("# Project rules\n\nUse thiserror for errors. " * 20 + "\n")
    agents = root / ".claude" / "agents"
    agents.mkdir(parents=True)
    for name in ("rust-developer", "feature-tester-rust", "rust-architect", "python-developer"):
        (agents / f"{name}.md").write_text(AGENT.format(name=name))
    for name in ("rust-testing", "rust-logging"):
        folder = root / ".claude" / "skills" / name
        folder.mkdir(parents=True)
        (folder / "SKILL.md").write_text(SKILL.format(name=name))
    target = root / ".ai" / "plans" / plan.name.replace(" ", "")
    target.parent.mkdir(parents=True)
    target.write_bytes(plan.read_bytes())
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "fixture")
    return target


def phases_of(plan: Path) -> int:
    return len(re.findall(r"^### Phase ", plan.read_text(encoding="utf-8"), re.M))


CPU_S: list[float] = []
"""CPU seconds (user + system) of each text run: what the wall time would be on an idle
machine, short of waiting on the disk; the wall time depends on what else the 2 cores run."""


def one_cli(plan: Path, *extra: str) -> tuple[float, int, str]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    done = subprocess.run(
        [str(CLI), "run", str(plan), "--dry-run", "--unknown-owners", "general-purpose", *extra],
        capture_output=True,
        text=True,
        timeout=120,
    )
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if not extra:
        CPU_S.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return wall, done.returncode, done.stdout + done.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--min-phases", type=int, default=10)
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    header = syn.stamp(f"python bench/dry_run.py --reps {args.reps} --write-docs")
    plans = sorted(p for p in CORPUS.glob("*.md") if phases_of(p) >= args.min_phases)
    rows = []
    with tempfile.TemporaryDirectory(prefix="pe-bench-dry-") as scratch:
        for number, source in enumerate(plans):
            plan = fixture(Path(scratch) / f"repo{number}", source)
            CPU_S.clear()
            text = [one_cli(plan) for _ in range(args.reps)]
            cpu = syn.median(CPU_S)
            as_json = [one_cli(plan, "--json") for _ in range(args.reps)]
            code, output = text[0][1], text[0][2]
            split = subprocess.run(
                [str(PYTHON), "-c", SPLIT, str(plan)],
                capture_output=True,
                text=True,
                cwd=syn.ROOT,
                timeout=120,
            ).stdout.split()
            forecast = re.search(r"Forecast for the run: (\S+ tokens, \S+)", output)
            rows.append(
                {
                    "plan": source.name,
                    "phases": phases_of(source),
                    "exit": code,
                    "median": syn.median([t for t, _, _ in text]),
                    "max": max(t for t, _, _ in text),
                    "cpu": cpu,
                    "json median": syn.median([t for t, _, _ in as_json]),
                    "imports": float(split[0]) if len(split) == 4 else float("nan"),
                    "dry run": float(split[1]) if len(split) == 4 else float("nan"),
                    "prefect": ("yes" if split[2] == "1" else "no") if len(split) == 4 else "?",
                    "forecast": forecast.group(1)
                    if forecast
                    else output.strip().splitlines()[-1][:80],
                }
            )
            print(rows[-1], flush=True)
    lines = [
        header,
        f"`plan-executor run PLAN --dry-run --unknown-owners general-purpose` in a fresh process, "
        f"{args.reps} runs per plan (corpus plans of {args.min_phases}+ phases in a committed "
        "fixture crate with a justfile, CLAUDE.md, agents and skills). *imports*: Python start-up "
        "excluded, `import tasks.dry_run`; *dry run*: the `dry_run()` call and the text. *CPU s*: "
        "user + system CPU of the process (git's included), the wall time an idle machine would "
        "show short of disk waits; the wall times depend on the load (other engineers' test "
        "runs share the 2 cores: see the load average above).",
        "",
        "| plan | phases | exit | median s | max s | CPU s (median) | --json median s | imports s | dry run s | Prefect imported | forecast |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['plan']} | {r['phases']} | {r['exit']} | {r['median']:.2f} | {r['max']:.2f} | "
            f"{r['cpu']:.2f} | "
            f"{r['json median']:.2f} | {r['imports']:.2f} | {r['dry run']:.2f} | {r['prefect']} | "
            f"{r['forecast']} |"
        )
    print("\n".join(lines))
    if args.write_docs:
        syn.write_section("Dry run (issue 16)", "\n".join(lines) + "\n\n" + FINDINGS)


FINDINGS = """Before this change the same command started the Prefect backend and ran the whole pre-flight
(`cargo test`, build, clippy, fmt): 38–60 s on a real 10-phase plan (issue 16). Now nothing of
the repository runs and Prefect is not imported; `--with-preflight` keeps the old behaviour.
What is left is Python itself: start-up, pydantic, markdown-it, typer and the gate modules
(the *imports* column), then the plan's parse and validation, `git show` / `git ls-tree` of the
gate configuration (about 8 git processes), one `git status`, and building each agent call's
prompts for the forecast (the *dry run* column)."""


if __name__ == "__main__":
    main()
