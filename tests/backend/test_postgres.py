"""The embedded PostgreSQL cluster on its own: start, reuse, stop, and a stale lock file whose
pid now belongs to another process (as after a reboot or a SIGKILL)."""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tasks.backend import postgres
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
    assert cluster.sqlalchemy_url() == (
        f"postgresql+asyncpg://postgres@/prefect?host={cluster.socket_dir}"
    )
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
