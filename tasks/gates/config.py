"""Which commands the gates run in a repository: detected, then overridden by the repository.

Detection: what the repository is decides the defaults. A `Cargo.toml` at the top gets cargo's
tools (`cargo test`, `cargo build`, clippy, `cargo fmt`, `cargo test --doc`); without one, a
`pyproject.toml` (or `setup.py` / `setup.cfg`) gets `pytest -q`, `pytest -q -k` for filters,
`ruff check .`, `ruff format --check .`, `python -m compileall -q src` when there is a `src/`
and no doc tests; anything else gets no command. A `justfile` with a `test` (`build`) recipe,
as `just --dump` lists them, gives `just test` (`just build`) in either case. No cargo command
runs where there is no Cargo.toml.

Overrides (later wins): `[tool.plan-executor]` in the repository's `pyproject.toml`, then the top
level of `.ai/plan-executor.toml`. Keys: `test`, `build`, `lint`, `fmt`, `doc_test`, `test_filter`
(a string, split like a shell would, or a list of arguments), `timeout_s`, `allowed_programs`
(a list), `allowed_subcommands` (a table: program → list), `required_tools` (a list). Other keys
are ignored: those files also hold other settings.

A run reads its gate configuration once, at pre-flight, from the committed `HEAD`
(:func:`load_committed_gate_config`), never from the working tree: agents write the working tree,
and a gate that re-read it would run whatever an agent put there. Whether gate commands run in
the sandbox and with the network is the run's decision (:class:`GateRunSettings`); `sandbox` and
`sandbox_network` in a repository file are ignored with a warning.
"""

from __future__ import annotations

import json
import logging
import re
import shlex
import tempfile
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from plan_parser.gate_commands import DEFAULT_GATE_PROGRAMS, program_refusal
from tasks import shell

JUSTFILE_NAMES = ("justfile", "Justfile", ".justfile", "JUSTFILE")
COMMAND_KEYS = ("test", "build", "lint", "fmt", "doc_test", "test_filter")
RUN_ONLY_KEYS = ("sandbox", "sandbox_network")
"""Keys a repository file may not set: an agent can write those files, and a committed one came
from whoever could push; only the person starting the run decides how far gate commands reach."""
PYPROJECT_TABLE = "pyproject.toml [tool.plan-executor]"
OWN_FILE = ".ai/plan-executor.toml"

_log = logging.getLogger(__name__)

# What an allowed program may be asked to do by plan text: `cargo publish`, `npm install` or
# `go get` would change the world outside the working tree. Programs not listed here (just, make,
# pytest) run whatever recipe or target the plan names.
DEFAULT_ALLOWED_SUBCOMMANDS = {
    "cargo": [
        "test",
        "build",
        "check",
        "clippy",
        "fmt",
        "nextest",
        "bench",
        "doc",
        "run",
        "tree",
        "metadata",
    ],
    "npm": ["test", "run"],
    "pnpm": ["test", "run"],
    "yarn": ["test", "run"],
    "go": ["test", "build", "vet"],
}


class GateConfig(BaseModel):
    """Argument vectors (never shell strings) for each gate, and where they came from."""

    test: list[str]
    build: list[str]
    lint: list[str]
    fmt: list[str]
    doc_test: list[str]
    test_filter: list[str]
    """The scoped test command; a blast radius given as a bare filter (`audio::`) is appended."""
    timeout_s: float = 900
    source: str
    """Where the commands came from: `detected justfile`, `cargo default`, `python default`,
    `pyproject.toml
    [tool.plan-executor]`, `.ai/plan-executor.toml` (joined with ` + ` when several applied)."""
    allowed_programs: list[str] = Field(default_factory=lambda: list(DEFAULT_GATE_PROGRAMS))
    """Programs a plan's command may start with (the parser's default list unless overridden)."""
    log_dir: str | None = None
    """Where to save each gate command's full output (`<sha256[:16]>.log`); None keeps only the
    digest and tail in the ledger. Set by the caller (e.g. the run's `.ai/logs/` folder)."""
    allowed_subcommands: dict[str, list[str]] = Field(
        default_factory=lambda: {k: list(v) for k, v in DEFAULT_ALLOWED_SUBCOMMANDS.items()}
    )
    """For the programs listed: the first non-option argument a plan's command may use."""
    required_tools: list[str] = Field(default_factory=list)
    """Programs that must be on PATH; empty means: the first word of every gate command, and git."""
    sandbox: bool = True
    """Run gate commands inside the agents' bubblewrap sandbox: `cargo test` runs the agents'
    code (tests, build scripts), which must not reach the host beyond the repository. Without a
    usable bubblewrap they run unsandboxed (the agents themselves were refused then, unless the
    run allowed unsandboxed commands). Set by the run only (:meth:`for_run`), never by a file."""
    sandbox_network: bool = True
    """Network inside sandboxed gate commands; :meth:`for_run` ANDs it with the run's setting."""
    target_dir: str | None = None
    """cargo's target directory for these gates: a phase's worktree has its own (a target shared
    by parallel worktrees lets cargo call a phase's crate fresh from its sibling's build, whose
    test binary then runs in its place). None: CARGO_TARGET_DIR, else cargo's default."""
    warnings: list[str] = Field(default_factory=list)
    """What the loader ignored (run-only keys in a repository file); pre-flight reports them."""

    def refusal(self, argv: list[str]) -> str | None:
        """Why plan text may not run ``argv`` (None when it may)."""
        if (refused := program_refusal(argv, self.allowed_programs)) is not None:
            return refused
        program = argv[0]
        subcommands = self.allowed_subcommands.get(program)
        if subcommands is None:
            return None
        first = next((arg for arg in argv[1:] if not arg.startswith("-")), None)
        if first is None or first.startswith("+") or first in subcommands:
            return None
        return (
            f"`{program} {first}` is not an allowed subcommand (allowed: {', '.join(subcommands)})"
        )

    def for_run(self, run: GateRunSettings) -> GateConfig:
        """This configuration under the run's own settings: they can only narrow what it allows."""
        return self.model_copy(
            update={
                "sandbox": run.sandbox,
                "sandbox_network": run.network and self.sandbox_network,
            }
        )

    def tools(self) -> list[str]:
        if self.required_tools:
            return list(self.required_tools)
        programs = ["git"]
        for argv in (self.test, self.build, self.lint, self.fmt, self.doc_test, self.test_filter):
            if argv and argv[0] not in programs:
                programs.append(argv[0])
        return programs


class GateRunSettings(BaseModel):
    """What the run (its CLI options or flow parameters), not the repository, decides about
    gate commands."""

    sandbox: bool = True
    """Run gate commands in bubblewrap (`--unsandboxed-gates` turns it off: unsafe)."""
    network: bool = True
    """Network inside sandboxed gate commands (`--no-network` turns it off, as for agents)."""


def justfile_path(repo: Path) -> Path | None:
    for name in JUSTFILE_NAMES:
        candidate = repo / name
        if candidate.is_file():
            return candidate
    return None


JUST_DUMP_TIMEOUT_S = 30


def justfile_recipes(path: Path) -> set[str]:
    """Recipe names of a justfile as `just` itself reads them.

    `just --dump --dump-format json` parses the whole grammar (`build *args="":`, attributes,
    imports) and evaluates nothing: no backtick or recipe runs. A justfile `just` cannot read,
    or no `just` at all, gives no recipes, and the gates fall back to cargo's commands.
    """
    result = shell.run(
        ["just", "--justfile", str(path), "--working-directory", str(path.parent),
         "--dump", "--dump-format", "json"],
        cwd=path.parent,
        timeout_s=JUST_DUMP_TIMEOUT_S,
        output_cap=None,
    )  # fmt: skip
    if not result.ok:
        return set()
    dump = _json_object(result.output)
    recipes = dump.get("recipes") if dump else None
    return set(recipes) if isinstance(recipes, dict) else set()


_RECIPE_HEADER = re.compile(r"^@?(?P<name>[A-Za-z_][A-Za-z0-9_-]*)(?:\s[^:]*)?:(?!=)")


def justfile_recipe_names(text: str) -> set[str]:
    """Recipe names of a justfile read as text, without `just`: a line at column 0 of the form
    `name args...:` (not `name := value`). Coarser than `just --dump` (no imports, no modules,
    an attribute line is skipped); the dry run uses it because it runs no program of the
    repository's toolchain, and says so."""
    return {
        match["name"]
        for line in text.splitlines()
        if (match := _RECIPE_HEADER.match(line)) and not line.startswith(("set ", "export "))
    }


def _json_object(output: str) -> dict[str, Any] | None:
    """The JSON object in ``output`` (stdout and stderr are merged: skip any warning before it)."""
    start = output.find("{")
    if start < 0:
        return None
    try:
        value, _ = json.JSONDecoder().raw_decode(output, start)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


RUST_MARKERS = frozenset({"Cargo.toml"})
PYTHON_MARKERS = frozenset({"pyproject.toml", "setup.py", "setup.cfg"})


def repo_kind(top_level: set[str]) -> str:
    """`rust`, `python` or `other`, from the names at the repository's top level: a
    `Cargo.toml` makes it Rust (a PyO3 crate with a pyproject too), else a `pyproject.toml`,
    `setup.py` or `setup.cfg` makes it Python."""
    if top_level & RUST_MARKERS:
        return "rust"
    if top_level & PYTHON_MARKERS:
        return "python"
    return "other"


def default_config(repo: Path) -> GateConfig:
    repo = Path(repo)
    top_level = {path.name for path in repo.iterdir()} if repo.is_dir() else set()
    has_src = (repo / "src").is_dir()
    justfile = justfile_path(repo)
    if justfile is None:
        return _defaults(set(), None, repo_kind(top_level), has_src=has_src)
    return _defaults(
        justfile_recipes(justfile), justfile.name, repo_kind(top_level), has_src=has_src
    )


def _language_defaults(kind: str, *, has_src: bool) -> dict[str, list[str]]:
    """The commands a repository of this kind gets unless a justfile or its configuration
    says otherwise. No cargo command where there is no Cargo.toml; an empty list is no
    command (the gate is recorded as not run)."""
    if kind == "rust":
        return {
            "test": ["cargo", "test"],
            "build": ["cargo", "build"],
            "lint": ["cargo", "clippy", "--workspace", "--", "-D", "warnings"],
            "fmt": ["cargo", "fmt", "--check", "--all"],
            "doc_test": ["cargo", "test", "--doc"],
            "test_filter": ["cargo", "test"],
        }
    if kind == "python":
        return {
            "test": ["pytest", "-q"],
            # Byte-compiling the package finds syntax errors without running (or installing)
            # it; a layout without `src/` has no obvious package folder, so no build.
            "build": ["python", "-m", "compileall", "-q", "src"] if has_src else [],
            "lint": ["ruff", "check", "."],
            "fmt": ["ruff", "format", "--check", "."],
            "doc_test": [],
            "test_filter": ["pytest", "-q", "-k"],
        }
    return {key: [] for key in COMMAND_KEYS}


def _defaults(
    recipes: set[str], justfile_name: str | None, kind: str = "rust", *, has_src: bool = False
) -> GateConfig:
    commands = _language_defaults(kind, has_src=has_src)
    source = {"rust": "cargo default", "python": "python default"}.get(
        kind, "no default (no Cargo.toml or pyproject.toml)"
    )
    if "test" in recipes:
        commands["test"] = ["just", "test"]
    if "build" in recipes:
        commands["build"] = ["just", "build"]
    if justfile_name and {"test", "build"} & recipes:
        source = f"detected {justfile_name}"
    return GateConfig.model_validate({**commands, "source": source})


def _as_argv(value: Any, key: str, where: str) -> list[str]:
    if isinstance(value, str):
        return shlex.split(value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ValueError(f"{where}: `{key}` must be a string or a list of strings, not {value!r}")


def _apply(config: GateConfig, table: dict[str, Any], where: str) -> GateConfig:
    update: dict[str, Any] = {}
    for key in COMMAND_KEYS:
        if key in table:
            update[key] = _as_argv(table[key], key, where)
    if "timeout_s" in table:
        update["timeout_s"] = float(table["timeout_s"])
    for key in ("allowed_programs", "required_tools"):
        if key in table:
            update[key] = _as_argv(table[key], key, where)
    ignored = [key for key in RUN_ONLY_KEYS if key in table]
    if ignored:
        warning = (
            f"{where}: {', '.join(f'`{key}`' for key in ignored)} ignored: whether gate "
            "commands run sandboxed and with the network is the run's decision "
            "(--no-network, --unsandboxed-gates), not the repository's"
        )
        _log.warning("%s", warning)
        config = config.model_copy(update={"warnings": [*config.warnings, warning]})
    if "allowed_subcommands" in table:
        extra = table["allowed_subcommands"]
        if not isinstance(extra, dict):
            raise ValueError(f"{where}: `allowed_subcommands` must be a table of lists")
        merged = dict(config.allowed_subcommands)
        merged.update({k: _as_argv(v, f"allowed_subcommands.{k}", where) for k, v in extra.items()})
        update["allowed_subcommands"] = merged
    if not update:
        return config
    update["source"] = f"{config.source} + {where}"
    return config.model_copy(update=update)


def load_gate_config(repo: Path) -> GateConfig:
    """The gate commands for ``repo`` as its working tree says: detection, then pyproject, then
    `.ai/plan-executor.toml`. For checking plan text (`validate`); a run uses
    :func:`load_committed_gate_config`."""
    repo = Path(repo)
    return _overridden(
        default_config(repo),
        _read_text(repo / "pyproject.toml"),
        _read_text(repo / ".ai" / "plan-executor.toml"),
    )


def load_committed_gate_config(
    repo: Path, ref: str = "HEAD", *, run_just: bool = True
) -> GateConfig:
    """The gate commands as the commit ``ref`` says, whatever the working tree holds.

    The justfile is read from the commit too: `just --dump` gets a temporary copy (its recipes
    decide `just test` over `cargo test`). A repository without commits has no files here, so
    it gets no command at all. An `import` in the justfile is not followed from the copy.
    ``run_just=False`` (the dry run: no program of the repository's toolchain runs) reads the
    recipe names with :func:`justfile_recipe_names` instead, and writes no temporary copy.
    """
    repo = Path(repo)
    recipes: set[str] = set()
    justfile_name: str | None = None
    for name in JUSTFILE_NAMES:
        text = committed_file(repo, name, ref)
        if text is None:
            continue
        justfile_name = name
        if not run_just:
            recipes = justfile_recipe_names(text)
            break
        with tempfile.TemporaryDirectory(prefix="pe-justfile-") as scratch:
            copy = Path(scratch) / name
            copy.write_text(text, encoding="utf-8")
            recipes = justfile_recipes(copy)
        break
    top_level = committed_top_level(repo, ref)
    config = _overridden(
        _defaults(recipes, justfile_name, repo_kind(top_level), has_src="src" in top_level),
        committed_file(repo, "pyproject.toml", ref),
        committed_file(repo, OWN_FILE, ref),
    )
    return config.model_copy(update={"source": f"{config.source} (at {ref})"})


def committed_top_level(repo: Path, ref: str = "HEAD") -> set[str]:
    """The names at the top level of commit ``ref`` (empty without such a commit)."""
    result = shell.run(
        ["git", "ls-tree", "--name-only", "-z", ref],
        cwd=repo,
        timeout_s=JUST_DUMP_TIMEOUT_S,
        output_cap=None,
    )
    return {name for name in result.output.split("\0") if name} if result.ok else set()


def committed_file(repo: Path, path: str, ref: str = "HEAD") -> str | None:
    """The text of ``path`` in commit ``ref``; None when absent (or no such commit)."""
    result = shell.run(
        ["git", "show", f"{ref}:{path}"], cwd=repo, timeout_s=JUST_DUMP_TIMEOUT_S, output_cap=None
    )
    # shell.run merges stderr into the output: only a successful show is the file.
    return result.output if result.ok else None


def _read_text(path: Path) -> str | None:
    return path.read_text(encoding="utf-8") if path.is_file() else None


def _overridden(config: GateConfig, pyproject: str | None, own: str | None) -> GateConfig:
    if pyproject is not None:
        table = tomllib.loads(pyproject).get("tool", {}).get("plan-executor", {})
        if isinstance(table, dict):
            config = _apply(config, table, PYPROJECT_TABLE)
    if own is not None:
        config = _apply(config, tomllib.loads(own), OWN_FILE)
    return config
