"""A static inventory of pytest tests and lint suppressions, read with :mod:`ast` and
:mod:`tokenize` (the user's code is never imported or run).

Tests are collected as pytest does by default: files `test_*.py` / `*_test.py` (or the
`python_files` of `[tool.pytest.ini_options]`), functions `test*` at module level and in classes
`Test*` (without an `__init__`) or `unittest.TestCase` subclasses, nested classes included. A
`@pytest.mark.parametrize` with literal values gives one key per case, named as pytest names it
(`tests/test_ops.py::test_mul[2-3-6]`); values it cannot read give one `[*]` key.

A test counts as skipped (the inventory's `True`) when a skip, skipif or xfail mark applies to it
(on the function, its class, the module's `pytestmark` or its `pytest.param`), when its body (or
the module's top) calls `pytest.skip` / `pytest.xfail` / `self.skipTest`, or under
`unittest.skip*` / `expectedFailure`. A `skipif` counts whatever its condition: `skipif(sys.platform != "x")` skips
as surely as `skipif(True)`, and only running the code could tell them apart.

Suppressions: `# noqa`, `# type: ignore`, `# pylint: disable`, `# ruff: noqa` comments.
"""

from __future__ import annotations

import ast
import fnmatch
import io
import itertools
import re
import tokenize
import tomllib
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from pydantic import BaseModel

SKIP_MARKS = frozenset({"skip", "skipif", "xfail", "skipIf", "skipUnless", "expectedFailure"})
SKIP_CALLS = frozenset({("pytest", "skip"), ("pytest", "xfail"), ("self", "skipTest")})
DEFAULT_FILES = ("test_*.py", "*_test.py")
DEFAULT_CLASSES = ("Test",)
DEFAULT_FUNCTIONS = ("test",)
UNKNOWN_CASES = "*"

_SUPPRESSION = re.compile(
    r"#\s*(?:noqa\b(?::\s*[\w, ]+)?|type:\s*ignore\b(?:\[[^\]]*\])?|pylint:\s*disable\S*"
    r"|ruff:\s*noqa\b(?::\s*[\w, ]+)?)",
    re.I,
)
_WHITESPACE = re.compile(r"\s+")


class PytestNaming(BaseModel):
    """Which files, classes and functions pytest collects (its `python_*` settings)."""

    files: tuple[str, ...] = DEFAULT_FILES
    classes: tuple[str, ...] = DEFAULT_CLASSES
    functions: tuple[str, ...] = DEFAULT_FUNCTIONS

    def is_test_file(self, path: str) -> bool:
        return any(fnmatch.fnmatchcase(PurePosixPath(path).name, p) for p in self.files)


def _patterns(value: object, default: tuple[str, ...]) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(value.split()) or default
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value) or default
    return default


def pytest_naming(pyproject: str | None) -> PytestNaming:
    """The naming rules of `[tool.pytest.ini_options]` in ``pyproject`` (pytest's defaults when
    absent or unreadable)."""
    try:
        table = tomllib.loads(pyproject or "").get("tool", {}).get("pytest", {})
    except tomllib.TOMLDecodeError:
        return PytestNaming()
    options = table.get("ini_options", {}) if isinstance(table, dict) else {}
    if not isinstance(options, dict):
        return PytestNaming()
    return PytestNaming(
        files=_patterns(options.get("python_files"), DEFAULT_FILES),
        classes=_patterns(options.get("python_classes"), DEFAULT_CLASSES),
        functions=_patterns(options.get("python_functions"), DEFAULT_FUNCTIONS),
    )


def _matches(name: str, patterns: Iterable[str]) -> bool:
    """pytest's rule: a pattern with glob characters is a glob, otherwise a prefix."""
    return any(
        fnmatch.fnmatchcase(name, p) if any(c in p for c in "*?[") else name.startswith(p)
        for p in patterns
    )


# --- marks ---------------------------------------------------------------------------------------


def _last_name(node: ast.expr) -> str:
    """`pytest.mark.skipif(...)` → `skipif`; `skip` → `skip`; anything else → ''."""
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    return ""


def _is_skip_mark(node: ast.expr) -> bool:
    return _last_name(node) in SKIP_MARKS


def _marks(value: ast.expr | None) -> list[ast.expr]:
    """The marks of a `pytestmark = ...` or `marks=...` value (one mark or a list of them)."""
    if value is None:
        return []
    if isinstance(value, ast.List | ast.Tuple):
        return list(value.elts)
    return [value]


def _module_skipped(tree: ast.Module) -> bool:
    """`pytestmark` holds a skip mark, or the module calls `pytest.skip(...)` at its top."""
    for node in tree.body:
        if isinstance(node, ast.Expr) and _skip_call(node.value):
            return True
        targets = node.targets if isinstance(node, ast.Assign) else []
        if isinstance(node, ast.AnnAssign):
            targets = [node.target]
        value = node.value if isinstance(node, ast.Assign | ast.AnnAssign) else None
        is_marks = any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in targets)
        if is_marks and any(_is_skip_mark(mark) for mark in _marks(value)):
            return True
    return False


def _skip_call(node: ast.AST) -> bool:
    """`pytest.skip(...)`, `pytest.xfail(...)`, `self.skipTest(...)`; not any `.skip()` (a
    parser's, a reader's)."""
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
        return False
    owner = node.func.value
    if not isinstance(owner, ast.Name):
        return False
    return (owner.id, node.func.attr) in SKIP_CALLS


def _body_skips(function: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """The test's own body skips it (or marks it an expected failure)."""
    return any(_skip_call(node) for statement in function.body for node in ast.walk(statement))


# --- parametrize -----------------------------------------------------------------------------------


def _literal_id(node: ast.expr, argname: str, index: int) -> str:
    """pytest's id for one argument value: the literal itself for strings, numbers, booleans
    and None, `<argname><index>` for anything else."""
    if isinstance(node, ast.Constant) and (
        node.value is None or isinstance(node.value, str | int | float | bool | complex)
    ):
        value = node.value
        if isinstance(value, str):
            return value.encode("unicode_escape").decode("ascii")
        return str(value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = node.operand
        if isinstance(inner, ast.Constant) and isinstance(inner.value, int | float):
            return str(-inner.value)
    return f"{argname}{index}"


def _argnames(node: ast.expr) -> list[str] | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [name.strip() for name in node.value.split(",") if name.strip()]
    if isinstance(node, ast.List | ast.Tuple) and all(
        isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.elts
    ):
        return [e.value for e in node.elts]  # type: ignore[attr-defined]
    return None


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _case(
    value: ast.expr, names: list[str], index: int, given_id: str | None
) -> tuple[str, bool] | None:
    """(id, skipped) of one parameter set; None when it cannot be read."""
    skipped = False
    if isinstance(value, ast.Call) and _last_name(value) == "param":
        skipped = any(_is_skip_mark(mark) for mark in _marks(_keyword(value, "marks")))
        param_id = _keyword(value, "id")
        if given_id is None and isinstance(param_id, ast.Constant):
            given_id = str(param_id.value)
        values = list(value.args)
    elif len(names) == 1:
        values = [value]
    elif isinstance(value, ast.Tuple | ast.List):
        values = list(value.elts)
    else:
        return None
    if len(values) != len(names) or any(isinstance(v, ast.Starred) for v in values):
        return None
    if given_id is None:
        given_id = "-".join(_literal_id(v, n, index) for v, n in zip(values, names, strict=True))
    return given_id, skipped


def _parametrize_cases(call: ast.Call) -> list[tuple[str, bool]]:
    """The (id, skipped) of each case of one `@pytest.mark.parametrize(...)`."""
    names_node = call.args[0] if call.args else _keyword(call, "argnames")
    values_node = call.args[1] if len(call.args) > 1 else _keyword(call, "argvalues")
    names = _argnames(names_node) if names_node is not None else None
    if names is None or not isinstance(values_node, ast.List | ast.Tuple):
        return [(UNKNOWN_CASES, False)]
    if not values_node.elts:  # pytest skips a test whose parameter set is empty
        return [("NOTSET", True)]
    ids_node = _keyword(call, "ids")
    given: list[str | None] = [None] * len(values_node.elts)
    if isinstance(ids_node, ast.List | ast.Tuple) and len(ids_node.elts) == len(given):
        given = [
            str(e.value) if isinstance(e, ast.Constant) and e.value is not None else None
            for e in ids_node.elts
        ]
    cases: list[tuple[str, bool]] = []
    for index, value in enumerate(values_node.elts):
        case = _case(value, names, index, given[index])
        if case is None:
            return [(UNKNOWN_CASES, False)]
        cases.append(case)
    return cases


def _case_ids(decorators: list[ast.expr]) -> list[tuple[str, bool]]:
    """The ids of a function's cases under its `parametrize` decorators ([('', False)] for an
    unparametrised test); stacked ones combine nearest-first, as pytest joins them."""
    combined: list[tuple[str, bool]] = [("", False)]
    for decorator in reversed(decorators):
        if not (isinstance(decorator, ast.Call) and _last_name(decorator) == "parametrize"):
            continue
        cases = _parametrize_cases(decorator)
        combined = [
            (f"{a}-{b}" if a else b, skip_a or skip_b)
            for (a, skip_a), (b, skip_b) in itertools.product(combined, cases)
        ]
    return combined


# --- collection ------------------------------------------------------------------------------------


def _is_test_class(node: ast.ClassDef, naming: PytestNaming) -> bool:
    is_case = any(_last_name(base) == "TestCase" for base in node.bases)
    if is_case:
        return True
    if not _matches(node.name, naming.classes):
        return False
    # pytest does not collect a class with an `__init__` (it warns instead).
    return not any(
        isinstance(item, ast.FunctionDef) and item.name == "__init__" for item in node.body
    )


def _collect(
    body: list[ast.stmt],
    prefix: str,
    naming: PytestNaming,
    outer: list[ast.expr],
    skipped: bool,
    found: dict[str, bool],
) -> None:
    for node in body:
        if isinstance(node, ast.ClassDef) and _is_test_class(node, naming):
            class_skipped = skipped or any(_is_skip_mark(d) for d in node.decorator_list)
            # Class-level parametrize applies to every method, after the method's own.
            _collect(
                node.body,
                f"{prefix}::{node.name}",
                naming,
                [*node.decorator_list, *outer],
                class_skipped,
                found,
            )
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and _matches(
            node.name, naming.functions
        ):
            own = any(_is_skip_mark(d) for d in node.decorator_list) or _body_skips(node)
            decorators = [*outer, *node.decorator_list]
            for case_id, case_skipped in _case_ids(decorators):
                key = f"{prefix}::{node.name}" + (f"[{case_id}]" if case_id else "")
                # A later definition of the same name replaces the earlier one, as in pytest.
                found[key] = skipped or own or case_skipped


def python_tests(path: str, text: str, naming: PytestNaming | None = None) -> dict[str, bool]:
    """`path::[Class::]name[id]` → skipped, for the tests pytest would collect in ``text``;
    empty when it does not parse (the test run reports the syntax error)."""
    try:
        tree = ast.parse(text, filename=path)
    except (SyntaxError, ValueError):
        return {}
    found: dict[str, bool] = {}
    _collect(tree.body, path, naming or PytestNaming(), [], _module_skipped(tree), found)
    return found


def python_suppressions(path: str, text: str) -> dict[str, int]:
    """`path: # noqa: E501` → how many times that suppression comment appears in ``text``."""
    counts: dict[str, int] = {}
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, SyntaxError):
        return counts
    for token in tokens:
        if token.type != tokenize.COMMENT:
            continue
        for match in _SUPPRESSION.finditer(token.string):
            key = f"{path}: {_WHITESPACE.sub(' ', match.group(0).strip())}"
            counts[key] = counts.get(key, 0) + 1
    return counts


def read_naming(repo: Path) -> PytestNaming:
    target = Path(repo) / "pyproject.toml"
    text = target.read_text(encoding="utf-8", errors="replace") if target.is_file() else None
    return pytest_naming(text)
