"""Malformed plans through `plan-executor validate` and `plan-executor run` (issue 8, item 4).

Every case must give a clear message naming the file and the line (and the field where one
applies), exit 2, and leave the plan byte-identical with its mtime unchanged and no file added
beside it. `run` must refuse before any Prefect backend starts and before any agent request: the
backend chooser is replaced by a recorder that fails the run if it is ever entered, and the agents
are the stand-in Messages API, whose request log must stay empty. A valid plan through the same
harness does reach the backend (the control that shows the harness can see a regression).
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cli.run import run_plan
from flows.context import RunOptions
from tasks.agent.standin import StandinMessagesAPI, text_turn
from tasks.shell import run as run_command
from tests.parser.helpers import phase_block, plan_text, run_cli

PLAN_NAME = "2026-02-01.plan-for-bad-input.md"
AGENTS = ("rust-developer", "feature-tester-rust")


@dataclass
class Case:
    name: str
    content: Callable[[], bytes]
    code: str
    line: Callable[[bytes], int]
    """The line the message must name, computed from the content."""
    field: str | None = None
    says: tuple[str, ...] = ()
    """Words the message must contain to be clear about what is wrong."""


def _line_of(needle: str, occurrence: int = 0) -> Callable[[bytes], int]:
    def find(data: bytes) -> int:
        lines = data.decode("utf-8", errors="replace").splitlines()
        hits = [n for n, line in enumerate(lines, 1) if needle in line]
        return hits[occurrence]

    return find


def _first_line(_: bytes) -> int:
    return 1


def _text(*phases: str) -> Callable[[], bytes]:
    return lambda: plan_text(*phases).encode()


def _frontmatter(block: str) -> Callable[[], bytes]:
    # Two phases: plan_text separates them with `---`, which closes a block left open.
    return lambda: (block + plan_text(phase_block("1", "A"), phase_block("2", "B"))).encode()


def _five_megabytes() -> bytes:
    chunk = plan_text(phase_block("1", "Big")).encode()
    return chunk * (5 * 1024 * 1024 // len(chunk) + 1)


CASES = [
    Case(
        "cycle",
        _text(
            phase_block("1", "Alpha", deps="Phase 3"),
            phase_block("2", "Beta", deps="Phase 1"),
            phase_block("3", "Gamma", deps="Phase 2"),
        ),
        "E-DEP-CYCLE",
        _line_of("**Dependencies:** Phase 3"),
        "depends_on",
        ("Phase 1 -> Phase 2 -> Phase 3 -> Phase 1",),
    ),
    Case(
        "dangling-id",
        _text(phase_block("1", "Alpha"), phase_block("2", "Beta", deps="Phase 1, Phase 9")),
        "E-DEP-UNKNOWN",
        _line_of("Phase 1, Phase 9"),
        "depends_on",
        ("Phase 9", "not defined"),
    ),
    Case(
        "duplicate-id",
        _text(phase_block("1", "Alpha"), phase_block("1", "Alpha again")),
        "E-DUP-ID",
        _line_of("### Phase 1", occurrence=1),
        None,
        ("duplicate phase id 1",),
    ),
    Case(
        "no-phases",
        lambda: b"# Notes\n\nJust thoughts about the work, no phase headings.\n",
        "E-NO-PHASES",
        _first_line,
        None,
        ("no phases",),
    ),
    Case(
        "binary",
        lambda: b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)),
        "E-BINARY",
        lambda data: data[: data.index(b"\x00")].count(b"\n") + 1,
        None,
        ("binary",),
    ),
    Case(
        "invalid-utf8",
        lambda: plan_text(phase_block("1", "Caf\u00e9 support")).encode("latin-1"),
        "E-ENCODING",
        lambda data: data[: data.index(b"\xe9")].count(b"\n") + 1,
        None,
        ("UTF-8",),
    ),
    Case("five-megabytes", _five_megabytes, "E-TOO-LARGE", _first_line, None, ("limit",)),
    Case(
        "frontmatter-swallows-plan",
        # The closing `---` is missing: the block runs to the first phase separator.
        _frontmatter("---\nstatus: done\nrequired_skills: [rust]\n\n# Swallowed title\n\nProse.\n"),
        "E-FM-NOT-YAML",
        _line_of("# Swallowed title"),
        None,
        ("not YAML", "closing `---`"),
    ),
    Case(
        "frontmatter-is-a-list",
        _frontmatter("---\n- status: done\n- rust\n---\n\n"),
        "E-FM-NOT-MAPPING",
        lambda _: 2,
        None,
        ("a list, not a mapping",),
    ),
    Case(
        "frontmatter-never-closed",
        lambda: ("---\nstatus: done\n" + plan_text(phase_block("1", "Alpha"))).encode(),
        "E-FM-UNTERMINATED",
        _first_line,
        None,
        ("never closed",),
    ),
    Case(
        "owner-without-definition",
        _text(phase_block("1", "Alpha"), phase_block("2", "Beta", owner="Rust Develloper")),
        "E-OWNER-UNKNOWN",
        _line_of("**Principal Owner:** Rust Develloper"),
        "owner",
        ("'Rust Develloper'", "feature-tester-rust, rust-developer", "did you mean"),
    ),
    Case(
        "blast-radius-prose",
        lambda: (
            plan_text(phase_block("1", "Alpha"))
            .replace("`cargo test -p demo`", "the parser and its callers")
            .encode()
        ),
        "E-BLAST-NOT-COMMAND",
        _line_of("**Blast Radius:**"),
        "blast_radius",
        ("is not a command", "backticks"),
    ),
    Case(
        "blast-radius-not-a-gate-program",
        lambda: (
            plan_text(phase_block("1", "Alpha"))
            .replace("`cargo test -p demo`", "`python -m pytest tests/`")
            .encode()
        ),
        "E-BLAST-COMMAND",
        _line_of("**Blast Radius:**"),
        "blast_radius",
        ("`python` is not an allowed gate program",),
    ),
]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A target repository with two agent definitions and a plans folder."""
    root = tmp_path / "repo"
    agents = root / ".claude" / "agents"
    agents.mkdir(parents=True)
    for name in AGENTS:
        (agents / f"{name}.md").write_text(f"---\ndescription: {name}\n---\nYou are {name}.\n")
    (root / ".ai" / "plans").mkdir(parents=True)
    return root


def _write(repo: Path, case: Case) -> Path:
    path = repo / ".ai" / "plans" / PLAN_NAME
    path.write_bytes(case.content())
    return path


def _snapshot(path: Path) -> tuple[bytes, int, list[str]]:
    return path.read_bytes(), os.stat(path).st_mtime_ns, sorted(os.listdir(path.parent))


def _assert_clear(output: str, path: Path, case: Case) -> None:
    line = case.line(path.read_bytes())
    field = rf"(?: phase \S+)? \[{case.field}\]" if case.field else r"(?: phase \S+)?"
    where = re.escape(str(path)) + f":{line}: error {case.code}{field}: "
    assert re.search(where, output), f"expected {path}:{line} {case.code} in:\n{output}"
    message = next(text for text in output.splitlines() if re.search(where, text))
    for words in case.says:
        assert words in message, f"{words!r} missing from: {message}"


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_validate_refuses(case: Case, repo: Path) -> None:
    path = _write(repo, case)
    before = _snapshot(path)
    result = run_cli("validate", str(path), "--repo", str(repo))
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    _assert_clear(output, path, case)
    assert "Traceback" not in output
    assert _snapshot(path) == before


class _BackendEntered(Exception):
    pass


@contextlib.contextmanager
def _agents_and_backend(
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[StandinMessagesAPI, list[str]]]:
    """The stand-in Messages API as the agents' endpoint, and a backend chooser that records
    that it was entered and then fails the run the way an unavailable server does."""
    from backend import select
    from backend.server import ServerError

    entered: list[str] = []

    @contextlib.contextmanager
    def backend(mode: str = "auto", **_: object) -> Iterator[object]:
        entered.append(mode)
        raise ServerError("the bad-input suite never starts a backend")
        yield  # pragma: no cover - a generator for contextmanager

    monkeypatch.setattr(select, "backend", backend)
    with StandinMessagesAPI(responder=lambda body: text_turn("done"), auto_summary=False) as api:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", api.base_url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "stand-in-test-key")
        yield api, entered


class _Echo:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, message: object = "", err: bool = False, **_: object) -> None:
        self.lines.append(str(message))

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_run_refuses_before_any_backend_or_agent(
    case: Case, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(repo, case).resolve()
    before = _snapshot(path)
    echo = _Echo()
    with _agents_and_backend(monkeypatch) as (api, entered):
        code = run_plan(path, RunOptions(repo=repo), live=False, echo=echo)
        requests = list(api.message_requests)
    assert code == 2, echo.text
    assert entered == [], "a backend was chosen for an invalid plan"
    assert requests == []
    assert echo.lines[0] == "error: invalid plan:"
    _assert_clear(echo.text, path, case)
    assert _snapshot(path) == before


def test_valid_plan_reaches_the_backend(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The control: the same harness sees a run that gets past validation."""
    path = (repo / ".ai" / "plans" / PLAN_NAME).resolve()
    path.write_text(plan_text(phase_block("1", "Alpha"), phase_block("2", "Beta", deps="Phase 1")))
    echo = _Echo()
    with _agents_and_backend(monkeypatch) as (_api, entered):
        code = run_plan(path, RunOptions(repo=repo), live=False, echo=echo)
    assert entered == ["auto"]
    assert code == 2 and "backend could not start" in echo.text
    assert "invalid plan" not in echo.text


def test_corpus_invalid_yaml_frontmatter_still_validates(shared_dir: Path) -> None:
    """Frontmatter that is invalid YAML but still `key:` lines (5 corpus plans) stays a warning."""
    from plan_parser import parse_plan

    loose = []
    for path in sorted((shared_dir / "corpus" / "plans").glob("*.md")):
        plan = parse_plan(path)
        if not plan.frontmatter_valid:
            loose.append(path.name)
            assert any(d.code == "W-FM-INVALID" for d in plan.warnings), path.name
            assert not [d for d in plan.errors if d.code.startswith("E-FM")], path.name
            assert plan.frontmatter.get("status"), path.name  # the loose scan still reads keys
    assert len(loose) == 5, loose


def test_cli_run_on_bad_input_needs_no_server(repo: Path, tmp_path: Path) -> None:
    """`plan-executor run` as a user types it: the only port it could use for a server is taken,
    so reaching the backend would print a backend error instead of the validation report."""
    case = next(case for case in CASES if case.name == "owner-without-definition")
    path = _write(repo, case)
    before = _snapshot(path)
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    port = squatter.getsockname()[1]
    with StandinMessagesAPI(responder=lambda body: text_turn("done"), auto_summary=False) as api:
        env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
        env.update(
            PLAN_EXECUTOR_HOME=str(tmp_path / "home"),
            PLAN_EXECUTOR_PORT=str(port),
            ANTHROPIC_BASE_URL=api.base_url,
            ANTHROPIC_API_KEY="stand-in-test-key",
        )
        try:
            result = run_command(
                [sys.executable, "-m", "cli.app", "run", str(path), "--repo", str(repo)]
                + ["--backend", "server", "--no-live"],
                cwd=Path(__file__).resolve().parents[2],
                env=env,
                timeout_s=120,
            )
        finally:
            squatter.close()
        requests = list(api.message_requests)
    assert result.exit_code == 2, result.output
    assert "error: invalid plan:" in result.output
    assert "backend" not in result.output
    _assert_clear(result.output, path, case)
    assert requests == []
    assert _snapshot(path) == before


def test_default_gate_programs_are_the_gates_own(tmp_path: Path) -> None:
    from plan_parser.gate_commands import DEFAULT_GATE_PROGRAMS
    from tasks.gates.config import load_gate_config

    assert load_gate_config(tmp_path).allowed_programs == list(DEFAULT_GATE_PROGRAMS)


def test_repository_gate_config_decides_which_programs_a_blast_radius_may_use(repo: Path) -> None:
    case = next(case for case in CASES if case.name == "blast-radius-not-a-gate-program")
    path = _write(repo, case)
    (repo / ".ai" / "plan-executor.toml").write_text('allowed_programs = ["cargo", "python"]\n')
    assert run_cli("validate", str(path), "--repo", str(repo)).returncode == 0
    # Without the repository the default programs apply: python is not one of them.
    assert run_cli("validate", str(path)).returncode == 2


@pytest.mark.parametrize(
    "radius",
    [
        "Manual testing only",
        "Documentation only - no code tests needed, but verify files exist",
        "None - documentation only",
        "N/A",
    ],
)
def test_explicit_no_tests_stays_a_warning(radius: str, repo: Path) -> None:
    path = repo / ".ai" / "plans" / PLAN_NAME
    text = plan_text(phase_block("1", "Alpha")).replace("`cargo test -p demo`", radius)
    path.write_text(text)
    result = run_cli("validate", str(path), "--repo", str(repo))
    assert result.returncode == 0, result.stdout
    line = _line_of("**Blast Radius:**")(text.encode())
    assert f"{path}:{line}: warning W-BLAST-NONRUNNABLE phase 1 [blast_radius]" in result.stdout


@pytest.mark.parametrize(
    ("radius", "valid"),
    [
        ("`cargo test -p a && grep -q halve src/lib.rs`", True),
        ("`cargo test -p a` + `just test`", True),
        ("link::detection", True),
        ("`cargo test | tee log`", False),
        ("`cargo publish`", False),
        ("`rm -rf target && cargo test`", False),
    ],
)
def test_blast_radius_commands_follow_the_gate_rule(radius: str, valid: bool, repo: Path) -> None:
    from flows.execute_plan import PlanInputError, check_plan

    path = repo / ".ai" / "plans" / PLAN_NAME
    path.write_text(plan_text(phase_block("1", "Alpha")).replace("`cargo test -p demo`", radius))
    try:
        check_plan(path, repo, include_optional=False)
    except PlanInputError as exc:
        assert not valid, str(exc)
        assert "[blast_radius]" in str(exc)
    else:
        assert valid
