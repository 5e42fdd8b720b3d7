"""The README's "Run it on a Prefect server" path cannot drift from the CLI: every command it
shows (code blocks and inline code run from the venv) is a real command of `plan-executor` or
`prefect` with real options, the deployment names are those of prefect.yaml, and the
`--param` names are parameters of the flow."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import click
import pytest
import typer
import yaml

from cli.app import app

CHECKOUT = Path(__file__).resolve().parents[2]
README = CHECKOUT / "README.md"
SECTION = "## Run it on a Prefect server"


def _section() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    return text[start : end if end != -1 else len(text)]


def _commands() -> list[list[str]]:
    """Each `.venv/bin/...` command of the section as arguments: the lines of its bash blocks
    (continuations joined, comments and `eval "$(...)"` unwrapped) and its inline code."""
    section = _section()
    snippets: list[str] = []
    for block in re.findall(r"```bash\n(.*?)```", section, re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        snippets += [line.split(" #")[0].strip() for line in joined.splitlines()]
    prose = re.sub(r"```.*?```", "", section, flags=re.S)
    snippets += re.findall(r"`([^`]*\.venv/bin/[^`]*)`", re.sub(r"\s*\n\s*", " ", prose))
    commands = []
    for snippet in snippets:
        snippet = re.sub(r'^eval "\$\((.*)\)"$', r"\1", snippet)
        match = re.search(r"\.venv/bin/(plan-executor|prefect)\b.*", snippet)
        if match:
            words = shlex.split(
                match.group(0).replace("<UUID>", "00000000-0000-0000-0000-000000000000")
            )
            words[0] = words[0].removeprefix(".venv/bin/")
            commands.append(words)
    return commands


def test_the_section_has_the_path_in_order() -> None:
    order = [" ".join(words[:2]) for words in _commands()]
    path = [
        "plan-executor server",
        "plan-executor env",
        "plan-executor deploy",
        "plan-executor worker",
        "plan-executor validate",
        "prefect deployment",
        "plan-executor watch",
    ]
    positions = [order.index(step) for step in path]
    assert positions == sorted(positions), order
    assert "plan-executor status" in order
    section = _section()
    assert ".claude/agents/<name>.md" in section and "validate --repo" in section
    assert "prefect server start" not in section  # the SQLite server the README calls unsuitable
    assert ":4200/api" not in section  # the address is what `server start` / `env` print


def _leaf(words: list[str]) -> tuple[click.Command, list[str], list[str]]:
    """The click command `words` name (after `plan-executor`), its path and its arguments."""
    command: click.Command = typer.main.get_command(app)
    path: list[str] = []
    rest = list(words)
    while isinstance(command, click.Group) and rest and not rest[0].startswith("-"):
        sub = command.get_command(click.Context(command), rest[0])
        assert sub is not None, f"no command `plan-executor {' '.join([*path, rest[0]])}`"
        command, path, rest = sub, [*path, rest.pop(0)], rest
    return command, path, rest


@pytest.mark.parametrize(
    "words",
    [words for words in _commands() if words[0] == "plan-executor"],
    ids=lambda words: " ".join(words[:3]),
)
def test_plan_executor_commands_parse(words: list[str]) -> None:
    command, path, args = _leaf(words[1:])
    assert not isinstance(command, click.Group), f"`plan-executor {' '.join(path)}` needs a command"
    # parses the options and arguments exactly as a run would, without running the command
    command.make_context(" ".join(["plan-executor", *path]), args, resilient_parsing=False)


def _parse_prefect(words: list[str]) -> object:
    """What `prefect WORDS` would call, parsed by Prefect's own CLI (cyclopts) in this process,
    without running it: session flags (`--no-prompt`) first, then the command's own."""
    import prefect.cli  # noqa: F401  (registers the commands)
    from prefect.cli._app import _app

    _, session, _ = _app.meta.parse_args(words, exit_on_error=False, print_error=False)
    tokens = list(session.arguments["tokens"])
    command, _, unused = _app.parse_args(tokens, exit_on_error=False, print_error=False)
    assert not unused, f"`prefect {' '.join(words)}`: not understood: {unused}"
    return command


def test_prefect_commands_and_parameters_exist() -> None:
    prefect_commands = [words[1:] for words in _commands() if words[0] == "prefect"]
    assert prefect_commands
    deployments = {
        deployment["name"]
        for deployment in yaml.safe_load((CHECKOUT / "prefect.yaml").read_text())["deployments"]
    }
    from flows.execute_plan import execute_plan

    parameters = set(execute_plan.parameters.properties)
    for words in prefect_commands:
        command = _parse_prefect(words)
        assert callable(command), words
        if words[:2] == ["deployment", "run"]:
            flow, name = words[2].split("/")
            assert flow == execute_plan.name and name in deployments
        for index, word in enumerate(words):
            if word == "--param":
                assert words[index + 1].split("=")[0] in parameters, words[index + 1]
    for name in re.findall(r"--param (\w+)=", _section()):
        assert name in parameters, name
    from flows.context import RunOptions

    shown = re.findall(r"--param options='([^']*)'", _section())
    assert shown  # the run's options are one JSON parameter
    for value in shown:
        fields = json.loads(value)
        assert set(fields) <= set(RunOptions.model_fields), fields
        RunOptions.model_validate(fields)


def test_a_wrong_prefect_option_is_caught() -> None:
    """The check above can fail: an option Prefect does not have is refused."""
    with pytest.raises(Exception, match="--bogus"):
        _parse_prefect(["deployment", "run", "execute-plan/manual", "--bogus"])
