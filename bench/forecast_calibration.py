"""The forecast's input side against what a run really sends (issue 16), with the stand-in.

    python bench/forecast_calibration.py [--write-docs]

The demo plan (3 phases: two owners in wave 1, an owner and a verifier in wave 2) is dry-run for
its forecast, then run for real on a private plan-executor server with the scripted stand-in
agents (cli/demo.py). For every conversation the stand-in saw, the first request's system
prompt + first user message + custom tool definitions, in characters, is set against the
forecast's ``prompt_chars`` for that call: the forecast builds its prompts with the run's own
functions, so the two should agree, and where they do not the table shows by how much.

The stand-in counts whitespace-separated words as tokens (tasks/agent/standin.py), not a real
tokenizer's tokens, so its token counts calibrate the cache model, not the chars-per-token
ratio: given the real number of turns and what each turn appended, :func:`conversation_usage`
(with every prefix read from the cache) should reproduce the stand-in's cache reads and writes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _synthetic as syn  # noqa: E402


def conversations(requests: list[Any]) -> dict[tuple[str, str], list[Any]]:
    """Requests grouped by conversation: (phase id, role) from the first user message."""
    from cli.demo import PHASE_HEADING, VERIFIER_FOR

    grouped: dict[tuple[str, str], list[Any]] = {}
    for request in requests:
        messages = request.body.get("messages") or []
        first = _text(messages[0]) if messages else ""
        verifier = VERIFIER_FOR.search(first)
        match = verifier or PHASE_HEADING.search(first)
        if match is None:
            continue
        key = (match["id"], "verifier" if verifier else "owner")
        grouped.setdefault(key, []).append(request)
    return grouped


def _text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    return "\n".join(b.get("text", "") for b in content or [] if isinstance(b, dict))


def sent_chars(body: dict[str, Any]) -> int:
    """System text + first user message + custom tools' JSON, as the forecast counts them."""
    import json

    system = body.get("system")
    system_text = (
        system if isinstance(system, str) else "".join(b.get("text", "") for b in system or [])
    )
    tools = [t for t in body.get("tools") or [] if "type" not in t or "input_schema" in t]
    custom = sum(
        len(json.dumps({k: v for k, v in t.items() if k != "cache_control"}, separators=(",", ":")))
        for t in tools
    )
    return len(system_text) + len(_text(body["messages"][0])) + custom


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    header = syn.stamp("python bench/forecast_calibration.py --write-docs")

    from backend.select import backend as select_backend
    from cli.demo import ScriptedAgents, demo_scripts, make_crate
    from flows import execute_plan as module
    from tasks.agent.standin import StandinMessagesAPI
    from tasks.dry_run import dry_run
    from tasks.forecast import conversation_usage
    from tasks.options import RunOptions

    rows = []
    with (
        tempfile.TemporaryDirectory(prefix="pe-calibrate-") as scratch,
        syn.private_server() as env,
    ):
        os.environ.update(env)
        plan = make_crate(Path(scratch) / "crate")
        forecast = dry_run(plan, None, RunOptions())
        with StandinMessagesAPI(
            responder=ScriptedAgents(demo_scripts()), auto_summary=False
        ) as api:
            os.environ["ANTHROPIC_BASE_URL"] = api.base_url
            os.environ["ANTHROPIC_API_KEY"] = "stand-in"
            with select_backend("server", console=lambda *_: None):
                state = asyncio.run(module.execute_plan(plan, return_state=True))
            requests = api.message_requests
        report = state.result(raise_on_failure=False)
        statuses = [o.status for o in report.outcomes]
        for (pid, role), talk in sorted(conversations(requests).items()):
            phase = next(p for p in forecast.phases if p.phase_id == pid)
            predicted = next((c for c in phase.forecast.calls if c.role == role), None)
            first = talk[0]
            chars = sent_chars(first.body)
            words = (
                first.input_tokens
                + first.cache_creation_input_tokens
                + first.cache_read_input_tokens
            )
            work = [r for r in talk if not r.is_summary_request]
            turns = len(work)
            last = talk[-1]
            grown = (
                last.input_tokens + last.cache_creation_input_tokens + last.cache_read_input_tokens
            ) - words
            # What each request appended to the previous one, on average (turn + tool results).
            growth = grown / max(1, len(talk) - 1)
            summary_out = sum(r.output_tokens for r in talk if r.is_summary_request)
            modelled = conversation_usage(words, len(talk) - 1, growth, 0, 0, 1.0)
            actual_reads = sum(r.cache_read_input_tokens for r in talk)
            actual_writes = sum(r.cache_creation_input_tokens for r in talk)
            rows.append(
                {
                    "phase": pid,
                    "role": role,
                    "sent chars": chars,
                    "forecast chars": predicted.prompt_chars if predicted else 0,
                    "stand-in words": words,
                    "chars/word": chars / max(1, words),
                    "forecast tokens": predicted.prompt_tokens.tokens() if predicted else "-",
                    "turns": turns,
                    "requests": len(talk),
                    "reads": actual_reads,
                    "writes": actual_writes,
                    "modelled reads": modelled.cache_read_input_tokens,
                    "modelled writes": modelled.cache_creation_input_tokens,
                    "summary out": summary_out,
                }
            )
    lines = [
        header,
        f"Demo plan, scripted stand-in agents; phases ended {', '.join(statuses)}. *sent chars*: "
        "system + first user message + custom tool JSON of the first request the stand-in "
        "received; *forecast chars*: the dry run's `prompt_chars` for the same call. *stand-in "
        "words*: the stand-in's token count of that request (words, not tokens). *modelled*: "
        "`conversation_usage` with the conversation's real turns and growth, every prefix read "
        "from the cache, against the stand-in's own cache accounting (summed over the "
        "conversation's requests).",
        "",
        "| phase | role | sent chars | forecast chars | stand-in words | chars/word | forecast tokens (first request) | turns | requests | cache reads | modelled | cache writes | modelled |",
        "|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['phase']} | {r['role']} | {r['sent chars']} | {r['forecast chars']} | "
            f"{r['stand-in words']} | {r['chars/word']:.1f} | {r['forecast tokens']} | {r['turns']} | "
            f"{r['requests']} | {r['reads']} | {r['modelled reads']} | {r['writes']} | "
            f"{r['modelled writes']} |"
        )
    print("\n".join(lines))
    if args.write_docs:
        syn.write_section("Forecast calibration (issue 16)", "\n".join(lines))


if __name__ == "__main__":
    main()
