"""Acceptance criteria from the corpus plans that the gates decide, checked against what an honest
developer who did exactly what the phase asks would leave behind: never a false BLOCKED, and
where the gates cannot tell, the verifier decides (NEEDS_JUDGEMENT), never a PASS.

Each criterion text is quoted from a corpus plan (/work/shared/corpus/plans, read from
``../shared`` relative to the repository when present: see
:func:`test_the_quoted_criteria_are_in_the_corpus`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from plan_parser.model import FileAction
from tasks import shell
from tasks.gates.cargo_output import TestRun
from tasks.gates.criteria import evaluate_criterion
from tasks.gates.ledger import Verdict
from tasks.gates.phase_gates import PhaseStart, declared_file_entries, scope_entries
from tests.gates.helpers import phase

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus" / "plans"

RETRY_CRITERION = (
    "File `shared/src/providers/retry.rs` exists with `is_rate_limit_error()` and "
    "`fetch_with_retry()`"
)
FUNCTION_LENGTH_CRITERION = "Function `link()` in `research/lib/src/link/mod.rs` is >150 lines (expanded for error handling)"
ROOTED_README_CRITERION = "File `/md/README.md` exists with >20 lines"
ABSOLUTE_DIRECTORY_CRITERION = "Directory `/Volumes/coding/personal/dockhand/md` exists"
ABSOLUTE_GONE_CRITERION = "Directory `/Volumes/coding/personal/dockhand/mat` does NOT exist"
EXCEPT_CRITERION = (
    "`grep -r 'mat' md/README.md` finds NO matches (except in table cell alignments like `|---|`)"
)
PLACEHOLDER_FILE = "tree-hugger/lib/queries/{language}/comments.scm"
"""Declared (modify) by a corpus plan's phase: one such file per supported language."""
ESCAPED_GLOB_CRITERION = "`grep 'library/\\*/deep_dive.md' research/cli/src/main.rs` succeeds"

QUOTED = [
    RETRY_CRITERION,
    FUNCTION_LENGTH_CRITERION,
    ROOTED_README_CRITERION,
    ABSOLUTE_DIRECTORY_CRITERION,
    ABSOLUTE_GONE_CRITERION,
    EXCEPT_CRITERION,
    ESCAPED_GLOB_CRITERION,
    PLACEHOLDER_FILE,
    'Cargo.toml includes `proptest = "1"` in `[dev-dependencies]`',
]


def never_counts(argv: list[str] | None) -> tuple[TestRun | None, str]:
    raise AssertionError("no test count expected")


def verdicts(repo: Path, text: str) -> list[Verdict]:
    entries = evaluate_criterion(
        repo, 1, text, count_tests=never_counts, allowed_programs={"cargo"}
    )
    return [entry.verdict for entry in entries]


def write(repo: Path, path: str, text: str) -> None:
    target = repo / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    shell.run(["git", "init", "-q"], cwd=root)
    return root


@pytest.mark.skipif(not CORPUS.is_dir(), reason="the corpus is not next to this repository")
@pytest.mark.parametrize("text", QUOTED)
def test_the_quoted_criteria_are_in_the_corpus(text: str) -> None:
    plans = (path.read_text(encoding="utf-8") for path in CORPUS.glob("*.md"))
    assert any(text in plan for plan in plans)


# --- a function named as `name()` ----------------------------------------------------------------

RETRY_RS = """\
pub fn is_rate_limit_error(error: &reqwest::Error) -> bool {
    error.status().map(|s| s.as_u16() == 429).unwrap_or(false)
}

pub async fn fetch_with_retry<F, T>(operation: F) -> Result<T, reqwest::Error> {
    todo!()
}
"""


def test_a_function_named_with_empty_parentheses_is_found_by_its_definition(repo: Path) -> None:
    write(repo, "shared/src/providers/retry.rs", RETRY_RS)
    assert verdicts(repo, RETRY_CRITERION) == [Verdict.PASS, Verdict.PASS]


def test_a_function_named_with_empty_parentheses_must_still_be_defined(repo: Path) -> None:
    write(repo, "shared/src/providers/retry.rs", "pub fn is_rate_limit_error() -> bool { true }\n")
    assert verdicts(repo, RETRY_CRITERION) == [Verdict.PASS, Verdict.FAIL]
    # A call is not a definition.
    write(
        repo,
        "shared/src/providers/retry.rs",
        "pub fn is_rate_limit_error(e: &E) -> bool { fetch_with_retry(e) }\n",
    )
    assert verdicts(repo, RETRY_CRITERION) == [Verdict.PASS, Verdict.FAIL]


def test_a_claim_about_a_function_beyond_its_presence_goes_to_the_verifier(repo: Path) -> None:
    """The length is not checked: a PASS on the name alone would be a false COMPLETE, a FAIL on
    `link()` not being written literally (`pub fn link(args: LinkArgs)`) a false BLOCKED."""
    write(repo, "research/lib/src/link/mod.rs", "pub fn link(args: LinkArgs) {}\n")
    assert verdicts(repo, FUNCTION_LENGTH_CRITERION) == [Verdict.NEEDS_JUDGEMENT]
    write(repo, "research/lib/src/link/mod.rs", "pub fn link() {}\n")
    assert verdicts(repo, FUNCTION_LENGTH_CRITERION) == [Verdict.NEEDS_JUDGEMENT]


# --- absolute paths --------------------------------------------------------------------------------


def test_a_path_rooted_at_the_repository_is_read_in_it(repo: Path) -> None:
    write(repo, "md/README.md", "line\n" * 25)
    assert verdicts(repo, ROOTED_README_CRITERION) == [Verdict.PASS]
    write(repo, "md/README.md", "line\n" * 5)
    assert verdicts(repo, ROOTED_README_CRITERION) == [Verdict.FAIL]


def test_an_absolute_path_inside_the_repository_is_read_in_it(repo: Path) -> None:
    (repo / "md").mkdir()
    assert verdicts(repo, f"Directory `{repo}/md` exists") == [Verdict.PASS]
    assert verdicts(repo, f"Directory `{repo}/mat` does NOT exist") == [Verdict.PASS]
    (repo / "mat").mkdir()
    assert verdicts(repo, f"Directory `{repo}/mat` does NOT exist") == [Verdict.FAIL]


def test_an_absolute_path_elsewhere_goes_to_the_verifier(repo: Path) -> None:
    """The author's machine path (`/Volumes/...`) says nothing about this checkout: neither a
    FAIL for the directory the developer did create nor a PASS for the one they did remove."""
    (repo / "md").mkdir()
    assert verdicts(repo, ABSOLUTE_DIRECTORY_CRITERION) == [Verdict.NEEDS_JUDGEMENT]
    (repo / "mat").mkdir()
    assert verdicts(repo, ABSOLUTE_GONE_CRITERION) == [Verdict.NEEDS_JUDGEMENT]
    assert verdicts(repo, "`/Volumes/x/src/lib.rs` contains `pub mod md;`") == [
        Verdict.NEEDS_JUDGEMENT
    ]


# --- greps -----------------------------------------------------------------------------------------


def test_a_negated_grep_with_an_exception_goes_to_the_verifier_when_it_matches(
    repo: Path,
) -> None:
    """`mat` also matches `format` and the table rule `|---|` the criterion itself excuses."""
    write(
        repo, "md/README.md", "# md\n\nRenders markdown.\n\n| a | b |\n|---|---|\n| format | x |\n"
    )
    assert verdicts(repo, EXCEPT_CRITERION) == [Verdict.NEEDS_JUDGEMENT]
    write(repo, "md/README.md", "# md\n\nRenders markdown.\n")
    assert verdicts(repo, EXCEPT_CRITERION) == [Verdict.PASS]


def test_a_grep_pattern_is_not_expanded_as_a_file_glob(repo: Path) -> None:
    write(repo, "library/rust/deep_dive.md", "# deep dive\n")
    write(
        repo,
        "research/cli/src/main.rs",
        'let pattern = base.join("library/*/deep_dive.md");\n',
    )
    assert verdicts(repo, ESCAPED_GLOB_CRITERION) == [Verdict.PASS]
    write(repo, "src/lib.rs", "pub mod a;\n")
    write(repo, "src/a.rs", "pub fn a() {}\n")
    write(repo, "build.rs", 'let sources = glob("src/*.rs");\n')
    # The pattern names files that exist: expanded, it would search for `src/a.rs` instead.
    assert verdicts(repo, '`grep -F "src/*.rs" build.rs` succeeds') == [Verdict.PASS]
    assert verdicts(repo, '`grep -A 1 -F "src/*.rs" build.rs` succeeds') == [Verdict.PASS]
    assert verdicts(repo, '`grep "pub mod" src/*.rs` succeeds') == [Verdict.PASS]
    assert verdicts(repo, '`grep -e "pub fn" src/*.rs` succeeds') == [Verdict.PASS]


def test_a_pattern_that_is_no_valid_glob_still_greps(repo: Path) -> None:
    write(repo, "README.md", "**Note**: read me\n")
    assert verdicts(repo, '`grep "**Note**" README.md` succeeds') == [Verdict.PASS]
    assert verdicts(repo, '`grep "x" **README.md` succeeds') in (
        [Verdict.FAIL],
        [Verdict.NEEDS_JUDGEMENT],
    )


# --- declared files with a placeholder -------------------------------------------------------------


def test_a_declared_file_with_a_placeholder_names_any_file_in_its_place(repo: Path) -> None:
    write(repo, "tree-hugger/lib/queries/rust/comments.scm", "(line_comment) @comment\n")
    declared = phase([(PLACEHOLDER_FILE, FileAction.MODIFY)])
    [entry] = declared_file_entries(repo, declared)
    assert entry.verdict is Verdict.PASS
    assert "tree-hugger/lib/queries/rust/comments.scm" in entry.evidence
    start = PhaseStart(head="")
    changes = {"tree-hugger/lib/queries/rust/comments.scm": "modified"}
    verdicts_by_check = {
        e.check: e.verdict for e in scope_entries(declared, changes, start, repo, "fail")
    }
    assert verdicts_by_check[f"scope: {PLACEHOLDER_FILE} changed"] is Verdict.PASS
    assert verdicts_by_check.get("scope: outside declared files", Verdict.PASS) is Verdict.PASS


def test_a_declared_file_with_a_placeholder_still_needs_a_file(repo: Path) -> None:
    write(repo, "tree-hugger/lib/queries/README.md", "queries\n")
    declared = phase([(PLACEHOLDER_FILE, FileAction.MODIFY)])
    [entry] = declared_file_entries(repo, declared)
    assert entry.verdict is Verdict.FAIL
    changes = {"tree-hugger/lib/queries/README.md": "modified"}
    scope = scope_entries(declared, changes, PhaseStart(head=""), repo, "fail")
    assert {e.check: e.verdict for e in scope}[f"scope: {PLACEHOLDER_FILE} changed"] is (
        Verdict.FAIL
    )


# --- a dependency in a workspace ------------------------------------------------------------------

WORKSPACE_DEPENDENCY_CRITERION = 'Cargo.toml includes `proptest = "1"` in `[dev-dependencies]`'
"""The phase builds `research/lib` in a workspace: the dependency belongs in that crate's
manifest, and the plan names no directory."""


def test_a_dependency_in_a_bare_cargo_toml_may_be_in_a_member_crate(repo: Path) -> None:
    write(repo, "Cargo.toml", '[workspace]\nmembers = ["research/lib"]\n')
    write(repo, "research/lib/Cargo.toml", '[package]\nname = "research-lib"\n')
    assert verdicts(repo, WORKSPACE_DEPENDENCY_CRITERION) == [Verdict.FAIL]
    write(
        repo,
        "research/lib/Cargo.toml",
        '[package]\nname = "research-lib"\n\n[dev-dependencies]\nproptest = "1"\n',
    )
    assert verdicts(repo, WORKSPACE_DEPENDENCY_CRITERION) == [Verdict.PASS]
    # A manifest named with its directory is the only one read.
    assert verdicts(repo, "`proptest` dependency added to `other/Cargo.toml`") == [Verdict.PASS]
    write(repo, "other/Cargo.toml", '[package]\nname = "other"\n')
    assert verdicts(repo, "`proptest` dependency added to `other/Cargo.toml`") == [Verdict.FAIL]


def test_a_dependency_removed_from_a_bare_cargo_toml_is_read_in_the_root(repo: Path) -> None:
    write(repo, "Cargo.toml", '[workspace]\nmembers = ["lib"]\n')
    write(repo, "lib/Cargo.toml", '[package]\nname = "lib"\n\n[dependencies]\nserde_yaml = "0.9"\n')
    assert verdicts(repo, "`serde_yaml` dependency removed from `Cargo.toml`") == [Verdict.PASS]
