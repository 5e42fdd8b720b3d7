"""Two machines played on one: a distributed run (`distribute=True`) of a 4-phase plan whose
phases 1 and 2 run in parallel, on two process workers of one work pool, each with its own
PREFECT_HOME and clone cache, a bare repository as the remote, the session's PostgreSQL-backed
server, and the stand-in Messages API playing the agents (key from the Secret block only).

Checked: the phase runs are linked children of the plan's run and ran on both workers (each
worker's log names the run it executed, and the outcome says which clone); the plan file on the
parent's side is mirrored as in a local run; the integration branch holds all four phases and
builds; nothing secret reaches the parameters; and the worker that runs phase 4 is killed with
the phase's process (SIGKILL, as a machine dies): the parent notices the missing heartbeats,
marks the run Crashed, submits it again, and the other worker finishes the phase.

One plan run does all of it (a second run would cost another minute and more). Prefect's
shortest heartbeat interval is 30 s, so the dead worker is noticed after ~45 s.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from cli.demo import PhaseScript, ScriptedAgents, demo_plan, demo_scripts, make_crate
from tasks import secrets
from tasks.agent.standin import StandinMessagesAPI, editor_create
from tasks.shell import run
from tests.deploy._procs import PREFECT, Background, base_env, start_background
from tests.flows.conftest import needs_cargo
from tests.prefect_fixture import api_auth

pytestmark = [needs_cargo, pytest.mark.slow, pytest.mark.timeout(600)]

CHECKOUT = Path(__file__).resolve().parents[2]
POOL = "plan-executor-distributed"
DEPLOYMENT = "execute-phase/phase-distributed-test"
STANDIN_KEY = "sk-ant-standin-distributed-3c9e1b"
RESULTS_BLOCK = "plan-executor-test-results"
HEARTBEAT_S = 30
"""Prefect's shortest flow-run heartbeat interval."""
ZOMBIE_AFTER_S = 45
"""The parent's verdict on a run that sent no heartbeat for this long: dead."""

GAMMA_TEST = """use demo::report::describe;

#[test]
fn gamma_describes_a_sum() {
    assert_eq!(describe(2, 3), "2 + 3 = 5");
}
"""

PHASE_4 = """
---

### Phase 4: Gamma tests

**Principal Owner:** Rust Developer
**Goal:** An integration test of the report.
**Dependencies:** Phase 3
**Blast Radius:** `cargo test --test gamma`

**Files to create:**
- `tests/gamma.rs` - integration test of `describe`

**Deliverables:**
- An integration test file `tests/gamma.rs`

**Acceptance Criteria:**
- [ ] `tests/gamma.rs` exists
- [ ] `cargo test --test gamma` passes

## Parallelization Opportunities
"""


def four_phase_plan() -> str:
    return demo_plan().replace("\n## Parallelization Opportunities\n", PHASE_4, 1)


@dataclass
class Pool:
    api_url: str
    env: dict[str, str]
    workers: dict[str, Background]
    homes: dict[str, Path]
    standin_url: str
    root: Path

    def post(self, path: str, body: dict) -> list[dict]:
        response = httpx.post(f"{self.api_url}{path}", json=body, timeout=15, auth=api_auth())
        response.raise_for_status()
        return response.json()

    def children(self, flow_run_id: str) -> list[dict]:
        return self.post(
            "/flow_runs/filter", {"flow_runs": {"parent_flow_run_id": {"any_": [flow_run_id]}}}
        )


def _git(repo: Path, *args: str) -> str:
    result = run(["git", *args], cwd=repo, timeout_s=60)
    assert result.ok, result.output
    return result.output.strip()


def _start_worker(
    name: str, home: Path, api_url: str, standin_url: str, **extra_env: str
) -> Background:
    env = base_env(home, api_url)
    env.update(
        PREFECT_WORKER_QUERY_SECONDS="1",
        PREFECT_WORKER_PREFETCH_SECONDS="5",
        # Results go where the parent can read them (on several machines: an S3/GCS block).
        PREFECT_DEFAULT_RESULT_STORAGE_BLOCK=f"local-file-system/{RESULTS_BLOCK}",
        PLAN_EXECUTOR_HOME=str(home / "plan-executor"),
        PLAN_EXECUTOR_CLONES=str(home / "clones"),
        PLAN_EXECUTOR_WORKER_NAME=name,
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY=str(HEARTBEAT_S),
        ANTHROPIC_BASE_URL=standin_url,  # the key itself comes from the Secret block
        # Whichever worker claims a plan's run starts its phases from this test's deployment.
        PLAN_EXECUTOR_PHASE_DEPLOYMENT=DEPLOYMENT,
        **extra_env,
    )
    worker = start_background(
        name,
        # --limit 1: a worker takes one phase at a time, so a parallel pair needs both.
        [PREFECT, "worker", "start", "--pool", POOL, "--name", name, "--limit", "1"],
        cwd=home,
        env=env,
        log_path=home / "worker.log",
    )
    worker.signals_to_stop = 2
    return worker


@pytest.fixture(scope="module")
def agents() -> ScriptedAgents:
    scripts = demo_scripts()
    for pid in ("1", "2"):  # long enough that both are running at once
        scripts[pid].delay_s = 3.0
    # Phase 4's first turn is slow: its worker is killed meanwhile.
    scripts["4"] = PhaseScript(edits=[editor_create("tests/gamma.rs", GAMMA_TEST)], delay_s=20.0)
    return ScriptedAgents(scripts)


@pytest.fixture(scope="module")
def pool(
    prefect_client_env, agents: ScriptedAgents, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pool]:
    from prefect.blocks.system import Secret
    from prefect.filesystems import LocalFileSystem

    api_url = prefect_client_env.api_url
    root = tmp_path_factory.mktemp("distributed")
    env = base_env(prefect_client_env.cli_home, api_url)
    Secret(value=STANDIN_KEY).save(secrets.SECRET_BLOCK_NAME, overwrite=True)
    LocalFileSystem(basepath=str(root / "results")).save(RESULTS_BLOCK, overwrite=True)
    created = run(
        [PREFECT, "work-pool", "create", POOL, "--type", "process", "--overwrite"],
        cwd=CHECKOUT,
        env=env,
        timeout_s=120,
    )
    assert created.ok, created.output
    name = DEPLOYMENT.split("/")[1]
    deployed = run(
        [PREFECT, "deploy", "flows/distribute.py:execute_phase", "--name", name, "--pool", POOL]
        + ["--no-prompt"],
        cwd=CHECKOUT,
        env=env,
        timeout_s=180,
    )
    assert deployed.ok, deployed.output
    with StandinMessagesAPI(responder=agents, auto_summary=False) as standin:
        homes = {n: root / n for n in ("worker-a", "worker-b")}
        workers: dict[str, Background] = {}
        try:
            for worker_name, home in homes.items():
                home.mkdir()
                workers[worker_name] = _start_worker(worker_name, home, api_url, standin.base_url)
            yield Pool(
                api_url=api_url,
                env=env,
                workers=workers,
                homes=homes,
                standin_url=standin.base_url,
                root=root,
            )
        finally:
            for worker in workers.values():
                worker.stop()
            block = Secret.load(secrets.SECRET_BLOCK_NAME, _sync=True)
            httpx.delete(
                f"{api_url}/block_documents/{block._block_document_id}", timeout=15, auth=api_auth()
            )


def _crate_with_remote(root: Path) -> tuple[Path, Path, Path]:
    plan_path = make_crate(root / "crate", plan_text=four_phase_plan())
    repo = plan_path.parents[2]
    remote = root / "remote.git"
    _git(root, "init", "-q", "--bare", str(remote))
    _git(repo, "remote", "add", "origin", str(remote))
    _git(repo, "push", "-q", "origin", "main")
    return plan_path, repo, remote


def _run_distributed(plan_path: Path, repo: Path, monkeypatch: pytest.MonkeyPatch):
    from cli.run import run_plan
    from flows.context import RunOptions

    lines: list[str] = []
    monkeypatch.setenv("PLAN_EXECUTOR_PHASE_DEPLOYMENT", DEPLOYMENT)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    code = run_plan(
        plan_path,
        RunOptions(repo=repo, distribute=True),
        live=False,
        echo=lambda message="", err=False, **_: lines.append(str(message)),
    )
    return code, "\n".join(lines)


def _worker_logs(pool: Pool) -> str:
    return "\n".join(f"--- {n} ---\n{w.log_text()[-4000:]}" for n, w in pool.workers.items())


def test_parallel_phases_on_two_workers_land_in_dag_order_and_a_dead_worker_is_replaced(
    pool: Pool, agents: ScriptedAgents, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from plan_parser import parse_plan
    from plan_parser.checkpoints import read_plan_state

    plan_path, repo, remote = _crate_with_remote(tmp_path)
    killed: list[str] = []
    killer = threading.Thread(target=_kill_the_worker_of_phase_4, args=(pool, agents, killed))
    killer.start()
    monkeypatch.setenv("PLAN_EXECUTOR_ZOMBIE_AFTER_S", str(ZOMBIE_AFTER_S))
    try:
        code, output = _run_distributed(plan_path, repo, monkeypatch)
    finally:
        killer.join(timeout=200)
    assert code == 0, output + "\n" + _worker_logs(pool)

    # The plan file is the parent's: every phase mirrored complete with its phase run's id.
    state = read_plan_state(plan_path)
    assert state is not None
    assert {pid: cp.status for pid, cp in state.phases.items()} == dict.fromkeys("1234", "complete")
    assert parse_plan(plan_path).status == "Implemented"
    # ... and never written on a worker: the clones' plan files are the committed text.
    committed = _git(repo, "show", f"main:{plan_path.relative_to(repo)}")
    clones = [p for home in pool.homes.values() for p in (home / "clones").glob("*") if p.is_dir()]
    assert len(clones) == 2, clones  # one clone per worker (its own cache)
    for clone in clones:
        assert (clone / plan_path.relative_to(repo)).read_text().strip() == committed

    # Linked child runs of the plan's run, one per phase (two for the interrupted phase 4).
    final_ids = {pid: cp.flow_run_id for pid, cp in state.phases.items()}
    parent_id = _parent_of(pool, final_ids["1"])
    children: dict[str, list[dict]] = {}
    for child in pool.children(parent_id):
        children.setdefault(child["name"], []).append(child)
    assert sorted(children) == ["phase-1", "phase-2", "phase-3", "phase-4"], sorted(children)
    for pid in "1234":
        final = next(c for c in children[f"phase-{pid}"] if c["id"] == final_ids[pid])
        assert final["state_type"] == "COMPLETED" and final["deployment_id"], final["state"]

    # The parallel pair ran on the two workers (a worker's log names the runs it executed).
    logs = {name: worker.log_text() for name, worker in pool.workers.items()}

    def ran_on(flow_run_id: str) -> list[str]:
        return [name for name, text in logs.items() if f"flow-run/{flow_run_id}" in text]

    pair = ran_on(final_ids["1"]) + ran_on(final_ids["2"])
    assert sorted(pair) == ["worker-a", "worker-b"], pair

    # The worker running phase 4 died (SIGKILL of its process group, as a machine dies): the
    # run was noticed by its missing heartbeats, ended Crashed, and phase 4 ran again on the
    # other worker.
    assert killed, "phase 4 never ran on a worker\n" + _worker_logs(pool)
    (dead,) = killed
    crashed = [c for c in children["phase-4"] if c["state_type"] == "CRASHED"]
    assert len(crashed) == 1 and len(children["phase-4"]) == 2, children["phase-4"]
    assert ran_on(crashed[0]["id"]) == [dead]
    assert "no heartbeat" in crashed[0]["state"]["message"], crashed[0]["state"]
    assert ran_on(final_ids["4"]) == [n for n in pool.workers if n != dead]

    # No secret in any run's parameters; the clone URL is the remote's.
    for child in sum(children.values(), []):
        assert STANDIN_KEY not in json.dumps(child["parameters"])
        assert child["parameters"]["clone_url"] == str(remote)

    # The integration branch (here and on the remote) holds all four phases, and builds.
    branch = f"plan-executor/{plan_path.stem.split('.', 1)[1]}"
    assert _git(repo, "branch", "--show-current") == branch
    for created in ("tests/alpha.rs", "tests/beta.rs", "src/report.rs", "tests/gamma.rs"):
        assert (repo / created).is_file(), created
    built = run(["cargo", "test", "--offline", "-q"], cwd=repo, timeout_s=300)
    assert built.ok, built.output
    subjects = _git(repo, "log", "--format=%s", "main..HEAD").splitlines()
    order = [s.split(": phase ")[1].split(" ")[0] for s in reversed(subjects)]
    assert sorted(order[:2]) == ["1", "2"] and order[2:] == ["3", "4"], subjects
    remote_phases = _git(remote, "branch", "--list", f"{branch}--phase-*").split()
    assert len(remote_phases) == 4, remote_phases


def _parent_of(pool: Pool, flow_run_id: str) -> str:
    """The flow run that started ``flow_run_id`` (through its tracking task run)."""
    child = httpx.get(f"{pool.api_url}/flow_runs/{flow_run_id}", timeout=15, auth=api_auth())
    task_run_id = child.json()["parent_task_run_id"]
    assert task_run_id, child.json()
    task_run = httpx.get(f"{pool.api_url}/task_runs/{task_run_id}", timeout=15, auth=api_auth())
    return task_run.json()["flow_run_id"]


def _kill_the_worker_of_phase_4(pool: Pool, agents: ScriptedAgents, killed: list[str]) -> None:
    """While phase 4's agent works (its first turn is slow), SIGKILL the process group of the
    worker running it: the worker and the phase's process die without a word."""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        running = pool.post(
            "/flow_runs/filter",
            {
                "flow_runs": {
                    "name": {"any_": ["phase-4"]},
                    "state": {"type": {"any_": ["RUNNING"]}},
                }
            },
        )
        for flow_run in running:
            for name, worker in pool.workers.items():
                started = f"flow-run/{flow_run['id']}" in worker.log_text()
                if started and flow_run["infrastructure_pid"]:
                    time.sleep(3.0)  # the agent is at work in the worker's clone
                    os.killpg(worker.pid, signal.SIGKILL)
                    # The phase's process runs in a session of its own: it dies with the machine.
                    pid = int(str(flow_run["infrastructure_pid"]).rsplit(":", 1)[-1])
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(pid, signal.SIGKILL)
                    agents.scripts["4"].delay_s = 0.0  # the rerun needs no slow turn
                    killed.append(name)
                    return
        time.sleep(0.5)


PARENT_DEPLOYMENT = "execute-plan/distributed-parent-test"


def test_a_deployment_run_with_distribute_runs_the_parallel_phases_on_two_workers(
    pool: Pool, tmp_path: Path
):
    """The user's way in (issue 20, done-when): `prefect deployment run 'execute-plan/...'
    --param options='{"distribute": true}'`. The plan's run itself is a deployment run on a worker of the pool
    (two more workers join, so that two stay free for the parallel pair); the plan file is
    mirrored where that run ran."""
    from plan_parser import parse_plan
    from plan_parser.checkpoints import read_plan_state

    name = PARENT_DEPLOYMENT.split("/")[1]
    deployed = run(
        [PREFECT, "deploy", "flows/execute_plan.py:execute_plan", "--name", name, "--pool", POOL]
        + ["--no-prompt"],
        cwd=CHECKOUT,
        env=pool.env,
        timeout_s=180,
    )
    assert deployed.ok, deployed.output
    # Two more workers: the earlier test may have killed one of the pool's, and one worker
    # (whichever claims it) runs the plan's run; two must stay free for the parallel pair.
    extra: dict[str, Background] = {}
    try:
        for name in ("worker-c", "worker-d"):
            home = pool.root / name
            home.mkdir()
            extra[name] = _start_worker(name, home, pool.api_url, pool.standin_url)
        plan_path, repo, remote = _crate_with_remote(tmp_path)
        started = run(
            [PREFECT, "deployment", "run", PARENT_DEPLOYMENT]
            + ["--param", f"plan_path={plan_path}"]
            + ["--param", "options=" + json.dumps({"repo": str(repo), "distribute": True})]
            + ["--watch", "--watch-timeout", "400"],
            cwd=CHECKOUT,
            env=pool.env,
            timeout_s=460,
        )
        logs = {n: w.log_text() for n, w in {**pool.workers, **extra}.items()}
        everything = (
            started.output + "\n" + "\n".join(f"--- {n}\n{t[-4000:]}" for n, t in logs.items())
        )
        assert started.ok and "Completed" in started.output, everything
    finally:
        for worker in extra.values():
            worker.stop()

    state = read_plan_state(plan_path)
    assert state is not None, everything
    assert {pid: cp.status for pid, cp in state.phases.items()} == dict.fromkeys("1234", "complete")
    assert parse_plan(plan_path).status == "Implemented"
    final_ids = {pid: cp.flow_run_id for pid, cp in state.phases.items()}

    homes = {**pool.homes, **{name: pool.root / name for name in ("worker-c", "worker-d")}}

    def worked_in(phase_id: str) -> list[str]:
        """The workers whose clone of this test's remote holds the phase's worktree (logs are
        no proof: workers racing for a run all log that they submit it)."""
        found = []
        for name, home in homes.items():
            for clone in (home / "clones").glob("*"):
                if not (clone / ".git").is_dir() or _git(
                    clone, "remote", "get-url", "origin"
                ) != str(remote):
                    continue
                if f"--phase-{phase_id}\n" in _git(clone, "worktree", "list", "--porcelain") + "\n":
                    found.append(name)
        return found

    # The parallel pair ran on two different workers, each in a clone of its own, and the
    # phases are linked children of the plan's run.
    pair = worked_in("1") + worked_in("2")
    assert len(pair) == 2 and len(set(pair)) == 2, pair
    parent_id = _parent_of(pool, final_ids["1"])
    names = sorted(c["name"] for c in pool.children(parent_id))
    assert [n.split(":")[0] for n in names] == ["phase-1", "phase-2", "phase-3", "phase-4"], names
    for created in ("tests/alpha.rs", "tests/beta.rs", "src/report.rs", "tests/gamma.rs"):
        assert (repo / created).is_file(), created
