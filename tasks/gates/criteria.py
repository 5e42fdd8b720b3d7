"""Acceptance criteria that a machine can decide, decided without a shell.

Recognised forms (everything else becomes a NEEDS_JUDGEMENT entry for a verifier agent):

* ``File `X` exists`` with an optional ``with >N lines`` / ``N+ lines`` / ``with N+ tests``;
* ``File `X` contains `Y` `` (also `has` / `includes`) and `` `Y` in `path/Cargo.toml` ``;
* `` `grep "X" path` succeeds `` (also `grep -q`, `rg`, `Command `grep …``), negated by
  "returns nothing" / "no matches" / "fails", counted by "finds N+";
* `` `cargo test x` runs N+ tests `` (any allowed test command, `pytest -q -k x` too; without a
  command: the phase's blast-radius runs);
* `` `name` dependency added to `Cargo.toml` `` / ``Cargo.toml includes `name = "1"` ``.

A grep criterion is run as an argument vector through `tasks.shell` (`rg` is translated to
`grep -rE` when ripgrep is not installed); globs in its paths are expanded here, in the repo.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel

from plan_parser.gate_commands import GREP_PROGRAMS, SHELL_OPERATORS, shell_words
from plan_parser.paths import lexical_relative
from tasks import shell
from tasks.gates.cargo_output import TestRun
from tasks.gates.evidence import output_evidence, render
from tasks.gates.ledger import LedgerEntry, Verdict
from tasks.gates.repo_state import repo_files

GREP_TIMEOUT_S = 60
_ONE_COMMAND_OPERATORS = SHELL_OPERATORS | {"&&"}
"""A criterion's command is one command, not split into `&&` segments: `&&` needs a shell too."""

_SPAN = re.compile(r"`([^`]+)`")
_NEGATED = re.compile(
    r"\b(returns? (?:nothing|no |empty|0\b)|no (?:matches|results|output|hits)|finds nothing|"
    r"fails|is empty|not found|0 (?:matches|results)|zero (?:matches|results))",
    re.IGNORECASE,
)
_EXCEPTED = re.compile(
    r"\b(?:except(?:ing)?|other than|apart from|aside from|besides|unless)\b", re.IGNORECASE
)
"""A negated grep's stated exceptions ("finds NO matches (except in table cells)"): a match may
be one of them, which only a reader can tell."""
_AT_LEAST = re.compile(r"(?:\b(\d+)\s*\+|at least (\d+)|>=\s*(\d+)|≥\s*(\d+))")
_TEST_COUNT = re.compile(
    r"(?:(\d+)\s*\+|at least (\d+)|>=\s*(\d+)|≥\s*(\d+))\s*(?:\w+\s+){0,2}?tests?\b",
    re.IGNORECASE,
)
_RUN_WORDS = re.compile(r"\b(runs?|running|pass(?:es|ing)?|execut\w*)\b", re.IGNORECASE)
_SPECIFIC_SUBJECT = re.compile(
    r"\b(?:function|fn|method|struct|module|type|trait)\s+`|\btests?\s+(?:for|of|on|in)\s+`",
    re.IGNORECASE,
)
_FILE_EXISTS = re.compile(
    r"(?:\b(File|Directory|Folder)\s+)?`([^`]+)`\s+(?:\([^)]*\)\s+)?(?:exists|is created|created)"
    r"(?P<rest>[^`]*)",
    re.IGNORECASE,
)
_LINES = re.compile(
    r"(?:(>|more than|over|at least|>=|≥)\s*(\d+)\s*\+?\s*lines|(\d+)\s*\+\s*lines)", re.IGNORECASE
)
_SPAN_LIST = r"`[^`]+`(?:\s*(?:,|and|, and)\s*`[^`]+`)*"
_CONTAINS = re.compile(
    r"(?:\bFile\s+)?`([^`]+)`\s+(?:\([^)]*\)\s+)?(?P<neg>does not |doesn't |no longer |does NOT )?"
    r"(?:contains?|has|have|includes?|mentions?)\s+(?P<spans>" + _SPAN_LIST + ")",
    re.IGNORECASE,
)
_REMOVED_FROM = re.compile(
    r"`([^`]+)`\s+(?:dependency\s+|crate\s+)?(?:is\s+|was\s+|has been\s+)?(?:removed|deleted|gone)\s+from\s+`([^`]+)`",
    re.IGNORECASE,
)
_FILE_GONE = re.compile(
    r"(?:\b(?:File|Directory)\s+)?`([^`]+)`\s+(?:(?:is\s+|was\s+|has been\s+)?(?:deleted|removed)\b(?!\s+from)"
    r"|does not exist|no longer exists)",
    re.IGNORECASE,
)
_TESTS_IN_FILE = re.compile(
    r"(\d+)\s*\+\s*(?:\w+\s+){0,2}?tests?\s+in\s+`([^`]+)`"
    r"|tests?\s+in\s+`([^`]+)`\s+exists?\s+with\s+(\d+)\s*\+\s*tests?",
    re.IGNORECASE,
)
_IN_FILE = re.compile(r"`([^`]+)`\s+(?:is\s+)?(?:in|present in|added to)\s+(?:the\s+)?`([^`]+)`")
_FURTHER_CLAIM = re.compile(
    r"\s+(?:is|are|has|have|returns?|takes?|accepts?|calls?|uses?|handles?|does|must|should)\b",
    re.IGNORECASE,
)
"""`Function `link()` in `mod.rs` is >150 lines`: the criterion says more than where the name is."""
_DEP_ADDED = re.compile(
    r"`([A-Za-z0-9_-]+)`\s+(?:crate\s+|dependency\s+|dep\s+)?(?:is\s+)?(?:added|present|listed)\b"
    r"[^`]*?(?:`([^`]*Cargo\.toml)`|\b(Cargo\.toml)\b)",
)
_TOML_INCLUDES = re.compile(r"`?([\w./-]*Cargo\.toml)`?\s+(?:includes|contains|has)\s+`([^`]+)`")
_CRATE_SPEC = re.compile(r"^([A-Za-z0-9_-]+)\s*(?:=|@|$)")
_NON_FILE_SUBJECT = re.compile(
    r"\b(function|fn|struct|method|type|trait|enum|module|test|variant|field|command)\s*$",
    re.IGNORECASE,
)

_SUCCEEDS = re.compile(
    r"\b(succeeds?|pass(?:es)?|exits? (?:with )?(?:code )?0|compiles?|runs?|builds?|clean|no warnings)\b",
    re.IGNORECASE,
)
_ABOUT_OUTPUT = re.compile(
    r"^\s*manual|\b(produces?|outputs?|prints?|shows?|displays?|returns?|contains?|matches)\b",
    re.IGNORECASE,
)

CommandRunner = Callable[[list[str]], LedgerEntry]
"""Runs an allowed command named by a criterion and returns its entry (PASS on success)."""

TestCounter = Callable[[list[str] | None], tuple[TestRun | None, str]]
"""Given a test command (argv) or None for "the phase's blast radius", the parsed run and the
command text it came from; (None, why) when there is nothing to count."""


def _looks_like_path(text: str) -> bool:
    return (
        "/" in text or re.search(r"\.[A-Za-z0-9]{1,6}$", text) is not None
    ) and " " not in text.strip()


def clean_path(raw: str) -> str:
    """`src/lib.rs:186-191` → `src/lib.rs`; `./a` → `a`."""
    path = re.sub(r":\d+(?:-\d+)?$", "", raw.strip())
    return path[2:] if path.startswith("./") else path


def repo_path(repo: Path, raw: str) -> str | None:
    """A plan's path as the repository's relative path; None for an absolute path that names
    no place in this checkout. Plans write `/md/README.md` for the repository's `md/README.md`
    and the author's own checkout (`/Volumes/.../md`): neither is this machine's root."""
    path = clean_path(raw)
    if not path.startswith("/"):
        return path
    for root in dict.fromkeys((repo, repo.resolve())):
        if (inside := lexical_relative(root, path)) is not None:
            return inside
    rooted = path.lstrip("/")
    return rooted if rooted and (repo / rooted).exists() else None


def _outside_note(raw_path: str) -> str:
    rooted = clean_path(raw_path).lstrip("/")
    return (
        f"`{raw_path}` is an absolute path outside the repository, and `{rooted}` is not in it "
        "either: not checked here"
    )


def _outside(check: str, raw_path: str) -> LedgerEntry:
    return _entry(check, Verdict.NEEDS_JUDGEMENT, _outside_note(raw_path))


def _at_least(text: str) -> int | None:
    match = _AT_LEAST.search(text)
    if not match:
        return None
    return int(next(g for g in match.groups() if g))


def _entry(check: str, verdict: Verdict, evidence: str, command: str | None = None) -> LedgerEntry:
    return LedgerEntry(check=check, verdict=verdict, evidence=evidence, command=command)


_ADDED_COUNT = re.compile(
    r"\d+\s*\+?\s*(?:\w+\s+)?(?:more|new|additional|added|extra)\b", re.IGNORECASE
)
"""A count of tests the phase adds ("shows 15+ more tests", "5+ new tests"), not a total."""


def _added_count_judged(entry: LedgerEntry, text: str) -> LedgerEntry:
    """A passing total when the criterion counts tests the phase *adds*: the total cannot tell
    how many are new (a file that had 20 already), so the verifier decides. A failing total
    stays a failure: fewer in all means fewer added."""
    if entry.verdict is not Verdict.PASS or not _ADDED_COUNT.search(text):
        return entry
    return entry.model_copy(
        update={
            "verdict": Verdict.NEEDS_JUDGEMENT,
            "evidence": f"{entry.evidence}; the criterion counts what the phase adds, which a "
            "total cannot show: the verifier compares with the code before the phase",
        }
    )


# --- files -----------------------------------------------------------------------------------


def _line_count(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(1 for _ in handle)


def file_exists_entry(
    repo: Path, check: str, raw_path: str, rest: str = "", count_tests: bool = True
) -> LedgerEntry:
    path = repo_path(repo, raw_path)
    if path is None:
        return _outside(check, raw_path)
    target = repo / path
    if target.is_dir():
        files = sum(1 for p in target.rglob("*") if p.is_file())
        return _entry(check, Verdict.PASS, f"directory {path} exists ({files} files)")
    if not target.is_file():
        return _entry(check, Verdict.FAIL, f"{path} is missing")
    lines = _line_count(target)
    evidence = f"{path} exists, {lines} lines"
    if match := _LINES.search(rest):
        op, number, plus = match.groups()
        if plus:
            wanted, ok = f">= {plus}", lines >= int(plus)
        elif op.lower() in {">", "more than", "over"}:
            wanted, ok = f"> {number}", lines > int(number)
        else:
            wanted, ok = f">= {number}", lines >= int(number)
        return _entry(
            check, Verdict.PASS if ok else Verdict.FAIL, f"{evidence} (wanted {wanted} lines)"
        )
    tests_wanted = _at_least(rest) if count_tests and re.search(r"tests?\b", rest) else None
    if tests_wanted is not None:
        from tasks.gates.repo_state import TestInventory, scan_file

        inventory = TestInventory()
        scan_file(path, target.read_text(encoding="utf-8", errors="replace"), inventory)
        found = len(inventory.tests)
        verdict = Verdict.PASS if found >= tests_wanted else Verdict.FAIL
        return _entry(
            check, verdict, f"{evidence}, {found} test functions (wanted {tests_wanted}+)"
        )
    return _entry(check, Verdict.PASS, evidence)


class Resolved(BaseModel):
    path: str | None
    """The repository-relative path, or None when not found (or ambiguous)."""
    note: str = ""
    ambiguous: bool = False
    """True also for an absolute path outside the repository: the file cannot be told apart."""


def resolve_path(repo: Path, raw: str) -> Resolved:
    """A plan's path in the repository: as written, or the one tracked file ending with it
    (plans often write `lib.rs` or `api/mod.rs` for `crates/x/src/api/mod.rs`)."""
    path = repo_path(repo, raw)
    if path is None:
        return Resolved(path=None, ambiguous=True, note=_outside_note(raw))
    if (repo / path).exists():
        return Resolved(path=path)
    if not path:
        return Resolved(path=None, note=f"{path} is missing")
    name = Path(path).name
    found = [f for f in repo_files(repo, f"*{name}") if f == path or f.endswith("/" + path)]
    if len(found) == 1:
        return Resolved(path=found[0], note=f" (`{path}` resolved to {found[0]})")
    if len(found) > 1:
        return Resolved(
            path=None, ambiguous=True, note=f"`{path}` is ambiguous: {', '.join(found[:5])}"
        )
    return Resolved(path=None, note=f"{path} is missing")


_CALLABLE_NAME = re.compile(r"^(?:[A-Za-z_]\w*::)*([A-Za-z_]\w*)\(\)$")
"""`fetch_with_retry()`, `Audio::from_path()`: plan prose naming a function, not its text."""
_DEFINITION = r"\b(?:fn|def|func|function)\s+{name}\b"
"""A definition of the function in the languages the plans use (Rust, Python, Go, JS/TS)."""


def _find_needle(needle: str, text: str) -> str | None:
    """Where ``needle`` is in ``text``; a function named as `name()` is found by its
    definition (`pub fn name(arg: T)`), which holds `name()` only when it takes no argument."""
    if found := _find(needle, text):
        return found
    callable_name = _CALLABLE_NAME.match(needle.strip())
    if callable_name is None:
        return None
    definition = re.compile(_DEFINITION.format(name=re.escape(callable_name.group(1))))
    for number, line in enumerate(text.splitlines(), 1):
        if definition.search(line):
            return f"{number}: {line.strip()[:160]}"
    return None


def _find(needle: str, text: str) -> str | None:
    """The first line holding ``needle`` (whitespace-insensitive), or a note when it spans lines."""

    def squash(s: str) -> str:
        return re.sub(r"\s+", "", s)

    for number, line in enumerate(text.splitlines(), 1):
        if needle in line or squash(needle) in squash(line):
            return f"{number}: {line.strip()[:160]}"
    if squash(needle) and squash(needle) in squash(text):
        return "(across lines)"
    return None


def contains_entry(
    repo: Path, check: str, raw_path: str, needles: str | list[str], *, negate: bool = False
) -> LedgerEntry:
    """Every needle is in the file (or, with ``negate``, none is)."""
    wanted = [needles] if isinstance(needles, str) else needles
    resolved = resolve_path(repo, raw_path)
    if resolved.ambiguous:
        return _entry(check, Verdict.NEEDS_JUDGEMENT, resolved.note)
    if resolved.path is None or not (repo / resolved.path).is_file():
        return _entry(
            check,
            Verdict.FAIL,
            f"{resolved.note or raw_path + ' is not a file'} (wanted to check {wanted})",
        )
    text = (repo / resolved.path).read_text(encoding="utf-8", errors="replace")
    # A removal keeps its literal reading: read as a definition, `old()` would fail a phase
    # that was asked to remove only the call.
    find = _find if negate else _find_needle
    found = {needle: find(needle, text) for needle in wanted}
    path = resolved.path
    if negate:
        present = [f"`{n}` at {path}:{where}" for n, where in found.items() if where]
        ok = not present
        evidence = (
            f"{path} holds none of {wanted}" if ok else "still present: " + "; ".join(present)
        )
    else:
        missing = [n for n, where in found.items() if where is None]
        ok = not missing
        evidence = (
            "; ".join(f"{path}:{where}" for where in found.values())
            if ok
            else f"{path} does not contain " + ", ".join(f"`{n}`" for n in missing)
        )
    return _entry(check, Verdict.PASS if ok else Verdict.FAIL, evidence + resolved.note)


def absent_entry(repo: Path, check: str, raw_path: str) -> LedgerEntry:
    path = repo_path(repo, raw_path)
    if path is None:
        return _outside(check, raw_path)
    gone = not (repo / path).exists()
    return _entry(
        check,
        Verdict.PASS if gone else Verdict.FAIL,
        f"{path} {'is gone' if gone else 'still exists'}",
    )


def tests_in_file_entry(repo: Path, check: str, raw_path: str, wanted: int) -> LedgerEntry:
    from tasks.gates.repo_state import TestInventory, scan_file

    resolved = resolve_path(repo, raw_path)
    if resolved.ambiguous:
        return _entry(check, Verdict.NEEDS_JUDGEMENT, resolved.note)
    if resolved.path is None or not (repo / resolved.path).is_file():
        return _entry(check, Verdict.FAIL, resolved.note or f"{raw_path} is not a file")
    inventory = TestInventory()
    text = (repo / resolved.path).read_text(encoding="utf-8", errors="replace")
    scan_file(resolved.path, text, inventory)
    found = len(inventory.tests)
    verdict = Verdict.PASS if found >= wanted else Verdict.FAIL
    return _entry(
        check, verdict, f"{resolved.path}: {found} test functions (wanted {wanted}+){resolved.note}"
    )


# --- dependencies ----------------------------------------------------------------------------


def _dependency_names(manifest: dict[str, object]) -> set[str]:
    names: set[str] = set()

    def collect(table: object) -> None:
        if not isinstance(table, dict):
            return
        for key in ("dependencies", "dev-dependencies", "build-dependencies"):
            deps = table.get(key)
            if isinstance(deps, dict):
                for name, spec in deps.items():
                    names.add(name)
                    if isinstance(spec, dict) and isinstance(spec.get("package"), str):
                        names.add(spec["package"])

    collect(manifest)
    collect(manifest.get("workspace"))
    targets = manifest.get("target")
    if isinstance(targets, dict):
        for table in targets.values():
            collect(table)
    return names


def dependency_entry(
    repo: Path, check: str, name: str, manifest: str | None = None, *, added: bool = True
) -> LedgerEntry:
    """`name` is declared in ``manifest`` (or, without one, in any Cargo.toml of the repo).

    A dependency to add (``added``) in a bare `Cargo.toml` may be in any manifest: in a
    workspace that is the crate the phase works on, which the criterion does not name."""
    note = ""
    manifests = repo_files(repo, "*Cargo.toml")
    if added and manifest and clean_path(manifest) == "Cargo.toml":
        manifests = sorted(manifests, key=lambda rel: rel != "Cargo.toml")
    elif manifest:
        resolved = resolve_path(repo, manifest)
        if resolved.path is not None:
            manifests, note = [resolved.path], resolved.note
        else:
            note = f" ({resolved.note}; looked in every Cargo.toml)"
    wanted = {name, name.replace("_", "-"), name.replace("-", "_")}
    looked: list[str] = []
    for rel in manifests:
        target = repo / rel
        if not target.is_file() or target.name != "Cargo.toml":
            looked.append(f"{rel} (missing)")
            continue
        try:
            data = tomllib.loads(target.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            looked.append(f"{rel} (invalid TOML: {exc})")
            continue
        if wanted & _dependency_names(data):
            return _entry(check, Verdict.PASS, f"`{name}` is declared in {rel}{note}")
        looked.append(rel)
    where = ", ".join(looked) or "no Cargo.toml found"
    return _entry(check, Verdict.FAIL, f"`{name}` is not declared in {where}{note}")


def dependency_names_from_field(value: str) -> list[str]:
    """`Dependencies to add: `serde` (derive), tokio = "1"` → [serde, tokio]."""
    names: list[str] = []
    spans = _SPAN.findall(value) or re.split(r"[,\n]", value)
    for span in spans:
        text = span.strip().lstrip("-* ").strip()
        if text.lower() in {"none", "n/a", ""}:
            continue
        if match := _CRATE_SPEC.match(text):
            names.append(match.group(1))
    return names


# --- grep ------------------------------------------------------------------------------------


_GREP_VALUE_FLAGS = frozenset({"-A", "-B", "-C", "-m", "-e", "-f", "-d", "-D"})
"""grep flags whose value is the next argument (`-A 1`), so not the pattern or a path."""


def _glob(repo: Path, arg: str) -> list[str]:
    """A path argument's matches in the repository, or itself (no match, or no valid glob:
    `**x`, an absolute path)."""
    if not any(ch in arg for ch in "*?["):
        return [arg]
    try:
        matches = sorted(str(p.relative_to(repo)) for p in repo.glob(arg))
    except (ValueError, NotImplementedError):
        return [arg]
    return matches or [arg]


def _expand_globs(repo: Path, args: list[str]) -> list[str]:
    """grep's arguments with the globs in its paths expanded, as a shell would; the pattern is
    not a path (`grep "impl.*Iterator" f`, `grep 'library/\\*/x.md' f`) and stays as written."""
    expanded: list[str] = []
    pattern_given = any(a in {"-e", "-f"} or a.startswith(("--regexp", "--file")) for a in args)
    options_done = value_next = False
    for arg in args:
        if value_next:
            expanded.append(arg)
            value_next = False
        elif not options_done and arg.startswith("-") and arg != "-":
            options_done = arg == "--"
            value_next = arg in _GREP_VALUE_FLAGS
            expanded.append(arg)
        elif not pattern_given:
            pattern_given = True
            expanded.append(arg)
        else:
            expanded.extend(_glob(repo, arg))
    return expanded


def _rg_to_grep(args: list[str]) -> list[str] | None:
    """ripgrep's common flags → grep; None when a flag has no simple equivalent."""
    out = ["grep", "-r", "-E"]
    positional: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        if arg in {"-i", "-w", "-F", "-q", "-l", "-c", "-n", "-v", "-x"}:
            out.append(arg)
        elif arg == "-e" and index + 1 < len(args):
            out += ["-e", args[index + 1]]
            index += 1
        elif arg in {"-t", "--type"} and index + 1 < len(args):
            out.append(
                f"--include=*.{ {'rust': 'rs', 'py': 'py', 'md': 'md'}.get(args[index + 1], args[index + 1]) }"
            )
            index += 1
        elif arg.startswith("-"):
            return None
        else:
            positional.append(arg)
        index += 1
    if positional and "-e" not in out:
        pattern, paths = positional[0], positional[1:]
        return [*out, "-e", pattern, *(paths or ["."])]
    return [*out, *(positional or ["."])]


def grep_argv(command: str) -> tuple[list[str] | None, str]:
    """The argument vector for a grep/rg command from plan text, or (None, why not)."""
    try:
        tokens = shell_words(command)
    except ValueError as exc:
        return None, f"cannot split `{command}`: {exc}"
    if not tokens or tokens[0] not in GREP_PROGRAMS:
        return None, f"`{command}` is not a grep command"
    if operators := _ONE_COMMAND_OPERATORS & set(tokens):
        return (
            None,
            f"`{command}` uses shell operators {sorted(operators)}: not run without a shell",
        )
    if any("$(" in t or "`" in t for t in tokens):
        return None, f"`{command}` uses command substitution: not run"
    program, args = tokens[0], tokens[1:]
    if program == "rg" and shell.which("rg") is None:
        translated = _rg_to_grep(args)
        if translated is None:
            return None, f"`{command}`: ripgrep is not installed and a flag has no grep equivalent"
        return translated, ""
    if program == "egrep":
        return ["grep", "-E", *args], ""
    if program == "fgrep":
        return ["grep", "-F", *args], ""
    return [program, *args], ""


def grep_entry(repo: Path, check: str, command: str, criterion_text: str) -> LedgerEntry:
    argv, why = grep_argv(command)
    if argv is None:
        return _entry(check, Verdict.NEEDS_JUDGEMENT, why, command=command)
    argv = [argv[0], *_expand_globs(repo, argv[1:])]
    tail = criterion_text.split(command, 1)[-1]
    wanted_count = _at_least(tail)
    negated = _NEGATED.search(tail) is not None
    if wanted_count is not None and not negated:
        argv = [argv[0], "-c", *[a for a in argv[1:] if a not in {"-q", "-l", "--quiet"}]]
    result = shell.run(argv, cwd=repo, timeout_s=GREP_TIMEOUT_S, stdin="")
    command_text = render(result.argv)
    if result.exit_code not in (0, 1) or result.timed_out:
        return LedgerEntry(
            check=check,
            command=command_text,
            exit_code=result.exit_code,
            duration_s=result.duration_s,
            verdict=Verdict.FAIL,
            evidence=output_evidence(result, "grep could not run (missing file?)", failed=True),
        )
    if wanted_count is not None and not negated:
        found = sum(
            int(line.rsplit(":", 1)[-1])
            for line in result.output.split()
            if line.rsplit(":", 1)[-1].isdigit()
        )
        ok = found >= wanted_count
        summary = f"{found} matching lines (wanted {wanted_count}+)"
    elif negated:
        ok = result.exit_code == 1
        summary = "no match, as wanted" if ok else "matched, but the criterion wants no match"
        if not ok and (exception := _EXCEPTED.search(tail)):
            return LedgerEntry(
                check=check,
                command=command_text,
                exit_code=result.exit_code,
                duration_s=result.duration_s,
                verdict=Verdict.NEEDS_JUDGEMENT,
                evidence=output_evidence(
                    result,
                    f"matched; the criterion allows exceptions ({exception.group(0)} ...): "
                    "whether these matches are among them is the verifier's to decide",
                    failed=True,
                ),
            )
    else:
        ok = result.exit_code == 0
        summary = "matched" if ok else "no match"
    verdict = Verdict.PASS if ok else Verdict.FAIL
    entry = LedgerEntry(
        check=check,
        command=command_text,
        exit_code=result.exit_code,
        duration_s=result.duration_s,
        verdict=verdict,
        evidence=output_evidence(result, summary, failed=not ok),
    )
    return _added_count_judged(entry, tail) if wanted_count is not None else entry


# --- one criterion ---------------------------------------------------------------------------


def _embedded_test_command(text: str, allowed: set[str]) -> list[str] | None:
    for span in _SPAN.findall(text):
        try:
            argv = shlex.split(span)
        except ValueError:
            continue
        if argv and argv[0] in allowed and not _ONE_COMMAND_OPERATORS & set(argv):
            return argv
    return None


def _test_count_entry(
    check: str, text: str, wanted: int, count_tests: TestCounter, allowed: set[str]
) -> LedgerEntry:
    command = _embedded_test_command(text, allowed)
    run, source = count_tests(command)
    if run is None:
        return _entry(check, Verdict.NEEDS_JUDGEMENT, f"{text} — {source}")
    ok = run.total >= wanted and run.failed == 0
    evidence = f"{source}: {run.total} tests ran ({run.counts()}); wanted {wanted}+ passing"
    return LedgerEntry(
        check=check,
        command=source,
        exit_code=run.exit_code,
        verdict=Verdict.PASS if ok else Verdict.FAIL,
        evidence=evidence,
    )


GrepRunner = Callable[[Path, str, str, str], LedgerEntry]
"""(repo, check, command, criterion text) → the grep check's entry (:func:`grep_entry`)."""


@dataclass
class CriterionContext:
    """One acceptance criterion being read, and what the recognisers before this one found."""

    repo: Path
    text: str
    label: str
    """The check name of every entry a recogniser makes: `criterion N: <the text's start>`."""
    count_tests: TestCounter
    allowed_programs: set[str]
    run_command: CommandRunner | None
    grep: GrepRunner
    handled: set[str] = field(default_factory=set)
    """Backticked parts (paths, needles, crate names) a recogniser already checked: a later
    recogniser reading the same words another way skips them."""
    entries: list[LedgerEntry] = field(default_factory=list)
    """What the recognisers before the current one made."""


@dataclass(frozen=True)
class Recogniser:
    """One form of criterion: ``on_match`` turns each match of ``pattern`` in the criterion (only
    the first with ``first_only``) into entries, none when the match is not what it checks."""

    name: str
    pattern: re.Pattern[str]
    on_match: Callable[[CriterionContext, re.Match[str]], list[LedgerEntry]]
    first_only: bool = False

    def __call__(self, ctx: CriterionContext) -> list[LedgerEntry]:
        if self.first_only:
            match = self.pattern.search(ctx.text)
            return self.on_match(ctx, match) if match else []
        return [e for m in self.pattern.finditer(ctx.text) for e in self.on_match(ctx, m)]


def _is_grep(span: str) -> bool:
    words = span.split(maxsplit=1)
    return bool(words) and words[0] in GREP_PROGRAMS


def _grep_command(ctx: CriterionContext, match: re.Match[str]) -> list[LedgerEntry]:
    """`` `grep -q "X" src/lib.rs` succeeds ``: run the grep."""
    span = match.group(1)
    if not _is_grep(span):
        return []
    ctx.handled.add(span)
    return [ctx.grep(ctx.repo, ctx.label, span, ctx.text)]


def _tests_in_file(ctx: CriterionContext, match: re.Match[str]) -> list[LedgerEntry]:
    """``5+ tests in `tests/x.rs` ``: count the test functions in the file."""
    number_a, path_a, path_b, number_b = match.groups()
    path, wanted = (path_a, number_a) if path_a else (path_b, number_b)
    ctx.handled.add(path)
    entry = tests_in_file_entry(ctx.repo, ctx.label, path, int(wanted))
    return [_added_count_judged(entry, ctx.text)]


def _toml_includes(ctx: CriterionContext, match: re.Match[str]) -> list[LedgerEntry]:
    """``Cargo.toml includes `serde = "1"` ``: a dependency when the criterion says so, else text."""
    manifest, spec = match.groups()
    if spec in ctx.handled:
        return []
    crate = _CRATE_SPEC.match(spec)
    if crate and "dependenc" in ctx.text.lower() + spec:
        entry = dependency_entry(ctx.repo, ctx.label, crate.group(1), manifest)
    else:
        entry = contains_entry(ctx.repo, ctx.label, manifest, spec)
    ctx.handled.update({spec, manifest})
    return [entry]


def _file_contains(ctx: CriterionContext, match: re.Match[str]) -> list[LedgerEntry]:
    """``File `x.rs` contains `A` and `B` `` (or `does not contain`)."""
    path, spans = match.group(1), match.group("spans")
    if not _looks_like_path(path) or path in ctx.handled:
        return []
    needles = _SPAN.findall(spans)
    ctx.handled.update({path, *needles})
    negate = bool(match.group("neg"))
    return [contains_entry(ctx.repo, ctx.label, path, needles, negate=negate)]


def _removed_from(ctx: CriterionContext, match: re.Match[str]) -> list[LedgerEntry]:
    """`` `old_fn` removed from `src/lib.rs` ``; a crate removed from a Cargo.toml."""
    needle, path = match.groups()
    if needle in ctx.handled or not _looks_like_path(path):
        return []
    if path.endswith("Cargo.toml") and re.fullmatch(r"[A-Za-z0-9_-]+", needle):
        declared = dependency_entry(ctx.repo, ctx.label, needle, path, added=False)
        verdict = Verdict.FAIL if declared.verdict is Verdict.PASS else Verdict.PASS
        entry = declared.model_copy(update={"verdict": verdict})
    else:
        entry = contains_entry(ctx.repo, ctx.label, path, needle, negate=True)
    ctx.handled.update({needle, path})
    return [entry]


def _file_gone(ctx: CriterionContext, match: re.Match[str]) -> list[LedgerEntry]:
    """``File `old.rs` is deleted`` / `does not exist`."""
    path = match.group(1)
    if path in ctx.handled or not _looks_like_path(path):
        return []
    ctx.handled.add(path)
    return [absent_entry(ctx.repo, ctx.label, path)]


def _dependency_added(ctx: CriterionContext, match: re.Match[str]) -> list[LedgerEntry]:
    """`` `serde` dependency added to `Cargo.toml` ``."""
    name, manifest, _bare = match.groups()
    if name in ctx.handled:
        return []
    ctx.handled.add(name)
    return [dependency_entry(ctx.repo, ctx.label, name, manifest)]


def _in_file(ctx: CriterionContext, match: re.Match[str]) -> list[LedgerEntry]:
    """`` `ApiAuth` is in `src/api.rs` ``; a crate name in a Cargo.toml is a dependency."""
    needle, path = match.groups()
    if needle in ctx.handled or not _looks_like_path(path) or _looks_like_path(needle):
        return []
    if _FURTHER_CLAIM.match(ctx.text, match.end()):
        return []
    if path.endswith("Cargo.toml") and re.fullmatch(r"[A-Za-z0-9_-]+", needle):
        entry = dependency_entry(ctx.repo, ctx.label, needle, path)
    else:
        entry = contains_entry(ctx.repo, ctx.label, path, needle)
    ctx.handled.update({needle, path})
    return [entry]


def _file_exists(ctx: CriterionContext, match: re.Match[str]) -> list[LedgerEntry]:
    """``File `x.rs` exists with >50 lines`` (or `with 3+ tests`, or `with `A` and `B` `)."""
    kind, path, rest = match.group(1), match.group(2), match.group("rest")
    if path in ctx.handled or _NON_FILE_SUBJECT.search(ctx.text[: match.start()]):
        return []
    if not (kind or _looks_like_path(path)):
        return []
    ctx.handled.add(path)
    entries = [file_exists_entry(ctx.repo, ctx.label, path, rest)]
    # "File `x.rs` exists with `ApiAuth` and `ApiEndpoint`": the names must be in it.
    after = re.match(r"\s*(" + _SPAN_LIST + ")", ctx.text[match.end() :])
    if after and rest.rstrip().lower().endswith("with"):
        needles = _SPAN.findall(after.group(1))
        entries.append(contains_entry(ctx.repo, ctx.label, path, needles))
    return entries


def _run_test_count(ctx: CriterionContext, match: re.Match[str]) -> list[LedgerEntry]:
    """`` `cargo test x` runs 10+ tests ``: the tests a run counted (the phase's runs without a
    command). Not when a file's tests were counted or a grep decides the criterion."""
    counted_in_file = any("test functions" in e.evidence for e in ctx.entries)
    grep_used = any(_is_grep(span) for span in _SPAN.findall(ctx.text))
    if counted_in_file or grep_used:
        return []
    wanted = int(next(g for g in match.groups() if g))
    has_command = _embedded_test_command(ctx.text, ctx.allowed_programs) is not None
    # "Function `f` has 8+ unit tests" is about one function: a run's total cannot say.
    whole_run = _RUN_WORDS.search(ctx.text) and not _SPECIFIC_SUBJECT.search(ctx.text)
    if not (has_command or whole_run):
        return []
    entry = _test_count_entry(ctx.label, ctx.text, wanted, ctx.count_tests, ctx.allowed_programs)
    return [_added_count_judged(entry, ctx.text)]


def _command_succeeds(ctx: CriterionContext, _match: re.Match[str]) -> list[LedgerEntry]:
    """`` `cargo build -p x` succeeds ``, `` `cargo test --lib` passes all tests ``: run the
    command, when nothing before decided the criterion. Criteria about what a command prints ("produces
    valid JSON") stay with the verifier."""
    if ctx.entries or ctx.run_command is None or _ABOUT_OUTPUT.search(ctx.text):
        return []
    command = _embedded_test_command(ctx.text, ctx.allowed_programs)
    if command is None:
        return []
    return [ctx.run_command(command).model_copy(update={"check": ctx.label})]


CRITERION_RECOGNISERS: tuple[Recogniser, ...] = (
    Recogniser("grep command", _SPAN, _grep_command),
    Recogniser("tests in file", _TESTS_IN_FILE, _tests_in_file),
    Recogniser("Cargo.toml includes", _TOML_INCLUDES, _toml_includes),
    Recogniser("file contains", _CONTAINS, _file_contains),
    Recogniser("removed from file", _REMOVED_FROM, _removed_from),
    Recogniser("file gone", _FILE_GONE, _file_gone),
    Recogniser("dependency added", _DEP_ADDED, _dependency_added),
    Recogniser("in file", _IN_FILE, _in_file),
    Recogniser("file exists", _FILE_EXISTS, _file_exists),
    Recogniser("run test count", _TEST_COUNT, _run_test_count, first_only=True),
    Recogniser("command succeeds", _SUCCEEDS, _command_succeeds, first_only=True),
)
"""The forms :func:`evaluate_criterion` recognises, tried in this order on every criterion; each
sees the parts the ones before it consumed (``CriterionContext.handled``) and what they made. To
recognise another form, add a pattern and an ``on_match`` function, and put it where it must
come relative to the others (a more specific reading of the same words goes first)."""


def evaluate_criterion(
    repo: Path,
    number: int,
    text: str,
    *,
    count_tests: TestCounter,
    allowed_programs: set[str],
    run_command: CommandRunner | None = None,
    grep: GrepRunner | None = None,
) -> list[LedgerEntry]:
    """Ledger entries for one acceptance criterion: mechanical checks, or one NEEDS_JUDGEMENT.

    ``grep`` replaces :func:`grep_entry` (the dry run records the command instead of running it).
    """
    check = f"criterion {number}"
    ctx = CriterionContext(
        repo=repo,
        text=text,
        label=f"{check}: {text[:80]}",
        count_tests=count_tests,
        allowed_programs=allowed_programs,
        run_command=run_command,
        grep=grep or grep_entry,
    )
    for recognise in CRITERION_RECOGNISERS:
        ctx.entries.extend(recognise(ctx))
    return ctx.entries or [_entry(check, Verdict.NEEDS_JUDGEMENT, text)]
