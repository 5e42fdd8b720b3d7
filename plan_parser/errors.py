"""The root of every exception plan-executor defines.

Pure (plan_parser stays free of Prefect, network and subprocesses) so that every package can
derive from it. Each product exception keeps its former bases beside this root, so an
``except ValueError`` or ``except RuntimeError`` still catches what it caught; callers that want
"anything plan-executor raised on purpose" catch :class:`PlanExecutorError`. The public list of
exceptions is ``flows.errors``.
"""

from __future__ import annotations

__all__ = ["PlanExecutorError"]


class PlanExecutorError(Exception):
    """Raised by plan-executor itself (bad input, a failed step, an unusable environment)."""
