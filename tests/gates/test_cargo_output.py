"""Parsing test runner output: real `cargo test` output captured from the fixture crates, and a
live run whose keys must match the captured ones."""

from __future__ import annotations

from pathlib import Path

from tasks import shell
from tasks.gates.cargo_output import parse_test_output
from tests.gates.helpers import CARGO_OUTPUT, make_repo


def captured(name: str) -> str:
    return (CARGO_OUTPUT / f"{name}.txt").read_text()


def test_single_crate_with_unit_ignored_and_doc_tests() -> None:
    run = parse_test_output(captured("single"))
    assert (run.passed, run.failed, run.ignored, run.summaries) == (7, 0, 1, 2)
    assert run.results == {
        "single::math::tests::square_of_three": "ok",
        "single::math::tests::square_of_zero": "ok",
        "single::math::tests::cube_of_two": "ok",
        "single::tests::adds": "ok",
        "single::tests::multiplies": "ok",
        "single::tests::slow_sum": "ignored",
        "single(doc)::src/lib.rs - add": "ok",
        "single(doc)::src/lib.rs - mul": "ok",
    }


def test_workspace_keeps_equal_names_in_different_crates_apart() -> None:
    run = parse_test_output(captured("workspace"))
    assert (run.passed, run.failed, run.ignored, run.summaries) == (6, 0, 0, 5)
    assert run.results["alpha::tests::it_works"] == "ok"
    assert run.results["beta::tests::it_works"] == "ok"
    assert run.results["integration::doubles_from_outside"] == "ok"
    assert run.results["alpha(doc)::alpha/src/lib.rs - double"] == "ok"
    assert run.results["beta(doc)::beta/src/lib.rs - quadruple"] == "ok"
    assert len(run.results) == 6


def test_doc_tests_only() -> None:
    run = parse_test_output(captured("single-doc"))
    assert run.names() == ["single(doc)::src/lib.rs - add", "single(doc)::src/lib.rs - mul"]
    assert (run.passed, run.failed) == (2, 0)


def test_failing_test_is_recorded_with_counts_from_the_summary() -> None:
    run = parse_test_output(captured("single-failing"))
    assert (run.passed, run.failed, run.ignored) == (4, 1, 1)
    assert run.names("FAILED") == ["single::math::tests::square_of_three"]
    assert run.results["single::tests::slow_sum"] == "ignored"


def test_just_wrapping_cargo() -> None:
    run = parse_test_output(captured("just-test"))
    assert run.results == {"justcrate::tests::greets": "ok"}
    assert run.summaries == 1


def test_compile_error_gives_no_summary() -> None:
    output = "   Compiling single v0.1.0\nerror[E0425]: cannot find value `x`\nerror: could not compile `single`\n"
    run = parse_test_output(output)
    assert (run.summaries, run.total, run.results) == (0, 0, {})


def test_nextest_lines_and_summary() -> None:
    # Hand-written in nextest's documented format (nextest is not installed here).
    output = (
        "    Starting 3 tests across 2 binaries (1 test skipped)\n"
        "        PASS [   0.004s] (1/3) alpha tests::it_works\n"
        "        FAIL [   0.005s] (2/3) alpha::integration doubles_from_outside\n"
        "        PASS [   0.003s] (3/3) my-crate tests::adds\n"
        "     Summary [   0.010s] 3 tests run: 2 passed, 1 failed, 1 skipped\n"
    )
    run = parse_test_output(output)
    assert (run.passed, run.failed, run.ignored) == (2, 1, 1)
    assert run.results == {
        "alpha::tests::it_works": "ok",
        "integration::doubles_from_outside": "FAILED",
        "my_crate::tests::adds": "ok",
    }


def test_live_cargo_run_matches_the_captured_keys(tmp_path: Path) -> None:
    repo = make_repo("workspace", tmp_path / "workspace")
    result = shell.run(["cargo", "test", "--workspace"], cwd=repo, timeout_s=600)
    assert result.ok, result.output
    live = parse_test_output(result.output)
    recorded = parse_test_output(captured("workspace"))
    assert live.results == recorded.results
    assert (live.passed, live.failed, live.ignored) == (6, 0, 0)
