"""The `claude-code` agent runtime: one agent call run by Claude Code (claude-agent-sdk).

Same contract as :func:`tasks.agent.loop.run_agent`: an :class:`AgentRequest` in, an
:class:`AgentResult` out (summary, files touched and commands run from the ``tool_use`` blocks
of the message stream, usage and cost from the result message, failures classified), the
transcript in ``.ai/logs``. What differs is who runs the tools: Claude Code's own (Read, Write,
Edit, Bash, Grep/Glob, Skill ...), inside ONE bubblewrap sandbox around the whole CLI process:

- the SDK starts ``cli_path``, which is a wrapper script of ours (in a private temporary
  directory) that execs ``bwrap <the rules of tasks.agent.sandbox> -- claude ARGS``: the
  repository writable (read-only for read-only roles), the plan file and run lock read-only,
  the rest of the filesystem read-only, private `/tmp` and `$HOME` (no user-level Claude Code
  settings, keys or sessions of the machine), secrets hidden, own pid namespace, capabilities
  dropped, dying with its parent;
- as uid/gid 1000 in a user namespace where the machine allows it (probed once), so bypass
  mode needs no ``IS_SANDBOX=1``; where it does not, ``IS_SANDBOX=1`` is set and said so in
  the log;
- the environment is cleared (``--clearenv``) and rebuilt from an allow-list: PATH, locale,
  toolchains, the private HOME, ``CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1``,
  ``DISABLE_TELEMETRY=1``, ``DISABLE_AUTOUPDATER=1``, and ``ANTHROPIC_BASE_URL`` pointing at
  our API proxy (:mod:`tasks.agent.api_proxy`) with a placeholder key: the real key never
  enters the sandbox, the proxy adds it on the way out;
- network off (``--no-network``): ``--unshare-net``; the proxy listens on a Unix socket bound
  into the sandbox and a relay inside (our Python) serves it on the sandbox's own loopback, so
  the API (https included) is the only thing reachable.

Subagents (``Agent``/``Task``) and web tools (``WebFetch``, ``WebSearch``) are off unless the
agent definition's ``tools:`` lists them. ``setting_sources=["project"]`` loads the repository's
`.claude/` settings, agents, skills and `CLAUDE.md`; the owner's definition is the system
prompt (appended to Claude Code's own), so it is the role that runs, whatever else is there.

The agent's summary is a claim; nothing here decides that a phase is complete.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import json
import os
import shlex
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from plan_parser.errors import PlanExecutorError
from plan_parser.paths import repo_relative
from tasks.agent.api_proxy import INNER_PORT, INNER_RELAY, PLACEHOLDER_KEY, ApiProxy
from tasks.agent.budget import account_for, remaining_usd
from tasks.agent.definitions import AgentDefinition
from tasks.agent.loop import (
    DetailsLog,
    Failure,
    _cap_log,
    _fence,
    _words,
    details_log_path,
    pick_model,
    shown_log_path,
)
from tasks.agent.prompts import SKILLS_HEADING, SUMMARY_TOKENS, skills_section, summary_request
from tasks.agent.result import (
    AgentRequest,
    AgentResult,
    ErrorCode,
    FailureKind,
    InfraFaults,
    Usage,
)
from tasks.agent.runtimes import CLAUDE_CODE, RuntimeUnavailable, claude_code_missing
from tasks.agent.sandbox import (
    DEFAULT_MAX_PROCESSES,
    SANDBOX_HOME,
    ProcessLimit,
    Sandbox,
    SandboxSettings,
    command_env,
)
from tasks.agent.tools import ToolInput

if TYPE_CHECKING:  # an optional extra (`claude-code`): imported where it runs, after the check
    from claude_agent_sdk import ClaudeAgentOptions, Message, ResultMessage

SANDBOX_UID = 1000
DEFAULT_TOOLS = ("Bash", "Read", "Write", "Edit", "Glob", "Grep", "Skill", "TodoWrite")
"""Claude Code tools an agent gets when its definition lists none."""
WRITING_TOOLS = frozenset({"Write", "Edit", "MultiEdit", "NotebookEdit"})
OPT_IN_TOOLS = ("Agent", "Task", "WebFetch", "WebSearch")
"""Off unless the agent definition's `tools:` names them: subagents, the web."""
FILE_TOOLS = {"Write", "Edit", "MultiEdit", "NotebookEdit"}
FIXED_ENV = {
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "DISABLE_TELEMETRY": "1",
    "DISABLE_AUTOUPDATER": "1",
    "DISABLE_ERROR_REPORTING": "1",
    # As many retries of a failed request as the anthropic runtime's SDK makes (default 10).
    "CLAUDE_CODE_MAX_RETRIES": "4",
    # 1 makes Claude Code 2.1.337 force the permission mode back to `default` and require its
    # own Bash sandbox, which needs socat (not here) and litters the repository with mount-point
    # files (.env, .npmrc, node_modules ...): measured. Not needed: there is no key to scrub.
    "CLAUDE_CODE_SUBPROCESS_ENV_SCRUB": "0",
}


def _sdk() -> ModuleType:
    """The claude_agent_sdk module, or RuntimeUnavailable saying which extra to install."""
    problem = claude_code_missing()
    if problem:
        raise RuntimeUnavailable(problem)
    import claude_agent_sdk

    return claude_agent_sdk


def bundled_cli() -> Path:
    """The Claude Code CLI the SDK wheel ships (`claude_agent_sdk/_bundled/claude`)."""
    return Path(str(_sdk().__file__)).parent / "_bundled" / "claude"


@functools.cache
def user_namespace_works(bwrap: str) -> bool:
    """Whether bubblewrap can run a process as uid 1000 in a user namespace here."""
    from tasks.shell import run

    argv = [
        bwrap,
        "--ro-bind", "/", "/",
        "--unshare-user", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID),
        "--die-with-parent",
        "--", "id", "-u",
    ]  # fmt: skip
    result = run(argv, cwd="/", env={"PATH": "/usr/bin:/bin"}, timeout_s=30)
    return result.ok and result.output.strip() == str(SANDBOX_UID)


# --- tools -------------------------------------------------------------------------------------


def _tool_name(entry: str) -> str:
    """`Bash(git:*)` → `Bash`."""
    return entry.strip().split("(")[0].strip()


def tool_choice(definition: AgentDefinition, *, read_only: bool) -> tuple[list[str], list[str]]:
    """(the tools Claude Code offers, the tools it refuses) for this agent.

    The definition's `tools:` when it has one, else :data:`DEFAULT_TOOLS`; writing tools off
    for read-only roles; subagents and web tools off unless the definition names them."""
    listed = [_tool_name(t) for t in definition.tools] if definition.tools is not None else []
    offered = listed if definition.tools is not None else list(DEFAULT_TOOLS)
    # Our own tool names in a definition mean the same to Claude Code.
    aliases = {"str_replace_based_edit_tool": ["Read", "Write", "Edit"], "bash": ["Bash"]}
    expanded: list[str] = []
    for name in offered:
        for real in aliases.get(name, [name]):
            if real not in expanded:
                expanded.append(real)
    if read_only:
        expanded = [name for name in expanded if name not in WRITING_TOOLS]
    refused = [name for name in OPT_IN_TOOLS if name not in listed]
    if read_only:
        refused += sorted(WRITING_TOOLS)
    return [name for name in expanded if name not in refused], refused


# --- the sandbox around the CLI ------------------------------------------------------------------


@dataclass
class SandboxPlan:
    """How the CLI process is confined: the wrapper script and what the log says about it."""

    wrapper: Path
    sandboxed: bool
    description: str
    as_root: bool
    proxy: ApiProxy
    processes: ProcessLimit | None = None
    """The CLI's pids cgroup: :meth:`stop` kills everything in it."""

    def stop(self) -> None:
        """Kill the CLI and everything it started; the SDK then sees its process end and
        cleans up inside the event loop (cancelling the SDK mid-read leaves its subprocess
        transport to the garbage collector after the loop closed)."""
        if self.processes is None:
            return
        with contextlib.suppress(OSError):
            for pid in (self.processes.directory / "cgroup.procs").read_text().split():
                with contextlib.suppress(ProcessLookupError, PermissionError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)


def sandbox_env(
    base_url: str, *, as_root: bool, command_timeout_s: float | None = None
) -> dict[str, str]:
    """The CLI's whole environment: allow-listed, the API through our proxy, no real key."""
    env = command_env(SANDBOX_HOME)
    env.update(FIXED_ENV)
    if command_timeout_s:
        # The run's per-command limit for Claude Code's Bash too (default and ceiling).
        millis = str(int(command_timeout_s * 1000))
        env["BASH_DEFAULT_TIMEOUT_MS"] = env["BASH_MAX_TIMEOUT_MS"] = millis
    env["ANTHROPIC_BASE_URL"] = base_url
    env["ANTHROPIC_API_KEY"] = PLACEHOLDER_KEY
    if as_root:
        # bypassPermissions refuses to start as root unless told it is sandboxed (it is).
        env["IS_SANDBOX"] = "1"
    return env


def cli_argv(
    repo: Path,
    sandbox: Sandbox,
    cli: Path,
    *,
    env: dict[str, str],
    user_namespace: bool,
    proxy_socket: Path | None,
) -> list[str]:
    """bwrap … -- claude: the sandbox of :mod:`tasks.agent.sandbox` plus a user namespace and a
    cleared environment; with the network off, the relay to the proxy's socket beside it."""
    from tasks.agent.sandbox import bwrap_argv

    settings = sandbox.settings
    command = 'exec "$0" "$@"'
    if proxy_socket is not None:
        settings = settings.model_copy(update={"writable_paths": [proxy_socket.parent]})
        command = (
            f"{shlex.quote(sys.executable)} -I -c {shlex.quote(INNER_RELAY)} "
            f"127.0.0.1:{INNER_PORT} {shlex.quote(str(proxy_socket))} & " + command
        )
    assert sandbox.bwrap is not None
    argv = bwrap_argv(sandbox.bwrap, repo, command, settings)
    split = argv.index("--")
    extra: list[str] = []
    if user_namespace:
        extra += ["--unshare-user", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID)]
    extra.append("--clearenv")
    for name, value in env.items():
        extra += ["--setenv", name, value]
    return [*argv[:split], *extra, *argv[split:], str(cli)]


def wrapper_script(argv: list[str]) -> str:
    """A shell script that execs ``argv`` with the caller's arguments appended. It holds no
    secret: the key stays in our process (:mod:`tasks.agent.api_proxy`)."""
    return "#!/bin/sh\nexec " + " ".join(shlex.quote(word) for word in argv) + ' "$@"\n'


@contextlib.contextmanager
def confined_cli(
    request: AgentRequest, repo: Path, sandbox: Sandbox, cli: Path
) -> Iterator[SandboxPlan]:
    """The wrapper the SDK starts as ``cli_path`` and the API proxy it talks to, in a private
    directory removed afterwards."""
    with (
        tempfile.TemporaryDirectory(prefix="plan-executor-claude-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        directory = Path(tmp)
        os.chmod(directory, 0o755)
        isolated = sandbox.sandboxed and not request.network
        socket_dir = directory / "api"
        socket_dir.mkdir(mode=0o755)
        upstream = os.environ.get("ANTHROPIC_BASE_URL") or None
        with ApiProxy(
            upstream,
            api_key=_credential("ANTHROPIC_API_KEY"),
            auth_token=_credential("ANTHROPIC_AUTH_TOKEN"),
            unix_socket=socket_dir / "api.sock" if isolated else None,
        ) as proxy:
            script = directory / "claude"
            if not sandbox.sandboxed:
                # allow_unsandboxed: the CLI runs directly, still with the allow-listed env,
                # a private HOME and no key (`env -i`: the SDK merges os.environ into its env).
                env = sandbox_env(
                    proxy.base_url,
                    as_root=os.geteuid() == 0,
                    command_timeout_s=request.command_timeout_s,
                )
                env["HOME"] = str(directory / "home")
                (directory / "home").mkdir()
                argv = ["env", "-i", *(f"{k}={v}" for k, v in env.items()), str(cli)]
                script.write_text(wrapper_script(argv))
                script.chmod(0o700)
                yield SandboxPlan(
                    script,
                    False,
                    f"NONE: bubblewrap unusable ({sandbox.problem}) (allow_unsandboxed was given)",
                    as_root=os.geteuid() == 0,
                    proxy=proxy,
                )
                return
            user_ns = user_namespace_works(sandbox.bwrap or "bwrap")
            env = sandbox_env(
                proxy.base_url,
                as_root=not user_ns and os.geteuid() == 0,
                command_timeout_s=request.command_timeout_s,
            )
            argv = cli_argv(
                repo,
                sandbox,
                cli,
                env=env,
                user_namespace=user_ns,
                proxy_socket=proxy.unix_socket,
            )
            # The whole CLI, its commands included, in one pids cgroup (a fork bomb is bounded;
            # whatever is left when the call ends is killed with it).
            limit = sandbox.settings.max_processes
            pids = stack.enter_context(
                ProcessLimit.scope(DEFAULT_MAX_PROCESSES if limit is None else limit)
            )
            if pids is not None:
                argv = pids.wrap(argv)
            script.write_text(wrapper_script(argv))
            script.chmod(0o700)
            who = (
                f"uid {SANDBOX_UID} in a user namespace"
                if user_ns
                else "root with IS_SANDBOX=1 (no user namespaces here)"
            )
            network = "on" if request.network else "off (the API through a Unix socket)"
            processes = f"at most {pids.limit} processes and threads" if pids else "no pids cgroup"
            description = (
                f"the whole CLI in bubblewrap ({sandbox.bwrap}) as {who}; {processes}; "
                f"network {network}; "
                f"repository {'read-only' if sandbox.settings.read_only else 'read-write'}; "
                f"environment cleared, allow-listed: {', '.join(sorted(env))}; the API key "
                f"stays outside: a proxy of ours adds it on the way to {proxy.upstream}"
            )
            yield SandboxPlan(
                script, True, description, as_root=not user_ns, proxy=proxy, processes=pids
            )


def _credential(name: str) -> str | None:
    if name == "ANTHROPIC_API_KEY":
        from tasks.secrets import anthropic_api_key

        return anthropic_api_key()
    return os.environ.get(name) or None


# --- the call ----------------------------------------------------------------------------------


def system_append(definition: AgentDefinition, request: AgentRequest) -> str:
    """The owner's role prompt (and the run's skills), appended to Claude Code's own."""
    parts = [
        f"# Your role: {definition.name}",
        definition.prompt.strip(),
        skills_section(request.skills)
        if request.skills and SKILLS_HEADING not in request.task
        else "",
        "## Working rules\n- You work in the repository at the working directory only: the "
        "rest of the filesystem is read-only, `$HOME` and `/tmp` are private and empty.\n"
        "- No interactive programs (editors, pagers, prompts).",
    ]
    return "\n\n".join(p for p in parts if p)


def task_prompt(request: AgentRequest) -> str:
    """The phase task, then the report the orchestrator reads (Claude Code has no separate
    summary request: its final message is the summary)."""
    report = summary_request().replace("Stop working now. Write", "When you are done, end with")
    report = report.replace("Do not call tools. ", "")
    return f"{request.task}\n\n---\n\n{report}"


@dataclass
class StreamRecord:
    """What the message stream showed: tool calls, text, usage, the result message."""

    repo: Path
    files_touched: list[str] = field(default_factory=list)
    commands_run: list[str] = field(default_factory=list)
    message_ids: set[str] = field(default_factory=set)
    last_text: str = ""
    result: ResultMessage | None = None
    tool_calls: int = 0
    pending: dict[str, tuple[str, ToolInput]] = field(default_factory=dict)
    """Tool calls waiting for their result (recorded once it came back without an error)."""

    def note_call(self, tool_id: str, name: str, tool_input: ToolInput) -> None:
        self.tool_calls += 1
        self.pending[tool_id] = (name, tool_input)

    def note_result(self, tool_id: str, is_error: bool) -> None:
        call = self.pending.pop(tool_id, None)
        if call is not None and not is_error:
            self.note_tool(*call)

    def note_tool(self, name: str, tool_input: ToolInput) -> None:
        if name in FILE_TOOLS:
            raw = tool_input.get("file_path") or tool_input.get("notebook_path")
            if isinstance(raw, str) and raw:
                path = Path(raw) if Path(raw).is_absolute() else self.repo / raw
                shown = repo_relative(self.repo, path)
                if shown is None:
                    # Outside the tree: a private tmpfs of the sandbox (/tmp, the hidden home),
                    # gone with it; not a file of the repository.
                    return
                if shown not in self.files_touched:
                    self.files_touched.append(shown)
        elif name == "Bash" and isinstance(command := tool_input.get("command"), str):
            self.commands_run.append(command)


def _usage(raw: dict[str, Any] | None) -> Usage:  # `ResultMessage.usage`: the CLI's JSON
    raw = raw or {}
    return Usage(
        input_tokens=int(raw.get("input_tokens") or 0),
        output_tokens=int(raw.get("output_tokens") or 0),
        cache_creation_input_tokens=int(raw.get("cache_creation_input_tokens") or 0),
        cache_read_input_tokens=int(raw.get("cache_read_input_tokens") or 0),
    )


def classify_result(result: ResultMessage | None) -> Failure | None:
    """None for a successful result message; else AGENT or INFRASTRUCTURE."""
    if result is None:
        return Failure(FailureKind.INFRASTRUCTURE, "Claude Code ended without a result message")
    subtype = getattr(result, "subtype", "")
    if subtype == "success" and not getattr(result, "is_error", False):
        return None
    status = getattr(result, "api_error_status", None)
    errors = "; ".join(getattr(result, "errors", None) or []) or (result.result or "")
    text = f"Claude Code {subtype}" + (f" (API status {status})" if status else "")
    text += f": {errors}" if errors else ""
    if subtype == "error_max_turns":
        return Failure(FailureKind.BUDGET, f"turn cap reached ({text})", ErrorCode.TURN_CAP)
    if subtype == "error_max_budget_usd":
        return Failure(FailureKind.BUDGET, f"cost budget spent ({text})", ErrorCode.COST_LIMIT)
    if status is not None:
        retryable = status in (408, 409, 429) or status >= 500
        return Failure(FailureKind.INFRASTRUCTURE, text, retryable=retryable)
    return Failure(FailureKind.AGENT, text)


async def _converse(
    options: ClaudeAgentOptions, prompt: str, record: StreamRecord, log: DetailsLog
) -> None:
    sdk = _sdk()
    # Closed here, inside the loop, also when the deadline cancels us: the SDK then ends the
    # CLI's process (bwrap, and with it the sandbox's whole pid namespace).
    async with contextlib.aclosing(sdk.query(prompt=prompt, options=options)) as messages:
        async for message in messages:
            _record(message, record, log)


def _record(message: Message, record: StreamRecord, log: DetailsLog) -> None:
    """Note one message of the stream and append it to the transcript."""
    # Imported here: the SDK is an optional extra, and a stream means it is installed.
    from claude_agent_sdk import (
        AssistantMessage,
        ResultMessage,
        SystemMessage,
        TextBlock,
        ToolResultBlock,
        ToolUseBlock,
        UserMessage,
    )

    if isinstance(message, AssistantMessage):
        if message.message_id:
            record.message_ids.add(message.message_id)
        for block in message.content:
            if isinstance(block, TextBlock) and block.text.strip():
                record.last_text = block.text.strip()
                log.write("### Assistant", block.text)
            elif isinstance(block, ToolUseBlock):
                record.note_call(block.id, block.name, dict(block.input or {}))
                log.write(
                    f"### Tool call `{block.name}` ({block.id})",
                    _fence(_cap_log(json.dumps(block.input, indent=2, ensure_ascii=False)), "json"),
                )
    elif isinstance(message, UserMessage) and isinstance(message.content, list):
        for block in message.content:
            if isinstance(block, ToolResultBlock):
                record.note_result(block.tool_use_id, bool(block.is_error))
                content = block.content
                text = content if isinstance(content, str) else json.dumps(content)
                status = "error" if block.is_error else "ok"
                log.write(
                    f"**Result of {block.tool_use_id} ({status}):**",
                    _fence(_cap_log(text or "")),
                )
    elif isinstance(message, ResultMessage):
        record.result = message
    elif isinstance(message, SystemMessage) and message.subtype == "init":
        data = message.data
        log.write(
            "## Claude Code session",
            f"- version: {data.get('claude_code_version')}; permission mode: "
            f"{data.get('permissionMode')}; model: {data.get('model')}\n"
            f"- tools offered: {', '.join(data.get('tools') or [])}\n"
            f"- agents: {', '.join(data.get('agents') or [])}\n"
            f"- skills: {', '.join(str(s) for s in data.get('skills') or [])}",
        )


def run_claude_code(
    request: AgentRequest, definition: AgentDefinition, *, deadline_s: float | None = None
) -> AgentResult:
    """One agent call by Claude Code; never raises for API or agent failures."""
    from tasks.secrets import known_secrets, scrub_known

    started = time.monotonic()
    repo = Path(request.repo).resolve()
    model = pick_model(request, definition)
    secrets = known_secrets()
    log = DetailsLog(details_log_path(request), secrets)
    read_only = request.read_only or definition.read_only
    protected = [(p if p.is_absolute() else repo / p).resolve() for p in request.protected_paths]
    sandbox = Sandbox(
        repo,
        SandboxSettings(
            bwrap=request.bwrap,
            network=request.network,
            read_only=read_only,
            allow_unsandboxed=request.allow_unsandboxed,
            read_only_paths=protected,
        ),
    )
    offered, refused = tool_choice(definition, read_only=read_only)
    record = StreamRecord(repo)
    log_rel = shown_log_path(log.path, request.log_repo or repo)

    def result(
        summary: str, failure: Failure | None, sandboxed: bool, faults: dict[str, int] | None = None
    ) -> AgentResult:
        message = record.result
        counted = sum((faults or {}).values())
        # Every fault but a last one that ended the call was retried (by Claude Code).
        ended_on_fault = failure is not None and failure.kind is FailureKind.INFRASTRUCTURE
        infra = InfraFaults(
            faults=dict(faults or {}), retries=max(0, counted - int(ended_on_fault and counted))
        )
        return AgentResult(
            agent=definition.name,
            model=model,
            summary=scrub_known(summary, secrets),
            stop_reason=getattr(message, "stop_reason", None),
            turns=int(getattr(message, "num_turns", 0) or 0),
            usage=_usage(getattr(message, "usage", None)),
            files_touched=record.files_touched,
            commands_run=record.commands_run,
            details_log=log_rel,
            failure=failure.kind if failure else FailureKind.NONE,
            error=scrub_known(failure.message, secrets) if failure else None,
            error_code=failure.error_code if failure else None,
            sandboxed=sandboxed,
            retryable=failure.retryable if failure else False,
            requests=len(record.message_ids),
            runtime=CLAUDE_CODE,
            cost_usd=getattr(message, "total_cost_usd", None),
            infra=infra,
        )

    header = [
        f"# Agent call: {definition.name} on phase {request.phase_id} ({request.role_suffix})",
        "",
        "- runtime: claude-code (claude-agent-sdk)",
        f"- started: {dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}",
        f"- plan: {request.plan_name}",
        f"- owner: {request.owner} → {definition.source}",
        f"- model: {model}",
        f"- tools: {', '.join(offered) or '(none)'}; refused: {', '.join(refused)}",
        f"- max turns: {request.max_turns}",
        f"- skills: {', '.join(request.skills) or '(none)'}",
    ]
    if definition.warning:
        header.append(f"- warning: {definition.warning}")
    account = account_for(request.budget_account)
    spent = account.limit_reached() if account is not None else None
    if spent is not None:  # the run's or the phase's budget is gone: start nothing
        log.write("\n".join(header), f"Not started: {spent.message}")
        return result(
            f"Not started: {spent.message}",
            Failure(FailureKind.BUDGET, spent.message, spent.code),
            sandbox.sandboxed,
        )
    # Claude Code stops itself at a cost cap between turns (`max_budget_usd`); a token cap it
    # does not know: that one is checked when the call is charged, before the next call starts.
    left_usd = remaining_usd(account) if account is not None else None
    header.append(
        f"- budget: {account.name}, ${left_usd:.4f} left (Claude Code's `max_budget_usd`)"
        if account is not None and left_usd is not None
        else f"- budget: {account.name if account is not None else 'none'}, no cost cap"
    )
    failure: Failure | None
    try:
        sdk = _sdk()
        cli = bundled_cli()
    except RuntimeUnavailable as exc:
        failure = Failure(FailureKind.INFRASTRUCTURE, str(exc), retryable=False)
        log.write("\n".join(header), f"Not started: {exc}")
        return result(f"Not started: {exc}", failure, sandbox.sandboxed)
    if not sandbox.usable:
        failure = Failure(FailureKind.INFRASTRUCTURE, sandbox.refusal(), retryable=False)
        log.write("\n".join(header), f"Not started: {failure.message}")
        return result(f"Not started: {failure.message}", failure, False)
    failure = None
    try:
        with confined_cli(request, repo, sandbox, cli) as plan:
            header.append(f"- sandbox: {plan.description}")
            log.write(
                "\n".join(header),
                "## System prompt (appended to Claude Code's own)",
                _fence(system_append(definition, request)),
                "## Task",
                _fence(request.task, "markdown"),
            )
            options = sdk.ClaudeAgentOptions(
                tools=offered,
                # Listed explicitly: with CLAUDE_CODE_SUBPROCESS_ENV_SCRUB set, Claude Code
                # otherwise forces the permission mode back to `default` (measured, 2.1.337).
                allowed_tools=offered,
                disallowed_tools=refused,
                system_prompt={
                    "type": "preset",
                    "preset": "claude_code",
                    "append": system_append(definition, request),
                },
                permission_mode="bypassPermissions",
                setting_sources=["project"],
                max_turns=request.max_turns,
                max_budget_usd=left_usd,
                model=model,
                cwd=str(repo),
                cli_path=str(plan.wrapper),
                stderr=lambda line: stderr.append(line),
            )
            stderr: list[str] = []
            try:
                asyncio.run(_bounded(options, task_prompt(request), record, log, deadline_s, plan))
            except _FatalApi as exc:
                failure = Failure(FailureKind.INFRASTRUCTURE, str(exc), retryable=False)
            except TimeoutError:
                failure = Failure(
                    FailureKind.AGENT, "wall-clock budget exhausted (deadline)", ErrorCode.DEADLINE
                )
            except Exception as exc:
                log.write("## Claude Code failed", _fence(_cap_log(traceback.format_exc())))
                failure = _classify_exception(exc)
            sandboxed = plan.sandboxed
            faults = dict(plan.proxy.faults)
            if stderr:
                log.write("## Claude Code stderr", _fence(_cap_log("\n".join(stderr))))
    except OSError as exc:  # the proxy's socket or the wrapper could not be made
        failure = Failure(FailureKind.INFRASTRUCTURE, f"not started: {exc!r}", retryable=True)
        log.write("\n".join(header), f"Not started: {exc!r}")
        return result(f"Not started: {exc!r}", failure, sandbox.sandboxed)
    if failure is None:
        failure = classify_result(record.result)
    final = (getattr(record.result, "result", None) or record.last_text or "").strip()
    if failure is not None and not final:
        summary = f"Agent call failed ({failure.kind.value}): {failure.message}."
    else:
        summary = _words(final, SUMMARY_TOKENS) if final else "(no final message)"
    outcome = result(summary, failure, sandboxed, faults)
    if account is not None:
        account.charge(model, outcome.usage)
    log.write(
        "## Result",
        f"- failure: {outcome.failure.value}"
        + (f" ({outcome.error})" if outcome.error else "")
        + f"\n- stop reason: {outcome.stop_reason}\n- turns: {outcome.turns}; "
        f"requests: {outcome.requests}; tool calls: {record.tool_calls}"
        f"\n- infrastructure (seen by the API proxy): {outcome.infra.describe()}"
        f"\n- usage: {outcome.usage.model_dump()}"
        f"\n- cost (Claude Code's estimate): {outcome.cost_usd}"
        f"\n- files touched (Write/Edit): {', '.join(outcome.files_touched) or '(none)'}"
        f"\n- commands run: {len(outcome.commands_run)}"
        f"\n- duration: {time.monotonic() - started:.1f} s",
        "## Summary",
        outcome.summary,
    )
    return outcome


class _FatalApi(PlanExecutorError):
    """The API gave an answer no retry can fix; the call ends now (Claude Code would retry)."""


STOP_GRACE_S = 10.0
"""How long the SDK may take to notice the killed CLI before it is cancelled."""


async def _bounded(
    options: ClaudeAgentOptions,
    prompt: str,
    record: StreamRecord,
    log: DetailsLog,
    deadline_s: float | None,
    plan: SandboxPlan,
) -> None:
    """The session, ended early by the deadline (TimeoutError) or a fatal API answer
    (_FatalApi): the CLI is killed and the SDK's stream allowed to end by itself."""
    started = time.monotonic()

    async def watch() -> None:
        while True:
            if plan.proxy.fatal is not None:
                plan.stop()
                raise _FatalApi(plan.proxy.fatal)
            if deadline_s is not None and time.monotonic() - started >= deadline_s:
                plan.stop()
                raise TimeoutError
            await asyncio.sleep(0.2)

    converse = asyncio.ensure_future(_converse(options, prompt, record, log))
    watcher = asyncio.ensure_future(watch())
    backstop = None if deadline_s is None else deadline_s + STOP_GRACE_S
    try:
        async with asyncio.timeout(backstop):
            await asyncio.wait({converse, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if watcher.done() and not converse.done():
                await asyncio.wait({converse}, timeout=STOP_GRACE_S)
    finally:
        for running in (converse, watcher):
            running.cancel()
        await asyncio.gather(converse, watcher, return_exceptions=True)
    if watcher.done() and not watcher.cancelled() and watcher.exception() is not None:
        raise watcher.exception()  # type: ignore[misc]
    converse.result()


def _classify_exception(exc: BaseException) -> Failure:
    """The CLI could not start or died: infrastructure (retried when it may be transient)."""
    sdk = _sdk()
    if isinstance(exc, sdk.CLINotFoundError):
        return Failure(FailureKind.INFRASTRUCTURE, f"Claude Code CLI not found: {exc}")
    if isinstance(exc, sdk.ProcessError):
        return Failure(
            FailureKind.INFRASTRUCTURE, f"Claude Code exited with an error: {exc}", retryable=True
        )
    return Failure(FailureKind.INFRASTRUCTURE, f"Claude Code failed: {exc!r}", retryable=False)
