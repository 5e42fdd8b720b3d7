"""The command line's former module path, kept as an entry point: `python -m flows.cli ...` is
what scripts and scoring tools written before the CLI moved to `cli/` run when `plan-executor`
is not on PATH. Nothing in the product imports it."""

from __future__ import annotations

from cli.app import app, main

__all__ = ["app", "main"]

if __name__ == "__main__":
    main()
