"""The public exceptions of plan-executor, all in one place.

Every exception the product defines derives from :class:`PlanExecutorError` (defined in the
pure ``plan_parser.errors`` so that every package can use it) and keeps its former bases, so
``except ValueError`` and friends still catch what they caught. ``tests/flows/test_errors.py``
checks that every exception class in ``flows``, ``tasks`` and ``plan_parser`` has the root and
that every public one is listed here.
"""

from __future__ import annotations

from backend.credentials import CredentialError
from backend.postgres import PostgresError
from backend.server import PortInUseError, ServerError
from flows.phase import PhaseOverBudget, PhaseTimeout
from plan_parser.checkpoints import PlanFileError
from plan_parser.errors import PlanExecutorError
from plan_parser.schedule import CycleError
from plan_parser.writer import PlanWriteError
from tasks.agent.runtimes import RuntimeUnavailable
from tasks.agent.sandbox import SandboxUnavailable
from tasks.agent.task import AgentInfrastructureError
from tasks.agent.tools import ToolInputError
from tasks.env_settings import EnvSettingError
from tasks.plan_input import PlanInputError
from tasks.run_lock import RunLockError, RunLockHeld
from tasks.worktree import WorktreeError

__all__ = [
    "AgentInfrastructureError",
    "CredentialError",
    "CycleError",
    "EnvSettingError",
    "PhaseOverBudget",
    "PhaseTimeout",
    "PlanExecutorError",
    "PlanFileError",
    "PlanInputError",
    "PlanWriteError",
    "PortInUseError",
    "PostgresError",
    "RunLockError",
    "RunLockHeld",
    "RuntimeUnavailable",
    "SandboxUnavailable",
    "ServerError",
    "ToolInputError",
    "WorktreeError",
]
