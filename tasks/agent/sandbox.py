"""The OS sandbox every agent command runs in (bubblewrap), and its environment allow-list.

Path checks in the editor tool do not stop `bash` from writing anywhere, so each command runs as
``bwrap ... -- bash --noprofile --norc -c CMD``: the whole filesystem read-only, the repository
read-write (read-only for verifier calls), a private `/tmp` with a fresh `$HOME` inside it, the
host user's home hidden except the toolchains on PATH (no keys or tokens to read), `/run` and
`/var/tmp` hidden (no docker/dbus/PostgreSQL sockets to connect to), the plan-executor home,
`PREFECT_HOME` and the PostgreSQL cluster's data hidden wherever they are (inside the repository
too: credentials, the cluster's socket and files), the repository's `.git`
read-only (no hooks or `core.fsmonitor` for the host's git to run), a fresh `/proc` and `/dev`, its own pid namespace (killing bwrap kills every process inside),
all capabilities dropped (we may run as root, and root could otherwise remount), the process
dying with its parent, and no network when the run turns it off. Each directory between the
repository and a protected file (the plan) is bound onto itself, so that it is a mount point the
agent cannot rename away to put a file of its own in the protected file's place. Where a pids
cgroup can be created (cgroup v1 `pids`, or a delegated v2 subtree), each command runs in its own
with `pids.max` set, which bounds a fork bomb; RLIMIT_NPROC would not, because root is exempt.

Where bubblewrap is missing, commands are refused unless the user passed ``allow_unsandboxed``;
then they run directly with the same environment allow-list and a private temporary `$HOME`.

Each command is a fresh shell: `cd` and `export` do not persist between calls.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel

from plan_parser.errors import PlanExecutorError
from tasks.shell import DEFAULT_OUTPUT_CAP, CommandResult, run, search_path

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
    max_processes: int | None = None
    """Processes and threads one command may have at once (cgroup `pids.max`); None means
    :data:`DEFAULT_MAX_PROCESSES`, 0 no limit."""


DEFAULT_MAX_PROCESSES = 4096
"""Enough for cargo and rustc threads on a large machine; a fork bomb stops there."""


class SandboxUnavailable(PlanExecutorError, RuntimeError):
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
    # Our own scripts directory too: a gate's `just test` must find the `just` we installed.
    env["PATH"] = search_path(parent.get("PATH") or "/usr/local/bin:/usr/bin:/bin")
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
    entries = [Path(p) for p in search_path(parent.get("PATH", "")).split(os.pathsep) if p]
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


def secret_mounts(repo: Path, secrets: list[Path]) -> tuple[list[str], list[str]]:
    """tmpfs mounts hiding ``secrets`` (the plan-executor home, `PREFECT_HOME`, the cluster's
    data): (before the repository's bind, after every bind).

    A place that holds the repository is hidden before the repository is bound back over it;
    any other is hidden last, so that no later bind (the repository, a toolchain kept from the
    host home, a writable cargo target dir) shows it again.
    """
    early: list[str] = []
    late: list[str] = []
    existing = [path for path in secrets if path.exists() and path != Path("/")]
    last = [path for path in existing if not repo.is_relative_to(path)]
    for path in existing:
        # A file (a PREFECT_HOME pointing at one, say) takes no tmpfs: /dev/null over it.
        hide = ["--tmpfs", str(path)] if path.is_dir() else ["--ro-bind", "/dev/null", str(path)]
        if repo.is_relative_to(path):
            early += hide
        elif not any(path != other and path.is_relative_to(other) for other in last):
            late += hide
    return early, late


def bwrap_argv(bwrap: str, repo: Path, command: str, settings: SandboxSettings) -> list[str]:
    from tasks.secrets import secret_paths

    repo_mount = "--ro-bind" if settings.read_only else "--bind"
    hide_early, hide_late = secret_mounts(repo, secret_paths())
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
    argv += hide_early
    argv += ["--tmpfs", "/tmp", "--dir", SANDBOX_HOME]
    # Our own environment stays visible (read-only) where /tmp or a hidden directory would hide
    # it (a clone under /tmp): gates run the `just` installed beside plan-executor.
    if Path(sys.prefix).is_dir():
        argv += ["--ro-bind", sys.prefix, sys.prefix]
    for path in settings.writable_paths:
        argv += ["--bind", str(path), str(path)]
    # After /tmp so that a repository under /tmp is mounted over the private tmpfs.
    argv += [repo_mount, str(repo), str(repo)]
    git = repo / ".git"
    if not settings.read_only and not settings.git_writable and git.exists():
        argv += ["--ro-bind", str(git), str(git)]
    if not settings.read_only:
        # Mount points cannot be renamed: `mv docs docs2` would otherwise carry the read-only
        # plan away and let the agent write its own file at the plan's path.
        for directory in protected_ancestors(repo, settings.read_only_paths):
            argv += ["--bind", str(directory), str(directory)]
        for protected in settings.read_only_paths:
            if protected.exists():
                argv += ["--ro-bind", str(protected), str(protected)]
    argv += hide_late
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


def protected_ancestors(repo: Path, protected: list[Path]) -> list[Path]:
    """The directories strictly between ``repo`` and each protected path, parents first."""
    found: set[Path] = set()
    for path in protected:
        if not path.exists() or not path.is_relative_to(repo):
            continue
        parent = path.parent
        while parent != repo and parent.is_relative_to(repo):
            found.add(parent)
            parent = parent.parent
    return sorted(found, key=lambda p: (len(p.parts), str(p)))


CGROUP_ROOT = Path("/sys/fs/cgroup")
CGROUP_PREFIX = "plan-executor-"
JOIN_CGROUP = 'echo $$ > "$0" || exit 125; exec "$@"'
"""Run by /bin/sh before bubblewrap: join the command's cgroup, then become bubblewrap."""


def _own_cgroup_dirs(proc_cgroup: Path = Path("/proc/self/cgroup")) -> list[Path]:
    """Our own cgroup in the v1 `pids` hierarchy and in the unified (v2) one."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return []
    dirs: list[Path] = []
    for line in lines:
        hierarchy, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        rel = path.strip().lstrip("/")
        if "pids" in controllers.split(","):
            dirs.append(CGROUP_ROOT / "pids" / rel)
        elif hierarchy == "0" and not controllers:
            dirs += [CGROUP_ROOT / rel, CGROUP_ROOT / "unified" / rel]
    return dirs


def _remove_stale(parent: Path) -> None:
    """Remove the empty cgroups of plan-executor processes that died without cleaning up."""
    for child in parent.glob(f"{CGROUP_PREFIX}*"):
        owner = child.name.removeprefix(CGROUP_PREFIX).split("-")[0]
        if owner.isdigit() and not Path(f"/proc/{owner}").exists():
            with contextlib.suppress(OSError):
                child.rmdir()


@functools.cache
def pids_cgroup_parent() -> Path | None:
    """A cgroup directory in which we can create children with a working `pids.max` and move a
    process into them, or None (no pids controller, no permission). Probed once per process:
    a cgroup that could be made but not joined would fail every command (exit 125)."""
    for parent in _own_cgroup_dirs():
        probe = parent / f"{CGROUP_PREFIX}{os.getpid()}-probe-{uuid.uuid4().hex[:8]}"
        try:
            probe.mkdir()
        except OSError:
            continue
        try:
            (probe / "pids.max").write_text("8\n")
            joined = run(
                ["/bin/sh", "-c", JOIN_CGROUP, str(probe / "cgroup.procs"), "true"],
                cwd="/",
                env={"PATH": "/usr/bin:/bin"},
                timeout_s=30,
            )
            works = joined.ok
        except OSError:
            works = False
        ProcessLimit(probe, 8).close()
        if works:
            _remove_stale(parent)
            return parent
    return None


class ProcessLimit:
    """One command's pids cgroup: ``pids.max`` bounds its processes and threads together."""

    def __init__(self, directory: Path, limit: int) -> None:
        self.directory = directory
        self.limit = limit

    @classmethod
    @contextlib.contextmanager
    def scope(cls, limit: int) -> Iterator[ProcessLimit | None]:
        parent = pids_cgroup_parent() if limit > 0 else None
        directory = (
            parent / f"{CGROUP_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:12]}" if parent else None
        )
        try:
            if directory is not None:
                directory.mkdir()
                (directory / "pids.max").write_text(f"{limit}\n")
        except OSError:
            directory = None
        if directory is None:
            yield None
            return
        limiter = cls(directory, limit)
        try:
            yield limiter
        finally:
            limiter.close()

    def wrap(self, argv: list[str]) -> list[str]:
        return ["/bin/sh", "-c", JOIN_CGROUP, str(self.directory / "cgroup.procs"), *argv]

    def refused(self) -> int:
        """How many forks the limit refused (`pids.events` `max`)."""
        with contextlib.suppress(OSError, ValueError):
            for line in (self.directory / "pids.events").read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "max":
                    return int(value)
        return 0

    def close(self) -> None:
        """Kill anything still in the cgroup (nothing should be: the pid namespace dies with
        bubblewrap), then remove it; an emptied cgroup can take a moment to be removable."""
        for _ in range(100):
            with contextlib.suppress(OSError):
                for pid in (self.directory / "cgroup.procs").read_text().split():
                    with contextlib.suppress(ProcessLookupError, PermissionError, ValueError):
                        os.kill(int(pid), signal.SIGKILL)
            try:
                self.directory.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.02)


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
            limit = self.settings.max_processes
            with ProcessLimit.scope(DEFAULT_MAX_PROCESSES if limit is None else limit) as pids:
                result = run(
                    pids.wrap(argv) if pids else argv,
                    cwd=self.repo,
                    env={**command_env(SANDBOX_HOME), **self.settings.extra_env},
                    timeout_s=timeout_s,
                    output_cap=output_cap,
                )
                refused = pids.refused() if pids else 0
            if refused:
                note = (
                    f"\n[{refused} process creations refused: a command may run at most "
                    f"{pids.limit if pids else 0} processes and threads]\n"
                )
                result = result.model_copy(update={"output": result.output + note})
            return result.model_copy(update={"argv": argv})
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
