"""The edits a phase may make beyond its declared files, because declaring them implies them.

A plan says "Files to create: `src/alpha.rs`"; an honest developer then also writes `pub mod
alpha;` in `src/lib.rs`, adds the dependency the plan names to the crate's `Cargo.toml`, lets
cargo update `Cargo.lock` and runs `cargo fmt`. None of those files is declared, and blocking the
phase for them blocks every real plan. So the scope contract accepts exactly these, and records
them in the ledger as `wiring` (never hidden):

- in the parent module of a declared new module file (`lib.rs`, `main.rs`, `mod.rs`,
  `<parent>.rs`): lines that declare (`mod alpha;`, `pub mod alpha;`) or re-export
  (`pub use alpha::Thing;`) that module, and lines that only moved;
- in the `Cargo.toml` of a crate that owns a declared file: dependency entries the phase's text
  names, nothing else in the manifest;
- lock files (`Cargo.lock`, ...);
- changes a formatter makes: the file equals its old content up to whitespace, or is what
  `rustfmt` makes of the old content.

Anything else outside the declared files (another crate's sources, an undeclared module, CI or
gate configuration) is still out of scope.
"""

from __future__ import annotations

import re
import tomllib
from collections import Counter
from pathlib import Path, PurePosixPath
from typing import Any

from tasks import shell
from tasks.gates.repo_state import LOCKFILES, show

_MOD_LINE = re.compile(r"^(?:pub(?:\([^)]*\))?)?mod(?P<name>\w+);$")
_USE_LINE = re.compile(r"^(?:pub(?:\([^)]*\))?)?use(?:self::|crate::)?(?P<name>\w+)(?:::.*)?;$")
_DEPENDENCY_TABLES = ("dependencies", "dev-dependencies", "build-dependencies")
RUSTFMT_TIMEOUT_S = 60


def module_name(path: str) -> tuple[str, str] | None:
    """(directory that declares it, module name) for a Rust module file, else None.

    `src/alpha.rs` → (`src`, `alpha`); `src/net/mod.rs` → (`src`, `net`); `src/lib.rs` → None.
    """
    pure = PurePosixPath(path)
    if pure.suffix != ".rs" or pure.name in ("lib.rs", "main.rs", "build.rs"):
        return None
    if pure.name == "mod.rs":
        return (str(pure.parent.parent), pure.parent.name) if pure.parent.name else None
    return str(pure.parent), pure.stem


def parent_modules(directory: str) -> list[str]:
    """The files that may declare a module living in ``directory``."""
    folder = PurePosixPath(directory)
    candidates = [folder / "lib.rs", folder / "main.rs", folder / "mod.rs"]
    if folder.name and str(folder.parent) != ".":
        candidates.append(folder.parent / f"{folder.name}.rs")
    elif folder.name:
        candidates.append(PurePosixPath(f"{folder.name}.rs"))
    return [str(c) for c in candidates]


def new_modules(declared_new: list[str]) -> dict[str, set[str]]:
    """Parent file → names of the declared new modules it may declare."""
    parents: dict[str, set[str]] = {}
    for path in declared_new:
        found = module_name(path)
        if found is None:
            continue
        directory, name = found
        for parent in parent_modules(directory):
            parents.setdefault(parent, set()).add(name)
    return parents


def owning_manifests(repo: Path, declared: list[str]) -> set[str]:
    """The nearest `Cargo.toml` above each declared file (its crate's manifest)."""
    manifests: set[str] = set()
    for path in declared:
        folder = PurePosixPath(path).parent
        while True:
            candidate = folder / "Cargo.toml"
            if (repo / str(candidate)).is_file():
                manifests.add(str(candidate) if str(folder) != "." else "Cargo.toml")
                break
            if str(folder) in (".", ""):
                break
            folder = folder.parent
    return manifests


def _base_text(repo: Path, base: str, path: str) -> str | None:
    if not base:
        return None
    return show(repo, f"{base}:{path}")


def _current_text(repo: Path, path: str) -> str | None:
    try:
        return (repo / path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _squeeze(text: str) -> str:
    return re.sub(r"\s+", "", text)


def _changed_lines(old: str, new: str) -> tuple[list[str], list[str]]:
    """Lines (whitespace removed) only in ``old`` and only in ``new``: a line that moved, or
    whose spacing alone changed, is in neither."""
    before = Counter(s for line in old.splitlines() if (s := _squeeze(line)))
    after = Counter(s for line in new.splitlines() if (s := _squeeze(line)))
    return list((before - after).elements()), list((after - before).elements())


def _is_comment(line: str) -> bool:
    return line.startswith("//")


def module_wiring(old: str, new: str, names: set[str]) -> str | None:
    """Why the change from ``old`` to ``new`` only registers the modules ``names``, or None."""
    removed, added = _changed_lines(old, new)
    if not added or any(not _is_comment(line) for line in removed):
        return None
    registered: list[str] = []
    for line in added:
        if _is_comment(line):
            continue
        match = _MOD_LINE.match(line) or _USE_LINE.match(line)
        if match is None or match["name"] not in names:
            return None
        registered.append(match["name"])
    shown = ", ".join(sorted(set(registered)))
    return f"registers the declared module(s) {shown}" if registered else None


def _dependency_tables(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """`table name` → its entries, for every dependency table of a manifest."""
    tables: dict[str, dict[str, Any]] = {}
    for name in _DEPENDENCY_TABLES:
        if isinstance(manifest.get(name), dict):
            tables[name] = manifest[name]
    workspace = manifest.get("workspace")
    if isinstance(workspace, dict) and isinstance(workspace.get("dependencies"), dict):
        tables["workspace.dependencies"] = workspace["dependencies"]
    for target, spec in (manifest.get("target") or {}).items():
        if not isinstance(spec, dict):
            continue
        for name in _DEPENDENCY_TABLES:
            if isinstance(spec.get(name), dict):
                tables[f"target.{target}.{name}"] = spec[name]
    return tables


def _without_dependencies(manifest: dict[str, Any]) -> dict[str, Any]:
    rest = {k: v for k, v in manifest.items() if k not in _DEPENDENCY_TABLES and k != "target"}
    if isinstance(rest.get("workspace"), dict):
        rest["workspace"] = {k: v for k, v in rest["workspace"].items() if k != "dependencies"}
    targets = {
        target: {k: v for k, v in spec.items() if k not in _DEPENDENCY_TABLES}
        for target, spec in (manifest.get("target") or {}).items()
        if isinstance(spec, dict)
    }
    if any(targets.values()):
        rest["target"] = targets
    return rest


def _named_in(text: str, crate: str) -> bool:
    words = {w.replace("-", "_").lower() for w in re.findall(r"[A-Za-z0-9_-]+", text)}
    return crate.replace("-", "_").lower() in words


def manifest_wiring(old: str, new: str, phase_text: str) -> str | None:
    """Why a manifest change only adds or changes dependencies the plan names, or None."""
    try:
        before, after = tomllib.loads(old), tomllib.loads(new)
    except tomllib.TOMLDecodeError:
        return None
    if _without_dependencies(before) != _without_dependencies(after):
        return None
    old_tables, new_tables = _dependency_tables(before), _dependency_tables(after)
    changed: list[str] = []
    for table in set(old_tables) | set(new_tables):
        old_deps, new_deps = old_tables.get(table, {}), new_tables.get(table, {})
        for crate in set(old_deps) | set(new_deps):
            if old_deps.get(crate) != new_deps.get(crate):
                if crate not in new_deps:  # a dependency removed is not implied by new files
                    return None
                changed.append(crate)
    if not changed:
        return None
    unnamed = [crate for crate in changed if not _named_in(phase_text, crate)]
    if unnamed:
        return None
    return f"adds dependencies the phase names: {', '.join(sorted(set(changed)))}"


def rustfmt(text: str, cwd: Path, edition: str = "2021") -> str | None:
    result = shell.run(
        ["rustfmt", "--edition", edition, "--emit", "stdout", "--quiet"],
        cwd=cwd,
        stdin=text,
        timeout_s=RUSTFMT_TIMEOUT_S,
        output_cap=None,
    )
    return result.output if result.ok else None


def formatting_only(repo: Path, path: str, old: str, new: str) -> str | None:
    if _squeeze(old) == _squeeze(new):
        return "whitespace only"
    if path.endswith(".rs"):
        folder = (repo / path).parent
        formatted = rustfmt(old, folder if folder.is_dir() else repo)
        if formatted is not None and formatted.strip() == new.strip():
            return "what rustfmt makes of the previous content"
    return None


def wiring_reason(
    repo: Path,
    base: str,
    path: str,
    *,
    declared_new: list[str],
    declared: list[str],
    phase_text: str,
) -> str | None:
    """Why the change to ``path`` (outside the declared files) is implied by them, or None.

    ``declared_new``: the declared files this phase created; ``declared``: all of them.
    """
    if PurePosixPath(path).name in LOCKFILES:
        return "lock file"
    old = _base_text(repo, base, path)
    new = _current_text(repo, path)
    if old is None or new is None:  # created or deleted: never implied
        return None
    names = new_modules(declared_new).get(path)
    if names:
        if reason := module_wiring(old, new, names):
            return reason
        # The agent also ran the formatter over the parent module: compare with that.
        formatted = rustfmt(old, repo) if path.endswith(".rs") else None
        if formatted is not None and (reason := module_wiring(formatted, new, names)):
            return f"{reason}, formatted"
    manifests = owning_manifests(repo, declared) | {"Cargo.toml"}  # and the workspace root's
    is_manifest = PurePosixPath(path).name == "Cargo.toml" and path in manifests
    if is_manifest and (reason := manifest_wiring(old, new, phase_text)):
        return reason
    return formatting_only(repo, path, old, new)
