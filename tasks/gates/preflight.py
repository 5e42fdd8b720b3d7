"""Pre-flight: is the repository ready for a run, before any agent call?

Clean working tree (ignoring the plan file and `.ai/logs/`), baseline tests with each test's name
and result (skipped when the first wave is design work), build, lint, format, the tools on PATH
and an agent definition for every agent-file owner. A failed pre-flight stops the run; the
message says what to fix.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from plan_parser.model import OwnerKind, PhaseType, Plan
from plan_parser.paths import repo_relative
from plan_parser.vocabulary import DirtyPolicy as DirtyPolicy  # re-exported
from tasks import shell
from tasks.gates.cargo_output import FAILED, TestRun
from tasks.gates.config import (
    GateConfig,
    GateRunSettings,
    justfile_path,
    load_committed_gate_config,
)
from tasks.gates.evidence import command_entry, no_command, not_run, run_test_command, simple_gate
from tasks.gates.ledger import Ledger, LedgerEntry, Verdict
from tasks.gates.repo_state import (
    RUN_OWNED_DIRS,
    RUN_OWNED_PREFIXES,
    git,
    is_run_owned,
    mirror_only,
    plan_lock_file,
    plan_run_lock_file,
    porcelain_status,
)
from tasks.gates.verdict import blocks

FIX_HINTS = {
    "working tree": "commit or stash your changes, or choose a dirty-tree policy: stash | commit | proceed",
    "tools": "install the missing programs (`just` comes with `pip install rust-just`)",
    "baseline tests": "make the test suite pass first (a plan may start on failing tests only with design work)",
    "build": "fix the build",
    "lint": "fix the lint warnings",
    "fmt": "format the code (`cargo fmt --all`, `ruff format .`: the fmt command without --check)",
    "git": "run plan-executor inside a git repository",
    "gate configuration": "fix the committed .ai/plan-executor.toml or [tool.plan-executor]",
}


class PreflightResult(BaseModel):
    ok: bool
    ledger: Ledger
    baseline: TestRun | None
    message: str
    stash_ref: str | None = None
    """The commit of the stash made under the `stash` policy (restore with `git stash pop`)."""
    commit: str | None = None
    """The commit made under the `commit` policy."""
    config: GateConfig | None = None
    """The gate configuration every gate of the run uses (read here, once, from `HEAD`)."""


def _exclusions(plan_file: str | None, mirrors: list[str] | None = None) -> list[str]:
    pathspecs = ["."]
    if plan_file:
        pathspecs.append(f":(exclude){plan_file}")
        pathspecs.append(f":(exclude){plan_lock_file(plan_file)}")
        pathspecs.append(f":(exclude){plan_run_lock_file(plan_file)}")
    pathspecs += [f":(exclude){prefix.rstrip('/')}" for prefix in RUN_OWNED_PREFIXES]
    for name in RUN_OWNED_DIRS:  # at any depth: pathspec `*` crosses `/`
        pathspecs += [f":(exclude){name}", f":(exclude)*/{name}/*"]
    # Other plans' checkpoint mirrors are their resume state: never stashed or committed.
    pathspecs += [f":(exclude){path}" for path in mirrors or []]
    return pathspecs


def _owned_or_mirror(repo: Path, plan_file: str | None) -> tuple[list[str], list[str]]:
    """(the user's changes, other plans' checkpoint mirrors) in the working tree."""
    user: set[str] = set()
    mirrors: set[str] = set()
    for code, path in porcelain_status(repo):
        if is_run_owned(path, plan_file):
            continue
        if set(code.strip()) == {"M"} and mirror_only(repo, path):
            mirrors.add(path)
        else:
            user.add(path)
    return sorted(user), sorted(mirrors)


def dirty_files(repo: Path, plan_file: str | None) -> list[str]:
    """Uncommitted changes that are the user's: not the run's own files (logs, `target/`, this
    plan and its locks), and not another plan's checkpoint mirror (an earlier run's resume
    state, e.g. the plan before this one in a nightly run)."""
    return _owned_or_mirror(repo, plan_file)[0]


def _tree_entries(
    repo: Path, plan_file: str | None, policy: DirtyPolicy
) -> tuple[list[LedgerEntry], str | None, str | None]:
    """The clean-tree check and what the policy did; (entries, stash ref, commit)."""
    check = "working tree"
    dirty = dirty_files(repo, plan_file)
    if not dirty:
        return (
            [
                LedgerEntry(
                    check=check,
                    command="git status --porcelain",
                    verdict=Verdict.PASS,
                    evidence="clean",
                )
            ],
            None,
            None,
        )
    listing = ", ".join(dirty[:20]) + (f" (+{len(dirty) - 20} more)" if len(dirty) > 20 else "")
    if policy == "stop":
        evidence = f"uncommitted changes in {len(dirty)} files: {listing}"
        return (
            [
                LedgerEntry(
                    check=check,
                    command="git status --porcelain",
                    verdict=Verdict.FAIL,
                    evidence=evidence,
                )
            ],
            None,
            None,
        )
    if policy == "proceed":
        evidence = f"proceeding with uncommitted changes (risky) in {len(dirty)} files: {listing}"
        return (
            [LedgerEntry(check=check, verdict=Verdict.WARN, evidence=evidence, required=False)],
            None,
            None,
        )
    if policy == "stash":
        message = "plan-executor pre-flight: changes present before the run"
        result = git(
            repo,
            "stash",
            "push",
            "--include-untracked",
            "-m",
            message,
            "--",
            *_exclusions(plan_file, _owned_or_mirror(repo, plan_file)[1]),
        )
        ref = (
            git(repo, "rev-parse", "--verify", "--quiet", "stash@{0}").output.strip()
            if result.ok
            else None
        )
        action = f"stashed {len(dirty)} files as {ref} (`git stash pop` restores them): {listing}"
        entry = command_entry(check, result, summary=action if result.ok else "git stash failed")
        stash_ref, commit = ref, None
    else:
        add = git(
            repo, "add", "-A", "--", *_exclusions(plan_file, _owned_or_mirror(repo, plan_file)[1])
        )
        result = (
            git(repo, "commit", "-m", "plan-executor: commit changes present before the run")
            if add.ok
            else add
        )
        commit = git(repo, "rev-parse", "HEAD").output.strip() if result.ok else None
        summary = (
            f"committed {len(dirty)} files as {commit}: {listing}"
            if result.ok
            else "git commit failed"
        )
        entry = command_entry(check, result, summary=summary)
        stash_ref = None
    left = dirty_files(repo, plan_file)
    if entry.verdict is Verdict.PASS and left:
        entry.verdict = Verdict.FAIL
        entry.evidence += f"\nstill dirty afterwards: {', '.join(left)}"
    return [entry], stash_ref, commit


def _config_entry(repo: Path, run: GateRunSettings) -> tuple[LedgerEntry, GateConfig | None]:
    """The run's gate configuration, from the commit checked out now (after the dirty-tree
    policy committed or stashed): the working tree is the agents' to write."""
    check = "gate configuration"
    try:
        config = load_committed_gate_config(repo).for_run(run)
    except ValueError as exc:  # tomllib's errors are ValueErrors too
        return LedgerEntry(check=check, verdict=Verdict.FAIL, evidence=str(exc)), None
    network = "on" if config.sandbox_network else "off"
    how = f"sandboxed, network {network}" if config.sandbox else "UNSANDBOXED (the run's choice)"
    evidence = f"{config.source}; gate commands run {how}"
    if config.warnings:
        return LedgerEntry(
            check=check,
            verdict=Verdict.WARN,
            evidence=evidence + "; " + "; ".join(config.warnings),
            required=False,
        ), config
    return LedgerEntry(check=check, verdict=Verdict.PASS, evidence=evidence), config


def _tools_entry(repo: Path, config: GateConfig) -> LedgerEntry:
    tools = config.tools()
    if justfile_path(repo) is not None and "just" not in tools:
        tools.append("just")
    found = {tool: shell.which(tool) for tool in tools}
    missing = [tool for tool, where in found.items() if where is None]
    if missing:
        return LedgerEntry(
            check="tools",
            verdict=Verdict.FAIL,
            evidence=f"missing on PATH: {', '.join(missing)} "
            f"(also looked in {shell.own_scripts_dir()})",
        )
    return LedgerEntry(
        check="tools",
        verdict=Verdict.PASS,
        evidence="; ".join(f"{t}: {w}" for t, w in found.items()),
    )


def _agent_entries(repo: Path, plan: Plan) -> list[LedgerEntry]:
    owners: dict[str, list[str]] = {}
    for phase in plan.phases:
        owner = phase.owner
        if owner is not None and owner.kind is OwnerKind.AGENT_FILE and owner.agent:
            owners.setdefault(owner.agent, []).append(phase.id)
    entries: list[LedgerEntry] = []
    for agent, phase_ids in sorted(owners.items()):
        path = Path(".claude") / "agents" / f"{agent}.md"
        present = (repo / path).is_file()
        evidence = (
            f"{path} {'present' if present else 'missing'} (owner of phases {', '.join(phase_ids)})"
        )
        entries.append(
            LedgerEntry(
                check=f"agent {agent}",
                verdict=Verdict.PASS if present else Verdict.FAIL,
                evidence=evidence,
            )
        )
    return entries


def first_wave_is_design(plan: Plan) -> bool:
    """True when every phase of the first wave is a design phase (no code to test yet)."""
    if not plan.phases:
        return False
    try:
        from plan_parser.schedule import waves

        first = [plan.phase(phase_id) for phase_id in waves(plan)[0]]
    except Exception:  # an unschedulable plan fails validation elsewhere; use document order
        first = [plan.phases[0]]
    return bool(first) and all(phase.type is PhaseType.DESIGN for phase in first)


def baseline_tests(repo: Path, config: GateConfig) -> tuple[LedgerEntry, TestRun | None]:
    if not config.test:
        return no_command("baseline tests", "test", required=True), None
    result, run = run_test_command(config.test, repo, config)
    counts = f"{run.counts()} ({len(run.results)} tests recorded)"
    if (result.ok or run.collected_nothing()) and run.failed == 0:
        entry = command_entry(
            "baseline tests", result, verdict=Verdict.PASS, summary=counts, log_dir=config.log_dir
        )
    else:
        failing = ", ".join(run.names(FAILED)) or "no test result (did it build?)"
        entry = command_entry(
            "baseline tests",
            result,
            verdict=Verdict.FAIL,
            summary=f"{counts}; failing: {failing}",
            log_dir=config.log_dir,
        )
    return entry, run


MESSAGE_TAIL_LINES = 15
"""Lines of a failed pre-flight command's output in its message (the ledger keeps more)."""


def output_tail(evidence: str, lines: int = MESSAGE_TAIL_LINES) -> list[str]:
    """The last ``lines`` non-blank lines of the output tail recorded in a ledger entry."""
    if "--- output tail ---" not in evidence:
        return []
    tail = evidence.split("--- output tail ---", 1)[1].split("\n--- sha256", 1)[0]
    kept = [line.rstrip() for line in tail.splitlines() if line.strip()]
    return kept[-lines:]


def _failure_lines(entry: LedgerEntry, hint: str) -> list[str]:
    """One failing check: what ran, how it ended, what to do, and the end of its output (a
    bare `exit 101` tells nobody what broke)."""
    first = entry.evidence.splitlines()[0] if entry.evidence else entry.verdict.value
    ran = f" (`{entry.command}`)" if entry.command else ""
    lines = [f"- {entry.check}: {first}{ran}" + (f" → {hint}" if hint else "")]
    tail = output_tail(entry.evidence)
    if tail:
        lines.append(f"  last {len(tail)} line(s) of its output:")
        lines += ["  ```", *(f"  {line}" for line in tail), "  ```"]
    return lines


def _message(ledger: Ledger) -> str:
    blocking = [entry for entry in ledger.entries if blocks(entry)]
    warnings = [entry for entry in ledger.entries if entry.verdict is Verdict.WARN]
    if not blocking:
        text = f"pre-flight passed ({len(ledger.entries)} checks)"
        if warnings:
            text += "; warnings: " + "; ".join(
                f"{e.check}: {e.evidence.splitlines()[0] if e.evidence else e.verdict.value}"
                for e in warnings
            )
        return text
    lines = ["pre-flight failed; fix these before running the plan:"]
    for entry in blocking:
        key = "agent" if entry.check.startswith("agent ") else entry.check
        hint = FIX_HINTS.get(
            key, f"add {entry.evidence.split(' ', 1)[0]}" if key == "agent" else ""
        )
        lines += _failure_lines(entry, hint)
    return "\n".join(lines)


def run_preflight(
    repo: Path,
    plan: Plan,
    *,
    plan_path: Path,
    policy: DirtyPolicy = "stop",
    config: GateConfig | None = None,
    skip_tests: bool | None = None,
    run: GateRunSettings | None = None,
) -> PreflightResult:
    """Check the repository before any agent call. ``skip_tests=None`` skips the baseline test
    run only when the plan's first wave is design work. Without ``config`` the gate
    configuration is read from `HEAD` under the run's settings ``run`` and returned in the
    result, for every later gate of the run."""
    repo = Path(repo)
    ledger = Ledger()
    inside = git(repo, "rev-parse", "--is-inside-work-tree")
    if not inside.ok:
        ledger.add(command_entry("git", inside, summary=f"{repo} is not a git working tree"))
        return PreflightResult(ok=False, ledger=ledger, baseline=None, message=_message(ledger))

    plan_file = repo_relative(repo, plan_path)
    tree, stash_ref, commit = _tree_entries(repo, plan_file, policy)
    ledger.extend(tree)
    if config is None:
        entry, config = _config_entry(repo, run or GateRunSettings())
        ledger.add(entry)
        if config is None:
            return PreflightResult(
                ok=False,
                ledger=ledger,
                baseline=None,
                message=_message(ledger),
                stash_ref=stash_ref,
            )
    ledger.add(_tools_entry(repo, config))
    ledger.extend(_agent_entries(repo, plan))
    if any(blocks(entry) for entry in tree):
        # Tests and builds on a tree that is about to change would describe the wrong code.
        ledger.add(
            not_run("baseline tests", "not run: the working tree is not clean", required=False)
        )
        return PreflightResult(
            ok=False,
            ledger=ledger,
            baseline=None,
            message=_message(ledger),
            stash_ref=stash_ref,
            config=config,
        )

    baseline: TestRun | None = None
    if skip_tests is None:
        skip_tests = first_wave_is_design(plan)
    if skip_tests:
        ledger.add(
            not_run("baseline tests", "skipped: the plan starts with design work", required=False)
        )
    else:
        entry, baseline = baseline_tests(repo, config)
        ledger.add(entry)
    ledger.add(simple_gate("build", config.build, repo, config))
    ledger.add(simple_gate("lint", config.lint, repo, config))
    ledger.add(simple_gate("fmt", config.fmt, repo, config))
    ok = not any(blocks(entry) for entry in ledger.entries)
    return PreflightResult(
        ok=ok,
        ledger=ledger,
        baseline=baseline,
        message=_message(ledger),
        stash_ref=stash_ref,
        commit=commit,
        config=config,
    )
