"""The editor and bash tools on a real directory, bash inside real bubblewrap."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

from tasks.agent.sandbox import Sandbox, SandboxSettings, SandboxUnavailable, bwrap_argv
from tasks.agent.tools import BashTool, EditorTool, ToolCollection, ToolInputError, tools_for

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap not installed")


def editor(repo: Path, **kwargs: object) -> ToolCollection:
    return ToolCollection(EditorTool(repo, **kwargs))  # type: ignore[arg-type]


def call(tools: ToolCollection, **tool_input: object):
    return tools.run("str_replace_based_edit_tool", dict(tool_input))


# --- editor ---------------------------------------------------------------------------------


def test_editor_create_view_replace_insert(repo: Path) -> None:
    tools = editor(repo)
    created = call(
        tools, command="create", path="src/new/lib.rs", file_text="fn a() {}\nfn b() {}\n"
    )
    assert not created.is_error and created.path == "src/new/lib.rs"
    assert (repo / "src/new/lib.rs").read_text() == "fn a() {}\nfn b() {}\n"

    view = call(tools, command="view", path="src/new/lib.rs")
    assert view.output == "1: fn a() {}\n2: fn b() {}"
    assert (
        call(tools, command="view", path="src/new/lib.rs", view_range=[2, -1]).output
        == "2: fn b() {}"
    )

    replaced = call(
        tools,
        command="str_replace",
        path="src/new/lib.rs",
        old_str="fn b() {}",
        new_str="fn c() {}",
    )
    assert not replaced.is_error
    inserted = call(
        tools, command="insert", path="src/new/lib.rs", insert_line=0, insert_text="// top"
    )
    assert not inserted.is_error
    # older docs name the inserted text `new_str`
    call(tools, command="insert", path="src/new/lib.rs", insert_line=3, new_str="// end")
    assert (repo / "src/new/lib.rs").read_text() == "// top\nfn a() {}\nfn c() {}\n// end\n"

    listing = call(tools, command="view", path=".")
    assert "src/new/lib.rs" in listing.output and "README.md" in listing.output


def test_editor_errors_are_results_not_exceptions(repo: Path) -> None:
    tools = editor(repo)
    (repo / "dup.txt").write_text("x\nx\n")
    cases = [
        {"command": "str_replace", "path": "dup.txt", "old_str": "x", "new_str": "y"},
        {"command": "str_replace", "path": "dup.txt", "old_str": "zzz", "new_str": "y"},
        {"command": "view", "path": "missing.txt"},
        {"command": "insert", "path": "dup.txt", "insert_line": 99, "insert_text": "y"},
        {"command": "undo_edit", "path": "dup.txt"},
        {"command": "view", "path": "dup.txt", "view_range": [5, 9]},
        {"command": "create", "path": "a.txt"},
        {"command": "view"},
    ]
    for case in cases:
        result = tools.run("str_replace_based_edit_tool", case)
        assert result.is_error, case
        assert result.details.get("misuse") is True
    assert (repo / "dup.txt").read_text() == "x\nx\n"
    assert tools.run("no_such_tool", {}).is_error
    assert tools.run("str_replace_based_edit_tool", "not a dict").is_error  # type: ignore[arg-type]


def test_editor_paths_stay_inside_the_repository(repo: Path, outside: Path) -> None:
    tools = editor(repo)
    (repo / "link_out").symlink_to(outside)
    (repo / "file_link").symlink_to(outside / "secret.txt")
    (repo / "dangling").symlink_to(outside / "not-yet-there.txt")
    attempts = [
        {"command": "view", "path": "../outside/secret.txt"},
        {"command": "view", "path": str(outside / "secret.txt")},
        {"command": "view", "path": "/etc/passwd"},
        {"command": "view", "path": "link_out/secret.txt"},
        {"command": "view", "path": "file_link"},
        {"command": "create", "path": "link_out/new.txt", "file_text": "escape"},
        {"command": "create", "path": "dangling", "file_text": "escape"},
        {"command": "create", "path": "src/../../outside/evil.txt", "file_text": "escape"},
        {"command": "str_replace", "path": "file_link", "old_str": "outside", "new_str": "pwned"},
    ]
    for attempt in attempts:
        result = tools.run("str_replace_based_edit_tool", attempt)
        assert result.is_error, attempt
        assert "outside the repository" in result.output
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    assert (outside / "secret.txt").read_text() == "outside secret\n"
    # an absolute path that lies inside the repository is fine
    assert not call(tools, command="view", path=str(repo / "README.md")).is_error


def test_editor_refuses_git_internals_and_read_only(repo: Path) -> None:
    (repo / ".git").mkdir()
    assert call(
        editor(repo), command="create", path=".git/hooks/pre-commit", file_text="x"
    ).is_error
    read_only = editor(repo, read_only=True)
    assert call(read_only, command="create", path="a.txt", file_text="x").is_error
    assert not (repo / "a.txt").exists()
    assert not call(read_only, command="view", path="README.md").is_error


def test_editor_view_is_capped(repo: Path) -> None:
    (repo / "big.txt").write_text("y" * 100 + "\n" * 1 + ("line\n" * 20_000))
    result = call(editor(repo), command="view", path="big.txt")
    assert len(result.output) < 31_000 and "view_range" in result.output
    limited = call(editor(repo, max_characters=50), command="view", path="big.txt")
    assert len(limited.output) < 200


def test_tools_follow_the_agent_definition(repo: Path) -> None:
    sandbox = Sandbox(repo)
    only_read = tools_for(
        ["Read", "Grep"], repo=repo, sandbox=sandbox, read_only=False, timeout_s=5
    )
    assert list(only_read.by_name) == ["str_replace_based_edit_tool"]
    only_bash = tools_for(["Bash"], repo=repo, sandbox=sandbox, read_only=False, timeout_s=5)
    assert list(only_bash.by_name) == ["bash"]
    both = tools_for(None, repo=repo, sandbox=sandbox, read_only=False, timeout_s=5)
    assert both.params() == [
        {"type": "text_editor_20250728", "name": "str_replace_based_edit_tool"},
        {"type": "bash_20250124", "name": "bash"},
    ]


# --- bash in the sandbox ----------------------------------------------------------------------


def bash(repo: Path, command: str, timeout_s: float = 20, **settings: object):
    tool = BashTool(Sandbox(repo, SandboxSettings(**settings)), timeout_s=timeout_s)  # type: ignore[arg-type]
    return tool({"command": command})


@needs_bwrap
def test_bash_runs_in_the_repository(repo: Path) -> None:
    result = bash(repo, "pwd && echo made > src/made.txt && cat README.md")
    assert not result.is_error, result.output
    assert result.output.splitlines()[0] == str(repo.resolve())
    assert (repo / "src/made.txt").read_text() == "made\n"
    failed = bash(repo, "exit 3")
    assert failed.is_error and "[exit code 3]" in failed.output


@needs_bwrap
def test_bash_environment_has_no_secrets(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-parent-secret")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-parent-secret")
    result = bash(repo, 'echo "key=[$ANTHROPIC_API_KEY]"; env; echo home=$HOME')
    assert "key=[]" in result.output
    assert "sk-parent-secret" not in result.output and "aws-parent-secret" not in result.output
    assert "home=/tmp/home" in result.output
    ssh = bash(repo, "ls -a ~; cat ~/.ssh/id_rsa")
    assert ssh.is_error and "No such file" in ssh.output
    assert os.environ["ANTHROPIC_API_KEY"] == "sk-parent-secret"  # the parent keeps its own


@needs_bwrap
def test_bash_cannot_write_outside_the_repository(repo: Path, outside: Path) -> None:
    marker = f"plan-executor-escape-{uuid.uuid4().hex}"
    host_targets = [
        outside / "file",
        Path("/etc") / marker,
        Path.home() / marker,
        Path("/var/tmp") / marker,
    ]
    command = (
        f"echo x > ../outside/file; touch /etc/{marker}; touch ~/{marker}; "
        f"touch {Path.home() / marker}; touch /var/tmp/{marker}; echo x > {outside / 'file'}"
    )
    try:
        result = bash(repo, command)
        assert "Read-only file system" in result.output or "No such file" in result.output
        for target in host_targets:
            assert not target.exists(), target
    finally:
        for target in host_targets:
            target.unlink(missing_ok=True)


@needs_bwrap
def test_bash_read_only_repository_for_verifiers(repo: Path) -> None:
    result = bash(repo, "touch new.txt", read_only=True)
    assert result.is_error and "Read-only file system" in result.output
    assert not (repo / "new.txt").exists()


@needs_bwrap
def test_bash_timeout_kills_the_whole_sandbox(repo: Path) -> None:
    tag = f"1000.{uuid.uuid4().int % 10**6}"
    result = bash(repo, f"sleep {tag} & sleep {tag}", timeout_s=0.5)
    assert result.is_error and result.details["timed_out"]
    assert "timed out" in result.output
    survivors = subprocess.run(["pgrep", "-f", f"sleep {tag}"], capture_output=True, text=True)
    assert survivors.stdout == ""


@needs_bwrap
def test_bash_output_is_capped(repo: Path) -> None:
    result = bash(repo, "head -c 10000000 /dev/zero | tr '\\0' x; echo; echo the-end")
    assert result.details["output_chars"] >= 10_000_000
    assert len(result.output) < 31_000
    assert "output was cut" in result.output and "the-end" in result.output


@needs_bwrap
def test_network_can_be_switched_off(repo: Path) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    probe = f"exec 3<>/dev/tcp/127.0.0.1/{port} && echo connected"
    try:
        assert "connected" in bash(repo, probe, network=True).output
        offline = bash(repo, probe, network=False)
        assert offline.is_error and "connected" not in offline.output
    finally:
        listener.close()


def test_missing_bwrap_refuses_unless_allowed(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-parent-secret")
    missing = Sandbox(repo, SandboxSettings(bwrap="/nonexistent/bwrap"))
    assert not missing.sandboxed and not missing.usable
    with pytest.raises(SandboxUnavailable):
        missing.run("touch refused.txt", timeout_s=5)
    refused = BashTool(missing)({"command": "touch refused.txt"})
    assert refused.is_error and "bubblewrap" in refused.output
    assert not (repo / "refused.txt").exists()

    allowed = bash(
        repo,
        'touch allowed.txt; echo "k=[$ANTHROPIC_API_KEY] home=$HOME"',
        bwrap="/nonexistent/bwrap",
        allow_unsandboxed=True,
    )
    assert (repo / "allowed.txt").exists()
    assert "k=[]" in allowed.output and f"home={Path.home()}" not in allowed.output


def test_bwrap_argv_shape(repo: Path) -> None:
    argv = bwrap_argv("bwrap", repo, "true", SandboxSettings(network=False))
    assert argv[:3] == ["bwrap", "--ro-bind", "/"]
    for flag in (
        "--die-with-parent",
        "--unshare-pid",
        "--unshare-net",
        "--proc",
        "--dev",
        "--tmpfs",
    ):
        assert flag in argv
    assert argv[argv.index("--cap-drop") + 1] == "ALL"
    assert ["--bind", str(repo), str(repo)] == argv[
        argv.index(str(repo)) - 1 : argv.index(str(repo)) + 2
    ]
    assert "--unshare-net" not in bwrap_argv("bwrap", repo, "true", SandboxSettings(network=True))


@pytest.fixture
def host_home(monkeypatch: pytest.MonkeyPatch):
    """A stand-in host home outside /tmp (which the sandbox hides anyway) with secrets in it."""
    base = next(p for p in ("/srv", "/opt", "/mnt") if os.access(p, os.W_OK))
    home = Path(tempfile.mkdtemp(prefix="pe-fake-home-", dir=base))
    (home / ".ssh").mkdir()
    (home / ".ssh" / "id_rsa").write_text("PRIVATE KEY\n")
    (home / ".cargo" / "bin").mkdir(parents=True)
    (home / ".cargo" / "credentials.toml").write_text('[registry]\ntoken = "crates-token"\n')
    (home / ".cargo" / "bin" / "mytool").write_text("#!/bin/sh\necho mytool-ran\n")
    (home / ".cargo" / "bin" / "mytool").chmod(0o755)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("CARGO_HOME", str(home / ".cargo"))
    monkeypatch.setenv("PATH", f"{home / '.cargo' / 'bin'}{os.pathsep}{os.environ['PATH']}")
    try:
        yield home
    finally:
        shutil.rmtree(home, ignore_errors=True)


@needs_bwrap
def test_host_home_secrets_and_sockets_are_hidden(repo: Path, host_home: Path) -> None:
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(host_home / "agent.sock"))
    listener.listen()
    try:
        probe = (
            f"cat {host_home}/.ssh/id_rsa; cat {host_home}/.cargo/credentials.toml; mytool; "
            f'python3 -c "import socket; s = socket.socket(socket.AF_UNIX); '
            f"s.connect('{host_home}/agent.sock'); print('CONNECTED')\""
        )
        result = bash(repo, probe)
        assert "PRIVATE KEY" not in result.output and "crates-token" not in result.output
        assert "mytool-ran" in result.output  # toolchains on PATH stay usable
        assert "CONNECTED" not in result.output
    finally:
        listener.close()
    argv = bwrap_argv("bwrap", repo, "true", SandboxSettings())
    assert ["--tmpfs", str(host_home)] == argv[
        argv.index(str(host_home)) - 1 : argv.index(str(host_home)) + 1
    ]
    for hidden in ("/run", "/var/tmp"):
        assert argv[argv.index(hidden) - 1] == "--tmpfs"


def test_bash_restart_and_bad_input(repo: Path) -> None:
    tool = BashTool(Sandbox(repo, SandboxSettings(bwrap="/nonexistent/bwrap")))
    assert not tool({"restart": True}).is_error  # stateless: nothing to restart
    with pytest.raises(ToolInputError):
        tool({"command": "   "})
    assert ToolCollection(tool).run("bash", {}).details["misuse"]


def test_bwrap_that_cannot_sandbox_is_refused(repo: Path, tmp_path: Path) -> None:
    broken = tmp_path / "bwrap"
    broken.write_text(
        "#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n"
    )
    broken.chmod(0o755)
    sandbox = Sandbox(repo, SandboxSettings(bwrap=str(broken)))
    assert not sandbox.sandboxed and not sandbox.usable
    assert "No permissions to create new namespace" in sandbox.refusal()


@needs_bwrap
def test_git_internals_are_read_only_in_the_sandbox(repo: Path) -> None:
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    hook = repo / ".git" / "hooks" / "post-checkout"
    result = bash(
        repo,
        f"echo 'touch /tmp/pwned' > {hook}; git config core.fsmonitor 'touch /tmp/pwned'; "
        "echo work > src/work.txt",
    )
    assert "Read-only file system" in result.output or "could not lock" in result.output
    assert not hook.exists()
    config = subprocess.run(
        ["git", "-C", str(repo), "config", "--get", "core.fsmonitor"], capture_output=True
    )
    assert config.returncode == 1  # unset
    assert (repo / "src/work.txt").read_text() == "work\n"  # the working tree stays writable


def test_editor_does_not_corrupt_binary_files(repo: Path) -> None:
    data = b"\x89PNG\r\n\x1a\n\xff\xfe binary"
    (repo / "image.png").write_bytes(data)
    tools = editor(repo)
    assert not call(tools, command="view", path="image.png").is_error
    edit = call(tools, command="str_replace", path="image.png", old_str="binary", new_str="text")
    assert edit.is_error and "not UTF-8" in edit.output
    assert call(tools, command="insert", path="image.png", insert_line=0, insert_text="x").is_error
    assert (repo / "image.png").read_bytes() == data


@needs_bwrap
def test_the_plan_file_is_read_only_for_agents(repo: Path) -> None:
    """The plan's criteria and checkpoints are plan-executor's evidence: an agent can read the
    plan, but neither the editor nor bash can change it; other files stay writable."""
    plan = repo / ".ai" / "plans" / "2026-11-24.p.md"
    plan.parent.mkdir(parents=True)
    plan.write_text("# P\n\n## Execution Checkpoints\n")
    tools = editor(repo, protected=[plan])
    assert not call(tools, command="view", path=".ai/plans/2026-11-24.p.md").is_error
    edit = call(
        tools,
        command="str_replace",
        path=".ai/plans/2026-11-24.p.md",
        old_str="## Execution Checkpoints",
        new_str="## Execution Checkpoints\n- phase_1: {status: complete}",
    )
    assert edit.is_error and "read-only for agents" in edit.output
    assert not call(tools, command="create", path="src/ok.rs", file_text="").is_error

    bash = BashTool(Sandbox(repo, SandboxSettings(read_only_paths=[plan])), timeout_s=30)
    forged = bash({"command": f"echo forged >> {plan} && echo wrote"})
    assert "wrote" not in forged.output
    assert plan.read_text() == "# P\n\n## Execution Checkpoints\n"
    assert "written" in bash({"command": "echo x > src/other.rs && echo written"}).output
