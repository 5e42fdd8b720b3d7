"""The secrets of the local backend: the Prefect API credential and the PostgreSQL password.

Both are random, made once per plan-executor home and kept there in files only their owner may
read (0600):

    api-auth.credential   `plan-executor:<token>`, the server's PREFECT_SERVER_API_AUTH_STRING
                          and every client's PREFECT_API_AUTH_STRING (the UI's login asks for it)
    postgres.credential   the cluster superuser's password: our psql gets it in PGPASSWORD, the
                          Prefect server in its database URL

Named `*.credential` so that `tasks.secrets.known_secrets` scrubs their values from anything an
agent or a report could show, and so that each file holds exactly the value to scrub.

Why: agents run shell commands with the network on, and the host's loopback is reachable from
their sandbox; without a credential anything there could read the Secret blocks, change run
states or create deployments that the host's worker runs (issue 13).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path

from plan_parser.errors import PlanExecutorError

API_AUTH_FILE = "api-auth.credential"
PG_PASSWORD_FILE = "postgres.credential"
API_USER = "plan-executor"
SECRET_MODE = 0o600


class CredentialError(PlanExecutorError, RuntimeError):
    """A credential file exists but cannot be used."""


def _token() -> str:
    # URL-safe characters only: no escaping in a basic-auth string or a URL
    return secrets.token_urlsafe(32)


def _create_exclusive(path: Path, text: str) -> bool:
    """Write `text` to `path` (mode 0600) unless it exists; True if this call created it.

    The file is complete before it appears under its name (written aside, then hard-linked), so
    a concurrent reader never sees it half-written, and two creators cannot both win.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    aside = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, SECRET_MODE)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(aside, path)
        except FileExistsError:
            return False
        return True
    finally:
        aside.unlink(missing_ok=True)


def _read_private(path: Path) -> str:
    """The file's content; a file others may read is first made private again (0600)."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        path.chmod(SECRET_MODE)
    return path.read_text().strip()


def _ensure(path: Path, make: Callable[[], str]) -> str:
    if not path.exists():
        _create_exclusive(path, make() + "\n")
    value = _read_private(path)
    if not value:
        raise CredentialError(f"{path} is empty: delete it to have a new credential made")
    return value


def api_auth_path(home: Path) -> Path:
    return home / API_AUTH_FILE


def pg_password_path(home: Path) -> Path:
    return home / PG_PASSWORD_FILE


def ensure_api_auth(home: Path) -> str:
    """The home's API credential `plan-executor:<token>`, made on first use."""
    return _ensure(api_auth_path(home), lambda: f"{API_USER}:{_token()}")


def read_api_auth(home: Path) -> str | None:
    """The home's API credential if one was made (never creates it)."""
    path = api_auth_path(home)
    with contextlib.suppress(FileNotFoundError):
        return _read_private(path) or None
    return None


def ensure_pg_password(home: Path) -> str:
    """The cluster superuser's password, made on first use."""
    return _ensure(pg_password_path(home), _token)


def read_pg_password(home: Path) -> str | None:
    """The cluster superuser's password if one was made (never creates it)."""
    with contextlib.suppress(FileNotFoundError):
        return _read_private(pg_password_path(home)) or None
    return None


__all__ = [
    "API_USER",
    "CredentialError",
    "api_auth_path",
    "ensure_api_auth",
    "ensure_pg_password",
    "pg_password_path",
    "read_api_auth",
    "read_pg_password",
]
