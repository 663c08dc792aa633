"""Isolation backends: how a sandbox worker process is started.

``bwrap`` (bubblewrap) is the backend. Run as root it uses no user namespace: the zygote is
real root with five capabilities, and every program runs under its own unprivileged uid.
Run as an ordinary user it relies on a user namespace (``bwrap-rootless``): the program drops
every capability instead of changing uid. ``none`` runs the zygote as a plain child process
(rlimits only) and is used only where the caller explicitly allowed unisolated runs.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ZYGOTE_SOURCE = Path(__file__).with_name("_zygote.py")
# capabilities the zygote needs: mounts (and, rootless, namespaces), switching the
# program to its uid, killing it, handing it its directories
ZYGOTE_CAPS = ("CAP_SYS_ADMIN", "CAP_SETUID", "CAP_SETGID", "CAP_KILL", "CAP_CHOWN")


@dataclass(frozen=True)
class Backend:
    name: str  # bwrap | bwrap-rootless | none
    isolated: bool
    root: bool
    python: str
    ro_binds: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.name == "bwrap":
            return ("bwrap: no network, read-only filesystem with a private tmpfs per run, unprivileged uid "
                    "per worker, hidden /proc, rlimits, seccomp, leftover processes killed")
        if self.name == "bwrap-rootless":
            return ("bwrap-rootless: user namespace, no network, pid/mount/ipc namespaces and a private tmpfs "
                    "per run, no capabilities, rlimits, seccomp")
        return "none: NO ISOLATION (rlimits and a process group only); allowed explicitly by the caller"

    def argv(self, uid: int) -> list[str]:
        """The command that starts one zygote."""
        mode = ("uid" if self.root else "pidns") if self.isolated else "none"
        cfg = json.dumps({"mode": mode, "uid": uid})
        inner = [self.python, "-I", "-S", "-B", "-c", ZYGOTE_SOURCE.read_text(encoding="utf-8"), cfg]
        if not self.isolated:
            return inner
        return bwrap_argv(self.python, self.ro_binds, root=self.root) + ["--"] + inner


def default_python() -> str:
    """The base interpreter (not a virtual environment's, whose packages live under its folder)."""
    return os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)


@functools.lru_cache(maxsize=8)
def interpreter_dirs(python: str) -> tuple[str, ...]:
    """Folders the interpreter needs: its prefixes and its own folder."""
    out = subprocess.run(
        [python, "-I", "-c", "import json, sys; print(json.dumps([sys.prefix, sys.exec_prefix, sys.base_prefix]))"],
        capture_output=True, text=True, timeout=30, check=True,
    )
    dirs = {os.path.realpath(p) for p in json.loads(out.stdout)}
    dirs.add(os.path.dirname(os.path.realpath(python)))
    return tuple(sorted(dirs))


def bwrap_argv(python: str, ro_binds: tuple[str, ...] = (), *, root: bool) -> list[str]:
    """bubblewrap arguments: fresh namespaces, and a read-only view of only what Python needs."""
    argv = ["bwrap", "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try",
            "--die-with-parent", "--new-session", "--hostname", "sandbox"]
    if not root:
        argv += ["--unshare-user", "--uid", "0", "--gid", "0"]
    argv += ["--cap-drop", "ALL"]
    # rootless: CAP_SETPCAP (inside the user namespace only) to lock the program's securebits
    for cap in ZYGOTE_CAPS + (() if root else ("CAP_SETPCAP",)):
        argv += ["--cap-add", cap]
    argv += ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            argv += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            argv += ["--ro-bind", top, top]
    argv += ["--perms", "0755", "--dir", "/etc", "--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache"]
    made: set[str] = {"/", "/usr", "/etc"}
    for path in sorted(set(interpreter_dirs(python)) | {os.path.realpath(p) for p in ro_binds}):
        if _covered(path, ("/usr",)):
            continue
        parents = []
        parent = os.path.dirname(path)
        while parent not in made and parent != "/":
            parents.append(parent)
            parent = os.path.dirname(parent)
        for p in reversed(parents):  # world-traversable, whatever the host's modes (/root is 0700)
            argv += ["--perms", "0755", "--dir", p]
            made.add(p)
        argv += ["--ro-bind", path, path]
        made.add(path)
    # /tmp (and, set up by the zygote, /dev/shm) lead into the run's tmpfs, mounted on /sandbox
    argv += ["--proc", "/proc", "--dev", "/dev", "--dir", "/sandbox", "--symlink", "/sandbox/tmp", "/tmp",
             "--remount-ro", "/",
             # the program's whole environment (the zygote's, inherited by every fork)
             "--clearenv", "--setenv", "PATH", "/usr/local/bin:/usr/bin:/bin", "--setenv", "LANG", "C.UTF-8",
             "--setenv", "HOME", "/sandbox/work", "--setenv", "TMPDIR", "/tmp",
             "--chdir", "/"]
    return argv


def _covered(path: str, roots: tuple[str, ...]) -> bool:
    return any(path == r or path.startswith(r + "/") for r in roots)


def candidates(python: str | None = None, ro_binds: tuple[str, ...] = ()) -> list[Backend]:
    """Isolating backends that could work here, best first (each is probed before use)."""
    python = python or default_python()
    out = []
    if shutil.which("bwrap"):
        root = os.geteuid() == 0
        out.append(Backend("bwrap" if root else "bwrap-rootless", True, root, python, tuple(ro_binds)))
    return out


def unisolated(python: str | None = None) -> Backend:
    return Backend("none", False, os.geteuid() == 0, python or default_python())
