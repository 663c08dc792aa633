"""Named points where a fault-injection test kills the process for real (SIGKILL), at moments no
outside observer can time: between a stage's rename and its record, in the middle of a
checkpoint save. Inert unless ``STARLOOP_FAILPOINT`` names the point (``renamed:iter-001/train``,
``checkpoint-save``)."""

from __future__ import annotations

import os
import signal

ENV = "STARLOOP_FAILPOINT"


def failpoint(name: str) -> None:
    """Kill this process with SIGKILL if ``STARLOOP_FAILPOINT`` is ``name``."""
    if os.environ.get(ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
