"""Fixtures for the parser tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def write_plan(tmp_path: Path):
    """Write plan text into tmp_path (never a corpus copy) and return the path."""

    def write(text: str, name: str = "2026-02-01.plan-for-test.md") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write
