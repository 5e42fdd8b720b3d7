"""Honest agents on ordinary Rust plans: every phase in its own worktree, integration in DAG
order, wiring in the scope contract. The agents are scripted like good developers (they register
their modules, add the dependencies the plan names, run `cargo fmt`, take a while); every phase
must end COMPLETE (0 false BLOCKED), and a lying phase among them must still be BLOCKED.

Real parts throughout: the execute-plan flow on a Prefect server, the real SDK against the
stand-in Messages API, the sandboxed tool loop, git worktrees, cargo gates.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cli.demo import PhaseScript, ScriptedAgents
from plan_parser.checkpoints import read_plan_state
from tasks.agent.standin import bash_command, editor_create, editor_str_replace
from tasks.shell import run as run_command
from tests.flows.conftest import needs_cargo
from tests.flows.test_run_e2e import run

pytestmark = [needs_cargo, pytest.mark.slow]

AGENT = """---
description: Rust developer (test definition)
model: claude-standin
---
You are a Rust developer.
"""
LIB = """//! The crate of an honest plan.

/// Adds two numbers.
pub fn add(a: i64, b: i64) -> i64 {
    a + b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds() {
        assert_eq!(add(2, 2), 4);
    }
}
"""
MANIFEST = """[package]
name = "demo"
version = "0.1.0"
edition = "2021"

[dependencies]
"""


def helper_crate(name: str, value: int) -> dict[str, str]:
    return {
        f"vendor/{name}/Cargo.toml": (
            f'[package]\nname = "{name}"\nversion = "0.1.0"\nedition = "2021"\n\n[dependencies]\n'
        ),
        f"vendor/{name}/src/lib.rs": f"/// A value.\npub fn value() -> i64 {{\n    {value}\n}}\n",
    }


def module(name: str, body: str, test: str) -> str:
    return (
        f"//! The {name} module.\n\n{body}\n\n#[cfg(test)]\nmod tests {{\n    use super::*;\n\n"
        f"    #[test]\n    fn {name}_works() {{\n        {test}\n    }}\n}}\n"
    )


def phase_text(
    number: int,
    title: str,
    files: list[str],
    *,
    depends: str = "None",
    blast: str,
    extra: str = "",
    modify: list[str] | None = None,
) -> str:
    created = "\n**Files to create:**\n" + "\n".join(f"- `{f}`" for f in files) if files else ""
    modified = "".join(f"\n**Files to modify:**\n- `{f}`\n" for f in modify or [])
    criteria = "\n".join(f"- [ ] `{f}` exists" for f in files)
    return f"""
### Phase {number}: {title}

**Principal Owner:** Rust Developer
**Goal:** {title}.{extra}
**Dependencies:** {depends}
**Blast Radius:** `{blast}`
{created}
{modified}
**Acceptance Criteria:**
{criteria}
- [ ] `{blast}` passes

---
"""


def plan(title: str, *phases: str) -> str:
    return (
        f"# Honest plan: {title}\n\n**Created:** 2026-12-07\n"
        "**Status:** Reviewed - Ready for Implementation\n\n## Phases\n" + "".join(phases)
    )


def make_repo(root: Path, plan_text: str, files: dict[str, str]) -> Path:
    """A committed repository holding ``files``, the agent definition and the plan."""
    everything = {
        ".gitignore": "target/\n",
        ".claude/agents/rust-developer.md": AGENT,
        **files,
        ".ai/plans/2026-12-07.honest.md": plan_text,
    }
    for relative, text in everything.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@localhost",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@localhost",
    }
    for argv in (
        ["git", "init", "-q", "-b", "main"],
        ["cargo", "generate-lockfile", "--offline"],
        ["git", "add", "-A"],
        ["git", "commit", "-q", "-m", "base"],
    ):
        result = run_command(argv, cwd=root, env=env, timeout_s=120)
        assert result.ok, result.output
    return root / ".ai/plans/2026-12-07.honest.md"


def git(repo: Path, *args: str) -> str:
    result = run_command(["git", *args], cwd=repo, timeout_s=60)
    assert result.ok, result.output
    return result.output.strip()


def statuses(plan_path: Path) -> dict[str, str]:
    state = read_plan_state(plan_path)
    assert state is not None
    return {pid: cp.status for pid, cp in state.phases.items()}


def cargo_ok(repo: Path, *args: str) -> None:
    result = run_command(["cargo", *args], cwd=repo, timeout_s=600)
    assert result.ok, result.output[-3000:]


def register(name: str, after: str = "//! The crate of an honest plan.\n") -> dict:
    return editor_str_replace("src/lib.rs", after, f"{after}\npub mod {name};\n")


ALPHA = module("alpha", "/// One.\npub fn one() -> i64 {\n    1\n}", "assert_eq!(one(), 1);")
BETA = module("beta", "/// Two.\npub fn two() -> i64 {\n    2\n}", "assert_eq!(two(), 2);")
# Written badly formatted on purpose: the agent runs `cargo fmt` over the crate afterwards.
GAMMA = (
    "//! The gamma module.\n\n/// Three.\npub fn three()->i64{crate::alpha::one()+2}\n\n"
    "#[cfg(test)]\nmod tests {\n    #[test]\n    fn gamma_works() {\n"
    "        assert_eq!(super::three(), 3);\n    }\n}\n"
)
USES_A = module(
    "uses_a",
    "/// A's value.\npub fn a() -> i64 {\n    helper_a::value()\n}",
    "assert_eq!(a(), 10);",
)
USES_B = module(
    "uses_b",
    "/// B's value.\npub fn b() -> i64 {\n    helper_b::value()\n}",
    "assert_eq!(b(), 20);",
)
NOTES = "# Design notes\n\nThe modules stay independent; `gamma` builds on `alpha`.\n"

MODULES_PLAN = plan(
    "modules",
    phase_text(1, "Alpha module", ["src/alpha.rs"], blast="cargo test alpha"),
    phase_text(2, "Beta module", ["src/beta.rs"], blast="cargo test beta"),
    phase_text(3, "Gamma module", ["src/gamma.rs"], depends="Phase 1", blast="cargo test gamma"),
    phase_text(
        4, "Module using helper_a", ["src/uses_a.rs"], depends="Phase 2",
        blast="cargo test uses_a", extra=" Add the `helper_a` dependency (path `vendor/helper_a`).",
    ),
    phase_text(
        5, "Module using helper_b", ["src/uses_b.rs"], depends="Phase 2",
        blast="cargo test uses_b", extra=" Add the `helper_b` dependency (path `vendor/helper_b`).",
    ),
    """
### Phase 6: Design notes for the modules

**Principal Owner:** Rust Developer
**Type:** Design
**Goal:** Design notes for the modules.
**Dependencies:** Phase 3

**Files to create:**
- `docs/design.md`

**Acceptance Criteria:**
- [ ] `docs/design.md` exists

---
""",
)  # fmt: skip


def dependency(name: str) -> dict:
    return editor_str_replace(
        "Cargo.toml", "[dependencies]\n", f'[dependencies]\n{name} = {{ path = "vendor/{name}" }}\n'
    )


def modules_scripts() -> dict[str, PhaseScript]:
    return {
        "1": PhaseScript(edits=[editor_create("src/alpha.rs", ALPHA), register("alpha")]),
        # Slow and half-written for a while: the module is registered in turn 1 and written
        # 6 s later; in a shared tree phase 1's gates would have seen a crate that cannot build.
        "2": PhaseScript(
            edits=[register("beta")], later=[[editor_create("src/beta.rs", BETA)]], delay_s=6.0
        ),
        "3": PhaseScript(
            edits=[
                editor_create("src/gamma.rs", GAMMA),
                register("gamma", after="pub mod alpha;\n"),
                bash_command("cargo fmt"),
            ]
        ),
        "4": PhaseScript(
            edits=[
                dependency("helper_a"),
                editor_create("src/uses_a.rs", USES_A),
                register("uses_a"),
                bash_command("cargo build --offline -q"),
            ]
        ),
        "5": PhaseScript(
            edits=[
                dependency("helper_b"),
                editor_create("src/uses_b.rs", USES_B),
                register("uses_b"),
                bash_command("cargo build --offline -q"),
            ]
        ),
        "6": PhaseScript(edits=[editor_create("docs/design.md", NOTES)]),
    }


def modules_repo(root: Path) -> Path:
    files = {"Cargo.toml": MANIFEST, "src/lib.rs": LIB}
    files.update(helper_crate("helper_a", 10))
    files.update(helper_crate("helper_b", 20))
    return make_repo(root, MODULES_PLAN, files)


def test_parallel_modules_chains_dependencies_and_design_all_complete(
    tmp_path: Path, prefect_api_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan_path = modules_repo(tmp_path / "repo")
    repo = plan_path.parents[2]
    start = git(repo, "rev-parse", "HEAD")

    code, _requests, echo = run(plan_path, ScriptedAgents(modules_scripts()), monkeypatch)

    assert statuses(plan_path) == {str(n): "complete" for n in range(1, 7)}, echo.text
    assert code == 0, echo.text
    # The user ends on the plan's branch: one commit per verified phase on top of the start.
    assert git(repo, "symbolic-ref", "--short", "HEAD") == "plan-executor/honest"
    commits = git(repo, "log", "--format=%s", f"{start}..HEAD").splitlines()
    assert len(commits) == 6 and all("Honest plan: modules: phase" in c for c in commits)
    assert git(repo, "rev-parse", "main") == start  # the branch the run started on is untouched
    lib = (repo / "src/lib.rs").read_text()
    for name in ("alpha", "beta", "gamma", "uses_a", "uses_b"):
        assert f"pub mod {name};" in lib
    manifest = (repo / "Cargo.toml").read_text()
    assert "helper_a" in manifest and "helper_b" in manifest
    cargo_ok(repo, "build", "--offline")
    cargo_ok(repo, "test", "--offline")
    cargo_ok(repo, "fmt", "--check")
    # The worktrees are gone, the phases' branches stay.
    assert not list((repo / ".git/plan-executor-worktrees").glob("*/*"))
    assert "plan-executor/honest--phase-2" in git(repo, "branch", "--list", "plan-executor/*")


def test_a_lying_phase_among_honest_ones_is_still_blocked(
    tmp_path: Path, prefect_api_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan_path = modules_repo(tmp_path / "repo")
    repo = plan_path.parents[2]
    scripts = modules_scripts()
    # Phase 1 registers its module and says it is done, but never writes it.
    scripts["1"] = PhaseScript(edits=[register("alpha")])

    code, _requests, echo = run(plan_path, ScriptedAgents(scripts), monkeypatch)

    found = statuses(plan_path)
    assert found["1"] == "blocked", echo.text
    assert found["3"] == "skipped" and found["6"] == "skipped"
    assert {found[p] for p in ("2", "4", "5")} == {"complete"}, echo.text
    assert code == 1
    assert "pub mod alpha;" not in (repo / "src/lib.rs").read_text()  # it never landed
    cargo_ok(repo, "test", "--offline")


RENAME_PLAN = plan(
    "rename",
    phase_text(1, "Rename add to sum", ["docs/rename.md"], blast="cargo test", modify=["src/lib.rs"]),
    phase_text(2, "Double module", ["src/double.rs"], blast="cargo test double"),
)  # fmt: skip
DOUBLE = module(
    "double",
    "/// Twice.\npub fn twice(x: i64) -> i64 {\n    crate::add(x, x)\n}",
    "assert_eq!(twice(2), 4);",
)


def rename_scripts(*, resolves: bool) -> dict[str, PhaseScript]:
    renamed = [
        editor_str_replace("src/lib.rs", "pub fn add(", "pub fn sum("),
        editor_str_replace("src/lib.rs", "assert_eq!(add(2, 2), 4);", "assert_eq!(sum(2, 2), 4);"),
        editor_create("docs/rename.md", "`add` is now called `sum`.\n"),
    ]  # fmt: skip
    fix = [editor_str_replace("src/double.rs", "crate::add(x, x)", "crate::sum(x, x)")]
    return {
        "1": PhaseScript(edits=renamed),
        # Phase 2 takes longer, so it lands second, onto the renamed function.
        "2": PhaseScript(
            edits=[editor_create("src/double.rs", DOUBLE), register("double")],
            delay_s=6.0,
            resolution=fix if resolves else [],
        ),
    }


@pytest.mark.parametrize("resolves", [True, False], ids=["owner-resolves", "unresolved"])
def test_a_sibling_renames_what_a_phase_calls(
    tmp_path: Path, prefect_api_url: str, monkeypatch: pytest.MonkeyPatch, resolves: bool
) -> None:
    files = {"Cargo.toml": MANIFEST, "src/lib.rs": LIB}
    plan_path = make_repo(tmp_path / "repo", RENAME_PLAN, files)
    repo = plan_path.parents[2]

    code, requests, echo = run(
        plan_path, ScriptedAgents(rename_scripts(resolves=resolves)), monkeypatch
    )

    found = statuses(plan_path)
    assert found["1"] == "complete", echo.text
    asked = [r for r in requests if ": integration" in r.text()]
    assert asked, "the owner of phase 2 was never asked to fix the integration"
    if resolves:
        assert found["2"] == "complete" and code == 0, echo.text
        assert "crate::sum(x, x)" in (repo / "src/double.rs").read_text()
    else:
        assert found["2"] == "failed" and code == 1, echo.text
        state = read_plan_state(plan_path)
        assert state is not None and "not landed" in (state.phases["2"].error or "")
        assert not (repo / "src/double.rs").exists()
        kept = git(repo, "show", "plan-executor/honest--phase-2:src/double.rs")
        assert "crate::add(x, x)" in kept  # the phase's work stays on its branch
    cargo_ok(repo, "test", "--offline")  # the plan's branch always builds and passes


WORKSPACE_PLAN = plan(
    "workspace",
    phase_text(1, "Left module", ["crates/left/src/extra.rs"], blast="cargo test -p left"),
    phase_text(2, "Right module", ["crates/right/src/extra.rs"], blast="cargo test -p right"),
)


def crate_files(name: str) -> dict[str, str]:
    return {
        f"crates/{name}/Cargo.toml": f'[package]\nname = "{name}"\nversion = "0.1.0"\nedition = "2021"\n',
        f"crates/{name}/src/lib.rs": f"//! The {name} crate.\n\n/// Its name.\npub fn name() -> &'static str {{\n    \"{name}\"\n}}\n",
    }  # fmt: skip


def test_one_phase_per_crate_of_a_workspace(
    tmp_path: Path, prefect_api_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = {
        "Cargo.toml": '[workspace]\nmembers = ["crates/left", "crates/right"]\nresolver = "2"\n'
    }
    files.update(crate_files("left"))
    files.update(crate_files("right"))
    plan_path = make_repo(tmp_path / "repo", WORKSPACE_PLAN, files)
    extra = module("extra", "/// Ten.\npub fn ten() -> i64 {\n    10\n}", "assert_eq!(ten(), 10);")
    scripts = {
        side: PhaseScript(
            edits=[
                editor_create(f"crates/{name}/src/extra.rs", extra),
                editor_str_replace(
                    f"crates/{name}/src/lib.rs",
                    f"//! The {name} crate.\n",
                    f"//! The {name} crate.\n\npub mod extra;\n",
                ),
            ]
        )  # fmt: skip
        for side, name in (("1", "left"), ("2", "right"))
    }

    code, _requests, echo = run(plan_path, ScriptedAgents(scripts), monkeypatch)

    assert statuses(plan_path) == {"1": "complete", "2": "complete"}, echo.text
    assert code == 0
    cargo_ok(plan_path.parents[2], "test", "--offline", "--workspace")


def test_a_rerun_after_a_blocked_phase_judges_the_work_that_exists(
    tmp_path: Path, prefect_api_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = {"Cargo.toml": MANIFEST, "src/lib.rs": LIB}
    plan_path = make_repo(
        tmp_path / "repo", plan(
            "rerun", phase_text(1, "Alpha module", ["src/alpha.rs"], blast="cargo test alpha")
        ), files,
    )  # fmt: skip
    wrong = ALPHA.replace("assert_eq!(one(), 1);", "assert_eq!(one(), 2);")
    first = {"1": PhaseScript(edits=[editor_create("src/alpha.rs", wrong), register("alpha")])}

    code, _requests, echo = run(plan_path, ScriptedAgents(first), monkeypatch)
    assert code == 1 and statuses(plan_path) == {"1": "blocked"}, echo.text

    # The rerun's agent finds its earlier work in the phase's worktree and only fixes the test.
    fix = editor_str_replace("src/alpha.rs", "assert_eq!(one(), 2);", "assert_eq!(one(), 1);")
    code, _requests, echo = run(
        plan_path, ScriptedAgents({"1": PhaseScript(edits=[fix])}), monkeypatch
    )

    assert statuses(plan_path) == {"1": "complete"}, echo.text
    assert code == 0
    repo = plan_path.parents[2]
    assert "assert_eq!(one(), 1);" in (repo / "src/alpha.rs").read_text()
    cargo_ok(repo, "test", "--offline")


def value_module(name: str, value: int) -> str:
    return module(
        name,
        f"/// Value.\npub fn value() -> u64 {{\n    {value}\n}}",
        f"assert_eq!(value(), {value});",
    )


def test_a_phase_never_passes_on_its_siblings_build(
    tmp_path: Path, prefect_api_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two parallel phases that only modify existing files of one crate. Phase 1 changes `a`'s
    value but not its test; phase 2 changes `b` and its test, and its gates build the crate
    after phase 1's edit and before phase 1's gates.
    With one cargo target shared by the worktrees, cargo called phase 1's crate fresh from
    phase 2's build and ran its test binary: phase 1 COMPLETE with a failing test (measured by
    bench/worktrees.py --stale-run). Each worktree has its own target now."""
    changed = plan(
        "stale",
        phase_text(1, "Change a", [], blast="cargo test a_", modify=["src/a.rs"]),
        phase_text(2, "Change b", [], blast="cargo test b_", modify=["src/b.rs"]),
    )
    files = {
        "Cargo.toml": MANIFEST,
        "src/lib.rs": "//! The crate of an honest plan.\n\npub mod a;\npub mod b;\n",
        "src/a.rs": value_module("a", 1),
        "src/b.rs": value_module("b", 1),
    }
    plan_path = make_repo(tmp_path / "repo", changed, files)
    one = "pub fn value() -> u64 {\n    1"
    scripts = {
        # Phase 1 edits early, then takes ~10 s more before its gates run ...
        "1": PhaseScript(
            edits=[editor_str_replace("src/a.rs", one, one[:-1] + "2")],
            later=[[bash_command("true")]] * 5,
            delay_s=2.0,
        ),
        # ... while phase 2 finishes at once, so its gates build the crate (its own `a.rs`,
        # unchanged) after phase 1's edit and before phase 1's gates.
        "2": PhaseScript(
            edits=[
                editor_str_replace("src/b.rs", one, one[:-1] + "3"),
                editor_str_replace("src/b.rs", "assert_eq!(value(), 1)", "assert_eq!(value(), 3)"),
            ],
            delay_s=2.0,
        ),
    }

    code, _requests, echo = run(plan_path, ScriptedAgents(scripts), monkeypatch)

    assert statuses(plan_path) == {"1": "blocked", "2": "complete"}, echo.text
    assert code == 1
    repo = plan_path.parents[2]
    assert "    1\n" in (repo / "src/a.rs").read_text()  # the broken change never landed
    cargo_ok(repo, "test", "--offline")
