"""The corpus score: golden facts about 70 real plans (../shared/tools/score_parser.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.parser.helpers import REPO


def test_corpus_score_at_least_98(shared_dir: Path) -> None:
    script = shared_dir / "tools" / "score_parser.py"
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(REPO)
    result = subprocess.run(
        [sys.executable, str(script), "--min", "98"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "kinds 70/70" in result.stdout
