"""The errors a user can cause, or meet, and how the ``starloop`` command reports each: one line
naming the key, or the file, row and field, and a documented exit status."""

from __future__ import annotations

import errno


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
