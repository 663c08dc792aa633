"""The sandbox's data types: what to run (:class:`Program`), under which :class:`Limits`, and
what came of it (:class:`ExecResult`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Status = Literal["passed", "failed", "timeout", "memory_limit", "output_limit", "killed", "error"]
STATUSES: tuple[str, ...] = ("passed", "failed", "timeout", "memory_limit", "output_limit", "killed", "error")


class SandboxUnavailable(RuntimeError):
    """No isolation backend works here and running unisolated was not explicitly allowed."""


@dataclass(frozen=True)
class Limits:
    """Resource limits of one run. Every run gets all of them; none is optional.

    ``cpu_s``, ``memory_mb``, ``max_file_mb`` and ``max_open_files`` are per process
    (rlimits); ``max_processes`` counts processes and threads of the whole run; ``disk_mb`` is
    the size of the run's private tmpfs (working directory, ``/tmp`` and ``/dev/shm`` together);
    ``max_output_bytes`` caps stdout and stderr each (the run is stopped when exceeded).
    ``allow_unisolated`` lets runs proceed without any isolation backend (rlimits only): off by
    default, so that a machine without bubblewrap refuses instead of running code unprotected.
    """

    wall_s: float = 10.0
    cpu_s: float = 10.0
    memory_mb: int = 512
    max_processes: int = 16
    max_file_mb: int = 16
    disk_mb: int = 64
    max_open_files: int = 64
    max_output_bytes: int = 1 << 20
    allow_unisolated: bool = False

    def __post_init__(self) -> None:
        for name in ("wall_s", "cpu_s", "memory_mb", "max_processes", "max_file_mb", "disk_mb",
                     "max_open_files", "max_output_bytes"):
            if not getattr(self, name) > 0:
                raise ValueError(f"Limits.{name} must be positive, got {getattr(self, name)!r}")
        if self.max_open_files < 8:
            raise ValueError("Limits.max_open_files must be at least 8 (the interpreter needs a few)")

    def to_wire(self) -> dict:
        return {
            "wall_s": float(self.wall_s),
            "cpu_s": float(self.cpu_s),
            "memory_mb": int(self.memory_mb),
            "max_processes": int(self.max_processes),
            "max_file_mb": int(self.max_file_mb),
            "disk_mb": int(self.disk_mb),
            "max_open_files": int(self.max_open_files),
            "max_output_bytes": int(self.max_output_bytes),
        }


@dataclass(frozen=True)
class Program:
    """Python source to run, with optional stdin and optional assert-style tests.

    Without ``tests`` the program runs as a script and ``passed`` means it exited with status 0
    (judge its stdout yourself). With ``tests`` (Python code, typically ``assert`` statements),
    ``passed`` means every test passed, as judged by the trusted evaluator (see the package
    docstring). ``entry_point`` names the function bound to ``check(candidate)`` in
    HumanEval-style tests.
    """

    source: str
    stdin: str = ""
    tests: str | None = None
    entry_point: str | None = None


@dataclass(frozen=True)
class CaseResult:
    """One test of a program's assert-style tests."""

    passed: bool
    test: str
    error: str = ""


@dataclass(frozen=True)
class ExecResult:
    """What came of one run.

    ``status``: ``passed``; ``failed`` (non-zero exit, uncaught exception or a failing test);
    ``timeout`` (wall clock or CPU); ``memory_limit``; ``output_limit``; ``killed`` (by a
    signal not explained by a limit); ``error`` (the sandbox itself failed: not the program's
    fault). ``stdout``/``stderr`` are capped at ``Limits.max_output_bytes`` each
    (``truncated`` says so). ``cpu_s`` is the program's CPU time and that of the children it
    waited for. ``tests`` holds per-test outcomes when the program had tests.
    """

    status: Status
    stdout: str = ""
    stderr: str = ""
    wall_s: float = 0.0
    cpu_s: float = 0.0
    exit_code: int | None = None
    signal: int | None = None
    tests: tuple[CaseResult, ...] = field(default_factory=tuple)
    detail: str = ""
    truncated: bool = False
    backend: str = ""

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    @property
    def tests_passed(self) -> int:
        return sum(1 for t in self.tests if t.passed)

    @property
    def tests_total(self) -> int:
        return len(self.tests)

    @classmethod
    def from_wire(cls, row: dict, backend: str, labels: list[tuple[str, str]] | None = None) -> ExecResult:
        """Build from the zygote's report; ``labels`` are (kind, source) of the test units."""
        status = row.get("status")
        if status not in STATUSES:
            return cls("error", detail=f"sandbox returned an unknown status {status!r}", backend=backend)
        detail = str(row.get("detail") or "")
        tests: list[CaseResult] = []
        units = row.get("units")
        if units:
            if labels is None or [k for k, _ in labels] != [u[0] for u in units]:
                labels = [(u[0], f"{u[0]} {i + 1}") for i, u in enumerate(units)]
            setup_errors = []
            for (kind, label), (_, ok, err) in zip(labels, units, strict=True):
                if kind == "test":
                    tests.append(CaseResult(bool(ok), label, str(err)))
                elif not ok:
                    setup_errors.append(f"{label}: {err}")
            failing = [t for t in tests if not t.passed]
            if not detail and setup_errors:
                detail = "setup failed: " + setup_errors[0]
            elif not detail and failing:
                detail = f"{failing[0].test} -> {failing[0].error}"
        return cls(
            status=status,
            stdout=str(row.get("stdout") or ""),
            stderr=str(row.get("stderr") or ""),
            wall_s=float(row.get("wall_s") or 0.0),
            cpu_s=float(row.get("cpu_s") or 0.0),
            exit_code=row.get("exit_code"),
            signal=row.get("signal"),
            tests=tuple(tests),
            detail=detail,
            truncated=bool(row.get("truncated")),
            backend=backend,
        )
