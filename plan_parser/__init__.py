"""Plan files as data: parse, validate and schedule multi-phase implementation plans.

Pure Python: no Prefect, no network, no subprocess.
"""

from __future__ import annotations

from plan_parser.ids import id_sort_key
from plan_parser.model import (
    Criterion,
    Diagnostic,
    DocKind,
    FileAction,
    FileRef,
    Owner,
    OwnerKind,
    ParallelGroup,
    Phase,
    PhaseType,
    Plan,
    Severity,
)
from plan_parser.parser import parse_bytes, parse_plan, parse_text

__all__ = [
    "Criterion",
    "Diagnostic",
    "DocKind",
    "FileAction",
    "FileRef",
    "Owner",
    "OwnerKind",
    "ParallelGroup",
    "Phase",
    "PhaseType",
    "Plan",
    "Severity",
    "id_sort_key",
    "parse_bytes",
    "parse_plan",
    "parse_text",
]
