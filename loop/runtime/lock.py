"""An exclusive lock per run directory, held by the one driver of a run for its whole length.

The lock is a file, ``<run dir>/.lock``, created with ``O_CREAT | O_EXCL`` (atomic on local and
network filesystems alike) and holding who has it: pid, host, a random token, since when. While
the run lasts a heartbeat thread touches it every ``heartbeat_s`` seconds. A lock is stale, and is
taken over, when its holder is gone: on the same host when its pid no longer runs (at once),
from another host, whose pids cannot be checked, when its heartbeat is older than ``stale_s``
seconds. Taking over renames the stale file away first, so of two drivers that find the same
stale lock only one gets it. The lock is released on every exit of the ``with`` block; a
SIGKILL leaves the file, which the next run finds stale.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Any

HEARTBEAT_S = 10.0
STALE_S = 60.0


class RunDirLocked(RuntimeError):
    """Another driver holds the run directory; the message names it."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a live process of another user
        return True
    return True


class RunLock:
    def __init__(self, root: str | Path, *, heartbeat_s: float = HEARTBEAT_S, stale_s: float = STALE_S):
        self.root = Path(root)
        self.path = self.root / ".lock"
        self.heartbeat_s, self.stale_s = heartbeat_s, stale_s
        self.token = uuid.uuid4().hex
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def _read(self, path: Path) -> dict[str, Any] | None:
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (ValueError, OSError):
            return {}  # half-written by a holder killed while creating it: judged by its age alone

    def _stale(self, holder: dict[str, Any], age: float) -> bool:
        if holder.get("host") == socket.gethostname() and isinstance(holder.get("pid"), int):
            return not _alive(holder["pid"])
        return age > self.stale_s

    def acquire(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        me = {"pid": os.getpid(), "host": socket.gethostname(), "token": self.token,
              "since": time.strftime("%Y-%m-%dT%H:%M:%S")}
        for _ in range(5):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._read(self.path)
                if holder is None:  # released meanwhile
                    continue
                try:
                    age = time.time() - self.path.stat().st_mtime
                except FileNotFoundError:
                    continue
                if not self._stale(holder, age):
                    raise RunDirLocked(
                        f"run directory {self.root} is in use by another starloop run (pid {holder.get('pid')} on "
                        f"host {holder.get('host')}, since {holder.get('since')}, alive {age:.0f}s ago); wait for it "
                        f"to end or stop it. A lock whose holder died is taken over by the next run (on the same "
                        f"host at once, from another host after {self.stale_s:.0f}s without a heartbeat).") from None
                self._break(holder.get("token"))
                continue
            with os.fdopen(fd, "w") as fh:
                json.dump(me, fh)
            self._thread = threading.Thread(target=self._beat, name="run-dir-lock", daemon=True)
            self._thread.start()
            return
        raise RunDirLocked(f"run directory {self.root}: could not take its lock ({self.path}); another run keeps "
                           f"taking it")

    def _break(self, stale_token: str | None) -> None:
        """Move a stale lock aside; if a new holder took its place meanwhile, give that one back."""
        grave = self.root / f".lock.stale.{uuid.uuid4().hex}"
        try:
            os.rename(self.path, grave)
        except FileNotFoundError:
            return
        taken = self._read(grave) or {}
        if taken.get("token") != stale_token:
            try:
                os.link(grave, self.path)
            except FileExistsError:
                pass
        grave.unlink(missing_ok=True)

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            try:
                os.utime(self.path)
            except FileNotFoundError:
                return

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        holder = self._read(self.path)
        if holder and holder.get("token") == self.token:
            self.path.unlink(missing_ok=True)
