"""How much of each Messages API request repeats the previous request's prefix byte for byte.

    python bench/prefix_share.py [--reps 1] [--phases 2] [--turns 20] [--write-docs]

A synthetic plan (bench/_synthetic.py, instant gates) whose agents each work for `--turns`
turns (a `bash` or editor `view` call per turn, the note written on the last one, then "done"
and the summary request), on a private plan-executor server. The stand-in records every request
body. Per request, in the order the API reads a prompt (tools, system, messages), serialized as
sent (JSON, keys in the order the SDK wrote them), we take the longest common prefix with the
previous request of the same conversation (same first user message) and divide by the request's
size. That share is what prompt caching could serve. Reported twice: raw, and with the
`cache_control` markers removed (the real cache ignores them when it compares blocks, so a
marker that moves does not break the cache, but it does break a naive byte comparison).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _synthetic as syn  # noqa: E402


def serialize(body: dict[str, Any], *, markers: bool = True) -> bytes:
    """Tools, system, then each message's role and content blocks, one JSON text per block
    (no enclosing brackets: a conversation that only grows then extends its bytes exactly)."""
    parts: list[Any] = list(body.get("tools") or [])
    system = body.get("system")
    parts += system if isinstance(system, list) else [system] if system else []
    for message in body.get("messages") or []:
        parts.append({"role": message.get("role")})
        content = message.get("content")
        parts += content if isinstance(content, list) else [content]
    if not markers:
        parts = _strip(parts)
    text = "\n".join(json.dumps(p, ensure_ascii=False, separators=(",", ":")) for p in parts)
    return text.encode()


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k != "cache_control"}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def common_prefix(a: bytes, b: bytes) -> int:
    n = min(len(a), len(b))
    lo, hi = 0, n  # binary search on equal prefixes: fast for long bodies
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def first_difference(a: bytes, b: bytes, at: int) -> str:
    return b[max(0, at - 60) : at + 60].decode(errors="replace").replace("\n", "\\n")


class Worker:
    """Responder: each phase's agent takes `turns` tool turns, then says it is done."""

    def __init__(self, turns: int) -> None:
        from cli.demo import ScriptedAgents

        self.turns = turns
        self.fallback = ScriptedAgents(syn.scripts(64, 0.0))  # type: ignore[arg-type]

    def __call__(self, body: dict[str, Any]) -> Any:
        from cli.demo import PHASE_HEADING, VERIFIER_FOR, _text
        from tasks.agent.standin import (
            bash_command,
            editor_create,
            editor_view,
            text_turn,
            tool_turn,
        )

        messages = body.get("messages") or []
        first = _text(messages[0]) if messages else ""
        if VERIFIER_FOR.search(first) or (body.get("tool_choice") or {}).get("type") == "none":
            return self.fallback(body)
        match = PHASE_HEADING.search(first)
        pid = match["id"] if match else "?"
        turn = sum(1 for m in messages if m.get("role") == "assistant")
        if turn < self.turns - 1:
            call = (
                bash_command(f"ls -la && echo turn {turn}")
                if turn % 2
                else editor_view("Cargo.toml")
            )
            return tool_turn(call, text=f"Phase {pid}, step {turn}.")
        if turn == self.turns - 1:
            return tool_turn(editor_create(f"notes/p{pid}.md", f"# Note {pid}\n"))
        return text_turn(f"Phase {pid}: done.")


MEMORY = "# Project instructions\n\n" + "".join(
    f"- Rule {n}: keep modules small, document public items, test every branch.\n"
    for n in range(1, 61)
)
SKILL = "---\nname: rust-testing\ndescription: How this repository tests Rust\n---\n" + "".join(
    f"{n}. Put unit tests beside the code; name them after the behaviour.\n" for n in range(1, 41)
)


def add_memory(crate: Path) -> None:
    """What Claude Code would show an agent: a root CLAUDE.md (~4 KB), a nested one and a
    skill the run requires (rust-testing, detected for every Rust crate), committed."""
    (crate / "CLAUDE.md").write_text(MEMORY, encoding="utf-8")
    (crate / "notes").mkdir(exist_ok=True)
    (crate / "notes" / "AGENTS.md").write_text("Notes are Markdown, one per phase.\n")
    skill = crate / ".claude" / "skills" / "rust-testing"
    skill.mkdir(parents=True)
    (skill / "SKILL.md").write_text(SKILL, encoding="utf-8")
    for argv in (["git", "add", "-A"], ["git", "commit", "-qm", "memory and skills"]):
        syn.subprocess.run(argv, cwd=crate, check=True, capture_output=True)


def measure(phases: int, turns: int, memory: bool = False) -> dict[str, Any]:
    from tasks.agent.standin import StandinMessagesAPI

    root = Path(syn.tempfile.mkdtemp(prefix="bench-prefix-"))
    plan = syn.make_repo(root / "crate", "wide", phases)
    if memory:
        add_memory(root / "crate")
    import asyncio

    from backend.select import backend as select_backend
    from flows import execute_plan as module
    from flows.context import RunOptions

    with StandinMessagesAPI(responder=Worker(turns), auto_summary=False) as api:
        os.environ["ANTHROPIC_BASE_URL"] = api.base_url
        os.environ["ANTHROPIC_API_KEY"] = "stand-in"
        with select_backend("server", console=lambda *_: None):
            state = asyncio.run(
                module.execute_plan(plan, RunOptions(repo=root / "crate"), return_state=True)
            )
        requests = api.message_requests
    report = state.result(raise_on_failure=False)
    syn.shutil.rmtree(root, ignore_errors=True)
    conversations: dict[str, list[Any]] = collections.defaultdict(list)
    for request in requests:
        messages = request.body.get("messages") or []
        key = json.dumps(messages[0], sort_keys=True)[:4000] if messages else ""
        conversations[key].append(request)
    rows = []
    breaks: collections.Counter[str] = collections.Counter()
    for index, (_key, convo) in enumerate(conversations.items(), 1):
        raw: list[float] = []
        clean: list[float] = []
        kept: list[float] = []
        for before, after in zip(convo, convo[1:], strict=False):
            for shares, markers in ((raw, True), (clean, False)):
                a, b = (
                    serialize(before.body, markers=markers),
                    serialize(after.body, markers=markers),
                )
                at = common_prefix(a, b)
                shares.append(at / len(b))
                if markers:
                    kept.append(at / len(a))
                if at < len(a) and markers is False:
                    breaks[first_difference(a, b, at)] += 1
        rows.append(
            {
                "conversation": index,
                "requests": len(convo),
                "raw": raw,
                "clean": clean,
                "kept": kept,
                "bytes": len(serialize(convo[-1].body)),
            }
        )
    return {"rows": rows, "breaks": breaks, "statuses": [o.status for o in report.outcomes]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--phases", type=int, default=2)
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument(
        "--memory",
        action="store_true",
        help="give the crate a CLAUDE.md, a nested AGENTS.md and a required skill",
    )
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    header = syn.stamp(" ".join(["python", "bench/prefix_share.py", *sys.argv[1:]]))
    results = []
    with syn.private_server() as env:
        os.environ.update(env)
        for _ in range(args.reps):
            results.append(measure(args.phases, args.turns, args.memory))
    raw = [s for r in results for row in r["rows"] for s in row["raw"]]
    clean = [s for r in results for row in r["rows"] for s in row["clean"]]
    lines = [
        f"{args.phases} phases x {args.turns} agent turns, {args.reps} run(s)"
        + (", with CLAUDE.md, AGENTS.md and a skill" if args.memory else "")
        + "; phases: "
        + ", ".join(sorted({s for r in results for s in r["statuses"]})),
        "",
        "| conversation | requests | last request bytes | raw median | raw min | "
        "without markers median | without markers min | previous request kept (raw, min) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in results[-1]["rows"]:
        if not row["raw"]:
            continue
        lines.append(
            f"| {row['conversation']} | {row['requests']} | {row['bytes']} | "
            f"{100 * syn.median(row['raw']):.1f} % | {100 * min(row['raw']):.1f} % | "
            f"{100 * syn.median(row['clean']):.1f} % | {100 * min(row['clean']):.1f} % | "
            f"{100 * min(row['kept']):.1f} % |"
        )
    lines += [
        f"| **all** | {len(raw)} pairs | | {100 * syn.median(raw):.1f} % | "
        f"{100 * min(raw, default=0):.1f} % | {100 * syn.median(clean):.1f} % | "
        f"{100 * min(clean, default=0):.1f} % | "
        f"{100 * min((k for r in results for row in r['rows'] for k in row['kept']), default=0):.1f} % |",
    ]
    breaks = collections.Counter[str]()
    for r in results:
        breaks.update(r["breaks"])
    if breaks:
        lines += ["", "Where the prefix breaks (without markers; 60 bytes either side):", ""]
        lines += [f"- {n} x `{text}`" for text, n in breaks.most_common(5)]
    else:
        lines += ["", "Without the markers every request extends the previous one byte for byte."]
    lines += [
        "",
        "*raw*: common prefix with the previous request / this request's size (the share the "
        "cache could serve); < 100 % because every turn appends the new assistant turn and tool "
        "results. *previous request kept*: common prefix / previous request's size: 100 % means "
        "nothing earlier changed.",
    ]
    text = "\n".join(lines)
    print(text)
    if args.write_docs:
        syn.write_section("Prompt prefix share", f"{header}\n{text}\n")


if __name__ == "__main__":
    main()
