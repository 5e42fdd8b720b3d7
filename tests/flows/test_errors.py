"""One exception root: every exception class the product defines derives from PlanExecutorError,
keeps its former bases, and every public one is listed in `flows.errors.__all__`."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import backend
import cli
import flows
import flows.errors
import plan_parser
import tasks
from plan_parser.errors import PlanExecutorError


def _product_exceptions() -> dict[str, type[BaseException]]:
    """`module.Class` -> class, for every exception class defined in a product module."""
    found: dict[str, type[BaseException]] = {}
    for package in (flows, tasks, plan_parser, cli, backend):
        modules = [package.__name__] + [
            info.name
            for info in pkgutil.walk_packages(package.__path__, prefix=package.__name__ + ".")
        ]
        for name in modules:
            module = importlib.import_module(name)  # an import error fails the test: none skipped
            for _, cls in inspect.getmembers(module, inspect.isclass):
                if cls.__module__ == name and issubclass(cls, BaseException):
                    found[f"{name}.{cls.__qualname__}"] = cls
    return found


def test_every_product_exception_derives_from_the_root() -> None:
    found = _product_exceptions()
    # The walk reaches every package (a walk that found nothing would pass vacuously).
    assert {"tasks.plan_input.PlanInputError", "plan_parser.schedule.CycleError"} <= set(found)
    assert "flows.phase.PhaseTimeout" in found
    assert "backend.postgres.PostgresError" in found
    outside = sorted(name for name, cls in found.items() if not issubclass(cls, PlanExecutorError))
    assert outside == []


def test_public_surface_lists_every_public_exception() -> None:
    public = {
        cls.__name__ for cls in _product_exceptions().values() if not cls.__name__.startswith("_")
    }
    assert public == set(flows.errors.__all__)
    for name in flows.errors.__all__:
        assert issubclass(getattr(flows.errors, name), PlanExecutorError)


def test_former_bases_are_kept() -> None:
    from flows.errors import (
        AgentInfrastructureError,
        CredentialError,
        CycleError,
        PlanWriteError,
        PortInUseError,
        PostgresError,
        RuntimeUnavailable,
        SandboxUnavailable,
        ServerError,
        ToolInputError,
        WorktreeError,
    )
    from plan_parser.checkpoints import PlanFileError

    runtime_errors = (
        AgentInfrastructureError,
        CredentialError,
        PostgresError,
        RuntimeUnavailable,
        SandboxUnavailable,
        ServerError,
        WorktreeError,
    )
    assert all(issubclass(cls, RuntimeError) for cls in runtime_errors)
    assert issubclass(ToolInputError, ValueError) and issubclass(CycleError, ValueError)
    assert issubclass(PortInUseError, ServerError) and issubclass(PlanWriteError, PlanFileError)
