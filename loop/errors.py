"""The errors a user can cause, or meet, and how the ``starloop`` command reports each: one line
naming the key, or the file, row and field, and a documented exit status."""

from __future__ import annotations

import errno
import signal


class ConfigError(ValueError):
    """A config file or override is unusable; the message names the key. Exit status 2."""


class InputError(ValueError):
    """Unusable input data; the message names the file, row and field. Exit status 2."""


class DiskFull(RuntimeError):
    """No space left on the device; finished stages are kept. Exit status 4."""

    def __init__(self, path: object):
        super().__init__(f"no space left on device writing {path}; finished stages are kept: free some space and "
                         f"rerun the same command to resume")


def is_disk_full(exc: BaseException | None) -> bool:
    """Whether ``exc`` (or what caused it) is a full disk, as an OSError or in a library's own error."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            return True
        if "No space left on device" in str(exc) or "StorageFull" in str(exc):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


class Terminated(BaseException):
    """SIGTERM (Slurm's scancel, a job's time limit): handled as an interruption. Exit status 143."""


_SIGNALLED: list[int] = []


def on_signal(signum: int, frame: object) -> None:
    """The handler of SIGINT and SIGTERM: remember the signal, then interrupt.

    The interrupt is an exception raised wherever the main thread is; if that place swallows it
    (CPython ignores exceptions raised inside a finalizer, ``__del__``, which torch and
    transformers objects run often), the remembered signal still stops the run at the next stage
    boundary (:func:`raise_if_signalled`) and sets the exit status."""
    _SIGNALLED.append(signum)
    raise Terminated if signum == signal.SIGTERM else KeyboardInterrupt


def raise_if_signalled() -> None:
    """Raise the interruption of a signal that arrived but was swallowed where it was raised."""
    if signalled():
        raise Terminated if signalled() == signal.SIGTERM else KeyboardInterrupt


def signalled() -> int | None:
    """The last SIGINT or SIGTERM that arrived (None: none)."""
    return _SIGNALLED[-1] if _SIGNALLED else None


def forget_signals() -> None:
    """Start a command with no signal remembered (the command line's ``main`` may run several times)."""
    _SIGNALLED.clear()
