"""The OS sandbox every agent command runs in (bubblewrap), and its environment allow-list.

Path checks in the editor tool do not stop `bash` from writing anywhere, so each command runs as
``bwrap ... -- bash --noprofile --norc -c CMD``: the whole filesystem read-only, the repository
read-write (read-only for verifier calls), a private `/tmp` with a fresh `$HOME` inside it, the
host user's home hidden except the toolchains on PATH (no keys or tokens to read), `/run` and
`/var/tmp` hidden (no docker/dbus/PostgreSQL sockets to connect to), the repository's `.git`
read-only (no hooks or `core.fsmonitor` for the host's git to run), a fresh `/proc` and `/dev`, its own pid namespace (killing bwrap kills every process inside),
all capabilities dropped (we may run as root, and root could otherwise remount), the process
dying with its parent, and no network when the run turns it off.

Where bubblewrap is missing, commands are refused unless the user passed ``allow_unsandboxed``;
then they run directly with the same environment allow-list and a private temporary `$HOME`.

Each command is a fresh shell: `cd` and `export` do not persist between calls.
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
from pathlib import Path

from pydantic import BaseModel

from tasks.shell import DEFAULT_OUTPUT_CAP, CommandResult, run

SANDBOX_HOME = "/tmp/home"
ENV_PASSTHROUGH = ("PATH", "LANG", "LC_ALL", "TERM", "USER")
TOOLCHAIN_VARS = ("CARGO_HOME", "RUSTUP_HOME")
DEFAULT_TOOLCHAIN_DIRS = {"CARGO_HOME": ".cargo", "RUSTUP_HOME": ".rustup"}


class SandboxSettings(BaseModel):
    bwrap: str = "bwrap"
    """The bubblewrap executable (a name looked up on PATH, or a path)."""
    network: bool = True
    read_only: bool = False
    allow_unsandboxed: bool = False
    """The explicit unsafe flag: run commands without bubblewrap when it is missing."""
    writable_paths: list[Path] = []
    """Extra host paths mounted read-write (e.g. a shared cargo registry); empty by default."""
    git_writable: bool = False
    """The repository's `.git` stays read-only by default: a hook or `core.fsmonitor` written
    there would run on the host, outside the sandbox, at the next git command of the gates."""
    hidden_paths: list[Path] = []
    """Extra host paths replaced by an empty tmpfs (secrets, sockets) besides the defaults."""
    read_only_paths: list[Path] = []
    """Host paths inside the repository mounted read-only over its writable bind (the plan)."""
    extra_env: dict[str, str] = {}
    """Variables added to the allow-listed environment (e.g. a shared CARGO_TARGET_DIR)."""


class SandboxUnavailable(RuntimeError):
    """bubblewrap is missing and the user did not allow unsandboxed commands."""


def bwrap_path(settings: SandboxSettings) -> str | None:
    found = shutil.which(settings.bwrap)
    return found if found and os.access(found, os.X_OK) else None


def toolchain_env(parent: dict[str, str] | None = None) -> dict[str, str]:
    """CARGO_HOME / RUSTUP_HOME pinned to the host's toolchain, since $HOME is replaced."""
    parent = dict(os.environ) if parent is None else parent
    env: dict[str, str] = {}
    home = parent.get("HOME") or str(Path.home())
    for name in TOOLCHAIN_VARS:
        value = parent.get(name)
        if not value:
            default = Path(home) / DEFAULT_TOOLCHAIN_DIRS[name]
            value = str(default) if default.is_dir() else ""
        if value:
            env[name] = value
    return env


def command_env(home: str, parent: dict[str, str] | None = None) -> dict[str, str]:
    """The allow-listed environment of an agent command: nothing secret, `$HOME` private."""
    parent = dict(os.environ) if parent is None else parent
    env = {name: parent[name] for name in ENV_PASSTHROUGH if parent.get(name)}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.update(toolchain_env(parent))
    env["HOME"] = home
    env["TMPDIR"] = "/tmp"
    # Builds may fetch crates when the network is on; never let git or cargo prompt.
    env["GIT_TERMINAL_PROMPT"] = "0"
    return env


HIDDEN_DIRS = ("/run", "/var/tmp")
"""Hidden by default: they hold Unix sockets (docker, dbus, PostgreSQL), which a read-only mount
does not stop a process from connecting to, even without network."""
CREDENTIAL_FILES = ("credentials.toml", "credentials")
"""Files under CARGO_HOME masked with /dev/null (crates.io tokens)."""


def host_home(parent: dict[str, str] | None = None) -> Path | None:
    parent = dict(os.environ) if parent is None else parent
    home = Path(parent.get("HOME") or Path.home()).resolve()
    return None if home == Path("/") else home


def home_masks(parent: dict[str, str] | None = None) -> list[str]:
    """Hide the host user's home (keys, tokens, sockets) except the toolchains on PATH.

    What stays visible, read-only: CARGO_HOME, RUSTUP_HOME and the top-level directory of each
    PATH entry under the home (``~/.cargo``, ``~/.pyenv``); crates.io credentials are masked.
    """
    parent = dict(os.environ) if parent is None else parent
    home = host_home(parent)
    if home is None or not home.is_dir():
        return []
    keep: set[Path] = set()
    toolchains = [Path(v) for v in toolchain_env(parent).values()]
    entries = [Path(p) for p in parent.get("PATH", "").split(os.pathsep) if p]
    for path in [*toolchains, *entries]:
        resolved = path.resolve() if path.is_absolute() else None
        if resolved is not None and resolved != home and resolved.is_relative_to(home):
            keep.add(home / resolved.relative_to(home).parts[0])
    argv = ["--tmpfs", str(home)]
    for kept in sorted(keep):
        if kept.exists():
            argv += ["--ro-bind", str(kept), str(kept)]
    for toolchain in toolchains:
        for name in CREDENTIAL_FILES:
            secret = toolchain / name
            if secret.is_file():
                argv += ["--ro-bind", "/dev/null", str(secret)]
    return argv


def resolv_conf_binds() -> list[str]:
    """Keep DNS working when /etc/resolv.conf points into the hidden /run (systemd-resolved)."""
    target = Path(os.path.realpath("/etc/resolv.conf"))
    hidden = [Path(d) for d in HIDDEN_DIRS]
    if target.exists() and any(target.is_relative_to(d) for d in hidden):
        return ["--ro-bind", str(target), str(target)]
    return []


def bwrap_argv(bwrap: str, repo: Path, command: str, settings: SandboxSettings) -> list[str]:
    repo_mount = "--ro-bind" if settings.read_only else "--bind"
    argv = [
        bwrap,
        "--ro-bind", "/", "/",
        "--dev", "/dev",
        "--proc", "/proc",
    ]  # fmt: skip
    argv += home_masks()
    for hidden in [*HIDDEN_DIRS, *map(str, settings.hidden_paths)]:
        if Path(hidden).is_dir():
            argv += ["--tmpfs", hidden]
    argv += resolv_conf_binds()
    argv += ["--tmpfs", "/tmp", "--dir", SANDBOX_HOME]
    for path in settings.writable_paths:
        argv += ["--bind", str(path), str(path)]
    # After /tmp so that a repository under /tmp is mounted over the private tmpfs.
    argv += [repo_mount, str(repo), str(repo)]
    git = repo / ".git"
    if not settings.read_only and not settings.git_writable and git.exists():
        argv += ["--ro-bind", str(git), str(git)]
    for protected in settings.read_only_paths:
        if not settings.read_only and protected.exists():
            argv += ["--ro-bind", str(protected), str(protected)]
    argv += [
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--cap-drop", "ALL",
        "--die-with-parent",
        "--chdir", str(repo),
    ]  # fmt: skip
    if not settings.network:
        argv.append("--unshare-net")
    argv += ["--", "bash", "--noprofile", "--norc", "-c", command]
    return argv


@functools.cache
def bwrap_probe(bwrap: str) -> str | None:
    """None when bubblewrap can build a sandbox here; else its complaint (e.g. no user
    namespaces inside a container). Probed once per process and executable."""
    argv = [
        bwrap,
        "--ro-bind", "/", "/",
        "--dev", "/dev",
        "--proc", "/proc",
        "--unshare-pid",
        "--cap-drop", "ALL",
        "--die-with-parent",
        "--", "true",
    ]  # fmt: skip
    result = run(argv, cwd="/", env={"PATH": "/usr/bin:/bin"}, timeout_s=30)
    return None if result.ok else (result.output.strip() or f"exit code {result.exit_code}")


class Sandbox:
    """Runs agent commands in one repository; see the module docstring for the rules."""

    def __init__(self, repo: Path, settings: SandboxSettings | None = None) -> None:
        self.repo = Path(repo).resolve()
        self.settings = settings or SandboxSettings()
        found = bwrap_path(self.settings)
        self.problem = None if found else "not found"
        if found:
            self.problem = bwrap_probe(found)
        self.bwrap = found if self.problem is None else None

    @property
    def sandboxed(self) -> bool:
        return self.bwrap is not None

    @property
    def usable(self) -> bool:
        return self.sandboxed or self.settings.allow_unsandboxed

    def refusal(self) -> str:
        return (
            f"refused: bubblewrap ({self.settings.bwrap!r}) is unusable ({self.problem}), and "
            "agent commands never run unsandboxed unless the run allows it explicitly "
            "(allow_unsandboxed)"
        )

    def run(
        self,
        command: str,
        *,
        timeout_s: float | None,
        output_cap: int | None = DEFAULT_OUTPUT_CAP,
    ) -> CommandResult:
        if self.bwrap is not None:
            argv = bwrap_argv(self.bwrap, self.repo, command, self.settings)
            return run(
                argv,
                cwd=self.repo,
                env={**command_env(SANDBOX_HOME), **self.settings.extra_env},
                timeout_s=timeout_s,
                output_cap=output_cap,
            )
        if not self.settings.allow_unsandboxed:
            raise SandboxUnavailable(self.refusal())
        with tempfile.TemporaryDirectory(prefix="agent-home-") as home:
            return run(
                ["bash", "--noprofile", "--norc", "-c", command],
                cwd=self.repo,
                env=command_env(home),
                timeout_s=timeout_s,
                output_cap=output_cap,
            )
