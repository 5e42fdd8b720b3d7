"""What a local run prints on the terminal: plan-executor's own lines stand out, Prefect's INFO
lines stay in Prefect.

Prefect's console handler prints every INFO record of every flow and task run (`Beginning
subflow run`, `Finished in state Completed()`, one `View at` per subflow): twenty lines and more
around each `[phase N]` transition. For the run, :func:`quiet_prefect_console` lets that handler
print only warnings and errors, and the run's own `View at` link once. The records still reach
the Prefect API and UI (the API handler is another handler; the level of the loggers is not
touched: `PREFECT_LOGGING_LEVEL=WARNING` would drop them from the UI too).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator


class QuietPrefectConsole(logging.Filter):
    """Passes warnings and errors, and the first `View at <url>` line (the run's own)."""

    def __init__(self) -> None:
        super().__init__()
        self.link_shown = False

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING:
            return True
        if not self.link_shown and record.getMessage().startswith("View at "):
            self.link_shown = True
            return True
        return False


def prefect_console_handlers() -> list[logging.Handler]:
    """Prefect's console handlers (set up first when Prefect has not configured logging yet)."""
    from prefect.logging.configuration import ensure_logging_setup
    from prefect.logging.handlers import PrefectConsoleHandler

    ensure_logging_setup()
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    found: list[logging.Handler] = []
    for logger in loggers:
        for handler in getattr(logger, "handlers", []):
            if isinstance(handler, PrefectConsoleHandler) and handler not in found:
                found.append(handler)
    return found


@contextlib.contextmanager
def quiet_prefect_console(enabled: bool = True) -> Iterator[None]:
    """Within the block, Prefect's console handlers print warnings, errors and one link only."""
    if not enabled:
        yield
        return
    quiet = QuietPrefectConsole()
    handlers = prefect_console_handlers()
    for handler in handlers:
        handler.addFilter(quiet)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(quiet)


def cli_command() -> str:
    """How the person should type `plan-executor` in the hints we print: the bare name when it
    is on PATH (an activated venv, a pipx install), else the path of this venv's command (the
    install does not activate the venv), relative to the working directory when inside it."""
    import shutil
    import sys
    from pathlib import Path

    beside = Path(sys.executable).with_name("plan-executor")
    on_path = shutil.which("plan-executor")
    if not beside.exists() or (on_path and Path(on_path).resolve() == beside.resolve()):
        return "plan-executor"
    try:
        return str(beside.relative_to(Path.cwd()))
    except ValueError:
        return str(beside)
