"""End to end the Prefect way: the session's `prefect server start`, `prefect work-pool create`,
`prefect deploy --all --no-prompt` from this checkout's prefect.yaml, a process worker, and
`prefect deployment run ... --watch` on a fixture crate with the stand-in Messages API.

Everything is checked through the Prefect API (states, subflows, artifacts, the limit, the
schedule) and in the repository (the checkpoint mirror). The worker is always stopped.
"""

from __future__ import annotations

import inspect
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from cli.demo import ScriptedAgents, demo_scripts, make_crate
from tasks import concurrency, secrets
from tasks.shell import CommandResult, run
from tests.deploy._procs import PREFECT, Background, base_env, start_worker
from tests.flows.conftest import needs_cargo
from tests.prefect_fixture import api_auth

pytestmark = [needs_cargo, pytest.mark.slow, pytest.mark.timeout(420)]

CHECKOUT = Path(__file__).resolve().parents[2]
POOL = "plan-executor"
TIMEZONE = "Europe/Berlin"
STANDIN_KEY = "sk-ant-standin-e2e-5f1c0a9d7e"


def _loop_reads_key_from_secrets() -> bool:
    """Whether the agent loop builds its client with tasks.secrets (the lead's wiring)."""
    import tasks.agent.loop as loop

    return "anthropic_api_key" in inspect.getsource(loop)


@dataclass
class Deployed:
    api_url: str
    env: dict[str, str]
    worker: Background
    nightly_repo: Path
    standin: object
    deploy_output: str

    def cli(self, *args: str, timeout_s: float = 240) -> CommandResult:
        return run([PREFECT, *args], cwd=CHECKOUT, env=self.env, timeout_s=timeout_s)

    def get(self, path: str) -> object:
        response = httpx.get(f"{self.api_url}{path}", timeout=15, auth=api_auth())
        response.raise_for_status()
        return response.json()

    def post(self, path: str, body: dict) -> object:
        response = httpx.post(f"{self.api_url}{path}", json=body, timeout=15, auth=api_auth())
        response.raise_for_status()
        return response.json()

    def deployment(self, full_name: str) -> dict:
        flow_name, name = full_name.split("/")
        return self.get(f"/deployments/name/{flow_name}/{name}")  # type: ignore[return-value]

    def flow_run(self, flow_run_id: str) -> dict:
        return self.get(f"/flow_runs/{flow_run_id}")  # type: ignore[return-value]

    def wait_for(self, flow_run_id: str, done, timeout_s: float = 240) -> dict:
        deadline = time.monotonic() + timeout_s
        while True:
            current = self.flow_run(flow_run_id)
            if done(current) or time.monotonic() > deadline:
                return current
            time.sleep(0.5)

    def logs(
        self, flow_run_id: str, *, until: str | None = None, timeout_s: float = 30
    ) -> list[str]:
        """The run's log messages; with ``until``, waits (logs arrive in batches) for that text."""
        deadline = time.monotonic() + timeout_s
        while True:
            entries = self.post(
                "/logs/filter", {"logs": {"flow_run_id": {"any_": [flow_run_id]}}, "limit": 200}
            )
            messages = [e["message"] for e in entries]  # type: ignore[union-attr]
            if until is None or any(until in m for m in messages) or time.monotonic() > deadline:
                return messages
            time.sleep(0.5)


@pytest.fixture(scope="module")
def deployed(prefect_client_env, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    from prefect.blocks.system import Secret

    from tasks.agent.standin import StandinMessagesAPI

    api_url = prefect_client_env.api_url
    nightly_repo = tmp_path_factory.mktemp("nightly-repo")
    env = base_env(prefect_client_env.cli_home, api_url)
    env.update(PLAN_EXECUTOR_TIMEZONE=TIMEZONE, PLAN_EXECUTOR_NIGHTLY_REPO=str(nightly_repo))
    # The key lives in a real Secret block; the worker gets it in its environment only while
    # the agent loop does not read it from tasks.secrets yet.
    Secret(value=STANDIN_KEY).save(secrets.SECRET_BLOCK_NAME, overwrite=True)

    pool = run(
        [PREFECT, "work-pool", "create", POOL, "--type", "process", "--overwrite"],
        cwd=CHECKOUT,
        env=env,
        timeout_s=120,
    )
    assert pool.ok, pool.output
    deploy = run([PREFECT, "deploy", "--all", "--no-prompt"], cwd=CHECKOUT, env=env, timeout_s=180)
    assert deploy.ok, deploy.output
    probe = run(
        [
            PREFECT,
            "deploy",
            "tests/deploy/probe_flows.py:dirty_tree_probe",
            "--name",
            "probe",
            "--pool",
            POOL,
            "--no-prompt",
        ],
        cwd=CHECKOUT,
        env=env,
        timeout_s=180,
    )
    assert probe.ok, probe.output

    agents = ScriptedAgents(demo_scripts())
    with StandinMessagesAPI(responder=agents, auto_summary=False) as standin:
        worker_env = {"ANTHROPIC_BASE_URL": standin.base_url}
        if not _loop_reads_key_from_secrets():
            worker_env["ANTHROPIC_API_KEY"] = STANDIN_KEY
        worker = start_worker(
            POOL,
            home=prefect_client_env.cli_home,
            api_url=api_url,
            cwd=prefect_client_env.cli_home,
            extra_env=worker_env,
        )
        try:
            yield Deployed(
                api_url=api_url,
                env=env,
                worker=worker,
                nightly_repo=nightly_repo,
                standin=standin,
                deploy_output=deploy.output,
            )
        finally:
            try:
                worker.stop()
            finally:
                block = Secret.load(secrets.SECRET_BLOCK_NAME, _sync=True)
                httpx.delete(
                    f"{api_url}/block_documents/{block._block_document_id}",
                    timeout=15,
                    auth=api_auth(),
                )


def _flow_run_id_from(output: str) -> str:
    match = re.search(r"UUID: ([0-9a-f-]{36})", output) or re.search(
        r"flow-run/([0-9a-f-]{36})", output
    )
    assert match, output
    return match.group(1)


def test_deploy_records_the_checkout_schedule_and_pull_step(deployed: Deployed):
    manual = deployed.deployment("execute-plan/manual")
    nightly = deployed.deployment("execute-ready-plans/nightly")
    fallback = deployed.deployment("resume-on-timeout/fallback")
    for deployment in (manual, nightly, fallback):
        assert deployment["work_pool_name"] == POOL
        assert deployment["pull_steps"] == [
            {"prefect.deployments.steps.set_working_directory": {"directory": str(CHECKOUT)}}
        ]
    assert manual["entrypoint"] == "flows/execute_plan.py:execute_plan"
    assert manual["parameters"]["options"]["dirty_policy"] == "stop"
    assert "plan_path" in manual["parameter_openapi_schema"]["required"]
    assert manual["schedules"] == []
    (schedule,) = nightly["schedules"]
    assert schedule["active"] is True
    assert schedule["schedule"]["cron"] == "0 2 * * *"
    assert schedule["schedule"]["timezone"] == TIMEZONE
    # What the UI shows of it: the card shows the slug, the description names the timezone.
    assert schedule["slug"] == "02:00 every night (timezone: in the tags)"
    assert f"02:00 {TIMEZONE}" in nightly["tags"]
    assert nightly["description"].startswith(f"Every night at 02:00 {TIMEZONE} time")
    assert nightly["parameters"]["repo"] == str(deployed.nightly_repo)
    # The scheduler turned it into runs at 02:00 Berlin time.
    runs = deployed.post(
        "/flow_runs/filter",
        {"flow_runs": {"deployment_id": {"any_": [nightly["id"]]}}, "limit": 5},
    )
    for upcoming in runs:  # type: ignore[union-attr]
        assert upcoming["state_type"] == "SCHEDULED"
        assert upcoming["expected_start_time"][11:16] in ("01:00", "00:00")  # CET / CEST


def test_manual_deployment_run_completes_with_subflows_artifacts_and_mirror(
    deployed: Deployed, tmp_path: Path
):
    from plan_parser import parse_plan
    from plan_parser.checkpoints import read_plan_state

    plan_path = make_crate(tmp_path / "crate")
    repo = plan_path.parents[2]
    # Gone before the run: if it exists afterwards, the run's agent calls created it.
    httpx.delete(
        f"{deployed.api_url}/v2/concurrency_limits/{concurrency.AGENT_LIMIT_NAME}",
        timeout=15,
        auth=api_auth(),
    )
    started = deployed.cli(
        "deployment",
        "run",
        "execute-plan/manual",
        "--param",
        f"plan_path={plan_path}",
        "--param",
        "options=" + json.dumps({"repo": str(repo)}),
        "--watch",
        "--watch-interval",
        "2",
    )
    flow_run_id = _flow_run_id_from(started.output)
    assert started.ok, (
        started.output + "\n--- worker log ---\n" + deployed.worker.log_text()[-6000:]
    )

    flow_run = deployed.flow_run(flow_run_id)
    assert flow_run["state_type"] == "COMPLETED", flow_run["state"]
    children = deployed.post(
        "/flow_runs/filter",
        {"flow_runs": {"parent_flow_run_id": {"any_": [flow_run_id]}}},
    )
    phase_runs = [c for c in children if c["name"].startswith("phase")]  # type: ignore[union-attr]
    assert len(phase_runs) == 3, [c["name"] for c in children]  # type: ignore[union-attr]
    assert {c["state_type"] for c in phase_runs} == {"COMPLETED"}

    artifacts = deployed.post(
        "/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [flow_run_id]}}}
    )
    by_key = {a["key"]: a for a in artifacts}  # type: ignore[union-attr]
    progress = next(a for k, a in by_key.items() if k and k.endswith("-progress"))
    assert progress["data"] == 100.0
    assert any(k and k.endswith("-phases") for k in by_key), list(by_key)
    report = next(a for k, a in by_key.items() if k and k.endswith("-report"))
    assert "Phase Summary" in str(report["data"])

    state = read_plan_state(plan_path)
    assert state is not None
    assert {pid: cp.status for pid, cp in state.phases.items()} == {
        "1": "complete",
        "2": "complete",
        "3": "complete",
    }
    assert all(cp.flow_run_id for cp in state.phases.values())
    assert parse_plan(plan_path).status == "Implemented"

    # The run's agent calls created the limit (it was deleted before) and gave their slots back.
    limit = deployed.get(f"/v2/concurrency_limits/{concurrency.AGENT_LIMIT_NAME}")
    assert limit["limit"] == concurrency.DEFAULT_AGENT_LIMIT  # type: ignore[index]
    assert limit["active"] is True and limit["active_slots"] == 0  # type: ignore[index]

    # Every agent request carried a key (the stand-in records it redacted); nothing else did.
    requests = deployed.standin.message_requests  # type: ignore[attr-defined]
    assert requests
    credentials = [r.headers.get("x-api-key") or r.headers.get("authorization") for r in requests]
    assert credentials == ["<redacted>"] * len(requests), [sorted(r.headers) for r in requests]
    child_ids = [c["id"] for c in children]  # type: ignore[union-attr]
    everything = json.dumps(
        [deployed.logs(i) for i in [flow_run_id, *child_ids]]
        + [deployed.post("/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": child_ids}}})]
        + [artifacts]
    )
    assert STANDIN_KEY not in everything
    assert STANDIN_KEY not in plan_path.read_text()
    for log_file in (repo / ".ai").rglob("*.md"):
        assert STANDIN_KEY not in log_file.read_text(errors="replace"), log_file


def _start(deployed: Deployed, name: str, **params: object) -> str:
    argv = ["deployment", "run", name]
    for key, value in params.items():
        argv += ["--param", f"{key}={json.dumps(value) if not isinstance(value, str) else value}"]
    started = deployed.cli(*argv, timeout_s=120)
    assert started.ok, started.output
    return _flow_run_id_from(started.output)


def _dirty_crate(root: Path) -> tuple[Path, Path]:
    plan_path = make_crate(root)
    repo = plan_path.parents[2]
    (repo / "src" / "lib.rs").write_text(
        (repo / "src" / "lib.rs").read_text() + "\n// work in progress\n"
    )
    return plan_path, repo


def _git(repo: Path, *args: str) -> str:
    result = run(["git", *args], cwd=repo, timeout_s=30)
    assert result.ok, result.output
    return result.output


def test_suspended_run_resumes_with_a_typed_answer_through_the_api(
    deployed: Deployed, tmp_path: Path
):
    plan_path, repo = _dirty_crate(tmp_path / "crate")
    flow_run_id = _start(
        deployed, "dirty-tree-probe/probe", plan_path=str(plan_path), dirty_policy="stop"
    )
    waiting = deployed.wait_for(flow_run_id, lambda r: r["state_type"] == "PAUSED")
    assert waiting["state"]["name"] == "Suspended", waiting["state"]  # the worker is free
    assert waiting["state"]["state_details"]["pause_key"] == "dirty-tree"

    resumed = httpx.post(
        f"{deployed.api_url}/flow_runs/{flow_run_id}/resume",
        json={"run_input": {"action": "stash"}},
        timeout=15,
        auth=api_auth(),
    ).json()
    assert resumed["status"] == "ACCEPT", resumed

    final = deployed.wait_for(
        flow_run_id, lambda r: r["state_type"] in ("COMPLETED", "FAILED", "CRASHED")
    )
    assert final["state_type"] == "COMPLETED", final["state"]
    assert "work in progress" not in (repo / "src" / "lib.rs").read_text()  # stashed ...
    assert "work in progress" in _git(repo, "stash", "show", "-p")  # ... and kept
    messages = deployed.logs(flow_run_id, until="Answer to dirty-tree")
    assert any("Answer to dirty-tree: {'action': 'stash'}" in m for m in messages), messages


def test_unanswered_suspended_run_resumes_with_the_fallback(deployed: Deployed, tmp_path: Path):
    plan_path, repo = _dirty_crate(tmp_path / "crate")
    flow_run_id = _start(
        deployed,
        "dirty-tree-probe/probe",
        plan_path=str(plan_path),
        dirty_policy="proceed",
        timeout_s=3,
    )
    final = deployed.wait_for(
        flow_run_id, lambda r: r["state_type"] in ("COMPLETED", "FAILED", "CRASHED")
    )
    assert final["state_type"] == "COMPLETED", final["state"]
    messages = deployed.logs(flow_run_id, until="pre-flight with policy")
    assert any("No answer to dirty-tree within 3 s" in m for m in messages), messages
    assert any("pre-flight with policy proceed" in m for m in messages), messages
    assert "work in progress" in (repo / "src" / "lib.rs").read_text()  # proceeded, untouched
    fallback_runs = deployed.post(
        "/flow_runs/filter",
        {
            "deployments": {
                "id": {"any_": [deployed.deployment("resume-on-timeout/fallback")["id"]]}
            },
            "flow_runs": {"state": {"type": {"any_": ["COMPLETED"]}}},
        },
    )
    assert any(r["name"] == "fallback-dirty-tree" for r in fallback_runs)  # type: ignore[union-attr]


def test_interactive_execute_plan_pauses_at_a_dirty_tree(deployed: Deployed, tmp_path: Path):
    plan_path, repo = _dirty_crate(tmp_path / "crate")
    flow_run_id = _start(
        deployed,
        "execute-plan/manual",
        plan_path=str(plan_path),
        options={"repo": str(repo), "interactive": True, "dirty_policy": "stop"},
    )
    waiting = deployed.wait_for(flow_run_id, lambda r: r["state_type"] == "PAUSED")
    assert waiting["state"]["state_details"]["pause_key"] == "dirty-tree", waiting["state"]
    resumed = httpx.post(
        f"{deployed.api_url}/flow_runs/{flow_run_id}/resume",
        json={"run_input": {"action": "stash"}},
        timeout=15,
        auth=api_auth(),
    ).json()
    assert resumed["status"] == "ACCEPT", resumed
    final = deployed.wait_for(
        flow_run_id, lambda r: r["state_type"] in ("COMPLETED", "FAILED", "CRASHED")
    )
    assert final["state_type"] == "COMPLETED", final["state"]
    assert "work in progress" in _git(repo, "stash", "show", "-p")


def test_nightly_deployment_runs_only_the_ready_plans(deployed: Deployed, tmp_path: Path):
    ready = make_crate(tmp_path / "crate")
    repo = ready.parents[2]
    implemented = ready.with_name("2026-01-01.already-implemented.md")
    implemented.write_text(
        ready.read_text().replace(
            "**Status:** Reviewed - Ready for Implementation", "**Status:** Implemented"
        )
    )
    draft = ready.with_name("2026-01-02.still-a-draft.md")
    draft.write_text(
        ready.read_text().replace(
            "**Status:** Reviewed - Ready for Implementation", "**Status:** Draft - Awaiting Review"
        )
    )
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "more plans")
    untouched = {p: p.read_bytes() for p in (implemented, draft)}

    started = deployed.cli(
        "deployment",
        "run",
        "execute-ready-plans/nightly",
        "--param",
        f"repo={repo}",
        "--param",
        'options={"dry_run": true}',  # replaces the deployment's options: budgets by default
        "--watch",
        "--watch-interval",
        "2",
    )
    flow_run_id = _flow_run_id_from(started.output)
    assert started.ok, (
        started.output + "\n--- worker log ---\n" + deployed.worker.log_text()[-6000:]
    )

    children = deployed.post(
        "/flow_runs/filter", {"flow_runs": {"parent_flow_run_id": {"any_": [flow_run_id]}}}
    )
    assert [c["name"] for c in children] == [  # type: ignore[union-attr]
        f"{repo.name}: {ready.name.removesuffix('.md')}"  # the repository, then the plan
    ]
    assert children[0]["state_type"] == "COMPLETED"  # type: ignore[index]
    child_options = children[0]["parameters"]["options"]  # type: ignore[index]
    assert child_options["dry_run"] is True
    # The run's `options` replaced the deployment's: the nightly's own defaults filled the rest.
    assert (child_options["max_cost_usd"], child_options["phase_max_cost_usd"]) == (25.0, 5.0)
    assert child_options["repo"] == str(repo.resolve())
    assert {p: p.read_bytes() for p in untouched} == untouched
    artifacts = deployed.post(
        "/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [flow_run_id]}}}
    )
    table = next(a for a in artifacts if a["key"] == "nightly-plans")  # type: ignore[union-attr]
    verdicts = {row["plan"]: row["verdict"] for row in json.loads(table["data"])}
    assert verdicts == {
        ready.name: "run",
        implemented.name: "skipped: already implemented",
        draft.name: "skipped: not ready",
    }
    assert any(a["key"] == "nightly-report" for a in artifacts)  # type: ignore[index]
    messages = deployed.logs(flow_run_id, until="already implemented")
    assert any("already implemented" in m and implemented.name in m for m in messages), messages


def test_plan_executor_deploy_wraps_the_same_commands(deployed: Deployed, tmp_path: Path):
    result = run(
        [
            str(Path(PREFECT).with_name("plan-executor")),
            "deploy",
            "--timezone",
            "Asia/Tokyo",
            "--nightly-repo",
            str(tmp_path),
        ],
        cwd=tmp_path,  # anywhere: it deploys from this checkout
        env=deployed.env,
        timeout_s=240,
    )
    assert result.ok, result.output
    assert f"work pool {POOL} exists" in result.output
    nightly = deployed.deployment("execute-ready-plans/nightly")
    assert nightly["schedules"][0]["schedule"]["timezone"] == "Asia/Tokyo"
    assert nightly["parameters"]["repo"] == str(tmp_path.resolve())
    assert nightly["pull_steps"] == [
        {"prefect.deployments.steps.set_working_directory": {"directory": str(CHECKOUT)}}
    ]
    limit = deployed.get(f"/v2/concurrency_limits/{concurrency.AGENT_LIMIT_NAME}")
    assert limit["active"] is True  # type: ignore[index]
