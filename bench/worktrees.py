"""Worktrees (issue 14): gate time and makespan, shared tree vs a worktree per phase.

    python bench/worktrees.py [--runs 3] [--modes shared-tree worktrees worktrees-cold-target]
                              [--records 60] [--agent-delay 1] [--micro-reps 20]
                              [--cargo-reps 3] [--skip-flows] [--skip-micro] [--json FILE]

One crate (`demo`) with three local path crates under `vendor/` (`heavy_a`, `heavy_b`,
`heavy_c`: generated structs with derives and impls, `--records` each, a few seconds of cold
`cargo build` on 2 cores) so that builds matter. A 6-phase plan in waves {1, 2, 3} -> {4, 5} ->
{6}: each phase creates `src/m<i>.rs` (a function over a vendor crate plus a unit test) and
registers it in `src/lib.rs` (`pub mod m<i>;`, inserted after the crate's doc line, so parallel
phases add lines at the same place). Every phase declares `src/lib.rs` under *Files to modify*:
with `--shared-tree` the scope gate sees the siblings' `lib.rs` lines too and would otherwise
block them (the same plan runs in every mode, so the gates do the same work). The agents are
the scripted stand-in (`--agent-delay` s for the first turn); the gates are the real defaults
(`cargo test`, blast radius `cargo test m<i>`, `cargo build`, `cargo clippy`, `cargo fmt
--check`), sandboxed. A private plan-executor server (embedded PostgreSQL) serves every run.

Modes (interleaved, one run of each per repetition, each on a fresh crate and a cold target):

- `shared-tree`: `worktrees=False` (every phase in the checkout, the old behaviour);
- `worktrees`: the default (a worktree per phase with its own cargo target, seeded by copying
  the checkout's warm `target/`: `tasks/worktree.seed_target`);
- `worktrees-cold-target`: the same without the seed (this script makes `seed_target` a no-op
  in its own process): every worktree builds from nothing. CARGO_TARGET_DIR is unset.

(An earlier version of the product shared one target directory between the worktrees; the
first figures below were measured on it. It was dropped because cargo then called a phase's
crate fresh from a sibling's build: see `--stale-run`.)

Per run: makespan (`RunReport.duration_s`), per phase the `phase-gates` task run's duration
(from the Prefect API, via the phase's subflow id), the sum of its gate commands (ledger
durations, the integration re-check listed apart) and its subflow's duration.

Micro-benchmarks (no Prefect): the worktree operations of one phase, `tasks/worktree.py`
called directly on a copy of the crate, `--micro-reps` times each: `open_phase`, `commit_work`,
`replay`, `land` (+ `mark_landed`), and the removal, for a fast-forward and for a replay onto a
sibling that landed meanwhile (pure additions joined; `cargo fmt` afterwards timed apart);
`git worktree add` + `cargo build` / `cargo clippy` in a fresh worktree with its own target vs
the shared (warm) one, with the path crates inside the repository and outside it; and a check
whether a shared target lets cargo reuse one worktree's build for another (mtime freshness).
"""

# ruff: noqa: B023  (every lambda given to `timed` runs at once, inside its loop iteration)
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _synthetic as syn  # noqa: E402

MODES = ("shared-tree", "worktrees", "worktrees-cold-target")
VENDOR = ("heavy_a", "heavy_b", "heavy_c")
PLAN_FILE = ".ai/plans/2026-12-07.worktrees-bench.md"
DOC_LINE = "//! The crate of the worktree benchmark.\n"
AGENT = """---
description: Rust developer (benchmark definition)
model: claude-standin
---
You are a Rust developer.
"""
DEPENDS = {1: [], 2: [], 3: [], 4: [1, 2], 5: [3], 6: [4, 5]}
"""Phase -> the phases it depends on: waves {1, 2, 3}, {4, 5}, {6}."""
USES = {1: "heavy_a", 2: "heavy_b", 3: "heavy_c", 4: "heavy_a", 5: "heavy_b", 6: "heavy_c"}


# -- pure helpers (tests/bench/test_worktrees_bench.py) -----------------------------------------


def waves(depends: dict[int, list[int]]) -> list[list[int]]:
    """The phases by wave: a phase runs in the wave after its latest dependency."""
    level: dict[int, int] = {}
    for node in sorted(depends):
        level[node] = 1 + max((level[d] for d in depends[node]), default=-1)
    out: list[list[int]] = [[] for _ in range(max(level.values()) + 1)]
    for node, lvl in sorted(level.items()):
        out[lvl].append(node)
    return out


def spread(values: list[float]) -> dict[str, float]:
    """Median, min, max and count of a sample (NaN when empty)."""
    if not values:
        nan = float("nan")
        return {"median": nan, "min": nan, "max": nan, "n": 0}
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "n": len(values),
    }


def fmt_spread(values: list[float], digits: int = 2) -> str:
    s = spread(values)
    if not s["n"]:
        return "-"
    return f"{s['median']:.{digits}f} ({s['min']:.{digits}f}-{s['max']:.{digits}f})"


def heavy_source(name: str, records: int) -> str:
    """A vendor crate's lib.rs: `records` structs with derives, a constructor and an index."""
    out = [
        f"//! `{name}`: generated weight for the worktree benchmark.",
        "",
        "use std::collections::HashMap;",
        "",
    ]
    for i in range(records):
        out.append(
            f"""/// Record {i}.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Record{i} {{
    /// Its id.
    pub id: u64,
    /// Its name.
    pub name: String,
    /// Its tags.
    pub tags: Vec<String>,
}}

impl Record{i} {{
    /// Builds a record.
    pub fn new(id: u64) -> Self {{
        Self {{
            id,
            name: format!("r{i}-{{id}}"),
            tags: vec![format!("t{{}}", id % 7)],
        }}
    }}

    /// Indexes records by tag.
    pub fn index(items: &[Self]) -> HashMap<String, Vec<u64>> {{
        let mut map: HashMap<String, Vec<u64>> = HashMap::new();
        for item in items {{
            for tag in &item.tags {{
                map.entry(tag.clone()).or_default().push(item.id + {i + 2});
            }}
        }}
        map
    }}
}}
"""
        )
    body = "".join(
        f"    sum += Record{i}::index(&(0..n).map(Record{i}::new).collect::<Vec<_>>()).len() as u64;\n"
        for i in range(records)
    )
    out.append(
        f"/// The number of tags over all records.\npub fn total(n: u64) -> u64 {{\n    let mut sum = 0;\n{body}    sum\n}}\n"
    )
    return "\n".join(out)


def module_source(i: int) -> str:
    crate = USES[i]
    calls = "".join(f" + crate::m{d}::value{d}()" for d in DEPENDS[i])
    return (
        f"//! Module {i} of the worktree benchmark.\n\n"
        f"/// The value of module {i}.\npub fn value{i}() -> u64 {{\n"
        f"    {crate}::Record{i}::new({i}).id{calls}\n}}\n\n"
        "#[cfg(test)]\nmod tests {\n    use super::*;\n\n"
        f"    #[test]\n    fn m{i}_value() {{\n        assert!(value{i}() >= {i});\n    }}\n}}\n"
    )


def phase_section(i: int) -> str:
    after = ", ".join(f"Phase {d}" for d in DEPENDS[i]) or "None"
    return f"""
### Phase {i}: Module m{i}

**Principal Owner:** Rust Developer
**Goal:** Module m{i}: a value from `{USES[i]}`, registered in `src/lib.rs`.
**Dependencies:** {after}
**Blast Radius:** `cargo test m{i}`

**Files to create:**
- `src/m{i}.rs`

**Files to modify:**
- `src/lib.rs`

**Acceptance Criteria:**
- [ ] `src/m{i}.rs` exists
- [ ] `cargo test m{i}` passes

---
"""


def plan_text() -> str:
    return (
        "# Worktree benchmark: six modules in one crate\n\n**Created:** 2026-12-07\n"
        "**Status:** Reviewed - Ready for Implementation\n\n## Executive Summary\n\n"
        "Six modules, three of them in parallel, then two, then one.\n\n## Phases\n"
        + "".join(phase_section(i) for i in sorted(DEPENDS))
    )


def crate_files(records: int, vendor_prefix: str = "vendor/") -> dict[str, str]:
    deps = "".join(f'{v} = {{ path = "{vendor_prefix}{v}" }}\n' for v in VENDOR)
    files = {
        ".gitignore": "target/\n",
        ".claude/agents/rust-developer.md": AGENT,
        "Cargo.toml": f'[package]\nname = "demo"\nversion = "0.1.0"\nedition = "2021"\n\n[dependencies]\n{deps}',
        "src/lib.rs": DOC_LINE
        + "\n/// The dependencies' totals.\npub fn base() -> u64 {\n"
        + "    heavy_a::total(2) + heavy_b::total(2) + heavy_c::total(2)\n}\n\n"
        + "#[cfg(test)]\nmod tests {\n    use super::*;\n\n    #[test]\n    fn base_counts() {\n"
        + "        assert!(base() > 0);\n    }\n}\n",
        PLAN_FILE: plan_text(),
    }
    return files


def vendor_files(records: int) -> dict[str, str]:
    files: dict[str, str] = {}
    for v in VENDOR:
        files[f"{v}/Cargo.toml"] = f'[package]\nname = "{v}"\nversion = "0.1.0"\nedition = "2021"\n'
        files[f"{v}/src/lib.rs"] = heavy_source(v, records)
    return files


# -- repositories ----------------------------------------------------------------------------

GIT_ENV = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@localhost",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@localhost",
}


def sh(argv: list[str], cwd: Path, env: dict[str, str] | None = None, check: bool = True) -> str:
    result = subprocess.run(
        argv, cwd=cwd, env={**os.environ, **GIT_ENV, **(env or {})}, capture_output=True, text=True
    )
    if check and result.returncode != 0:
        raise RuntimeError(
            f"{argv} failed in {cwd}: {result.stdout[-2000:]}{result.stderr[-2000:]}"
        )
    return result.stdout + result.stderr


def write(root: Path, files: dict[str, str]) -> None:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def make_repo(root: Path, records: int, *, vendor_outside: Path | None = None) -> Path:
    """The benchmark crate, committed on `main`; with ``vendor_outside`` the path crates live
    there (absolute paths in Cargo.toml) instead of `vendor/` in the repository."""
    if vendor_outside is None:
        write(root, crate_files(records))
        write(root / "vendor", vendor_files(records))
    else:
        write(root, crate_files(records, vendor_prefix=str(vendor_outside) + "/"))
        if not (vendor_outside / VENDOR[0]).exists():
            write(vendor_outside, vendor_files(records))
    sh(["git", "init", "-q", "-b", "main"], root)
    sh(["cargo", "generate-lockfile", "--offline"], root)
    sh(["git", "add", "-A"], root)
    sh(["git", "commit", "-q", "-m", "base"], root)
    return root / PLAN_FILE


# -- flows -----------------------------------------------------------------------------------


def scripts(delay_s: float) -> dict[str, Any]:
    from cli.demo import PhaseScript
    from tasks.agent.standin import editor_create, editor_str_replace

    return {
        str(i): PhaseScript(
            edits=[
                editor_create(f"src/m{i}.rs", module_source(i)),
                editor_str_replace("src/lib.rs", DOC_LINE, f"{DOC_LINE}\npub mod m{i};\n"),
            ],
            delay_s=delay_s,
        )
        for i in sorted(DEPENDS)
    }


@contextlib.contextmanager
def cold_target_per_worktree() -> Iterator[None]:
    """Worktrees start with an empty `target/` (this process only)."""
    from tasks import worktree

    original = worktree.seed_target
    worktree.seed_target = lambda workspace, warm: False  # type: ignore[assignment]
    try:
        yield
    finally:
        worktree.seed_target = original  # type: ignore[assignment]


async def gate_task_durations(flow_run_ids: dict[str, str]) -> dict[str, float]:
    """Phase id -> duration of its `phase-gates` task run(s) (summed over attempts)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    out: dict[str, float] = {}
    async with get_client() as client:
        for pid, fid in flow_run_ids.items():
            runs = await client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[fid])), limit=200
            )
            out[pid] = sum(
                (r.end_time - r.start_time).total_seconds()
                for r in runs
                if r.name.startswith("phase-gates") and r.start_time and r.end_time
            )
    return out


def gate_commands_s(entries: list[Any]) -> float:
    """Seconds of the phase's own gate commands: integration re-checks left out, and a criterion
    that reuses a test run already in the ledger (`cargo test m1` passes = the blast radius's
    run, same duration) counted once."""
    own = [e for e in entries if not e.check.startswith("integration")]
    runs = {e.duration_s for e in own if not e.check.startswith("criterion")}
    return sum(
        e.duration_s for e in own if not (e.check.startswith("criterion") and e.duration_s in runs)
    )


def run_flow(mode: str, records: int, delay_s: float, vendor: str = "in-repo") -> dict[str, Any]:
    from backend.select import backend as select_backend
    from cli.demo import ScriptedAgents
    from flows import execute_plan as module
    from flows.context import RunOptions
    from tasks.agent.standin import StandinMessagesAPI

    root = Path(tempfile.mkdtemp(prefix=f"bench-wt-{mode}-"))
    # Outside the repository but visible in the sandbox (which puts a tmpfs over /tmp and the
    # home, except the toolchains): beside this script's checkout, removed after the run.
    outside = (
        Path(tempfile.mkdtemp(prefix=".bench-vendor-", dir=syn.ROOT))
        if vendor == "outside"
        else None
    )
    plan = make_repo(root / "crate", records, vendor_outside=outside)
    os.environ.pop("CARGO_TARGET_DIR", None)
    load_before = os.getloadavg()[0]
    agents = ScriptedAgents(scripts(delay_s))  # type: ignore[arg-type]
    patches = contextlib.ExitStack()
    if mode == "worktrees-cold-target":
        patches.enter_context(cold_target_per_worktree())
    with StandinMessagesAPI(responder=agents, auto_summary=False) as api, patches:
        os.environ["ANTHROPIC_BASE_URL"] = api.base_url
        os.environ["ANTHROPIC_API_KEY"] = "stand-in"
        started = time.monotonic()
        with select_backend("server", console=lambda *_: None):
            state = asyncio.run(
                module.execute_plan(
                    plan,
                    RunOptions(repo=root / "crate", worktrees=mode != "shared-tree"),
                    return_state=True,
                )
            )
            wall = time.monotonic() - started
            report = state.result(raise_on_failure=False)
            ids = {o.phase_id: o.flow_run_id for o in report.outcomes if o.flow_run_id}
            gate_tasks = asyncio.run(gate_task_durations(ids))
    phases: dict[str, dict[str, Any]] = {}
    for o in report.outcomes:
        entries = o.ledger.entries if o.ledger else []
        integration = [e for e in entries if e.check.startswith("integration")]
        landed = [e.evidence for e in entries if e.check == "integration"]
        phases[o.phase_id] = {
            "status": o.status,
            "subflow_s": o.duration_s,
            "gate_task_s": gate_tasks.get(o.phase_id, float("nan")),
            "gate_commands_s": gate_commands_s(entries),
            "integration_s": sum(e.duration_s for e in integration),
            "landing": landed[0] if landed else "",
            "checks": {e.check: e.duration_s for e in entries if e.duration_s >= 0.05},
            "error": o.error or "",
        }
    final = sum(e.duration_s for e in report.final_ledger.entries) if report.final_ledger else 0.0
    shutil.rmtree(root, ignore_errors=True)
    if outside is not None:
        shutil.rmtree(outside, ignore_errors=True)
    return {
        "mode": mode,
        "vendor": vendor,
        "makespan_s": report.duration_s,
        "wall_s": wall,
        "final_validation_s": final,
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
        "preflight_ok": report.preflight_ok,
        "phases": phases,
    }


# -- micro-benchmarks ------------------------------------------------------------------------


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


def micro_git(records: int, reps: int, extra_files: int = 0) -> dict[str, list[float]]:
    """The worktree operations of one phase, called directly (tasks/worktree.py);
    ``extra_files`` small tracked files make the repository bigger (checkout cost)."""
    from tasks import worktree
    from tasks.gates.repo_state import head

    root = Path(tempfile.mkdtemp(prefix="bench-wt-git-"))
    repo = root / "crate"
    write(repo, {f"assets/d{i % 50}/f{i}.txt": f"file {i}\n" for i in range(extra_files)})
    make_repo(repo, records)
    plan = "worktrees-bench"
    exclude = [PLAN_FILE]
    worktree.check_out_integration(repo, plan)
    t: dict[str, list[float]] = {}

    def add(key: str, seconds: float) -> None:
        t.setdefault(key, []).append(seconds)

    def edit(path: Path, name: str) -> None:
        (path / f"src/{name}.rs").write_text(
            f"//! {name}\n\n/// One.\npub fn one() -> u64 {{\n    1\n}}\n"
        )
        lib = path / "src/lib.rs"
        lib.write_text(lib.read_text().replace(DOC_LINE, f"{DOC_LINE}\npub mod {name};\n", 1))

    def fmt(path: Path, locks: list[str]) -> None:
        seconds, _ = timed(lambda: sh(["cargo", "fmt", "--all"], path, check=False))
        add("replayed: of which cargo fmt after joining (after_merge)", seconds)

    def finish(ws: Any, result: Any, prefix: str) -> None:
        def landing() -> None:
            worktree.land(repo, result.commit)
            worktree.mark_landed(repo, ws, result.commit)

        add(f"{prefix}: land + mark_landed", timed(landing)[0])
        add(
            f"{prefix}: git worktree remove",
            timed(lambda: sh(["git", "worktree", "remove", "--force", str(ws.path)], repo))[0],
        )

    for i in range(reps):
        # A phase alone: nothing landed while it worked -> fast-forward.
        s, ws = timed(lambda: worktree.open_phase(repo, plan, f"ff{i}"))
        add("fast-forward: open_phase", s)
        edit(ws.path, f"ff{i}")
        s, commit = timed(lambda: worktree.commit_work(ws, f"phase ff{i}", exclude=exclude))
        add("fast-forward: commit_work", s)
        s, result = timed(lambda: worktree.replay(ws, commit, head(repo), fmt))
        add("fast-forward: replay", s)
        assert result.status == "fast-forward", result
        finish(ws, result, "fast-forward")
        # Two siblings from one tip, both add a `mod` line at the same place: the second one
        # is replayed onto the first (pure additions joined, then the formatter).
        first = worktree.open_phase(repo, plan, f"a{i}")
        s, second = timed(lambda: worktree.open_phase(repo, plan, f"b{i}"))
        add("replayed: open_phase", s)
        edit(first.path, f"a{i}")
        edit(second.path, f"b{i}")
        c1 = worktree.commit_work(first, "a", exclude=exclude)
        r1 = worktree.replay(first, c1, head(repo), fmt)
        worktree.land(repo, r1.commit)
        s, c2 = timed(lambda: worktree.commit_work(second, "b", exclude=exclude))
        add("replayed: commit_work", s)
        s, r2 = timed(lambda: worktree.replay(second, c2, head(repo), fmt))
        add("replayed: replay (incl. cargo fmt)", s)
        assert r2.status == "combined", r2
        finish(second, r2, "replayed")
        sh(["git", "worktree", "remove", "--force", str(first.path)], repo)
    files = len(sh(["git", "ls-files"], repo).splitlines())
    shutil.rmtree(root, ignore_errors=True)
    t["_tracked_files"] = [float(files)]
    return t


def compiled(output: str) -> int:
    return sum(
        1 for line in output.splitlines() if line.strip().startswith(("Compiling", "Checking"))
    )


def micro_cargo(records: int, reps: int) -> list[dict[str, Any]]:
    """`git worktree add` + `cargo build` + `cargo clippy` in a fresh worktree: own target vs the
    shared one (warmed by the checkout), path crates in the repository vs outside it."""
    rows: list[dict[str, Any]] = []
    root = Path(tempfile.mkdtemp(prefix="bench-wt-cargo-"))
    try:
        for where in ("in repo", "outside repo"):
            outside = root / "outside-vendor" if where == "outside repo" else None
            repo = root / f"crate-{where.replace(' ', '-')}"
            make_repo(repo, records, vendor_outside=outside)
            shared = repo / "target"
            for argv in (["cargo", "build"], ["cargo", "clippy"]):
                sh(argv, repo)  # the checkout warms the shared target (as pre-flight does)
            for target in ("own", "shared"):
                for rep in range(reps):
                    path = root / f"wt-{where[0]}-{target}-{rep}"
                    add_s, _ = timed(
                        lambda: sh(["git", "worktree", "add", "-q", "--detach", str(path)], repo)
                    )
                    env = {"CARGO_TARGET_DIR": str(shared)} if target == "shared" else {}
                    os.environ.pop("CARGO_TARGET_DIR", None)
                    build_s, out_b = timed(lambda: sh(["cargo", "build"], path, env=env))
                    clippy_s, out_c = timed(lambda: sh(["cargo", "clippy"], path, env=env))
                    rows.append({
                        "deps": where, "target": target, "worktree_add_s": add_s,
                        "build_s": build_s, "clippy_s": clippy_s,
                        "compiled": compiled(out_b) + compiled(out_c),
                        "load": os.getloadavg()[0],
                    })  # fmt: skip
                    sh(["git", "worktree", "remove", "--force", str(path)], repo)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return rows


def stale_reuse_check() -> dict[str, Any]:
    """Two worktrees of one crate share a target dir; the same files changed in both. Worktree
    A's edit is older than worktree B's build. Does `cargo test` in A compile A's code, or run
    B's test binary (mtime freshness)? A's test is written to fail."""
    root = Path(tempfile.mkdtemp(prefix="bench-wt-stale-"))
    try:
        repo = root / "crate"
        write(repo, {
            ".gitignore": "target/\n",
            "Cargo.toml": '[package]\nname = "stale"\nversion = "0.1.0"\nedition = "2021"\n',
            "src/lib.rs": "/// One.\npub fn a() -> u64 {\n    1\n}\n",
        })  # fmt: skip
        for argv in (["git", "init", "-q", "-b", "main"], ["cargo", "generate-lockfile", "--offline"],
                     ["git", "add", "-A"], ["git", "commit", "-q", "-m", "base"]):  # fmt: skip
            sh(argv, repo)
        target = {"CARGO_TARGET_DIR": str(root / "shared-target")}
        sh(["cargo", "test"], repo, env=target)
        a, b = root / "a", root / "b"
        sh(["git", "worktree", "add", "-q", "--detach", str(a)], repo)
        sh(["git", "worktree", "add", "-q", "--detach", str(b)], repo)
        (a / "src/lib.rs").write_text(
            "/// One.\npub fn a() -> u64 {\n    1\n}\n\n#[test]\nfn broken() {\n"
            '    assert_eq!(a(), 2, "phase A is broken");\n}\n'
        )
        time.sleep(1.1)
        (b / "src/lib.rs").write_text(
            "/// Five.\npub fn a() -> u64 {\n    5\n}\n\n#[test]\nfn fine() {\n    assert_eq!(a(), 5);\n}\n"
        )
        sh(["cargo", "test"], b, env=target)
        shared = subprocess.run(["cargo", "test"], cwd=a, env={**os.environ, **target},
                                capture_output=True, text=True)  # fmt: skip
        own = subprocess.run(["cargo", "test"], cwd=a, env={**os.environ, "CARGO_TARGET_DIR": str(root / "own")},
                             capture_output=True, text=True)  # fmt: skip
        return {
            "shared_target_exit": shared.returncode,
            "shared_target_fresh": "Fresh stale"
            in sh(["cargo", "test", "-v", "--no-run"], a, env=target),
            "own_target_exit": own.returncode,
            "false_pass": shared.returncode == 0 and own.returncode != 0,
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _stale_module(name: str, value: int) -> str:
    return (
        f"//! {name}\n\n/// Value.\npub fn value() -> u64 {{\n    {value}\n}}\n\n#[cfg(test)]\n"
        f"mod tests {{\n    use super::*;\n\n    #[test]\n    fn {name}_value() {{\n"
        f"        assert_eq!(value(), {value});\n    }}\n}}\n"
    )


def _stale_phase(number: int, name: str) -> str:
    return f"""
### Phase {number}: Change {name}

**Principal Owner:** Rust Developer
**Goal:** Change the value of `{name}`.
**Dependencies:** None
**Blast Radius:** `cargo test {name}_`

**Files to modify:**
- `src/{name}.rs`

**Acceptance Criteria:**
- [ ] `cargo test {name}_` passes

---
"""


def stale_run(mode: str) -> dict[str, Any]:
    """The stale-binary check as a plan run: two parallel phases that only modify existing
    files. Phase 1 changes `a::value` but not its test (its blast radius must FAIL) and then
    reads for a while; phase 2 changes `b` and its test and runs `cargo test` (in the shared
    target) after phase 1's edit and before phase 1's gates, then reads on (so phase 1 lands
    first). Timing-dependent by design: 1's edit at ~4 s, 2's build at ~5-7 s, 1's gates ~8 s."""
    from backend.select import backend as select_backend
    from cli.demo import PhaseScript, ScriptedAgents
    from flows import execute_plan as module
    from flows.context import RunOptions
    from tasks.agent.standin import (
        StandinMessagesAPI,
        bash_command,
        editor_str_replace,
        editor_view,
    )

    root = Path(tempfile.mkdtemp(prefix=f"bench-wt-stale-run-{mode}-")) / "crate"
    plan_file = ".ai/plans/2026-12-07.stale.md"
    write(root, {
        ".gitignore": "target/\n",
        ".claude/agents/rust-developer.md": AGENT,
        "Cargo.toml": '[package]\nname = "stale"\nversion = "0.1.0"\nedition = "2021"\n',
        "src/lib.rs": "//! Stale.\n\npub mod a;\npub mod b;\n",
        "src/a.rs": _stale_module("a", 1),
        "src/b.rs": _stale_module("b", 1),
        plan_file: "# Stale target\n\n**Created:** 2026-12-07\n**Status:** Reviewed - Ready for "
        "Implementation\n\n## Phases\n" + _stale_phase(1, "a") + _stale_phase(2, "b"),
    })  # fmt: skip
    for argv in (["git", "init", "-q", "-b", "main"], ["cargo", "generate-lockfile", "--offline"],
                 ["git", "add", "-A"], ["git", "commit", "-q", "-m", "base"]):  # fmt: skip
        sh(argv, root)
    old = "pub fn value() -> u64 {\n    1"
    scripts = {
        "1": PhaseScript(
            edits=[editor_str_replace("src/a.rs", old, old[:-1] + "2")],
            later=[[editor_view("src/a.rs")]],
            delay_s=4.0,
        ),
        "2": PhaseScript(
            edits=[
                editor_str_replace("src/b.rs", old, old[:-1] + "3"),
                editor_str_replace("src/b.rs", "assert_eq!(value(), 1)", "assert_eq!(value(), 3)"),
                bash_command("cargo test -q"),
            ],
            later=[[editor_view("src/b.rs")]] * 2,
            delay_s=5.0,
        ),
    }
    os.environ.pop("CARGO_TARGET_DIR", None)
    with StandinMessagesAPI(responder=ScriptedAgents(scripts), auto_summary=False) as api:  # type: ignore[arg-type]
        os.environ["ANTHROPIC_BASE_URL"] = api.base_url
        os.environ["ANTHROPIC_API_KEY"] = "stand-in"
        with select_backend("server", console=lambda *_: None):
            state = asyncio.run(
                module.execute_plan(
                    root / plan_file,
                    RunOptions(repo=root, worktrees=mode != "shared-tree"),
                    return_state=True,
                )
            )
    report = state.result(raise_on_failure=False)
    one = next(o for o in report.outcomes if o.phase_id == "1")
    verdicts = {e.check: str(e.verdict.value) for e in (one.ledger.entries if one.ledger else [])}
    final = report.final_ledger.entries if report.final_ledger else []
    result = {
        "mode": mode,
        "phase 1 status": one.status,
        "phase 1 own blast radius": verdicts.get("blast-radius: cargo test a_", "-"),
        "phase 1 integration": verdicts.get("integration", "-"),
        "broken a.rs in the checkout (with worktrees: the plan branch)": "    2\n"
        in (root / "src/a.rs").read_text(),
        "final validation failures": [e.check for e in final if str(e.verdict.value) == "fail"],
    }
    shutil.rmtree(root.parent, ignore_errors=True)
    return result


# -- report ----------------------------------------------------------------------------------


def _groups(rows: list[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
    keys: list[tuple[str, str]] = []
    for r in rows:
        if (r["mode"], r["vendor"]) not in keys:
            keys.append((r["mode"], r["vendor"]))
    keys.sort(key=lambda k: (k[1], MODES.index(k[0])))
    return [
        (f"{m}, deps {v}", [r for r in rows if r["mode"] == m and r["vendor"] == v])
        for m, v in keys
    ]


def check_kind(check: str) -> str:
    """Ledger check names grouped: the blast radius and criteria name the phase's module."""
    name = check.removeprefix("integration: ")
    prefix = "integration: " if check.startswith("integration: ") else ""
    for kind in ("blast-radius", "tests", "build", "lint", "fmt", "regression", "criterion"):
        if name.startswith(kind) or kind in name:
            return prefix + kind
    return prefix + name.split(":")[0][:30]


def flow_tables(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| mode | runs | makespan s | gate task s / phase | gate commands s / phase | "
        "integration re-check s / phase | phase subflow s | final validation s | "
        "statuses | load (start of runs) |",
        "|---|---:|---|---|---|---|---|---|---|---|",
    ]
    groups = _groups(rows)
    for label, mine in groups:
        phases = [p for r in mine for p in r["phases"].values()]
        statuses: dict[str, int] = {}
        for p in phases:
            statuses[p["status"]] = statuses.get(p["status"], 0) + 1
        lines.append(
            f"| {label} | {len(mine)} | {fmt_spread([r['makespan_s'] for r in mine], 1)} | "
            f"{fmt_spread([p['gate_task_s'] for p in phases])} | "
            f"{fmt_spread([p['gate_commands_s'] for p in phases])} | "
            f"{fmt_spread([p['integration_s'] for p in phases])} | "
            f"{fmt_spread([p['subflow_s'] for p in phases])} | "
            f"{fmt_spread([r['final_validation_s'] for r in mine])} | "
            + ", ".join(f"{k} {v}" for k, v in sorted(statuses.items()))
            + f" | {fmt_spread([r['load_before'] for r in mine])} |"
        )
    lines += ["", "Per phase, `phase-gates` task s, median (min-max) over runs:", ""]
    ids = sorted({pid for r in rows for pid in r["phases"]}, key=int)
    lines.append("| mode | " + " | ".join(f"phase {p}" for p in ids) + " |")
    lines.append("|---|" + "---:|" * len(ids))
    for label, mine in groups:
        cells = [
            fmt_spread([r["phases"][p]["gate_task_s"] for r in mine if p in r["phases"]])
            for p in ids
        ]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    kinds = sorted(
        {check_kind(c) for r in rows for p in r["phases"].values() for c in p.get("checks", {})}
        - {"criterion"}  # `cargo test m<i>` passes: the blast radius's own run, not a second one
    )
    lines += [
        "",
        "Gate commands by kind, s per phase (median over phases and runs; 0 = not run):",
        "",
    ]
    lines.append("| mode | " + " | ".join(kinds) + " |")
    lines.append("|---|" + "---:|" * len(kinds))
    for label, mine in groups:
        cells = []
        for kind in kinds:
            values = [
                sum(v for c, v in p.get("checks", {}).items() if check_kind(c) == kind)
                for r in mine
                for p in r["phases"].values()
            ]
            cells.append(f"{statistics.median(values):.2f}" if values else "-")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def git_table(t: dict[str, list[float]]) -> str:
    lines = ["| operation | ms median (min-max) | n |", "|---|---|---:|"]
    for key, values in t.items():
        if key.startswith("_"):
            continue
        ms = [v * 1000 for v in values]
        lines.append(f"| {key} | {fmt_spread(ms, 1)} | {len(values)} |")
    for prefix in ("fast-forward", "replayed"):
        parts = [v for k, v in t.items() if k.startswith(prefix + ":") and "of which" not in k]
        if parts:
            per = [sum(x) * 1000 for x in zip(*parts, strict=False)]
            lines.append(
                f"| **{prefix}: all of one phase** | **{fmt_spread(per, 1)}** | {len(per)} |"
            )
    return "\n".join(lines)


def cargo_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| path crates | target | git worktree add s | cargo build s | cargo clippy s | "
        "crates compiled (build + clippy) | load |",
        "|---|---|---|---|---|---|---|",
    ]
    for deps in ("in repo", "outside repo"):
        for target in ("own", "shared"):
            mine = [r for r in rows if r["deps"] == deps and r["target"] == target]
            if mine:
                lines.append(
                    f"| {deps} | {target} | {fmt_spread([r['worktree_add_s'] for r in mine])} | "
                    f"{fmt_spread([r['build_s'] for r in mine])} | "
                    f"{fmt_spread([r['clippy_s'] for r in mine])} | "
                    f"{fmt_spread([float(r['compiled']) for r in mine], 0)} | "
                    f"{fmt_spread([r['load'] for r in mine])} |"
                )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument(
        "--vendor",
        nargs="+",
        default=["in-repo"],
        choices=["in-repo", "outside"],
        help="where the path crates live: in the repository (rebuilt per worktree) or outside",
    )
    parser.add_argument("--records", type=int, default=60, help="structs per vendor crate")
    parser.add_argument("--agent-delay", type=float, default=1.0)
    parser.add_argument("--micro-reps", type=int, default=20)
    parser.add_argument(
        "--extra-files",
        type=int,
        nargs="+",
        default=[0, 5000],
        help="tracked files added for the git micro-benchmark (one run per value)",
    )
    parser.add_argument("--cargo-reps", type=int, default=3)
    parser.add_argument("--skip-flows", action="store_true")
    parser.add_argument("--skip-micro", action="store_true")
    parser.add_argument("--json", type=Path, help="write the raw figures here")
    parser.add_argument(
        "--stale-run",
        action="store_true",
        help="only the stale-binary plan run (worktrees, then shared tree), then exit",
    )
    args = parser.parse_args()
    print(syn.stamp(" ".join(["python", "bench/worktrees.py", *sys.argv[1:]])), flush=True)
    raw: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}}
    if args.stale_run:
        with syn.private_server() as env:
            os.environ.update(env)
            for mode in ("worktrees", "shared-tree"):
                print(json.dumps(stale_run(mode)), flush=True)
        return
    if not args.skip_micro:
        print(f"stale reuse check: {stale_reuse_check()}", flush=True)
        raw["git"] = {}
        for extra in args.extra_files:
            git = micro_git(args.records, args.micro_reps, extra)
            raw["git"][str(extra)] = git
            print(f"tracked files: {git['_tracked_files'][0]:.0f}", flush=True)
            print(git_table(git), flush=True)
        cargo = micro_cargo(args.records, args.cargo_reps)
        raw["cargo"] = cargo
        print(cargo_table(cargo), flush=True)
    if not args.skip_flows:
        rows: list[dict[str, Any]] = []
        with syn.private_server() as env:
            os.environ.update(env)
            for rep in range(args.runs):
                for vendor, mode in [(v, m) for v in args.vendor for m in args.modes]:
                    row = run_flow(mode, args.records, args.agent_delay, vendor)
                    rows.append(row)
                    print(
                        f"run {rep + 1} {mode} ({vendor}): makespan {row['makespan_s']:.1f}s, gate tasks "
                        + " ".join(f"{p}:{v['gate_task_s']:.1f}" for p, v in row["phases"].items())
                        + f", statuses {sorted({v['status'] for v in row['phases'].values()})}"
                        f", load {row['load_before']:.2f}",
                        flush=True,
                    )
                    if args.json:
                        args.json.write_text(
                            json.dumps({**raw, "flows": rows}, indent=1, default=str)
                        )
        raw["flows"] = rows
        print(flow_tables(rows), flush=True)
    if args.json:
        args.json.write_text(json.dumps(raw, indent=1, default=str))


if __name__ == "__main__":
    main()
