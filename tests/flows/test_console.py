"""A local run's console: `[phase N]` lines stand out, Prefect's INFO lines stay in Prefect."""

from __future__ import annotations

import io
import logging

import pytest
from rich.console import Console

from cli.console import prefect_console_handlers, quiet_prefect_console
from cli.live import LiveView, transition_line
from plan_parser.checkpoints import PhaseCheckpoint


def _record(level: int, message: str) -> logging.LogRecord:
    return logging.LogRecord("prefect.flow_runs", level, __file__, 1, message, None, None)


def test_prefect_console_prints_warnings_and_the_run_link_only_during_the_run() -> None:
    handlers = prefect_console_handlers()
    assert handlers, "Prefect's console handler is configured"
    info = _record(logging.INFO, "Finished in state Completed()")
    with quiet_prefect_console():
        for handler in handlers:
            assert not handler.filter(info)
            assert handler.filter(_record(logging.WARNING, "SECURITY: the API answers anyone"))
        link = _record(logging.INFO, "View at http://127.0.0.1:4200/runs/flow-run/1")
        assert all(handler.filter(link) for handler in handlers[:1])
        second = _record(logging.INFO, "View at http://127.0.0.1:4200/runs/flow-run/2")
        assert not any(handler.filter(second) for handler in handlers)  # subflows' links
    assert all(handler.filter(info) for handler in handlers)  # restored after the run
    with quiet_prefect_console(enabled=False):
        assert all(handler.filter(info) for handler in handlers)  # --prefect-logs


def test_transition_lines_are_styled_on_a_terminal_and_plain_elsewhere() -> None:
    terminal = io.StringIO()
    Console(file=terminal, force_terminal=True, color_system="standard").print(
        transition_line("3", "blocked", "src/shout.rs is missing")
    )
    assert "\x1b[1m[phase 3]" in terminal.getvalue()  # bold tag
    assert "\x1b[1;31mblocked" in terminal.getvalue()  # the status in red

    piped = io.StringIO()
    view = LiveView(live=False, console=Console(file=piped, width=120))
    with view:
        view.observe(PhaseCheckpoint(phase_id="3", status="blocked", error="src/shout.rs missing"))
    assert piped.getvalue() == "[phase 3] blocked: src/shout.rs missing\n"


def test_hints_name_the_venvs_command_when_it_is_not_on_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys
    from pathlib import Path

    from cli.console import cli_command

    venv_bin = Path(sys.executable).parent
    if not (venv_bin / "plan-executor").exists():
        pytest.skip("plan-executor is not installed beside this Python")
    monkeypatch.chdir(venv_bin.parent.parent)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # the install never activates the venv
    assert cli_command() == f"{venv_bin.parent.name}/bin/plan-executor"
    monkeypatch.setenv("PATH", f"{venv_bin}:/usr/bin:/bin")  # an activated venv
    assert cli_command() == "plan-executor"
