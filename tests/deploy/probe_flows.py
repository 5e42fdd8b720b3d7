"""A flow deployed by the deployment tests: the dirty-tree question, then the real pre-flight.

It exercises flows.approvals in a deployment run (suspend, resume with input, fallback) on its
own, whether or not `execute-plan` calls it yet.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger

from flows.approvals import dirty_tree_policy
from plan_parser import parse_plan
from tasks.phase_steps import preflight_step


@flow(name="dirty-tree-probe")
async def dirty_tree_probe(
    plan_path: str, dirty_policy: str = "stop", timeout_s: float = 600
) -> str:
    plan_file = Path(plan_path)
    repo = plan_file.parents[2]
    policy = await dirty_tree_policy(
        repo, plan_file, dirty_policy, interactive=True, timeout_s=timeout_s
    )
    result = await preflight_step(
        repo, parse_plan(plan_file, repo=repo), plan_path=plan_file, policy=policy
    )
    get_run_logger().info("pre-flight with policy %s: ok=%s", policy, result.ok)
    return policy
