"""Plan-file writer cost: locked atomic writes over the corpus, and one plan with many phases.

Run from the project root: `python bench/plan_writer.py [SHARED_DIR]` (default `../shared`).
Prints wall and CPU time per write; the figures go in docs/benchmarks.md, `## Plan-file writer`.
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

from plan_parser.checkpoints import PhaseCheckpoint, read_plan_state
from plan_parser.writer import PlanFileWriter, apply_phases

PHASE_RE = re.compile(r"^#{2,3} Phase (\d+[A-Za-z]?(?:\.\d+)?)\b", re.MULTILINE)


def _checkpoint(phase_id: str, status: str = "complete") -> PhaseCheckpoint:
    return PhaseCheckpoint(
        phase_id=phase_id,
        status=status,  # type: ignore[arg-type]
        started_at="2026-01-01T10:00:00Z",
        completed_at="2026-01-01T10:30:00Z",
        artifacts=[f"src/phase_{phase_id}.rs", f"tests/phase_{phase_id}.rs"],
        tokens={"input": 12000, "output": 800},
    )


def corpus_run(plans: list[Path], folder: Path) -> tuple[int, float, float]:
    writes = 0
    wall, cpu = time.perf_counter(), time.process_time()
    for source in plans:
        plan = folder / source.name
        shutil.copyfile(source, plan)
        writer = PlanFileWriter(plan)
        ids = list(dict.fromkeys(PHASE_RE.findall(source.read_text()))) or ["1", "2"]
        for phase_id in ids:  # one write per phase transition, as a run does
            writer.set_phase(_checkpoint(phase_id))
        writer.set_status("Implemented")
        writer.set_summary("**Completed:** 2026-01-01\n")
        writer.clear_execution_state()
        writes += len(ids) + 3
        assert plan.read_bytes() == source.read_bytes()
    return writes, time.perf_counter() - wall, time.process_time() - cpu


def section_cost(phases: int) -> tuple[float, float]:
    """CPU ms of one pure text update and one read, with `phases` entries in the section."""
    text = apply_phases("# P\n", [_checkpoint(str(n)) for n in range(phases)])
    start = time.process_time()
    for _ in range(20):
        apply_phases(text, [_checkpoint("0", "failed")])
    update = (time.process_time() - start) / 20 * 1000
    folder = Path(tempfile.mkdtemp())
    (folder / "p.md").write_text(text)
    start = time.process_time()
    for _ in range(20):
        read_plan_state(folder / "p.md")
    read = (time.process_time() - start) / 20 * 1000
    shutil.rmtree(folder)
    return update, read


def main() -> None:
    shared = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("../shared")
    plans = sorted((shared / "corpus" / "plans").glob("*.md"))
    with tempfile.TemporaryDirectory() as folder:
        writes, wall, cpu = corpus_run(plans, Path(folder))
    print(f"corpus: {len(plans)} plans, {writes} locked atomic writes (fsync file + folder)")
    print(
        f"  wall {wall:.2f} s ({wall / writes * 1000:.1f} ms/write), CPU {cpu:.2f} s ({cpu / writes * 1000:.1f} ms/write)"
    )
    for phases in (10, 40, 160):
        update, read = section_cost(phases)
        print(
            f"section with {phases:3d} phases: update {update:.1f} ms CPU, read {read:.1f} ms CPU"
        )


if __name__ == "__main__":
    main()
