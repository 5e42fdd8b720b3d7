"""The agent loop: THE one module that talks to the Anthropic Messages API.

One call = one agent (role prompt from its definition) working on one task in one repository:

1. turns: stream a request (``messages.stream`` + ``get_final_message``), append the assistant
   turn, run its tool calls, send the results back, until the model stops (``end_turn``), a
   budget (cost or tokens of the call's phase or of the run, checked between turns), the
   no-progress rule, the turn cap or the wall-clock deadline stops it, or something fails (see
   :mod:`tasks.agent.budget`); a verifier call (one
   with ``verdict_criteria``) that stopped with criteria left without a `record_verdict` call
   is asked for them once more, in the same conversation;
2. one final request with the same system prompt and tools but ``tool_choice: none`` and
   ``max_tokens=500`` asks for the summary the orchestrator sees;
3. everything (turns, tool calls, results, usage, request ids; never credentials or headers)
   goes to ``.ai/logs/YYYY-MM-DD.<plan>-phase-<id>-<role_suffix>.md`` in the repository.

Prompt caching: the system prompt carries a ``cache_control`` marker and so does the newest
block of each request; tools, system and earlier turns are sent byte-identical every turn (only
the marker moves), so each request reads the previous one's prefix from the cache.

Reliability: the SDK retries 408/409/429/5xx/529 (``max_retries=4``, honouring
``retry-after-ms``/``retry-after``), except spend-limit 429s, which a middleware marks
``x-should-retry: false`` because no retry can fix them. An ``error`` event in the middle of a
stream (HTTP 200) is not retried by the SDK; this module retries that turn itself, which is safe
because no tool of that turn has run yet. The request timeout is ``PLAN_EXECUTOR_API_TIMEOUT_S``
(default 600 s); a request silent for longer is abandoned and retried by the SDK. Every fault met
on the way (each failed HTTP attempt) is counted per kind in ``AgentResult.infra`` with the
retries and the time it cost, apart from the agent's own record. Every failure is classified: INFRASTRUCTURE (API
unreachable, overloaded, rate or spend limited, no sandbox; ``retryable`` says whether trying
again can help), AGENT (refusal, max tokens, context window, tool misuse, deadline) or BUDGET (a
spending limit, no progress, the turn cap: ``error_code`` says which).

The agent's summary is a claim; nothing here decides that a phase is complete.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import ssl
import stat
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NotRequired, TypedDict, cast

import anthropic
import httpx2
from anthropic._middleware import CallNext, Middleware
from anthropic._request import APIRequest
from anthropic._response import APIResponse
from anthropic.types import (
    CacheControlEphemeralParam,
    ContentBlock,
    ContentBlockParam,
    Message,
    MessageParam,
    TextBlockParam,
    ToolChoiceParam,
    ToolResultBlockParam,
    ToolUnionParam,
    ToolUseBlock,
)

from plan_parser.errors import PlanExecutorError
from plan_parser.paths import repo_relative
from tasks.agent.budget import (
    SPENDING_LIMITS,
    NoProgress,
    account_for,
    format_cost,
)
from tasks.agent.context_files import repository_context
from tasks.agent.definitions import AgentDefinition, resolve_agent
from tasks.agent.models import DEFAULT_MODEL, MODEL_ALIASES, model_id  # noqa: F401 - re-exported
from tasks.agent.prompts import SKILLS_HEADING, SUMMARY_TOKENS, summary_request, system_prompt
from tasks.agent.result import (
    AgentRequest,
    AgentResult,
    ErrorCode,
    FailureKind,
    InfraFaults,
    Usage,
)
from tasks.agent.sandbox import Sandbox, SandboxSettings
from tasks.agent.tools import (
    BASH_NAME,
    EDITOR_NAME,
    VERDICT_NAME,
    BashTool,
    ToolCollection,
    ToolResult,
    VerdictTool,
    tools_for,
)
from tasks.env_settings import API_TIMEOUT_ENV as API_TIMEOUT_ENV  # re-exported
from tasks.env_settings import DEFAULT_API_TIMEOUT_S, request_timeout_s

TURN_MAX_TOKENS = 32_000
SDK_MAX_RETRIES = 4
STREAM_RETRIES = 3
"""Our own retries of a turn whose stream broke with a retryable error event."""
STREAM_RETRY_BACKOFF_S = 1.0
REQUEST_TIMEOUT_S = DEFAULT_API_TIMEOUT_S
"""The default request timeout; ``PLAN_EXECUTOR_API_TIMEOUT_S`` overrides it."""
EDITOR_WRITES = frozenset({"create", "str_replace", "insert", "undo_edit"})
"""Editor commands that may change a file (the no-progress rule checks whether they did)."""
MAX_MISUSE_TURNS = 8
"""Consecutive turns whose tool calls were all malformed before the call is ended as misuse."""
VERDICT_FOLLOW_UP_TURNS = 5
"""Turns a verifier gets, beyond the ones it used, when asked again for the verdicts it did
not record (it may look at a file again before it cites it)."""
RETRYABLE_STREAM_ERRORS = {"overloaded_error", "api_error", "rate_limit_error"}
FATAL_ERROR_CODES = {
    "enforced_spend_limit_reached",
    "contract_spend_limit_reached",
    "ramp_limit_exceeded",
    "linked_organization_spend_limit_reached",
    "linked_organization_billing_unavailable",
}
EPHEMERAL: CacheControlEphemeralParam = {"type": "ephemeral"}
UNCACHEABLE_BLOCKS = {"thinking", "redacted_thinking"}
LOG_FIELD_CAP = 30_000


# How a reply that broke while it was being read reaches us: anthropic <= 2.16 let httpx2's own
# error through (RemoteProtocolError, ReadTimeout); 2.17 wraps it in APIConnectionError or
# APITimeoutError (anthropic/_streaming.py: iter_response_bytes).
_READ_BROKEN = (anthropic.APIConnectionError, httpx2.HTTPError)


class _DroppedMidStream(PlanExecutorError):
    """The connection broke after the reply had started: the turn is retried by the loop."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(repr(cause))
        self.cause = cause


class _FatalLimitGuard(Middleware):
    """Stops the SDK from retrying errors that no retry can fix (spend limits, billing)."""

    def handle(self, request: APIRequest, call_next: CallNext) -> APIResponse[object]:
        response = call_next(request)
        http = response.http_response
        if http.status_code in (402, 429) and _error_code(http) in FATAL_ERROR_CODES:
            http.headers["x-should-retry"] = "false"
        return response


class _FaultRecorder(Middleware):
    """Counts the faults of one agent call: runs once per HTTP attempt, inside the SDK's retries,
    so it sees the attempts the SDK retries and never reports to the caller."""

    def __init__(self, infra: InfraFaults) -> None:
        self.infra = infra
        self.last_attempt_at = 0.0

    def handle(self, request: APIRequest, call_next: CallNext) -> APIResponse[object]:
        self.last_attempt_at = time.monotonic()
        try:
            response = call_next(request)
        except anthropic.APITimeoutError:
            self.infra.note("timeout")
            raise
        except (anthropic.APIConnectionError, httpx2.HTTPError):
            self.infra.note("dropped")
            raise
        status = response.http_response.status_code
        if status in (408, 409, 429) or status >= 500:
            self.infra.note(str(status))
        return response


def _error_code(http: httpx2.Response) -> str | None:
    try:
        http.read()
        code = http.json().get("error", {}).get("details", {}).get("error_code")
    except (ValueError, AttributeError, httpx2.HTTPError):
        return None
    return code if isinstance(code, str) else None


def build_client() -> anthropic.Anthropic:
    """A client for ``ANTHROPIC_BASE_URL`` (the SDK reads it) with the key from the environment
    or, when the environment has none, the Prefect Secret block (see :mod:`tasks.secrets`).

    The key is resolved here, inside the agent call, so that it never travels as a task
    parameter (Prefect records those) and never reaches the agent's sandboxed shell.
    """
    from tasks.secrets import SECRET_BLOCK_NAME, anthropic_api_key

    api_key = anthropic_api_key()
    if api_key is None and not os.environ.get("ANTHROPIC_AUTH_TOKEN"):
        raise RuntimeError(
            "no Anthropic API key: set ANTHROPIC_API_KEY for the process that runs the flow "
            f"(a deployment run: the worker), or create the Prefect Secret block "
            f"{SECRET_BLOCK_NAME!r} (README: Run it on a Prefect server)"
        )
    return anthropic.Anthropic(
        api_key=api_key,
        max_retries=SDK_MAX_RETRIES,
        timeout=request_timeout_s(),
        http_client=anthropic.DefaultHttpxClient(verify=_ssl_context()),
    )


def _ssl_context(
    cache: dict[tuple[str, str], ssl.SSLContext] = {},  # noqa: B006 - the cache
) -> ssl.SSLContext:
    """One TLS context per process (per SSL_CERT_FILE/SSL_CERT_DIR), shared by the clients.

    A new client per agent call built its own, loading the whole CA bundle each time: 13 % of
    the engine's samples with instant agents (bench/engine_overhead.py --profile). A context is
    safe to share between threads; the settings are httpx's own defaults.
    """
    import httpx

    key = (os.environ.get("SSL_CERT_FILE", ""), os.environ.get("SSL_CERT_DIR", ""))
    if key not in cache:
        cache[key] = httpx.create_ssl_context()
    return cache[key]


def _guarded(client: anthropic.Anthropic) -> anthropic.Anthropic:
    if any(isinstance(m, _FatalLimitGuard) for m in client.middleware):
        return client
    return client.with_options(middleware=[*client.middleware, _FatalLimitGuard()])


# --- failures ---------------------------------------------------------------------------------


@dataclass
class Failure:
    kind: FailureKind
    message: str
    error_code: str | None = None
    retryable: bool = False


def classify_exception(exc: BaseException) -> Failure:
    """INFRASTRUCTURE or AGENT for an exception raised by an API request."""
    if isinstance(exc, anthropic.APIStatusError):
        status, code = exc.status_code, exc.error_code
        text = f"{type(exc).__name__} {status} {exc.type or ''}: {exc.api_message or exc.message}"
        if code in FATAL_ERROR_CODES or status == 402:
            return Failure(FailureKind.INFRASTRUCTURE, text, code, retryable=False)
        if status == 200 or status in (408, 409, 429) or status >= 500:
            return Failure(FailureKind.INFRASTRUCTURE, text, code, retryable=True)
        message = (exc.api_message or str(exc)).lower()
        if status in (400, 413) and ("too long" in message or "context" in message):
            return Failure(
                FailureKind.AGENT, f"context exhausted: {text}", ErrorCode.CONTEXT_EXHAUSTED
            )
        # 400/401/403/404: our request, the key or the model id is wrong; retrying won't help.
        return Failure(FailureKind.INFRASTRUCTURE, text, code, retryable=False)
    if isinstance(exc, anthropic.APIConnectionError | httpx2.HTTPError):
        return Failure(FailureKind.INFRASTRUCTURE, f"API unreachable: {exc!r}", retryable=True)
    return Failure(FailureKind.INFRASTRUCTURE, f"unexpected error: {exc!r}", retryable=False)


STOP_FAILURES = {
    "max_tokens": "the turn hit max_tokens before the model finished",
    "refusal": "the model refused",
    "model_context_window_exceeded": "the context window is exhausted",
}


def classify_stop(stop_reason: str | None, stop_details: object) -> Failure | None:
    if stop_reason in ("end_turn", "stop_sequence"):
        return None
    if stop_reason in STOP_FAILURES:
        message = STOP_FAILURES[stop_reason]
        if stop_reason == "refusal" and stop_details is not None:
            category = getattr(stop_details, "category", None)
            explanation = getattr(stop_details, "explanation", None)
            message += f" (category {category}: {explanation})"
        return Failure(FailureKind.AGENT, message)
    return Failure(FailureKind.AGENT, f"unexpected stop reason {stop_reason!r}")


# --- the details log --------------------------------------------------------------------------


def _fence(text: str, lang: str = "text") -> str:
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    ticks = "`" * max(3, longest + 1)
    return f"{ticks}{lang}\n{text}\n{ticks}"


def _cap_log(text: str) -> str:
    if len(text) <= LOG_FIELD_CAP:
        return text
    return text[:LOG_FIELD_CAP] + f"\n[... {len(text) - LOG_FIELD_CAP} characters not logged ...]"


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "x"


def details_log_path(request: AgentRequest, today: dt.date | None = None) -> Path:
    day = (today or dt.datetime.now(dt.UTC).date()).isoformat()
    name = (
        f"{day}.{_safe_name(request.plan_name)}-phase-{_safe_name(request.phase_id)}"
        f"-{_safe_name(request.role_suffix)}.md"
    )
    return Path(request.log_repo or request.repo) / ".ai" / "logs" / name


def shown_log_path(log_path: Path, log_repo: Path | str) -> str:
    """The transcript file as a result names it: relative to the repository that keeps the
    logs (the checkout, not a phase's worktree), else as it is."""
    return repo_relative(log_repo, log_path) or str(log_path)


class DetailsLog:
    """Appends the transcript as it happens, so a crash still leaves the turns so far.

    The log lies in the repository (agents and people read it): known secrets are scrubbed
    from every write, whatever part of the call they came through."""

    def __init__(self, path: Path, secrets: list[str] | None = None) -> None:
        self.path = path
        self.secrets = list(secrets or [])
        path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, *parts: str) -> None:
        from tasks.secrets import scrub_known

        text = scrub_known("\n\n".join(parts) + "\n\n", self.secrets)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(text)


# --- the conversation -------------------------------------------------------------------------


def _block_param(block: ContentBlock) -> ContentBlockParam:
    """An assistant content block as a request param, with a stable key order."""
    if block.type == "text":
        return {"type": "text", "text": block.text}
    if block.type == "tool_use":
        return {"type": "tool_use", "id": block.id, "name": block.name, "input": block.input}
    if block.type == "thinking":
        return {"type": "thinking", "thinking": block.thinking, "signature": block.signature}
    if block.type == "redacted_thinking":
        return {"type": "redacted_thinking", "data": block.data}
    # Server-side blocks: the SDK's own JSON of a response block is its request param.
    return cast(ContentBlockParam, block.model_dump(mode="json", exclude_none=True))


class RequestParams(TypedDict):
    """The keyword arguments of one ``messages.stream`` request."""

    model: str
    max_tokens: int
    system: list[TextBlockParam]
    messages: list[MessageParam]
    tools: NotRequired[list[ToolUnionParam]]
    tool_choice: NotRequired[ToolChoiceParam]


class Turn(TypedDict):
    """One message of the conversation: a ``MessageParam`` whose content is a list we extend."""

    role: Literal["user", "assistant"]
    content: list[ContentBlockParam]


@dataclass
class Conversation:
    system: list[TextBlockParam]
    tools: list[ToolUnionParam]
    messages: list[Turn] = field(default_factory=list)

    def add(self, role: Literal["user", "assistant"], content: list[ContentBlockParam]) -> None:
        if content:
            self.messages.append({"role": role, "content": content})

    def add_user_blocks(self, blocks: list[ContentBlockParam]) -> None:
        """Append to the trailing user message if there is one (roles must alternate)."""
        if self.messages and self.messages[-1]["role"] == "user":
            self.messages[-1]["content"].extend(blocks)
        else:
            self.add("user", blocks)

    def request_messages(self) -> list[MessageParam]:
        """The messages with one cache marker on the newest cacheable block; history unchanged."""
        turns = [(turn["role"], turn["content"]) for turn in self.messages]
        for position in range(len(turns) - 1, -1, -1):
            role, content = turns[position]
            cacheable = [i for i, b in enumerate(content) if b["type"] not in UNCACHEABLE_BLOCKS]
            if cacheable:
                last, marked = cacheable[-1], list(content)
                # Every block type but the uncacheable ones takes a cache_control field.
                marked[last] = cast(
                    ContentBlockParam, {**content[last], "cache_control": EPHEMERAL}
                )
                turns[position] = (role, marked)
                break
        return [_message_param(role, content) for role, content in turns]

    def unanswered_tool_uses(self) -> list[str]:
        if not self.messages or self.messages[-1]["role"] != "assistant":
            return []
        return [b["id"] for b in self.messages[-1]["content"] if b["type"] == "tool_use"]


def _message_param(
    role: Literal["user", "assistant"], content: list[ContentBlockParam]
) -> MessageParam:
    if role == "user":
        return {"role": "user", "content": content}
    return {"role": "assistant", "content": content}


# --- the call ---------------------------------------------------------------------------------


def pick_model(request: AgentRequest, definition: AgentDefinition) -> str:
    return model_id(request.model, definition)


DIGEST_MAX_BYTES = 8 * 1024 * 1024
"""Files larger than this are compared by size and modification time, not read."""


def tree_file_digest(repo: Path, path: Path) -> str:
    """What a file of the working tree holds, for telling a write that changed it apart.

    This runs in our own process, outside the sandbox, on a path an agent chose: only a regular
    file inside the tree is read (never a symlink, a FIFO that would block, a device such as
    /dev/zero, or a path that resolves outside the tree); anything else is `-`.
    """
    try:
        inside = path.resolve().is_relative_to(repo.resolve())
        info = path.lstat()
    except (OSError, RuntimeError):
        return "-"
    if not inside or not stat.S_ISREG(info.st_mode):
        return "-"
    if info.st_size > DIGEST_MAX_BYTES:
        return f"{info.st_size}:{info.st_mtime_ns}"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return "-"
    with os.fdopen(fd, "rb") as handle:
        return hashlib.sha256(handle.read(DIGEST_MAX_BYTES + 1)).hexdigest()


def _usage_of(message: Message) -> Usage:
    usage = message.usage
    return Usage(
        input_tokens=usage.input_tokens or 0,
        output_tokens=usage.output_tokens or 0,
        cache_creation_input_tokens=usage.cache_creation_input_tokens or 0,
        cache_read_input_tokens=usage.cache_read_input_tokens or 0,
    )


def _text_of(message: Message) -> str:
    return "\n".join(b.text for b in message.content if b.type == "text").strip()


def _words(text: str, limit: int) -> str:
    words = text.split()
    return text if len(words) <= limit else " ".join(words[:limit]) + " [...]"


class AgentCall:
    """One run of the loop; :func:`run_agent` is the public entry point."""

    def __init__(
        self,
        request: AgentRequest,
        definition: AgentDefinition,
        client: anthropic.Anthropic,
        deadline_s: float | None,
    ) -> None:
        from tasks.secrets import known_secrets

        self.request = request
        self.definition = definition
        # Known once per call: the client's own key too (it may not come from the environment).
        self.secrets = known_secrets(
            getattr(client, "api_key", None), getattr(client, "auth_token", None)
        )
        self.infra = InfraFaults()
        self.faults = _FaultRecorder(self.infra)
        self.client = client.with_options(middleware=[*client.middleware, self.faults])
        self.model = pick_model(request, definition)
        self.started = time.monotonic()
        self.deadline = self.started + deadline_s if deadline_s else None
        self.repo = Path(request.repo).resolve()
        read_only = request.read_only or definition.read_only
        protected = [
            (p if p.is_absolute() else self.repo / p).resolve() for p in request.protected_paths
        ]
        self.sandbox = Sandbox(
            self.repo,
            SandboxSettings(
                bwrap=request.bwrap,
                network=request.network,
                read_only=read_only,
                allow_unsandboxed=request.allow_unsandboxed,
                read_only_paths=protected,
            ),
        )
        self.tools: ToolCollection = tools_for(
            definition.tools,
            repo=self.repo,
            sandbox=self.sandbox,
            read_only=read_only,
            timeout_s=request.command_timeout_s,
            protected=protected,
            verdict_criteria=request.verdict_criteria,
        )
        self.conversation = Conversation(
            system=[
                {
                    "type": "text",
                    # Skills go to the system prompt unless the task (phase_task) lists them.
                    "text": system_prompt(
                        definition,
                        [] if SKILLS_HEADING in request.task else request.skills,
                        repository_context(self.repo),
                    ),
                    "cache_control": EPHEMERAL,
                }
            ],
            tools=self.tools.params(),
        )
        self.conversation.add("user", [{"type": "text", "text": request.task}])
        self.log = DetailsLog(details_log_path(request), self.secrets)
        self.budget = account_for(request.budget_account)
        """The phase's account (charging the run's); None: no spending limit applies."""
        self.progress = NoProgress(request.no_progress_turns)
        self.usage = Usage()
        self.turns = 0
        self.requests = 0
        self.files_touched: list[str] = []
        self.commands_run: list[str] = []
        self.last_text = ""

    # -- helpers

    @property
    def uses_bash(self) -> bool:
        return BASH_NAME in self.tools.by_name

    @property
    def verdict_tool(self) -> VerdictTool | None:
        tool = self.tools.by_name.get(VERDICT_NAME)
        return tool if isinstance(tool, VerdictTool) else None

    def remaining_s(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()

    def result(self, summary: str, stop_reason: str | None, failure: Failure | None) -> AgentResult:
        from tasks.secrets import scrub_known

        return AgentResult(
            agent=self.definition.name,
            model=self.model,
            # The summary goes into the plan's checkpoints and reports; the error may quote output.
            summary=scrub_known(summary, self.secrets),
            stop_reason=stop_reason,
            turns=self.turns,
            usage=self.usage,
            files_touched=self.files_touched,
            commands_run=self.commands_run,
            details_log=shown_log_path(self.log.path, self.request.log_repo or self.repo),
            failure=failure.kind if failure else FailureKind.NONE,
            error=scrub_known(failure.message, self.secrets) if failure else None,
            sandboxed=self.sandbox.sandboxed or not self.uses_bash,
            error_code=failure.error_code if failure else None,
            retryable=failure.retryable if failure else False,
            requests=self.requests,
            infra=self.infra.model_copy(deep=True),
            # The verdicts go into the ledger and the plan's checkpoints, like the summary.
            verdicts=[
                v.model_copy(
                    update={
                        "path": scrub_known(v.path, self.secrets),
                        "reason": scrub_known(v.reason, self.secrets),
                    }
                )
                for v in (self.verdict_tool.verdicts() if self.verdict_tool else [])
            ],
            verdicts_missing=self.verdict_tool.missing() if self.verdict_tool else [],
        )

    def params(
        self, *, max_tokens: int = TURN_MAX_TOKENS, tool_choice: ToolChoiceParam | None = None
    ) -> RequestParams:
        params: RequestParams = {
            "model": self.model,
            "max_tokens": max_tokens,
            "system": self.conversation.system,
            "messages": self.conversation.request_messages(),
        }
        # An agent whose definition allows none of our tools sends neither tools nor a choice.
        if self.conversation.tools:
            params["tools"] = self.conversation.tools
            if tool_choice is not None:
                params["tool_choice"] = tool_choice
        return params

    def stream(self, params: RequestParams) -> tuple[Message, str | None]:
        """One turn, and the infrastructure bill of it (faults, retries, time lost)."""
        started = time.monotonic()
        faults_before = self.infra.total
        try:
            answer = self._stream(params)
        except BaseException:
            faulted = self.infra.total - faults_before
            if faulted:  # the last fault ended the turn: it was not retried
                self.infra.retries += faulted - 1
                self.infra.lost_s = round(self.infra.lost_s + time.monotonic() - started, 3)
            raise
        faulted = self.infra.total - faults_before
        if faulted:
            self.infra.retries += faulted
            # Everything before the attempt that succeeded was lost to faults and backoff.
            lost = max(0.0, self.faults.last_attempt_at - started)
            self.infra.lost_s = round(self.infra.lost_s + lost, 3)
        return answer

    def _stream(self, params: RequestParams) -> tuple[Message, str | None]:
        """One turn, retried here when the stream breaks with a retryable error event."""
        limit = request_timeout_s()
        for attempt in range(STREAM_RETRIES + 1):
            remaining = self.remaining_s()
            timeout = limit if remaining is None else max(min(1.0, limit), min(remaining, limit))
            try:
                # Opening the stream is one HTTP request, which the SDK retries itself; a break
                # while reading the reply is not retried by the SDK, so this loop retries the turn.
                with self.client.messages.stream(**params, timeout=timeout) as stream:
                    try:
                        message = stream.get_final_message()
                    except _READ_BROKEN as exc:
                        raise _DroppedMidStream(exc) from exc
                    self.requests += 1
                    return message, stream.request_id
            except anthropic.APIStatusError as exc:
                mid_stream = exc.status_code == 200 and exc.type in RETRYABLE_STREAM_ERRORS
                if exc.status_code == 200:
                    self.infra.note("stream_error")
                if not mid_stream or attempt == STREAM_RETRIES:
                    raise
                self.log.write(
                    f"_stream broke mid-turn ({exc.type}); retrying the turn (attempt {attempt + 2})_"
                )
            except _DroppedMidStream as dropped:
                self.infra.note("dropped_mid_stream")
                if attempt == STREAM_RETRIES:
                    raise dropped.cause from dropped.cause.__cause__
                self.log.write(f"_stream failed mid-turn ({dropped.cause!r}); retrying the turn_")
            time.sleep(STREAM_RETRY_BACKOFF_S * 2**attempt)
        raise RuntimeError("unreachable")

    # -- the phases of a call

    def start_log(self) -> None:
        sandbox = (
            f"bubblewrap ({self.sandbox.bwrap}); network {'on' if self.request.network else 'off'}; "
            f"repository {'read-only' if self.sandbox.settings.read_only else 'read-write'}"
            if self.sandbox.sandboxed
            else f"NONE: bubblewrap unusable ({self.sandbox.problem})"
            + (" (allow_unsandboxed was given)" if self.request.allow_unsandboxed else "")
        )
        header = "\n".join(
            [
                f"# Agent call: {self.definition.name} on phase {self.request.phase_id} "
                f"({self.request.role_suffix})",
                "",
                f"- started: {dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}",
                f"- plan: {self.request.plan_name}",
                f"- owner: {self.request.owner} → {self.definition.source}",
                f"- model: {self.model}",
                f"- tools: {', '.join(self.tools.by_name) or '(none)'}",
                f"- sandbox: {sandbox}",
                f"- max turns: {self.request.max_turns}; command timeout: "
                f"{self.request.command_timeout_s:g} s",
                f"- no-progress stop after: {self.request.no_progress_turns or 'off'} turns; "
                "budget: "
                + (
                    f"{self.budget.name} ({self.budget.limits.describe()})"
                    + (f", within {self.budget.parent.name}" if self.budget.parent else "")
                    if self.budget is not None
                    else "none"
                ),
                f"- skills: {', '.join(self.request.skills) or '(none)'}",
            ]
            + ([f"- warning: {self.definition.warning}"] if self.definition.warning else [])
            + (
                [
                    f"- warning: budget account {self.request.budget_account} is not open in "
                    "this process: no spending limit applies to this call"
                ]
                if self.request.budget_account and self.budget is None
                else []
            )
        )
        self.log.write(
            header,
            "## System prompt",
            _fence(self.conversation.system[0]["text"]),
            "## Task",
            _fence(self.request.task, "markdown"),
        )

    def run_tools(self, message: Message) -> tuple[list[ContentBlockParam], bool]:
        """Results for every tool_use block; also whether all of them were malformed.

        Tells the no-progress rule whether the turn changed a file or ran a new command."""
        blocks: list[ContentBlockParam] = []
        misuse = []
        changed = False
        commands: list[str] = []
        for block in message.content:
            if block.type != "tool_use":
                continue
            remaining = self.remaining_s()
            bash = self.tools.by_name.get(BASH_NAME)
            if remaining is not None and isinstance(bash, BashTool):
                # A command may not outlive the call's own budget.
                bash.timeout_s = max(1.0, min(self.request.command_timeout_s, remaining))
            before = self.written_file_digest(block)
            result = self.scrubbed(self.tools.run(block.name, block.input))
            if result.path is not None and before is not None:
                changed = changed or before != self.written_file_digest(block)
            if result.command is not None:
                commands.append(result.command)
            self.record_tool(block, result)
            blocks.append(result.to_block(block.id))
            misuse.append(bool(result.details.get("misuse")))
        self.progress.turn(files_changed=changed, commands=commands)
        return blocks, bool(misuse) and all(misuse)

    def written_file_digest(self, block: ToolUseBlock) -> str | None:
        """For an editor call that may write: the digest of its file now (`-` when missing);
        None for every other call. Compared before and after the call: a write that leaves
        the file as it was is not progress."""
        tool_input = block.input if isinstance(block.input, dict) else {}
        if block.name != EDITOR_NAME or tool_input.get("command") not in EDITOR_WRITES:
            return None
        raw = tool_input.get("path")
        if not isinstance(raw, str) or not raw:
            return None
        return tree_file_digest(
            self.repo, Path(raw) if Path(raw).is_absolute() else self.repo / raw
        )

    def scrubbed(self, result: ToolResult) -> ToolResult:
        """The tool result without known secrets: it goes back to the model (another company's
        servers), into the transcript and, through the summary, into the plan."""
        from tasks.secrets import scrub_known

        clean = scrub_known(result.output, self.secrets)
        return result if clean == result.output else result.model_copy(update={"output": clean})

    def record_tool(self, block: ToolUseBlock, result: ToolResult) -> None:
        if result.path and result.path not in self.files_touched:
            self.files_touched.append(result.path)
        if result.command is not None:
            self.commands_run.append(result.command)
        status = "error" if result.is_error else "ok"
        extra = f" {json.dumps(result.details)}" if result.details else ""
        self.log.write(
            f"### Tool call `{block.name}` ({block.id})",
            _fence(_cap_log(json.dumps(block.input, indent=2, ensure_ascii=False)), "json"),
            f"**Result ({status}){extra}:**",
            _fence(_cap_log(result.output)),
        )

    def work(self, max_turns: int | None = None) -> tuple[str | None, Failure | None]:
        """The tool loop; returns the last stop reason and the failure, if any."""
        stop_reason: str | None = None
        misuse_turns = 0
        limit = self.request.max_turns if max_turns is None else max_turns
        while True:
            if self.turns >= limit:
                if max_turns is not None:  # the verifier's few extra turns, not the cap
                    return stop_reason, Failure(FailureKind.AGENT, f"max turns reached ({limit})")
                return stop_reason, Failure(
                    FailureKind.BUDGET, f"turn cap reached ({limit} turns)", ErrorCode.TURN_CAP
                )
            spent = self.budget.limit_reached() if self.budget is not None else None
            if spent is not None:  # checked between turns: a turn once started is finished
                return stop_reason, Failure(FailureKind.BUDGET, spent.message, spent.code)
            remaining = self.remaining_s()
            if remaining is not None and remaining <= 0:
                return stop_reason, Failure(
                    FailureKind.AGENT, "wall-clock budget exhausted", ErrorCode.DEADLINE
                )
            self.turns += 1
            try:
                message, request_id = self.stream(self.params())
            except Exception as exc:  # every API failure is classified, never raised
                failure = classify_exception(exc)
                remaining = self.remaining_s()
                if remaining is not None and remaining <= 0:
                    failure = Failure(
                        FailureKind.AGENT,
                        f"wall-clock budget exhausted during a request ({exc!r})",
                        ErrorCode.DEADLINE,
                    )
                self.log.write(
                    f"## Turn {self.turns}: request failed",
                    _fence(_cap_log(traceback.format_exc())),
                )
                return stop_reason, failure
            turn_usage = _usage_of(message)
            self.usage = self.usage + turn_usage
            cost = self.charge(turn_usage)
            stop_reason = message.stop_reason
            text = _text_of(message)
            if text:
                self.last_text = text
            self.log.write(
                f"## Turn {self.turns}",
                f"- request id: {request_id}\n- stop reason: {stop_reason}\n"
                f"- usage: {turn_usage.model_dump()}{cost}",
                *(["### Assistant", text] if text else []),
            )
            # The API rejects empty text blocks in history (a turn may stream none).
            blocks = [b for b in message.content if not (b.type == "text" and not b.text)]
            self.conversation.add("assistant", [_block_param(b) for b in blocks])
            if stop_reason == "pause_turn":
                continue  # resend as-is: the model continues its own turn
            if stop_reason != "tool_use":
                return stop_reason, classify_stop(stop_reason, message.stop_details)
            results, all_misuse = self.run_tools(message)
            self.conversation.add_user_blocks(results)
            misuse_turns = misuse_turns + 1 if all_misuse else 0
            if misuse_turns >= MAX_MISUSE_TURNS:
                return stop_reason, Failure(
                    FailureKind.AGENT,
                    f"tool misuse: {misuse_turns} consecutive turns of malformed tool calls",
                )
            if self.progress.stalled:
                return stop_reason, Failure(
                    FailureKind.BUDGET, self.progress.message(), ErrorCode.NO_PROGRESS
                )

    def charge(self, usage: Usage) -> str:
        """Charge one response's usage to the budget; its cost for the details log."""
        if self.budget is None:
            return ""
        cost = self.budget.charge(self.model, usage)
        spent = self.budget.spent
        return f"\n- cost: {format_cost(cost)} ({self.budget.name} so far: {format_cost(spent.cost_usd)})"

    def ask_for_missing_verdicts(self) -> tuple[str | None, Failure | None] | None:
        """Once, after the verifier stopped: ask for the criteria it left without a verdict.

        None when nothing is missing. A model that ends its turn having judged in prose only
        gets one reminder; whatever it still leaves out counts as FAIL in the flow.
        """
        tool = self.verdict_tool
        missing = tool.missing() if tool else []
        if not missing:
            return None
        names = ", ".join(f"criterion {c}" for c in missing)
        text = (
            f"No verdict is recorded for {names}. Your text is not read for verdicts: call "
            f"`{VERDICT_NAME}` once for each of them now (PASS or FAIL, the file and line that "
            "prove it, one sentence why). A criterion without a recorded verdict counts as FAIL."
        )
        self.conversation.add_user_blocks([{"type": "text", "text": text}])
        self.log.write("## Verdicts missing: asked again", _fence(text))
        return self.work(max_turns=self.turns + VERDICT_FOLLOW_UP_TURNS)

    def summarise(self, failure: Failure | None) -> tuple[str, Failure | None]:
        """The final request: no tools allowed, at most 500 tokens."""
        unanswered = self.conversation.unanswered_tool_uses()
        reason = failure.message if failure else "the call ended"
        not_run: list[ToolResultBlockParam] = [
            {
                "type": "tool_result",
                "tool_use_id": tool_id,
                "content": f"not run: {reason}",
                "is_error": True,
            }
            for tool_id in unanswered
        ]
        blocks: list[ContentBlockParam] = [
            *not_run,
            {"type": "text", "text": summary_request()},
        ]
        self.conversation.add_user_blocks(blocks)
        try:
            message, request_id = self.stream(
                self.params(max_tokens=SUMMARY_TOKENS, tool_choice={"type": "none"})
            )
        except Exception as exc:
            problem = classify_exception(exc)
            self.log.write("## Summary request failed", _fence(_cap_log(traceback.format_exc())))
            fallback = (
                f"(summary request failed: {problem.message}) Last words of the agent: "
                + _words(self.last_text, 300)
            )
            return fallback, failure
        usage = _usage_of(message)
        self.usage = self.usage + usage
        cost = self.charge(usage)
        summary = _text_of(message)
        self.log.write(
            "## Summary",
            f"- request id: {request_id}\n- stop reason: {message.stop_reason}\n- usage: {usage.model_dump()}{cost}",
            summary or "(empty)",
        )
        return summary or _words(self.last_text, 300), failure

    def finish_log(self, result: AgentResult) -> None:
        self.log.write(
            "## Result",
            f"- failure: {result.failure.value}"
            + (f" ({result.error})" if result.error else "")
            + f"\n- stop reason: {result.stop_reason}\n- turns: {result.turns}; requests: {result.requests}"
            f"\n- infrastructure: {result.infra.describe()}"
            f"\n- usage: {result.usage.model_dump()}"
            + (
                f"\n- budget: {self.budget.name} spent {format_cost(self.budget.spent.cost_usd)}"
                f" of {self.budget.limits.describe()}"
                if self.budget is not None
                else ""
            )
            + f"\n- files touched (editor): {', '.join(result.files_touched) or '(none)'}"
            f"\n- commands run: {len(result.commands_run)}"
            f"\n- duration: {time.monotonic() - self.started:.1f} s",
        )

    def run(self) -> AgentResult:
        self.start_log()
        if self.uses_bash and not self.sandbox.usable:
            refused = Failure(FailureKind.INFRASTRUCTURE, self.sandbox.refusal(), retryable=False)
            result = self.result(f"Not started: {refused.message}", None, refused)
            self.finish_log(result)
            return result
        failure: Failure | None
        stop_reason, failure = self.work()
        if failure is None and (again := self.ask_for_missing_verdicts()) is not None:
            stop_reason, failure = again
        skip_summary = failure is not None and (
            failure.kind is FailureKind.INFRASTRUCTURE
            # A spent budget allows no more requests, not even the summary's.
            or (failure.kind is FailureKind.BUDGET and failure.error_code in SPENDING_LIMITS)
            # Out of time or out of context: a summary request cannot be answered either.
            or failure.error_code in (ErrorCode.DEADLINE, ErrorCode.CONTEXT_EXHAUSTED)
            or stop_reason in ("refusal", "model_context_window_exceeded")
        )
        if skip_summary and failure is not None:
            summary = f"Agent call failed ({failure.kind.value}): {failure.message}."
            if self.last_text:
                summary += " Last words of the agent: " + _words(self.last_text, 300)
        else:
            summary, failure = self.summarise(failure)
        result = self.result(summary, stop_reason, failure)
        self.finish_log(result)
        return result


def run_agent(
    request: AgentRequest,
    *,
    client: anthropic.Anthropic | None = None,
    deadline_s: float | None = None,
) -> AgentResult:
    """Run one agent call; never raises for API or agent failures (see ``AgentResult.failure``).

    Raises ValueError for caller mistakes only: the repository is not a directory, or the owner
    is not an agent call (``human``, ``self``, orchestrator), for which no agent must be called.
    """
    if not Path(request.repo).is_dir():
        raise ValueError(f"repository {request.repo} is not a directory")
    definition = resolve_agent(request.owner, Path(request.repo))
    if definition is None:
        raise ValueError(f"owner {request.owner!r} is not an agent call (human or orchestrator)")
    from tasks.agent.runtimes import CLAUDE_CODE, pick_runtime

    runtime = pick_runtime(
        request.runtime, definition.runtime, verifier=bool(request.verdict_criteria)
    )
    if runtime == CLAUDE_CODE and client is None:
        # The second runtime: Claude Code in bubblewrap; same request, same AgentResult.
        from tasks.agent.claude_code import run_claude_code

        return run_claude_code(request, definition, deadline_s=deadline_s)
    try:
        api = _guarded(client if client is not None else build_client())
    except Exception as exc:  # e.g. no credentials at all
        failure = classify_exception(exc)
        return AgentResult(
            agent=definition.name,
            model=pick_model(request, definition),
            summary=f"Not started: {failure.message}",
            failure=FailureKind.INFRASTRUCTURE,
            error=failure.message,
            retryable=False,
        )
    return AgentCall(request, definition, api, deadline_s).run()
