"""Where the Anthropic API key comes from: the environment first, then a Prefect Secret block.

Order:
1. ``ANTHROPIC_API_KEY`` in the environment of the process that runs the flow (for a deployment
   run: the worker's environment);
2. the Prefect ``Secret`` block named :data:`SECRET_BLOCK_NAME` on the Prefect server.

Create the block once per server with either of::

    prefect block create secret          # prints a link to the UI form; name it anthropic-api-key
    python -c "from prefect.blocks.system import Secret; \\
      Secret(value=input('key: ')).save('anthropic-api-key', overwrite=True)"

The key is returned to the one caller that builds the Anthropic client and goes nowhere else:
these functions never log it (they log only where it came from), the UI shows the block value
masked, and callers must not put it into a subprocess environment, an artifact or the plan file.

An agent may still come across a secret: a file it reads, a command that prints one. So every
value :func:`known_secrets` knows (the API key, Prefect's API credentials, password files in the
plan-executor home) is replaced by :func:`scrub_known` in what leaves the process: tool results
sent back to the model, the agent transcript, the plan file, the execution log, artifacts and the
run's log records. :func:`secret_paths` names the directories every sandbox hides.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import TypeVar, cast

from pydantic import BaseModel

API_KEY_ENV = "ANTHROPIC_API_KEY"
SECRET_BLOCK_NAME = "anthropic-api-key"
REDACTED = "[redacted]"
SECRET_ENV = (
    API_KEY_ENV,
    "ANTHROPIC_AUTH_TOKEN",
    "PREFECT_API_KEY",
    "PREFECT_API_AUTH_STRING",
    "PREFECT_SERVER_API_AUTH_STRING",
)
"""Environment variables whose values are credentials."""
SECRET_FILE_PATTERNS = ("*.credential", "*.credentials", "*password*", "*.secret", "*token*")
"""Files in the plan-executor home whose content is a credential (e.g. a database password)."""
SECRET_FILE_MAX_BYTES = 4096
MIN_SECRET_CHARS = 8
"""Shorter values are not scrubbed: replacing every `true` or `1234` would garble all output,
and a value that short is no credential worth the name."""

_log = logging.getLogger(__name__)
_seen: set[str] = set()
"""Keys this process took from the Secret block (the block is not read again to scrub)."""


def anthropic_api_key() -> str | None:
    """The API key from the environment, else from the Secret block; None when neither has one."""
    from_env = os.environ.get(API_KEY_ENV, "").strip()
    if from_env:
        _log.debug("Anthropic API key taken from the environment")
        return from_env
    if not _prefect_api_in_reach():
        return None
    from prefect.blocks.system import Secret

    try:
        block = Secret.load(SECRET_BLOCK_NAME, _sync=True)  # type: ignore[call-arg]  # async_dispatch pops _sync; prefect's typing omits it
    except ValueError:  # no such block document on this server
        _log.debug(
            "no %s in the environment and no Secret block %r", API_KEY_ENV, SECRET_BLOCK_NAME
        )
        return None
    return _value_of(block)


async def aanthropic_api_key() -> str | None:
    """:func:`anthropic_api_key` for async callers (does not block the event loop)."""
    from_env = os.environ.get(API_KEY_ENV, "").strip()
    if from_env:
        return from_env
    if not _prefect_api_in_reach():
        return None
    from prefect.blocks.system import Secret

    try:
        block = await Secret.aload(SECRET_BLOCK_NAME)
    except ValueError:
        return None
    return _value_of(block)


def _prefect_api_in_reach() -> bool:
    """A configured API or a running flow/task: never start a temporary server just to look."""
    from prefect.context import FlowRunContext, TaskRunContext
    from prefect.settings import PREFECT_API_URL

    return bool(PREFECT_API_URL.value()) or bool(FlowRunContext.get() or TaskRunContext.get())


def _value_of(block: object) -> str | None:
    value = block.get()  # type: ignore[attr-defined]
    text = str(value).strip() if value is not None else ""
    if not text:
        return None
    _seen.add(text)
    _log.debug("Anthropic API key taken from Secret block %r", SECRET_BLOCK_NAME)
    return text


def scrub(text: str, secret: str | None) -> str:
    """``text`` with every occurrence of ``secret`` replaced by :data:`REDACTED`."""
    if not secret or secret not in text:
        return text
    return text.replace(secret, REDACTED)


def scrub_known(text: str, secrets: list[str] | None = None) -> str:
    """``text`` without any of ``secrets`` (default: :func:`known_secrets`), longest first so
    that a secret containing another is replaced whole."""
    for secret in sorted(known_secrets() if secrets is None else secrets, key=len, reverse=True):
        text = scrub(text, secret)
    return text


def known_secrets(*extra: str | None) -> list[str]:
    """Every credential value this process knows of, plus ``extra`` (e.g. a client's key).

    From the environment (:data:`SECRET_ENV`), Prefect's settings (API key and auth strings,
    which may come from a profile), the Secret block key once read, and small files in the
    plan-executor home named like credentials (:data:`SECRET_FILE_PATTERNS`). Reads no network.
    """
    found: set[str] = {value for value in extra if value}
    found.update(os.environ.get(name, "") for name in SECRET_ENV)
    found.update(_seen)
    found.update(_prefect_setting_secrets())
    found.update(_credential_files())
    return sorted(
        {value.strip() for value in found if len(value.strip()) >= MIN_SECRET_CHARS},
        key=len,
        reverse=True,
    )


def _prefect_setting_secrets() -> list[str]:
    from prefect.settings import get_current_settings

    settings = get_current_settings()
    values = [settings.api.key, settings.api.auth_string, settings.server.api.auth_string]
    return [v.get_secret_value() if hasattr(v, "get_secret_value") else str(v) for v in values if v]


def _credential_files() -> list[str]:
    from backend.settings import plan_executor_home

    home = plan_executor_home()
    if not home.is_dir():
        return []
    values: list[str] = []
    # The home's top level and its subdirectories, not the cluster's data files (postgres/).
    places = [home, *(p for p in home.iterdir() if p.is_dir() and p.name != "postgres")]
    for place in places:
        for pattern in SECRET_FILE_PATTERNS:
            for path in place.glob(pattern):
                try:
                    if path.is_file() and path.stat().st_size <= SECRET_FILE_MAX_BYTES:
                        values.append(path.read_text(encoding="utf-8", errors="replace"))
                except OSError:
                    continue
    return values


def secret_paths() -> list[Path]:
    """Directories holding credentials and the database: hidden in every sandbox, wherever they
    are (inside the repository too). The plan-executor home (the server's `PREFECT_HOME` and the
    cluster's data directory are under it, named explicitly in case the home is mounted away)
    and this process's `PREFECT_HOME` (its profiles may hold an API key)."""
    from backend.settings import plan_executor_home

    home = plan_executor_home()
    paths = [home, home / "postgres", home / "prefect"]
    configured = os.environ.get("PREFECT_HOME")
    if configured:
        paths.append(Path(configured).expanduser())
    from prefect.settings import PREFECT_HOME  # a profile or .env may set it, not only the env

    paths.append(Path(str(PREFECT_HOME.value())).expanduser())
    unique: list[Path] = []
    for path in paths:
        resolved = path.resolve()
        if resolved != Path("/") and resolved not in unique:
            unique.append(resolved)
    return unique


_Scrubbed = TypeVar("_Scrubbed")


def scrub_value(value: _Scrubbed, secrets: list[str] | None = None) -> _Scrubbed:
    """``value`` (strings, lists, dicts, pydantic models, nested) with known secrets scrubbed
    from every string in it: checkpoints, table rows and ledgers are written as a whole."""
    secrets = known_secrets() if secrets is None else secrets
    if not secrets:
        return value
    # every branch of _scrub rebuilds the type it was given
    return cast(_Scrubbed, _scrub(value, secrets))


def _scrub(value: object, secrets: list[str]) -> object:
    if isinstance(value, str):
        return scrub_known(value, secrets)
    if isinstance(value, list | tuple):
        return type(value)(_scrub(item, secrets) for item in value)
    if isinstance(value, dict):
        return {key: _scrub(item, secrets) for key, item in value.items()}
    if isinstance(value, BaseModel):
        return type(value).model_validate(_scrub(value.model_dump(), secrets))
    return value


class ScrubSecrets(logging.Filter):
    """Scrubs known secrets from log records (the console, the Prefect API's run logs).

    The secrets are looked up again at most every :data:`REFRESH_S` seconds: the home's files
    are read, and a log record must not cost a directory scan."""

    REFRESH_S = 5.0

    def __init__(self) -> None:
        super().__init__()
        self._secrets: list[str] = []
        self._read_at = float("-inf")

    def filter(self, record: logging.LogRecord) -> bool:
        now = time.monotonic()
        if now - self._read_at > self.REFRESH_S:
            self._secrets, self._read_at = known_secrets(), now
        if not self._secrets:
            return True
        message = record.getMessage()
        clean = scrub_known(message, self._secrets)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[1] is not None:
            text = logging.Formatter().formatException(record.exc_info)
            if scrub_known(text, self._secrets) != text:
                record.msg = f"{clean}\n{scrub_known(text, self._secrets)}"
                record.exc_info, record.exc_text = None, None
        return True


def install_log_scrubber() -> None:
    """Put :class:`ScrubSecrets` on every handler configured now (root's and named loggers'):
    a filter on a logger would miss records its children propagate to it."""
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    for logger in loggers:
        for handler in getattr(logger, "handlers", []):
            if not any(isinstance(f, ScrubSecrets) for f in handler.filters):
                handler.addFilter(ScrubSecrets())
