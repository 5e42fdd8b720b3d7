"""The read-only commands end to end: JSON shape, validate exit codes, graph output, and no
Prefect import on their path."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.parser.helpers import REPO, invoke, phase_block, plan_text


def test_parse_json_shape(write_plan) -> None:
    path = write_plan(
        plan_text(
            phase_block("1", "Alpha", files=["src/a.rs"]),
            phase_block("2", "Beta (PARALLEL)", deps="Phase 1"),
        )
    )
    code, output = invoke("parse", "--json", str(path))
    assert code == 0, output
    [item] = json.loads(output)
    assert item["file"] == str(path)
    assert item["kind"] == "plan"
    assert item["title"] == "Demo Plan"
    assert item["status"] == "Reviewed - Ready for Implementation"
    first, second = item["phases"]
    assert first["id"] == "1" and first["owner"] == "rust-developer"
    assert first["files"] == [{"path": "src/a.rs", "action": "modify"}]
    assert first["acceptance_criteria"] == ["Alpha works", "tests pass"]
    assert first["blast_radius"] == "cargo test -p demo"
    assert first["type"] == "implementation" and first["optional"] is False
    assert second["title"] == "Beta" and second["depends_on"] == ["1"]
    assert item["errors"] == []
    assert all({"code", "line", "text"} <= set(w) for w in item["warnings"])


def test_parse_several_files_and_kinds(write_plan) -> None:
    plan = write_plan(plan_text(phase_block("1", "Alpha")))
    log = write_plan(
        "---\nplan_file: x.md\nstatus: done\n---\n# Plan Execution\n\n## Phase 1: Alpha\n",
        name="2026-02-01.execution-of-test.md",
    )
    note = write_plan("# Notes\n\n## Ideas\n\n- one\n", name="2026-02-01.notes.md")
    code, output = invoke("parse", "--json", str(plan), str(log), str(note))
    assert code == 0, output
    items = json.loads(output)
    assert [i["kind"] for i in items] == ["plan", "execution-log", "note"]
    assert [len(i["phases"]) for i in items] == [1, 0, 0]


def test_parse_summary_without_json(write_plan) -> None:
    path = write_plan(plan_text(phase_block("1", "Alpha"), phase_block("2.5", "Beta", "Phase 1")))
    code, output = invoke("parse", str(path))
    assert code == 0, output
    assert "Alpha" in output and "2.5" in output


def test_validate_corpus_plan_ready(shared_dir: Path) -> None:
    code, output = invoke("validate", str(shared_dir / "corpus/plans/2026-01-03.mermaid-module.md"))
    assert code == 0, output
    assert "VALID: 0 error(s)" in output
    assert "[ ok ] No circular dependencies exist" in output


def test_validate_with_repo_refuses_unknown_owner(shared_dir: Path, tmp_path: Path) -> None:
    agents = tmp_path / ".claude" / "agents"
    agents.mkdir(parents=True)
    for source in (shared_dir / "corpus/agents").glob("*.md"):
        (agents / source.name).write_text(source.read_text())
    plan = shared_dir / "corpus/plans/2026-01-03.mermaid-module.md"
    before = plan.read_bytes()
    code, output = invoke("validate", str(plan), "--repo", str(tmp_path))
    assert code == 2, output
    assert f"{plan}:142: error E-OWNER-UNKNOWN phase 1 [owner]: owner 'Schema Architect'" in output
    assert "feature-tester-rust, rust-designer, rust-developer" in output
    # Rust Developer resolves to rust-developer.md: no error for phase 2.
    assert "E-OWNER-UNKNOWN phase 2" not in output
    assert plan.read_bytes() == before
    # Without a repository the owner cannot be checked: the same plan is valid.
    assert invoke("validate", str(plan))[0] == 0


def test_graph_prints_waves_and_mermaid(write_plan) -> None:
    path = write_plan(
        plan_text(
            phase_block("1", "Alpha"),
            phase_block("2", "Beta", deps="Phase 1"),
            phase_block("3", "Gamma", deps="Phase 1"),
            phase_block("4", "Delta (Optional)", deps="Phases 2-3"),
        )
    )
    code, output = invoke("graph", str(path))
    assert code == 0, output
    assert "Wave 1: Phase 1\nWave 2: Phase 2, Phase 3\n" in output
    assert "Skipped (optional): Phase 4" in output
    assert "flowchart TD" in output and "P1 --> P2" in output
    code, output = invoke("graph", "--include-optional", str(path))
    assert "Wave 3: Phase 4" in output
    code, output = invoke("graph", "--json", str(path))
    document = json.loads(output)
    assert code == 0 and document["waves"] == [["1"], ["2", "3"]]
    assert document["skipped"] == ["4"] and document["source"] == "deps"
    assert document["mermaid"].startswith("flowchart TD")


def test_validate_json(write_plan) -> None:
    path = write_plan(
        plan_text(phase_block("1", "Alpha"), phase_block("2", "Beta", deps="Phase 7"))
    )
    code, output = invoke("validate", "--json", str(path))
    assert code == 2
    [error] = json.loads(output)["errors"]
    assert (error["code"], error["phase"], error["field"]) == ("E-DEP-UNKNOWN", "2", "depends_on")
    assert error["text"].startswith(f"{path}:{error['line']}: error E-DEP-UNKNOWN phase 2")


def test_graph_cycle_exit_2(write_plan) -> None:
    path = write_plan(
        plan_text(phase_block("1", "A", deps="Phase 2"), phase_block("2", "B", deps="Phase 1"))
    )
    code, output = invoke("graph", str(path))
    assert code == 2
    assert "E-DEP-CYCLE" in output and "Phase 1 -> Phase 2 -> Phase 1" in output


def test_read_only_commands_do_not_import_prefect(write_plan) -> None:
    """`--help`, `parse`, `validate` and `graph` in a fresh interpreter: Prefect (and the Anthropic
    SDK) never get imported, neither in `sys.modules` nor in `-X importtime` output."""
    path = write_plan(plan_text(phase_block("1", "Alpha")))
    runs = [
        ["--help"],
        ["parse", "--json", str(path)],
        ["validate", str(path)],
        ["graph", str(path)],
    ]
    code = (
        "import sys\n"
        "from cli.app import app\n"
        f"for argv in {runs!r}:\n"
        "    try:\n"
        "        app(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('prefect', 'anthropic'))\n"
        "print('HEAVY_MODULES', len(loaded), loaded[:5], file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert "HEAVY_MODULES 0 []" in result.stderr, result.stderr[-2000:]
    assert "Wave 1: Phase 1" in result.stdout  # the commands really ran
    imported = [line for line in result.stderr.splitlines() if line.startswith("import time:")]
    assert any(line.rstrip().endswith("plan_parser") for line in imported)
    assert not any(line.rstrip().endswith((" prefect", " anthropic")) for line in imported)


def test_the_former_module_path_still_runs_the_cli(write_plan) -> None:
    """`python -m flows.cli` is what tools written before the CLI moved to `cli/` run when
    `plan-executor` is not on PATH (a parser-scoring script does): it stays the same CLI."""
    path = write_plan(plan_text(phase_block("1", "Alpha", files=["src/a.rs"])))
    done = subprocess.run(
        [sys.executable, "-m", "flows.cli", "parse", "--json", str(path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    [item] = json.loads(done.stdout)
    assert item["phases"][0]["id"] == "1"
