"""The gates a phase must pass, run by plan-executor itself after the phase's agent stopped.

FILESYSTEM IS THE SOURCE OF TRUTH: the declared files, the diff since the phase started, the
tests it runs and the quality tools decide. Nothing here reads what an agent said.

The gates are a table, :data:`PHASE_GATES`: named rules, each a small function from one
:class:`GateContext` (the repository, the phase, its start snapshot, the baseline test run, the
gate configuration, the scope policy, the other phases' files) to ledger entries.
:func:`run_phase_gates` builds the context and appends each rule's entries in the table's order,
which is the ledger's order. What several gates share is computed once, on the context: the
changes since the start, the gate-configuration check (before any command: a phase that changed
gate configuration runs no command) and the phase's commands (:class:`PhaseCommands`: the blast
radius, then the criteria's commands; each test command runs once).

To add a gate: write a function that returns `LedgerEntry` items (commands through
`tasks/gates/evidence.py`, never a shell string built from plan text), wrap it in a rule
``def _my_gate(ctx: GateContext) -> list[LedgerEntry]``, and put ``GateRule("my gate", _my_gate)``
into :data:`PHASE_GATES` where its entries belong in the ledger. A command it runs must ask
``ctx.refused`` first. A fact another gate also needs becomes a cached property of the context.
"""

from __future__ import annotations

import fnmatch
import re
import shlex
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from plan_parser.gate_commands import (
    APPENDABLE_TEST_FILTER,
    EXPLICIT_NO_TESTS,
    GREP_PROGRAMS,
    SHELL_OPERATORS,
    split_segments,
)
from plan_parser.model import FileAction, FileRef, Phase, PhaseType
from plan_parser.paths import repo_relative
from tasks.gates.cargo_output import FAILED, OK, TestRun
from tasks.gates.config import GateConfig, load_committed_gate_config
from tasks.gates.criteria import (
    GrepRunner,
    clean_path,
    dependency_entry,
    dependency_names_from_field,
    evaluate_criterion,
    file_exists_entry,
    grep_entry,
    resolve_path,
)
from tasks.gates.evidence import (
    command_entry,
    no_command,
    not_run,
    render,
    run_test_command,
    simple_gate,
)
from tasks.gates.ledger import Ledger, LedgerEntry, Verdict
from tasks.gates.repo_state import (
    DELETED,
    TestInventory,
    bare_test_name,
    changed_since,
    file_digest,
    head,
    is_run_owned,
    porcelain_status,
    repo_files,
    source_inventory,
)
from tasks.gates.wandering import (
    changed_gate_config,
    gate_config_digests,
    gate_config_entry,
    new_tests_entry,
)
from tasks.gates.wiring import wiring_reason

ScopePolicy = Literal["siblings", "warn", "fail"]
"""What a change outside the phase's declared files is: `siblings` (the run's default) fails a
file no phase of the plan declares (a wandering agent) and warns for a file another phase
declares (parallel phases share one tree); `warn` warns for both; `fail` fails both."""
SCOPE_POLICIES: tuple[ScopePolicy, ...] = ("siblings", "warn", "fail")

_CODE_SUFFIXES = (".rs", ".toml", ".py", ".go", ".ts", ".js", ".c", ".h", ".cpp")
_DEPENDENCY_FIELD = re.compile(
    r"dependenc(?:y|ies) to add|new dependencies|crates to add|add dependencies", re.I
)
# The plan asks for it in so many words: "remove the obsolete tests", "tests for X are deleted",
# "#[ignore] the slow test", "mark the flaky tests as ignored". Loose co-occurrence is not enough.
_ALLOWS_DELETION = re.compile(
    r"\b(?:remove|delete|drop)\w*\s+(?:\S+\s+){0,3}?tests?\b"
    r"|\btests?\b(?:\s+\w+){0,4}?\s+(?:are|is|get|will be|should be|can be)\s+(?:removed|deleted|dropped)\b",
    re.I,
)
_ALLOWS_IGNORE = re.compile(
    r"#\[ignore|\b(?:ignore|skip|xfail)\s+(?:\S+\s+){0,3}?tests?\b"
    r"|\bmark\w*\s+(?:\S+\s+){0,4}?as\s+(?:ignored|skipped|xfail|expected\s+to\s+fail)\b"
    r"|pytest\.mark\.(?:skip|skipif|xfail)\b",
    re.I,
)
_SUPPRESSED_LINTS = re.compile(r"(?:allow|expect)\s*\(([^)]*)\)|noqa:\s*([\w, ]+)")


class PhaseStart(BaseModel):
    """The working tree right before a phase's agent runs; the gates diff against it."""

    head: str
    """The commit checked out when the phase started ('' in a repository without commits)."""
    dirty_files: dict[str, str] = Field(default_factory=dict)
    """Files already changed or untracked at the start → sha256 of their content (or
    `<deleted>`): a sibling phase's or the user's work, not this phase's, unless it changes them."""
    test_names: list[str] = Field(default_factory=list)
    """Test keys of the latest full test run given to :func:`snapshot` (informational)."""
    inventory: TestInventory = Field(default_factory=TestInventory)
    """Test functions and lint suppressions in the sources at the start."""
    taken_at: str = ""
    gate_config: dict[str, str] | None = None
    """CI and gate configuration at the start (`wandering.gate_config_digests`); None in a
    snapshot taken before this field existed (the check is then not run)."""


def snapshot(repo: Path, *, baseline: TestRun | None = None) -> PhaseStart:
    repo = Path(repo)
    dirty = {
        path: file_digest(repo, path)
        for _code, path in porcelain_status(repo)
        if not is_run_owned(path)
    }
    return PhaseStart(
        head=head(repo),
        dirty_files=dirty,
        test_names=baseline.names() if baseline else [],
        inventory=source_inventory(repo),
        gate_config=gate_config_digests(repo),
        taken_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def phase_text(phase: Phase) -> str:
    """What the plan says about the phase: the source section, or its fields when built by hand."""
    if phase.body:
        return phase.body
    parts = [phase.title, phase.goal or "", *phase.deliverables]
    parts += [c.text for c in phase.acceptance_criteria]
    parts += [f"{k}: {v}" for k, v in phase.extra_fields.items()]
    return "\n".join(parts)


def phase_changes(repo: Path, start: PhaseStart) -> dict[str, str]:
    """Path → A/M/D for what changed since the phase started (excluding run-owned files and
    files that were already dirty at the start and are untouched since)."""
    changes = changed_since(repo, start.head)
    for path, digest in start.dirty_files.items():
        current = file_digest(repo, path)
        if current == digest:
            changes.pop(path, None)
        elif path not in changes:
            # Dirty at the start, then restored to the committed content by this phase.
            changes[path] = "D" if current == DELETED else "M"
    return {
        p: s for p, s in changes.items() if not is_run_owned(p) and not p.startswith(".ai/plans/")
    }


# --- declared files and the scope contract ---------------------------------------------------


_PLACEHOLDER = re.compile(r"\{[A-Za-z_][\w-]*\}|<[A-Za-z_][\w-]*>")
"""`queries/{language}/comments.scm`, `src/<name>.rs`: one file per value, any name in its
place (a glob), never a file literally named `{language}`."""


def _repo_relative(repo: Path, ref: FileRef) -> str | None:
    """A declared file as the repository's path (None: outside it). Not `repo_relative` alone:
    a relative name is the plan's, kept as written, or completed to the one tracked file it
    loosely names; only an absolute path is placed by resolving it."""
    path = _PLACEHOLDER.sub("*", clean_path(ref.path))
    if Path(path).is_absolute():
        return repo_relative(repo, path)
    # An existing file named loosely (`lib.rs`, `api/mod.rs`): the one tracked file it names.
    loose = (
        ref.action in (FileAction.MODIFY, FileAction.UNSPECIFIED)
        and not ref.is_glob
        and not any(ch in path for ch in "*?[")
        and not (repo / path).exists()
    )
    if loose and (resolved := resolve_path(repo, path).path):
        return resolved
    return path


def _matches(path: str, declared: str, is_glob: bool) -> bool:
    if is_glob or any(ch in declared for ch in "*?["):
        return fnmatch.fnmatch(path, declared)
    return path == declared or path.startswith(declared.rstrip("/") + "/")


def declared_file_entries(repo: Path, phase: Phase) -> list[LedgerEntry]:
    entries: list[LedgerEntry] = []
    for ref in phase.files:
        path = _repo_relative(repo, ref)
        check = f"file {ref.path}"
        if path is None:
            entries.append(not_run(check, f"{ref.path} is outside the repository: not checked"))
            continue
        if ref.is_glob or any(ch in path for ch in "*?["):
            found = sorted(str(p.relative_to(repo)) for p in repo.glob(path))
            verdict = Verdict.PASS if found else Verdict.FAIL
            shown = ", ".join(found[:10]) or "nothing"
            entries.append(
                LedgerEntry(check=check, verdict=verdict, evidence=f"glob matches {shown}")
            )
            continue
        if ref.action is FileAction.DELETE:
            gone = not (repo / path).exists()
            evidence = f"{path} deleted" if gone else f"{path} still exists (declared for deletion)"
            entries.append(
                LedgerEntry(
                    check=check, verdict=Verdict.PASS if gone else Verdict.FAIL, evidence=evidence
                )
            )
            continue
        entry = file_exists_entry(repo, check, path, count_tests=False)
        target = repo / path
        if entry.verdict is Verdict.PASS and target.is_file() and target.stat().st_size == 0:
            entry = entry.model_copy(
                update={"verdict": Verdict.FAIL, "evidence": f"{path} is empty"}
            )
        entries.append(entry)
    return entries


def declared_paths(repo: Path, refs: list[FileRef]) -> list[tuple[str, bool]]:
    """(repository-relative path or glob, is a glob) for each declared file inside the repo."""
    declared: list[tuple[str, bool]] = []
    for ref in refs:
        path = _repo_relative(repo, ref)
        if path is not None:
            declared.append((path, ref.is_glob or any(ch in path for ch in "*?[")))
    return declared


def scope_entries(
    phase: Phase,
    changes: dict[str, str],
    start: PhaseStart,
    repo: Path,
    policy: ScopePolicy,
    others: list[FileRef] | None = None,
) -> list[LedgerEntry]:
    """The declared files changed, and nothing else did.

    ``others`` are the files the plan's other phases declare: under the `siblings` policy a
    change to one of them is a warning, a change no phase declares fails the phase."""
    since = f"git diff since {start.head[:10] or 'an empty repository'}"
    if not phase.files:
        changed = ", ".join(sorted(changes)) or "nothing"
        return [
            not_run("scope contract", f"the phase declares no files; changed ({since}): {changed}")
        ]
    entries: list[LedgerEntry] = []
    declared: list[tuple[str, bool]] = []
    for ref in phase.files:
        path = _repo_relative(repo, ref)
        if path is None:
            continue
        is_glob = ref.is_glob or any(ch in path for ch in "*?[")
        declared.append((path, is_glob))
        if ref.action is FileAction.DELETE:
            continue
        touched = sorted(p for p in changes if _matches(p, path, is_glob))
        if touched:
            how = ", ".join(f"{p} ({changes[p]})" for p in touched[:10])
            entries.append(
                LedgerEntry(check=f"scope: {ref.path} changed", verdict=Verdict.PASS, evidence=how)
            )
        else:
            entries.append(
                LedgerEntry(
                    check=f"scope: {ref.path} changed",
                    verdict=Verdict.FAIL,
                    evidence=f"phantom completion: {path} was declared but neither created nor modified ({since})",
                )
            )
    outside = sorted(p for p in changes if not any(_matches(p, d, g) for d, g in declared))
    wiring = _wiring(repo, phase, changes, start, declared, outside)
    outside = [p for p in outside if p not in wiring]
    if wiring:
        entries.append(
            LedgerEntry(
                check="scope: wiring",
                verdict=Verdict.PASS,
                required=False,
                evidence="implied by the declared files: "
                + "; ".join(f"{p} ({why})" for p, why in wiring.items()),
            )
        )
    # Parallel phases share one working tree, so a file outside this phase's declared scope may
    # be a sibling phase's work: a warning. A file no phase of the plan declares is a wandering
    # agent's (under `siblings`): it fails the phase.
    sibling_scope = declared_paths(repo, others or [])
    by_sibling = [p for p in outside if any(_matches(p, d, g) for d, g in sibling_scope)]
    nobody = [p for p in outside if p not in by_sibling]
    failing = {"fail": outside, "warn": [], "siblings": nobody}[policy]
    if failing:
        verdict = Verdict.FAIL
        evidence = f"changed outside the declared files of every phase ({since}): " + ", ".join(
            failing
        )
        if policy == "fail":
            evidence = f"changed outside the declared files ({since}): " + ", ".join(failing)
        elif by_sibling:
            evidence += "; declared by another phase: " + ", ".join(by_sibling)
    elif outside:
        verdict = Verdict.WARN
        evidence = f"changed outside the declared files ({since}): " + ", ".join(outside)
        if by_sibling and policy == "siblings":
            evidence += " (declared by another phase of the plan)"
    else:
        verdict, evidence = Verdict.PASS, "no change outside the declared files"
    entries.append(
        LedgerEntry(
            check="scope: outside declared files",
            verdict=verdict,
            evidence=evidence,
            required=bool(failing),
        )
    )
    return entries


def _wiring(
    repo: Path,
    phase: Phase,
    changes: dict[str, str],
    start: PhaseStart,
    declared: list[tuple[str, bool]],
    outside: list[str],
) -> dict[str, str]:
    """Path → why, for the changes outside the declared files that declaring them implies."""
    if not outside:
        return {}
    mine = [p for p in changes if any(_matches(p, d, g) for d, g in declared)]
    created = [p for p in mine if changes[p] == "A"]
    existing = [p for p in mine if changes[p] != "D"] + [d for d, g in declared if not g]
    text = phase_text(phase)
    found: dict[str, str] = {}
    for path in outside:
        if changes.get(path) == "D":
            continue
        reason = wiring_reason(
            repo, start.head, path, declared_new=created, declared=existing, phase_text=text
        )
        if reason:
            found[path] = reason
    return found


# --- tests ------------------------------------------------------------------------------------


class _TestRuns:
    """Runs test commands once each and remembers the parsed results."""

    def __init__(
        self,
        repo: Path,
        config: GateConfig,
        baseline: TestRun | None,
        *,
        refused: str | None = None,
    ) -> None:
        self.repo = repo
        self.config = config
        self.baseline = baseline
        self.refused = refused
        """Why no test command may run in this phase (None: they may)."""
        self.runs: dict[tuple[str, ...], TestRun] = {}
        self.entries: list[LedgerEntry] = []

    def run(self, check: str, argv: list[str], *, scoped: bool) -> TestRun:
        key = tuple(argv)
        if key in self.runs:
            return self.runs[key]
        if self.refused is not None:
            self.runs[key] = TestRun(command=render(argv))
            self.entries.append(not_run(check, self.refused, command=render(argv)))
            return self.runs[key]
        if not argv:
            self.runs[key] = TestRun()
            self.entries.append(no_command(check, "test", required=True))
            return self.runs[key]
        result, parsed = run_test_command(argv, self.repo, self.config)
        self.runs[key] = parsed
        verdict, summary = self._judge(argv, parsed, result.ok, result.timed_out, scoped=scoped)
        self.entries.append(
            command_entry(
                check, result, verdict=verdict, summary=summary, log_dir=self.config.log_dir
            )
        )
        return parsed

    def run_blast_radius(self, check: str, argv: list[str], *, scoped: bool) -> None:
        """Run a blast-radius test command; when its filter names the crate and so selected no
        test, run it again without the crate name: that run decides, the first is a warning."""
        fresh = tuple(argv) not in self.runs
        run = self.run(check, argv, scoped=scoped)
        # exit_code None: nothing ran (refused, or the dry run's planned command).
        if not (
            fresh and scoped and run.exit_code is not None and run.summaries and run.total == 0
        ):
            return
        stripped = without_crate_prefix(self.repo, argv)
        if stripped is None:
            return
        first = self.entries[-1]
        self.entries[-1] = first.model_copy(
            update={
                "verdict": Verdict.WARN,
                "evidence": f"{first.evidence}\n(the filter starts with the crate's name, which "
                f"no Rust test name holds: run again as `{render(stripped)}`)",
            }
        )
        self.run(f"{check} (without the crate name)", stripped, scoped=True)

    def _judge(
        self, argv: list[str], run: TestRun, ok: bool, timed_out: bool, *, scoped: bool
    ) -> tuple[Verdict, str]:
        is_test = run.summaries > 0 or bool({"test", "nextest", "pytest"} & set(argv))
        counts = run.counts()
        if run.filtered_out:
            counts += f", {run.filtered_out} filtered out"
        if timed_out:
            return Verdict.FAIL, f"timed out; {counts}"
        if not is_test:
            return (Verdict.PASS, "exit 0") if ok else (Verdict.FAIL, "command failed")
        if run.summaries == 0 and not ok:
            return (
                Verdict.FAIL,
                "no test result: the command failed before any test ran (see the output tail)",
            )
        failing = run.names(FAILED)
        if run.failed or failing:
            before = self.baseline.results if self.baseline else {}
            new = [name for name in failing if before.get(name) != FAILED]
            if new or len(failing) < run.failed:
                return Verdict.FAIL, f"{counts}; failing: {', '.join(new or failing)}"
            return (
                Verdict.WARN,
                f"{counts}; all failing tests already failed in the baseline: {', '.join(failing)}",
            )
        # pytest exits 5 when it collected no test: the 0-tests verdict below says it better.
        if not ok and not run.collected_nothing():
            return Verdict.FAIL, f"{counts}; but the command exited non-zero"
        if run.total == 0:
            if scoped:
                return Verdict.FAIL, f"0 tests ran: the blast radius matched no test ({counts})"
            return Verdict.WARN, f"0 tests ran ({counts})"
        return Verdict.PASS, counts

    def tested(self) -> list[TestRun]:
        return [run for run in self.runs.values() if run.summaries > 0]

    def combined(self) -> TestRun | None:
        runs = self.tested()
        if not runs:
            return None
        results: dict[str, str] = {}
        for run in runs:
            results.update(run.results)
        return TestRun(
            passed=sum(r.passed for r in runs),
            failed=sum(r.failed for r in runs),
            ignored=sum(r.ignored for r in runs),
            results=results,
            summaries=sum(r.summaries for r in runs),
            command=" ; ".join(r.command or "" for r in runs),
            exit_code=max((r.exit_code or 0) for r in runs),
            runner=runs[0].runner if len({r.runner for r in runs}) == 1 else "cargo",
            xfailed=sum(r.xfailed for r in runs),
            errors=sum(r.errors for r in runs),
        )


_CARGO_VALUE_OPTIONS = frozenset(
    {
        "-p",
        "--package",
        "--test",
        "--bin",
        "--example",
        "--bench",
        "-F",
        "--features",
        "--target",
        "--manifest-path",
        "-j",
        "--jobs",
        "--profile",
        "--target-dir",
        "--color",
        "--message-format",
        "--exclude",
        "--config",
        "-Z",
    }
)
"""`cargo test` options whose value is the next argument (`-p name`): not a test filter."""
_HARNESS_VALUE_OPTIONS = frozenset({"--skip", "--test-threads", "--format", "--color", "-Z"})
"""The test harness's options (after `--`) whose value is the next argument."""


def _cargo_test_filter(argv: list[str]) -> int | None:
    """Where a `cargo test` command's test-name filter is (None: it has none)."""
    if argv[:2] != ["cargo", "test"]:
        return None
    values = _CARGO_VALUE_OPTIONS
    value_next = False
    for index, arg in enumerate(argv[2:], 2):
        if value_next:
            value_next = False
        elif arg == "--":
            values = _HARNESS_VALUE_OPTIONS
        elif arg.startswith("-"):
            value_next = arg in values
        else:
            return index
    return None


def _crate_names(repo: Path) -> set[str]:
    """The Rust names of the repository's crates (`research-lib` → `research_lib`, or its
    `[lib] name`)."""
    names: set[str] = set()
    for manifest in repo_files(repo, "*Cargo.toml"):
        try:
            data = tomllib.loads((repo / manifest).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError):
            continue
        for table in (data.get("package"), data.get("lib")):
            if isinstance(table, dict) and isinstance(table.get("name"), str):
                names.add(table["name"].replace("-", "_"))
    return names


def without_crate_prefix(repo: Path, argv: list[str]) -> list[str] | None:
    """``argv`` with the crate name taken off its test filter (`research_lib::utils` →
    `utils`, `research_lib` → no filter), or None when the filter does not start with one.
    Rust test names are module paths inside the crate: they never hold the crate's name."""
    index = _cargo_test_filter(argv)
    if index is None:
        return None
    crate, _, rest = argv[index].partition("::")
    if crate not in _crate_names(repo):
        return None
    return [*argv[:index], *([rest] if rest else []), *argv[index + 1 :]]


_ZERO_TESTS_ALLOWED = re.compile(
    r"\beven (?:if|with|when) (?:0|zero|no) tests\b"
    r"|\b(?:0|zero|no) tests (?:is|are) (?:fine|ok|okay|expected|acceptable)\b",
    re.IGNORECASE,
)
"""A criterion's word that its command may run no test yet ("`cargo test --lib link` runs
(even if 0 tests initially)"): a skeleton phase whose tests come later."""


def _zero_tests_allowed(phase: Phase) -> set[str]:
    """The commands (whitespace-normalised) a criterion of the phase lets run zero tests."""
    allowed: set[str] = set()
    for criterion in phase.acceptance_criteria:
        if _ZERO_TESTS_ALLOWED.search(criterion.text):
            allowed.update(
                " ".join(span.split()) for span in re.findall(r"`([^`]+)`", criterion.text)
            )
    return allowed


def blast_radius_entries(
    repo: Path,
    phase: Phase,
    config: GateConfig,
    tests: _TestRuns,
    *,
    grep: GrepRunner | None = None,
) -> list[LedgerEntry]:
    """Run the phase's blast radius; returns the entries that are not test runs (those are
    collected in ``tests.entries``). ``grep`` replaces :func:`grep_entry` (the dry run)."""
    grep = grep or grep_entry
    entries: list[LedgerEntry] = []
    commands = list(phase.blast_commands)
    radius = (phase.blast_radius or "").strip().strip("`").strip()
    if (
        not commands
        and radius
        and APPENDABLE_TEST_FILTER.match(radius)
        and not EXPLICIT_NO_TESTS.match(radius)
        and config.test_filter
    ):
        tests.run_blast_radius(
            f"blast-radius: {radius}", [*config.test_filter, radius], scoped=True
        )
        return entries
    zero_tests_allowed = _zero_tests_allowed(phase)
    for command in commands:
        segments = split_segments(command)
        if isinstance(segments, str):
            entries.append(not_run(f"blast-radius: {command}", segments, command=command))
            continue
        for argv in segments:
            text = shlex.join(argv)
            check = f"blast-radius: {text}"
            if argv[0] in GREP_PROGRAMS:
                entries.append(grep(repo, check, text, text))
            elif operators := SHELL_OPERATORS & set(argv):
                why = f"not run: `{command}` uses shell operators {sorted(operators)}; plan text is never given to a shell"
                entries.append(not_run(check, why, command=command))
            elif refusal := config.refusal(argv):
                entries.append(not_run(check, f"not run: {refusal}", command=text))
            else:
                # 0 tests fail a scoped run, unless the plan says the command may run none yet.
                scoped = argv != config.test and " ".join(argv) not in zero_tests_allowed
                tests.run_blast_radius(check, argv, scoped=scoped)
    if phase.blast_prose and commands:
        entries.append(
            not_run(
                "blast-radius (prose)",
                f"not run: {phase.blast_prose!r} is not a command (a person's check)",
            )
        )
    if not tests.runs:
        if radius and not commands:
            entries.append(
                not_run(
                    "blast-radius",
                    f"prose blast radius, not runnable: {radius!r}; recorded as not run",
                )
            )
        # No runnable scope (absent, prose or refused): the default scope still guards the phase.
        tests.run(f"tests (default scope): {render(config.test)}", list(config.test), scoped=False)
    return entries


def regression_entry(tests: _TestRuns, baseline: TestRun | None) -> LedgerEntry:
    if baseline is None:
        return not_run("regressions vs baseline", "no baseline test run to compare with")
    combined = tests.combined()
    if combined is None:
        return not_run("regressions vs baseline", "no test ran in this phase")
    compared = [name for name in combined.results if name in baseline.results]
    regressions = sorted(
        name
        for name in compared
        if combined.results[name] == FAILED and baseline.results[name] == OK
    )
    if regressions:
        return LedgerEntry(
            check="regressions vs baseline",
            command=combined.command,
            verdict=Verdict.FAIL,
            evidence="passed in the baseline, failing now: " + ", ".join(regressions),
        )
    return LedgerEntry(
        check="regressions vs baseline",
        command=combined.command,
        verdict=Verdict.PASS,
        evidence=f"no regression among {len(compared)} tests also in the baseline",
    )


# --- gate integrity ---------------------------------------------------------------------------


def _integrity_entry(
    check: str, items: list[str], *, asked: bool, found: str, as_asked: str, none: str
) -> LedgerEntry:
    """Changes to the test suite fail the phase unless the plan asks for them."""
    if not items:
        return LedgerEntry(check=check, verdict=Verdict.PASS, evidence=none)
    label = as_asked if asked else found
    verdict = Verdict.PASS if asked else Verdict.FAIL
    return LedgerEntry(check=check, verdict=verdict, evidence=f"{label}: " + ", ".join(items))


def integrity_entries(repo: Path, phase: Phase, start: PhaseStart) -> list[LedgerEntry]:
    text = phase_text(phase)
    now = source_inventory(repo)
    before = start.inventory
    deletion_ok = bool(_ALLOWS_DELETION.search(text))
    entries: list[LedgerEntry] = []

    count_before, count_now = len(before.tests), len(now.tests)
    falling = count_now < count_before
    entries.append(
        LedgerEntry(
            check="integrity: test count",
            verdict=Verdict.FAIL if falling and not deletion_ok else Verdict.PASS,
            evidence=f"test functions: {count_before} at the start, {count_now} now ({count_now - count_before:+d})"
            + ("; the plan asks for removing tests" if falling and deletion_ok else ""),
        )
    )

    names_now = now.test_fn_names()
    # A test moved to another file, or a parametrised test whose cases changed, is not deleted
    # (a case fewer shows in the count).
    deleted = sorted(
        key for key in before.tests if key not in now.tests and bare_test_name(key) not in names_now
    )
    entries.append(
        _integrity_entry(
            "integrity: deleted tests",
            deleted,
            asked=deletion_ok,
            found="tests deleted",
            as_asked="tests deleted as the plan asks",
            none="no test deleted",
        )
    )

    ignored = sorted(
        key
        for key, is_ignored in now.tests.items()
        if is_ignored and not before.tests.get(key, False)
    )
    entries.append(_ignored_entry(ignored, asked=bool(_ALLOWS_IGNORE.search(text))))

    has_tests = bool(
        before.tests or now.tests or repo_files(repo, "*.rs") or repo_files(repo, "*.py")
    )
    entries.append(new_tests_entry(phase, text, before, now, has_tests=has_tests))

    added = sorted(
        key for key, count in now.suppressions.items() if count > before.suppressions.get(key, 0)
    )
    unasked = [key for key in added if not _suppression_asked(key, text)]
    if unasked:
        verdict, evidence = Verdict.FAIL, "new lint suppressions: " + "; ".join(unasked)
    elif added:
        verdict, evidence = Verdict.PASS, "new suppressions the plan asks for: " + "; ".join(added)
    else:
        verdict, evidence = Verdict.PASS, "no new lint suppression"
    entries.append(
        LedgerEntry(check="integrity: lint suppressions", verdict=verdict, evidence=evidence)
    )
    return entries


def _ignored_entry(ignored: list[str], *, asked: bool) -> LedgerEntry:
    """Newly ignored tests in each language's words: `#[ignore]`d in Rust, skipped or
    xfailed in Python."""
    check = "integrity: newly ignored tests"
    if not ignored:
        return LedgerEntry(check=check, verdict=Verdict.PASS, evidence="no newly ignored test")
    python = [key for key in ignored if ".py::" in key]
    rust = [key for key in ignored if key not in python]
    found = [f"newly #[ignore]d tests: {', '.join(rust)}"] if rust else []
    if python:
        found.append(f"newly skipped or xfailed tests: {', '.join(python)}")
    if asked:
        return LedgerEntry(
            check=check,
            verdict=Verdict.PASS,
            evidence="newly ignored as the plan asks: " + ", ".join(ignored),
        )
    return LedgerEntry(check=check, verdict=Verdict.FAIL, evidence="; ".join(found))


def _suppression_asked(key: str, text: str) -> bool:
    """The phase text names the suppressed lint (`clippy::too_many_arguments`) or the attribute."""
    attribute = key.split(": ", 1)[-1]
    match = _SUPPRESSED_LINTS.search(attribute)
    named = (match.group(1) or match.group(2) or "") if match else ""
    lints = [lint.strip() for lint in named.split(",")]
    if any(lint and (lint in text or lint.split("::")[-1] in text) for lint in lints):
        return True
    return attribute in text


def gate_config_check(
    repo: Path, phase: Phase, start: PhaseStart, others: list[FileRef]
) -> LedgerEntry:
    known = start.gate_config is not None
    changed = (
        changed_gate_config(start.gate_config or {}, gate_config_digests(repo)) if known else {}
    )

    def exact(refs: list[FileRef]) -> list[str]:
        return [p for p, is_glob in declared_paths(repo, refs) if not is_glob]

    return gate_config_entry(
        changed,
        declared=exact(phase.files),
        by_others=exact(others),
        text=phase_text(phase),
        baseline_known=known,
    )


# --- the gate run -----------------------------------------------------------------------------


_USAGE_ERROR = re.compile(
    r"^error: (?:unexpected argument|unrecognized subcommand|invalid value|unexpected value"
    r"|a value is required|the argument '[^']*' cannot be used)",
    re.MULTILINE,
)
"""How cargo (clap) rejects a command line before doing anything: `cargo build --lib name`."""
_MALFORMED_NOTE = "the program rejected its arguments before doing anything: the verifier decides"


def _rejected_as_usage(tests: _TestRuns, command: str) -> bool:
    """Whether a criterion's own command failed only because its arguments are wrong (a plan's
    slip no phase can fix, e.g. `cargo build --lib research_lib`); its failed run then warns
    instead of blocking, and the criterion goes to the verifier."""
    for index, entry in enumerate(tests.entries):
        if (
            entry.command == command
            and entry.check.startswith("run for criteria:")
            and entry.verdict is Verdict.FAIL
            and _USAGE_ERROR.search(entry.evidence)
        ):
            tests.entries[index] = entry.model_copy(
                update={
                    "verdict": Verdict.WARN,
                    "evidence": f"{entry.evidence}\n({_MALFORMED_NOTE})",
                }
            )
            return True
    return False


def criteria_entries(
    repo: Path,
    phase: Phase,
    config: GateConfig,
    tests: _TestRuns,
    *,
    design: bool,
    grep: GrepRunner | None = None,
) -> list[LedgerEntry]:
    def count_tests(argv: list[str] | None) -> tuple[TestRun | None, str]:
        if design and argv is None:
            return None, "design phase: tests are not run"
        if argv is not None and (refusal := config.refusal(argv)):
            return None, f"not run: {refusal}"
        if argv is not None:
            run = tests.run(f"run for criteria: {render(argv)}", argv, scoped=argv != config.test)
            return run, render(argv)
        combined = tests.combined()
        if combined is None:
            return None, "no test ran in this phase"
        return combined, combined.command or "blast radius"

    def run_command(argv: list[str]) -> LedgerEntry:
        if refusal := config.refusal(argv):
            return LedgerEntry(
                check="criterion command",
                command=render(argv),
                verdict=Verdict.NEEDS_JUDGEMENT,
                evidence=f"not run: {refusal}",
            )
        run = tests.run(f"run for criteria: {render(argv)}", argv, scoped=False)
        if run.summaries == 0 and _rejected_as_usage(tests, render(argv)):
            return LedgerEntry(
                check="criterion command",
                command=render(argv),
                exit_code=run.exit_code,
                verdict=Verdict.NEEDS_JUDGEMENT,
                evidence=f"`{render(argv)}` is not a valid command line ({_MALFORMED_NOTE})",
            )
        ok = run.exit_code == 0 and run.failed == 0
        counts = f"; {run.counts()}" if run.summaries else ""
        return LedgerEntry(
            check="criterion command",
            command=render(argv),
            exit_code=run.exit_code,
            duration_s=run.duration_s or 0.0,
            verdict=Verdict.PASS if ok else Verdict.FAIL,
            evidence=f"exit {run.exit_code}{counts} (output tail: the entry that ran `{render(argv)}`)",
        )

    entries: list[LedgerEntry] = []
    for number, criterion in enumerate(phase.acceptance_criteria, 1):
        entries.extend(
            evaluate_criterion(
                repo,
                number,
                criterion.text,
                count_tests=count_tests,
                allowed_programs=set(config.allowed_programs),
                run_command=run_command,
                grep=grep,
            )
        )
    return entries


def dependency_field_entries(repo: Path, phase: Phase) -> list[LedgerEntry]:
    entries: list[LedgerEntry] = []
    for key, value in phase.extra_fields.items():
        if _DEPENDENCY_FIELD.search(key):
            for name in dependency_names_from_field(value):
                entries.append(dependency_entry(repo, f"dependency {name}", name))
    return entries


_REFUSED_AFTER_CONFIG_CHANGE = (
    "not run: the phase changed gate configuration (integrity: gate configuration); "
    "no command the agent could have written is run"
)


@dataclass(frozen=True)
class PhaseCommands:
    """What the phase's commands gave, run once: the blast radius first (a criterion without a
    command counts its tests), then the commands the criteria name."""

    runs: _TestRuns
    blast_radius: list[LedgerEntry]
    """The blast radius's entries that are not test runs (greps, refusals, prose), or the
    design phase's `tests` not-run entry."""
    criteria: list[LedgerEntry]

    @property
    def test_runs(self) -> list[LedgerEntry]:
        """One entry per test command that ran (or was refused), the blast radius's and the
        criteria's alike."""
        return self.runs.entries


@dataclass
class GateContext:
    """Everything a phase's gates read: one per :func:`run_phase_gates` call. The facts several
    gates share are computed on first use and kept."""

    repo: Path
    phase: Phase
    start: PhaseStart
    baseline: TestRun | None
    config: GateConfig
    scope_policy: ScopePolicy = "warn"
    others: list[FileRef] = field(default_factory=list)
    """The files the plan's other phases declare (the `siblings` scope policy and the
    gate-configuration check tell a sibling's file from a wandering agent's)."""

    @property
    def design(self) -> bool:
        return self.phase.type is PhaseType.DESIGN

    @cached_property
    def changes(self) -> dict[str, str]:
        """Path → A/M/D since the phase started (:func:`phase_changes`)."""
        return phase_changes(self.repo, self.start)

    @cached_property
    def gate_config_entry(self) -> LedgerEntry:
        """`integrity: gate configuration`, read before any command runs (:attr:`refused` needs
        it, and no command runs without asking :attr:`refused`): `just test` reads the justfile
        and cargo `.cargo/config.toml` from the working tree, so a phase that changed them would
        run the agent's commands in our gates."""
        return gate_config_check(self.repo, self.phase, self.start, self.others)

    @property
    def refused(self) -> str | None:
        """Why no command may run in this phase's gates (None: they may)."""
        if self.gate_config_entry.verdict is Verdict.FAIL:
            return _REFUSED_AFTER_CONFIG_CHANGE
        return None

    @cached_property
    def commands(self) -> PhaseCommands:
        runs = _TestRuns(self.repo, self.config, self.baseline, refused=self.refused)
        if self.design:
            blast = [not_run("tests", "design phase: tests are not required")]
        else:
            blast = blast_radius_entries(self.repo, self.phase, self.config, runs)
        criteria = criteria_entries(self.repo, self.phase, self.config, runs, design=self.design)
        return PhaseCommands(runs=runs, blast_radius=blast, criteria=criteria)


def _declared_files_gate(ctx: GateContext) -> list[LedgerEntry]:
    return declared_file_entries(ctx.repo, ctx.phase)


def _scope_gate(ctx: GateContext) -> list[LedgerEntry]:
    return scope_entries(ctx.phase, ctx.changes, ctx.start, ctx.repo, ctx.scope_policy, ctx.others)


def _test_runs_gate(ctx: GateContext) -> list[LedgerEntry]:
    return ctx.commands.test_runs


def _blast_radius_gate(ctx: GateContext) -> list[LedgerEntry]:
    return ctx.commands.blast_radius


def _regressions_gate(ctx: GateContext) -> list[LedgerEntry]:
    if ctx.design:
        return []
    return [regression_entry(ctx.commands.runs, ctx.baseline)]


def _criteria_gate(ctx: GateContext) -> list[LedgerEntry]:
    return ctx.commands.criteria


def _dependency_fields_gate(ctx: GateContext) -> list[LedgerEntry]:
    return dependency_field_entries(ctx.repo, ctx.phase)


def _integrity_gate(ctx: GateContext) -> list[LedgerEntry]:
    return integrity_entries(ctx.repo, ctx.phase, ctx.start)


def _gate_configuration_gate(ctx: GateContext) -> list[LedgerEntry]:
    return [ctx.gate_config_entry]


def _quality_gate(ctx: GateContext) -> list[LedgerEntry]:
    if ctx.refused is not None:
        return [not_run(check, ctx.refused) for check in ("build", "lint", "fmt")]
    return _quality_entries(ctx.repo, ctx.config, ctx.changes, design=ctx.design)


@dataclass(frozen=True)
class GateRule:
    """One gate of :data:`PHASE_GATES`: its name, and its entries for a phase."""

    name: str
    entries: Callable[[GateContext], list[LedgerEntry]]


PHASE_GATES: tuple[GateRule, ...] = (
    GateRule("declared files", _declared_files_gate),
    GateRule("scope", _scope_gate),
    GateRule("test runs", _test_runs_gate),
    GateRule("blast radius", _blast_radius_gate),
    GateRule("regressions", _regressions_gate),
    GateRule("criteria", _criteria_gate),
    GateRule("dependency fields", _dependency_fields_gate),
    GateRule("integrity", _integrity_gate),
    GateRule("gate configuration", _gate_configuration_gate),
    GateRule("quality", _quality_gate),
)
"""A phase's gates, in the order of their ledger entries (the order the ledger is read in)."""


def run_phase_gates(
    repo: Path,
    phase: Phase,
    *,
    start: PhaseStart,
    baseline: TestRun | None,
    config: GateConfig | None = None,
    scope_policy: ScopePolicy = "warn",
    others: list[FileRef] | None = None,
) -> Ledger:
    """Every gate of :data:`PHASE_GATES` for ``phase``, as ledger entries;
    :func:`tasks.gates.verdict.decide` judges.

    ``others``: the files the plan's other phases declare (the `siblings` scope policy and the
    gate-configuration check tell a sibling's file from a wandering agent's)."""
    repo = Path(repo)
    ctx = GateContext(
        repo=repo,
        phase=phase,
        start=start,
        baseline=baseline,
        config=config or load_committed_gate_config(repo),
        scope_policy=scope_policy,
        others=list(others or []),
    )
    ledger = Ledger()
    for gate in PHASE_GATES:
        ledger.extend(gate.entries(ctx))
    for entry in ledger.entries:
        entry.phase_id = phase.id
    return ledger


def _quality_entries(
    repo: Path, config: GateConfig, changes: dict[str, str], *, design: bool
) -> list[LedgerEntry]:
    def gate(check: str, argv: list[str]) -> LedgerEntry:
        return simple_gate(check, argv, repo, config)

    if design:
        code = [p for p in changes if p.endswith(_CODE_SUFFIXES) and changes[p] != "D"]
        if not code:
            return [not_run("build", "design phase without code changes: nothing to compile")]
        return [
            gate("build", config.build),
            not_run("lint", "design phase: lint not required"),
            not_run("fmt", "design phase: format not required"),
        ]
    return [gate("build", config.build), gate("lint", config.lint), gate("fmt", config.fmt)]


def integration_entries(
    repo: Path, phase: Phase, config: GateConfig, baseline: TestRun | None
) -> list[LedgerEntry]:
    """The phase's work on top of what its siblings landed meanwhile, checked again: its blast
    radius (the default test scope when it has none) and the build. Design phases: the build."""
    tests = _TestRuns(repo, config, baseline)
    other: list[LedgerEntry] = []
    if phase.type is not PhaseType.DESIGN:
        other = blast_radius_entries(repo, phase, config, tests)
    entries = [*tests.entries, *other, simple_gate("build", config.build, repo, config)]
    return [
        entry.model_copy(update={"check": f"integration: {entry.check}", "phase_id": phase.id})
        for entry in entries
    ]
