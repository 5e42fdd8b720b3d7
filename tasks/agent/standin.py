"""A stand-in for the Anthropic Messages API, for tests and the offline demo (NOT the real API).

The real ``anthropic`` SDK talks to it over a socket on 127.0.0.1 (``base_url``), so its retry
loop, ``retry-after-ms`` handling, SSE decoder and error classes all run for real. Stdlib only.

Each ``POST /v1/messages`` gets a :class:`Reply`, from a script (a list, consumed in order) or
from a responder callable ``(request_body) -> Reply`` (parallel conversations interleave, so
route by content, e.g. by the phase id in the prompt). The reply is rendered as JSON or as
server-sent events depending on the request's ``stream`` flag.

Rough emulation, so tests can check what the loop sends:

- tokens are whitespace-separated words of the string values (:func:`count_tokens`);
- ``max_tokens`` is enforced on text (cut to that many words, ``stop_reason: max_tokens``);
- prompt caching: prefixes ending at a ``cache_control`` marker (block-level, or top-level which
  marks the last block) are remembered; a later request whose prefix matches one of them reports
  ``cache_read_input_tokens``, the rest up to its last marker ``cache_creation_input_tokens``.
  Markers are ignored when comparing blocks, as the real cache does.

Requests with ``tool_choice: {"type": "none"}`` (the loop's final summary request) are answered
automatically with a short summary unless ``auto_summary=False``, so scripts only hold work turns.

Fault injection (:class:`FaultPlan`): a seeded share of ``POST /v1/messages`` requests is answered
with a fault instead of a reply: 429 (with retry-after), 529, 500, a dropped connection (no
response at all, or cut in the middle of the stream), an SSE ``error`` event mid-stream, or
silence beyond the client's request timeout. The fault is drawn *before* the reply is chosen, so
a faulted request consumes neither a scripted reply nor the responder's turn: the scripted
conversation continues on the retry. ``api.faults`` counts what was injected, per kind.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
import re
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # a tool call is the SDK's own shape; the stand-in itself speaks plain JSON
    from anthropic.types import ToolUseBlockParam

EDITOR = "str_replace_based_edit_tool"
BASH = "bash"
VERDICT = "record_verdict"
REDACTED_HEADERS = {"authorization", "x-api-key"}

_tool_ids = itertools.count(1)
_tool_ids_lock = threading.Lock()


def _tool_id() -> str:
    with _tool_ids_lock:
        return f"toolu_standin_{next(_tool_ids)}"


@dataclass
class Reply:
    """One answer to one request: a message, an HTTP error, or a stream that breaks mid-way."""

    kind: str = "message"
    """``message``, ``error`` (an HTTP status with an error body) or ``stream_error``."""
    content: list[dict[str, Any]] = field(default_factory=list)
    stop_reason: str = "end_turn"
    stop_details: dict[str, object] | None = None
    status: int = 200
    error_type: str = ""
    error_message: str = ""
    error_details: dict[str, object] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    """Seconds to wait before answering (to make parallel requests overlap)."""
    blocks_before_error: int = 1
    """For ``stream_error``: how many content blocks stream before the ``error`` event."""


# --- reply constructors ---------------------------------------------------------------------


def text_turn(text: str, stop_reason: str = "end_turn") -> Reply:
    return Reply(content=[{"type": "text", "text": text}], stop_reason=stop_reason)


def tool_turn(*calls: ToolUseBlockParam, text: str | None = None) -> Reply:
    """An assistant turn that calls tools; build the calls with :func:`editor_create` etc."""
    content: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    content.extend(dict(call) for call in calls)
    return Reply(content=content, stop_reason="tool_use")


def tool_call(name: str, tool_input: dict[str, object]) -> ToolUseBlockParam:
    return {"type": "tool_use", "id": _tool_id(), "name": name, "input": tool_input}


def editor_create(path: str, file_text: str) -> ToolUseBlockParam:
    return tool_call(EDITOR, {"command": "create", "path": path, "file_text": file_text})


def editor_str_replace(path: str, old_str: str, new_str: str) -> ToolUseBlockParam:
    return tool_call(
        EDITOR, {"command": "str_replace", "path": path, "old_str": old_str, "new_str": new_str}
    )


def editor_view(path: str, view_range: list[int] | None = None) -> ToolUseBlockParam:
    tool_input: dict[str, object] = {"command": "view", "path": path}
    if view_range is not None:
        tool_input["view_range"] = view_range
    return tool_call(EDITOR, tool_input)


def editor_insert(path: str, insert_line: int, text: str) -> ToolUseBlockParam:
    return tool_call(
        EDITOR,
        {"command": "insert", "path": path, "insert_line": insert_line, "insert_text": text},
    )


def bash_command(command: str) -> ToolUseBlockParam:
    return tool_call(BASH, {"command": command})


def record_verdict(
    criterion: str | int, verdict: str, path: str, line: int, reason: str = "it is there"
) -> ToolUseBlockParam:
    """A verifier's `record_verdict` call (the flows give it to read-only verifier calls)."""
    return tool_call(
        VERDICT,
        {"criterion": criterion, "verdict": verdict, "path": path, "line": line, "reason": reason},
    )


# --- Claude Code's tools ----------------------------------------------------------------------
# Claude Code (the claude-code runtime) offers its own tools: `Write`/`Edit`/`Read` take an
# absolute `file_path`, `Bash` a `command` run in the working directory. Its requests differ
# from our loop's: the turns so far are merged into ONE assistant message whose `tool_use`
# blocks accumulate, and a message with role `system` carries the environment (the working
# directory). A script must therefore count its turns by the tool calls it has made, never by
# the assistant messages (which replay turn 1 forever: measured).

CC_WRITE = "Write"
CC_EDIT = "Edit"
CC_READ = "Read"
CC_BASH = "Bash"
WORKDIR_LINE = re.compile(r"Primary working directory: (/[^\s\"\\]+)")

_turn_of_tool: dict[str, int] = {}
_turns = itertools.count(1)


def cc_write(file_path: str, content: str) -> ToolUseBlockParam:
    return tool_call(CC_WRITE, {"file_path": file_path, "content": content})


def cc_edit(file_path: str, old_string: str, new_string: str) -> ToolUseBlockParam:
    return tool_call(
        CC_EDIT, {"file_path": file_path, "old_string": old_string, "new_string": new_string}
    )


def cc_read(file_path: str) -> ToolUseBlockParam:
    return tool_call(CC_READ, {"file_path": file_path})


def cc_bash(command: str) -> ToolUseBlockParam:
    return tool_call(CC_BASH, {"command": command, "description": "scripted command"})


def is_claude_code(body: dict[str, Any]) -> bool:
    """A request from Claude Code (its tool names, or a `system`-role message), not our loop."""
    names = {tool.get("name") for tool in body.get("tools") or []}
    if names & {CC_WRITE, CC_EDIT, CC_BASH, CC_READ}:
        return True
    return any(m.get("role") == "system" for m in body.get("messages") or [])


def working_directory(body: dict[str, Any]) -> str | None:
    """The working directory Claude Code announces in its environment message."""
    match = WORKDIR_LINE.search("\n".join(_strings(body.get("messages"))))
    return match[1] if match else None


def as_claude_code(call: Mapping[str, object], cwd: str) -> ToolUseBlockParam:
    """One of our scripted tool calls (editor create/str_replace/view, bash) as the same action
    in Claude Code's tools, paths made absolute under ``cwd``; a fresh tool id."""
    raw = call.get("input")
    name, tool_input = call.get("name"), dict(raw) if isinstance(raw, dict) else {}
    if name == BASH:
        return cc_bash(str(tool_input.get("command", "")))
    if name != EDITOR:
        return tool_call(str(name), tool_input)
    path = str(tool_input.get("path", ""))
    file_path = path if path.startswith("/") else f"{cwd.rstrip('/')}/{path}"
    command = tool_input.get("command")
    if command == "create":
        return cc_write(file_path, str(tool_input.get("file_text", "")))
    if command == "str_replace":
        return cc_edit(
            file_path, str(tool_input.get("old_str", "")), str(tool_input.get("new_str", ""))
        )
    if command == "view":
        return cc_read(file_path)
    raise ValueError(f"no Claude Code equivalent scripted for the editor command {command!r}")


def claude_code_turn(reply: Reply, cwd: str) -> Reply:
    """``reply`` with its tool calls as Claude Code's, remembered as one turn (turns_taken)."""
    content: list[dict[str, Any]] = []
    turn = next(_turns)
    for block in reply.content:
        if block.get("type") == "tool_use":
            converted = as_claude_code(block, cwd)
            _turn_of_tool[converted["id"]] = turn
            block = dict(converted)
        content.append(block)
    return Reply(
        kind=reply.kind,
        content=content,
        stop_reason=reply.stop_reason,
        stop_details=reply.stop_details,
        status=reply.status,
        error_type=reply.error_type,
        error_message=reply.error_message,
        error_details=reply.error_details,
        headers=dict(reply.headers),
        delay_s=reply.delay_s,
        blocks_before_error=reply.blocks_before_error,
    )


def turns_taken(messages: Sequence[Mapping[str, object]]) -> int:
    """The assistant turns a conversation has had so far, for our loop (one assistant message
    each) and for Claude Code (one merged message: counted by the turns its tool calls came
    from, see :func:`claude_code_turn`)."""
    assistant = [m for m in messages if m.get("role") == "assistant"]
    turns: set[int] = set()
    for message in assistant:
        content = message.get("content")
        for block in content if isinstance(content, list) else []:
            if isinstance(block, dict) and block.get("type") == "tool_use":
                turn = _turn_of_tool.get(str(block.get("id")))
                if turn is not None:
                    turns.add(turn)
    return max(len(assistant), len(turns))


def max_tokens_turn(text: str = "I was in the middle of") -> Reply:
    return text_turn(text, stop_reason="max_tokens")


def pause_turn(text: str = "Still working...") -> Reply:
    return text_turn(text, stop_reason="pause_turn")


def refusal_turn(category: str = "cyber", explanation: str = "declined") -> Reply:
    reply = text_turn("I can't help with that.", stop_reason="refusal")
    reply.stop_details = {"type": "refusal", "category": category, "explanation": explanation}
    return reply


def context_exceeded_turn(text: str = "...") -> Reply:
    return text_turn(text, stop_reason="model_context_window_exceeded")


def http_error(
    status: int,
    error_type: str,
    message: str = "stand-in error",
    *,
    headers: dict[str, str] | None = None,
    details: dict[str, object] | None = None,
) -> Reply:
    return Reply(
        kind="error",
        status=status,
        error_type=error_type,
        error_message=message,
        error_details=details,
        headers=dict(headers or {}),
    )


def overloaded(retry_after_ms: int | None = 1) -> Reply:
    headers = {"retry-after-ms": str(retry_after_ms)} if retry_after_ms is not None else {}
    return http_error(529, "overloaded_error", "Overloaded", headers=headers)


def rate_limited(retry_after_ms: int | None = 1) -> Reply:
    headers = {"retry-after-ms": str(retry_after_ms)} if retry_after_ms is not None else {}
    return http_error(429, "rate_limit_error", "Rate limited", headers=headers)


def spend_limit_reached(error_code: str = "enforced_spend_limit_reached") -> Reply:
    """A 429 that no retry can fix; the real API sends no retry-after with it."""
    return http_error(
        429,
        "rate_limit_error",
        "Your organization has reached its spend limit.",
        details={"error_code": error_code},
    )


def stream_error(error_type: str = "overloaded_error", blocks_before_error: int = 1) -> Reply:
    """HTTP 200, some of a streamed turn, then an SSE ``error`` event (not retried by the SDK)."""
    return Reply(
        kind="stream_error",
        content=[{"type": "text", "text": "partial output"}],
        error_type=error_type,
        error_message="stream broke",
        blocks_before_error=blocks_before_error,
    )


def delayed(reply: Reply, seconds: float) -> Reply:
    reply.delay_s = seconds
    return reply


# --- fault injection ---------------------------------------------------------------------------

RATE_LIMITED = "429"
OVERLOADED = "529"
SERVER_ERROR = "500"
DROPPED = "dropped"
"""The connection closes after the request arrives, before any response."""
DROPPED_MID_STREAM = "dropped_mid_stream"
"""HTTP 200 and part of the stream, then the connection closes (non-streamed: part of the body)."""
STREAM_ERROR = "stream_error"
"""HTTP 200, part of the stream, then an SSE ``error`` event (non-streamed requests get a 529)."""
SLOW = "slow"
"""No answer for ``FaultPlan.slow_s`` seconds (beyond the client's timeout), then a hang-up."""
FAULT_KINDS: tuple[str, ...] = (
    RATE_LIMITED,
    OVERLOADED,
    SERVER_ERROR,
    DROPPED,
    DROPPED_MID_STREAM,
    STREAM_ERROR,
    SLOW,
)


@dataclass
class FaultPlan:
    """Which share of message requests fail, and how; seeded, so a run can be repeated."""

    share: float
    """0.0 (none) to 1.0 (the API is down)."""
    kinds: tuple[str, ...] = FAULT_KINDS
    seed: int = 0
    slow_s: float = 2.0
    """How long a ``slow`` fault stays silent: set it above the client's request timeout."""
    retry_after_ms: int = 1
    """Sent with 429 and 529 faults (``retry-after-ms``), as the real API does."""
    limit: int | None = None
    """Inject at most this many faults, then answer normally (an outage that ends)."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.share <= 1.0:
            raise ValueError(f"fault share {self.share} is not between 0 and 1")
        unknown = sorted(set(self.kinds) - set(FAULT_KINDS))
        if unknown or not self.kinds:
            raise ValueError(f"unknown fault kinds {unknown}; known: {FAULT_KINDS}")


class _FaultDrawer:
    """Draws one fault (or none) per message request, in arrival order, from a seeded RNG."""

    def __init__(self, plan: FaultPlan | None) -> None:
        self.plan = plan
        self.rng = random.Random(plan.seed if plan else 0)
        self.lock = threading.Lock()
        self.injected: Counter[str] = Counter()

    def draw(self) -> str | None:
        if self.plan is None or self.plan.share <= 0:
            return None
        with self.lock:
            if self.plan.limit is not None and self.injected.total() >= self.plan.limit:
                return None
            if self.rng.random() >= self.plan.share:
                return None
            kind = self.rng.choice(self.plan.kinds)
            self.injected[kind] += 1
            return kind


def _fault_error(kind: str, plan: FaultPlan) -> Reply:
    """The HTTP error answer of a status-code fault."""
    if kind == RATE_LIMITED:
        reply = rate_limited(plan.retry_after_ms)
    elif kind == OVERLOADED:
        reply = overloaded(plan.retry_after_ms)
    else:
        reply = http_error(500, "api_error", "Internal server error (injected)")
    reply.error_message += " (injected fault)"
    return reply


# --- token counting and cache emulation -----------------------------------------------------


def _strings(value: object) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            if key != "cache_control":
                yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def count_tokens(value: object) -> int:
    """Whitespace-separated words in every string of ``value`` (markers excluded)."""
    return sum(len(text.split()) for text in _strings(value))


def count_output_tokens(content: Sequence[Mapping[str, object]]) -> int:
    """Words of the text blocks plus the strings of tool inputs (what the model generated)."""
    total = 0
    for block in content:
        if block.get("type") == "text":
            total += len(str(block.get("text", "")).split())
        else:
            total += count_tokens(block.get("input", block))
    return total


def _without_markers(value: object) -> object:
    if isinstance(value, dict):
        return {k: _without_markers(v) for k, v in value.items() if k != "cache_control"}
    if isinstance(value, list):
        return [_without_markers(v) for v in value]
    return value


def _segments(body: dict[str, Any]) -> list[tuple[object, bool]]:
    """The request as cacheable blocks in prefix order (tools, system, messages), with markers."""
    segments: list[tuple[object, bool]] = []
    for tool in body.get("tools") or []:
        segments.append((tool, "cache_control" in tool))
    system = body.get("system")
    if isinstance(system, str):
        segments.append((system, False))
    elif isinstance(system, list):
        segments.extend((block, "cache_control" in block) for block in system)
    for message in body.get("messages") or []:
        content = message.get("content")
        if isinstance(content, str):
            segments.append(({"role": message.get("role"), "text": content}, False))
            continue
        for block in content or []:
            marked = isinstance(block, dict) and "cache_control" in block
            segments.append(({"role": message.get("role"), "block": block}, marked))
    if body.get("cache_control") and segments:
        last, _ = segments[-1]
        segments[-1] = (last, True)
    return segments


class _PromptCache:
    def __init__(self) -> None:
        self.prefixes: set[str] = set()
        self.lock = threading.Lock()

    def account(self, body: dict[str, Any]) -> tuple[int, int, int]:
        """(input_tokens, cache_creation_input_tokens, cache_read_input_tokens) for ``body``."""
        segments = _segments(body)
        hashes: list[str] = []
        cumulative: list[int] = []
        running = hashlib.sha256()
        total = 0
        for block, _ in segments:
            running.update(json.dumps(_without_markers(block), sort_keys=True).encode())
            hashes.append(running.hexdigest())
            total += count_tokens(block)
            cumulative.append(total)
        marks = [i for i, (_, marked) in enumerate(segments) if marked]
        if not marks:
            return total, 0, 0
        last_mark = marks[-1]
        with self.lock:
            read_at = next((i for i in range(last_mark, -1, -1) if hashes[i] in self.prefixes), -1)
            self.prefixes.update(hashes[i] for i in marks)
        read = cumulative[read_at] if read_at >= 0 else 0
        created = cumulative[last_mark] - read
        return total - cumulative[last_mark], created, read


# --- the request log --------------------------------------------------------------------------


@dataclass
class RecordedRequest:
    index: int
    path: str
    headers: dict[str, str]
    """As sent (names lower-cased), with the credentials redacted."""
    body: dict[str, Any]
    started_at: float
    """``time.monotonic()`` when the request arrived (compare with other requests for overlap)."""
    finished_at: float = 0.0
    status: int = 0
    reply_kind: str = ""
    request_id: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    auto_summary: bool = False
    fault: str = ""
    """The injected fault this request got (a ``FAULT_KINDS`` value), or empty."""

    @property
    def is_summary_request(self) -> bool:
        return (self.body.get("tool_choice") or {}).get("type") == "none"

    def text(self) -> str:
        """Every string in the body (for routing and assertions)."""
        return "\n".join(_strings(self.body))


Responder = Callable[[dict[str, Any]], Reply]


class StandinMessagesAPI:
    """Stand-in Messages API on 127.0.0.1; use as a context manager or call start()/stop()."""

    def __init__(
        self,
        script: Iterable[Reply] | None = None,
        *,
        responder: Responder | None = None,
        auto_summary: bool = True,
        summary_text: str = "Summary: the stand-in agent finished its scripted turns.",
        model: str = "claude-standin",
        faults: FaultPlan | None = None,
    ) -> None:
        self.script: list[Reply] = list(script or [])
        self.responder = responder
        self.auto_summary = auto_summary
        self.summary_text = summary_text
        self.model = model
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._cache = _PromptCache()
        self._faults = _FaultDrawer(faults)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # lifecycle

    def start(self) -> StandinMessagesAPI:
        handler = _make_handler(self)
        self._server = _QuietServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> StandinMessagesAPI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("stand-in server not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # scripting and inspection

    def add(self, *replies: Reply) -> None:
        with self._lock:
            self.script.extend(replies)

    def snapshot(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self.requests)

    @property
    def message_requests(self) -> list[RecordedRequest]:
        return [r for r in self.snapshot() if r.path.startswith("/v1/messages")]

    @property
    def faults(self) -> Counter[str]:
        """Faults injected so far, per kind."""
        with self._faults.lock:
            return Counter(self._faults.injected)

    def set_faults(self, plan: FaultPlan | None) -> None:
        """Change the fault plan of a running server (e.g. bring a down API back); the counts
        of the faults injected so far are kept."""
        drawer = _FaultDrawer(plan)
        drawer.injected = self.faults
        self._faults = drawer

    # serving

    def _record(self, path: str, headers: dict[str, str], body: dict[str, Any]) -> RecordedRequest:
        safe_headers = {
            k.lower(): ("<redacted>" if k.lower() in REDACTED_HEADERS else v)
            for k, v in headers.items()
        }
        with self._lock:
            entry = RecordedRequest(
                index=len(self.requests) + 1,
                path=path,
                headers=safe_headers,
                body=body,
                started_at=time.monotonic(),
            )
            entry.request_id = f"req_standin_{entry.index}"
            self.requests.append(entry)
        return entry

    def _choose(self, entry: RecordedRequest) -> Reply:
        if self.auto_summary and entry.is_summary_request:
            entry.auto_summary = True
            return text_turn(self.summary_text)
        if self.responder is not None:
            return self.responder(entry.body)
        with self._lock:
            if self.script:
                return self.script.pop(0)
        return http_error(
            400,
            "invalid_request_error",
            f"stand-in script exhausted at request {entry.index}",
            headers={"x-should-retry": "false"},
        )

    def _draw_fault(self, entry: RecordedRequest) -> str | None:
        """A fault for a message request (never for count_tokens or unknown routes)."""
        if entry.path.split("?")[0] != "/v1/messages":
            return None
        fault = self._faults.draw()
        entry.fault = fault or ""
        return fault

    def _render_fault(self, entry: RecordedRequest, kind: str) -> tuple[int, dict[str, str], bytes]:
        """The bytes a fault sends (before the handler cuts or drops the connection)."""
        plan = self._faults.plan or FaultPlan(share=1.0)
        streamed = bool(entry.body.get("stream"))
        entry.reply_kind = f"fault:{kind}"
        if kind in (RATE_LIMITED, OVERLOADED, SERVER_ERROR) or (
            kind == STREAM_ERROR and not streamed
        ):
            reply = _fault_error(OVERLOADED if kind == STREAM_ERROR else kind, plan)
            return _error_payload(
                reply.status, reply.error_type, reply.error_message, None, reply.headers
            )
        if kind in (DROPPED, SLOW):
            return 0, {}, b""
        # Mid-stream faults: a partial turn that no retry will see again (nothing consumed).
        partial = stream_error("overloaded_error")
        partial.error_message = "stream broke (injected fault)"
        message = {
            "id": f"msg_standin_{entry.index}",
            "type": "message",
            "role": "assistant",
            "model": entry.body.get("model") or self.model,
            "content": [dict(b) for b in partial.content],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "stop_details": None,
            "usage": {"input_tokens": 0, "output_tokens": 1},
        }
        if not streamed:
            return 200, {}, json.dumps(message).encode()
        events = _sse_events(message, partial)
        if kind == DROPPED_MID_STREAM:
            events = events[:-1]  # no error event: the connection just ends
        payload = "".join(f"event: {name}\ndata: {json.dumps(data)}\n\n" for name, data in events)
        return 200, {"content-type": "text/event-stream"}, payload.encode()

    def _render(self, entry: RecordedRequest) -> tuple[int, dict[str, str], bytes]:
        body = entry.body
        if entry.path.split("?")[0].endswith("/count_tokens"):
            tokens = count_tokens({k: body.get(k) for k in ("system", "tools", "messages")})
            entry.input_tokens = tokens
            return 200, {}, json.dumps({"input_tokens": tokens}).encode()
        if entry.path.split("?")[0] != "/v1/messages":
            return _error_payload(404, "not_found_error", f"no route {entry.path}", None, {})
        problem = validate_request(body)
        if problem:
            entry.reply_kind = "invalid"
            return _error_payload(400, "invalid_request_error", problem, None, {})
        try:
            reply = self._choose(entry)
        except Exception as exc:  # a broken responder is a test bug: say so, don't retry
            reply = http_error(
                500, "api_error", f"responder failed: {exc!r}", headers={"x-should-retry": "false"}
            )
        if reply.delay_s:
            time.sleep(reply.delay_s)
        entry.reply_kind = reply.kind
        if reply.kind == "error":
            return _error_payload(
                reply.status,
                reply.error_type,
                reply.error_message,
                reply.error_details,
                reply.headers,
            )
        content, stop_reason = _limit_output(reply, int(body.get("max_tokens") or 0))
        entry.input_tokens, entry.cache_creation_input_tokens, entry.cache_read_input_tokens = (
            self._cache.account(body)
        )
        entry.output_tokens = max(1, count_output_tokens(content))
        usage = {
            "input_tokens": entry.input_tokens,
            "output_tokens": entry.output_tokens,
            "cache_creation_input_tokens": entry.cache_creation_input_tokens,
            "cache_read_input_tokens": entry.cache_read_input_tokens,
        }
        message = {
            "id": f"msg_standin_{entry.index}",
            "type": "message",
            "role": "assistant",
            "model": body.get("model") or self.model,
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "stop_details": reply.stop_details,
            "usage": usage,
        }
        if not body.get("stream"):
            return reply.status, dict(reply.headers), json.dumps(message).encode()
        events = _sse_events(message, reply)
        payload = "".join(f"event: {name}\ndata: {json.dumps(data)}\n\n" for name, data in events)
        headers = {**reply.headers, "content-type": "text/event-stream"}
        return 200, headers, payload.encode()


def _markers(value: object) -> int:
    if isinstance(value, dict):
        return int("cache_control" in value) + sum(_markers(v) for v in value.values())
    if isinstance(value, list):
        return sum(_markers(v) for v in value)
    return 0


def validate_request(body: dict[str, Any]) -> str | None:
    """The structural rules of the real API that a loop can break; the problem, or None."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    if messages[0].get("role") != "user":
        return "messages: the first message must use the user role"
    markers = _markers(body.get("tools")) + _markers(body.get("system")) + _markers(messages)
    if markers + (1 if body.get("cache_control") else 0) > 4:
        return f"a maximum of 4 blocks with cache_control may be provided; found {markers}"
    for index, message in enumerate(messages):
        content = message.get("content")
        last = index == len(messages) - 1
        if not content and not (last and message.get("role") == "assistant"):
            return f"messages.{index}: all messages must have non-empty content"
        if isinstance(content, list) and any(
            b.get("type") == "text" and not b.get("text") for b in content
        ):
            return f"messages.{index}: text content blocks must be non-empty"
        if message.get("role") != "assistant" or not isinstance(content, list):
            continue
        wanted = {b.get("id") for b in content if b.get("type") == "tool_use"}
        if not wanted:
            continue
        following = messages[index + 1] if index + 1 < len(messages) else None
        if following is None:
            return f"messages.{index}: tool_use ids {sorted(wanted)} need tool_result blocks"
        blocks = following.get("content") if isinstance(following.get("content"), list) else []
        answered = {b.get("tool_use_id") for b in blocks if b.get("type") == "tool_result"}
        if following.get("role") != "user" or wanted - answered:
            return (
                f"messages.{index + 1}: tool_use ids found without tool_result blocks "
                f"immediately after: {sorted(wanted - answered)}"
            )
    return None


def _limit_output(reply: Reply, max_tokens: int) -> tuple[list[dict[str, Any]], str]:
    """Cut text to ``max_tokens`` words, as a model stops when it runs out of output tokens."""
    if max_tokens <= 0 or count_output_tokens(reply.content) <= max_tokens:
        return [dict(b) for b in reply.content], reply.stop_reason
    budget = max_tokens
    content: list[dict[str, Any]] = []
    for block in reply.content:
        if budget <= 0:
            break
        if block.get("type") == "text":
            words = block["text"].split()
            content.append({"type": "text", "text": " ".join(words[:budget])})
            budget -= min(budget, len(words))
        else:
            content.append(dict(block))
            budget -= count_output_tokens([block])
    return content, "max_tokens"


def _sse_events(message: dict[str, Any], reply: Reply) -> list[tuple[str, dict[str, Any]]]:
    start = {**message, "content": [], "stop_reason": None, "stop_details": None}
    start["usage"] = {**message["usage"], "output_tokens": 1}
    events: list[tuple[str, dict[str, Any]]] = [
        ("message_start", {"type": "message_start", "message": start}),
        ("ping", {"type": "ping"}),
    ]
    blocks = message["content"]
    if reply.kind == "stream_error":
        blocks = blocks[: reply.blocks_before_error]
    for index, block in enumerate(blocks):
        events.extend(_block_events(index, block))
    if reply.kind == "stream_error":
        error = {"type": reply.error_type, "message": reply.error_message}
        events.append(("error", {"type": "error", "error": error}))
        return events
    delta = {
        "stop_reason": message["stop_reason"],
        "stop_sequence": None,
        "stop_details": message["stop_details"],
    }
    events.append(
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": delta,
                "usage": {"output_tokens": message["usage"]["output_tokens"]},
            },
        )
    )
    events.append(("message_stop", {"type": "message_stop"}))
    return events


def _block_events(index: int, block: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    events: list[tuple[str, dict[str, Any]]] = []
    if block.get("type") == "tool_use":
        opening = {**block, "input": {}}
        raw = json.dumps(block.get("input", {}))
        half = len(raw) // 2
        deltas = [
            {"type": "input_json_delta", "partial_json": part} for part in (raw[:half], raw[half:])
        ]
    else:
        opening = {"type": "text", "text": ""}
        text = block.get("text", "")
        half = len(text) // 2
        deltas = [
            {"type": "text_delta", "text": part} for part in (text[:half], text[half:]) if part
        ]
    events.append(
        (
            "content_block_start",
            {"type": "content_block_start", "index": index, "content_block": opening},
        )
    )
    for delta in deltas:
        events.append(
            ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
        )
    events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    return events


def _error_payload(
    status: int,
    error_type: str,
    message: str,
    details: dict[str, object] | None,
    headers: dict[str, str],
) -> tuple[int, dict[str, str], bytes]:
    error: dict[str, object] = {"type": error_type, "message": message}
    if details:
        error["details"] = details
    return status, dict(headers), json.dumps({"type": "error", "error": error}).encode()


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        # Clients hang up on kept-alive connections when they close or time out: not an error.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


def _make_handler(api: StandinMessagesAPI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out as two writes; with Nagle on, the body waits for the client's
        # delayed ACK (~40 ms a request), which the real API does not add.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
            pass

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("content-length") or 0))
            try:
                body = json.loads(raw or b"{}")
            except json.JSONDecodeError:
                body = {"_unparsed": raw.decode("utf-8", "replace")}
            entry = api._record(self.path, dict(self.headers), body)
            fault = api._draw_fault(entry)
            if fault is not None:
                self._fault(entry, fault)
                return
            status, headers, payload = api._render(entry)
            self._send(entry, status, headers, payload)

        def _send(
            self,
            entry: RecordedRequest,
            status: int,
            headers: dict[str, str],
            payload: bytes,
            *,
            cut_at: int | None = None,
        ) -> None:
            headers.setdefault("content-type", "application/json")
            headers["request-id"] = entry.request_id
            entry.status = status
            try:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, str(value))
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload if cut_at is None else payload[:cut_at])
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
                pass
            finally:
                entry.finished_at = time.monotonic()

        def _fault(self, entry: RecordedRequest, kind: str) -> None:
            status, headers, payload = api._render_fault(entry, kind)
            if kind in (DROPPED, SLOW):
                if kind == SLOW:
                    time.sleep((api._faults.plan or FaultPlan(1.0)).slow_s)
                self._hang_up(entry)
                return
            if kind == DROPPED_MID_STREAM:
                # The full length is announced and half of it sent: the client reads a broken
                # stream (or body), never a short but well-formed one.
                self._send(entry, status, headers, payload, cut_at=len(payload) // 2)
                self._hang_up(entry)
                return
            self._send(entry, status, headers, payload)

        def _hang_up(self, entry: RecordedRequest) -> None:
            self.close_connection = True
            try:
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            entry.finished_at = time.monotonic()

    return Handler
