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
:func:`scrub` removes it from text that might have picked it up (tool output, error messages).
"""

from __future__ import annotations

import logging
import os

API_KEY_ENV = "ANTHROPIC_API_KEY"
SECRET_BLOCK_NAME = "anthropic-api-key"
REDACTED = "[redacted]"

_log = logging.getLogger(__name__)


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
        block = Secret.load(SECRET_BLOCK_NAME, _sync=True)
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
    _log.debug("Anthropic API key taken from Secret block %r", SECRET_BLOCK_NAME)
    return text


def scrub(text: str, secret: str | None) -> str:
    """``text`` with every occurrence of ``secret`` replaced by :data:`REDACTED`."""
    if not secret or secret not in text:
        return text
    return text.replace(secret, REDACTED)
