"""Code verifier: run the model's program against the problem's tests in the sandbox.

The program is the last fenced Python block of the completion (```` ```python ````, ```` ```py ````,
or an untagged fence when no tagged one exists), else the whole completion if it is valid Python.
Two kinds of tests (``Problem.tests``):

* assert-style (MBPP, HumanEval): a string of Python run after the solution. Each top-level
  ``assert`` is one test; with ``meta["entry_point"]`` and HumanEval's ``def check(candidate)``,
  each assert of check's body is one test, ``candidate`` being the entry point. The tests run
  in the sandbox's trusted evaluator, not in the program's process (see ``starloop.sandbox``),
  so no exit code, output or monkeypatching trick can pass them. A HumanEval prompt's stub
  (``meta["stub"]``, else its import lines, ``meta["imports"]``) goes before the program.
* stdin/stdout (APPS, CodeContests): a list of ``{"input", "output"}`` (or a mapping
  ``{"inputs": [...], "outputs": [...]}``); the program runs once per case and its stdout is
  compared here, on the host, with the expected output (whitespace-insensitive per token,
  numbers within ``float_tolerance``).

Score: the fraction of tests passed; correct: all passed. Reasons: ``ok``; ``wrong``; ``unparseable``
(no code); ``truncated`` (``finish_reason == "length"`` and no complete code block); ``timeout``
(a run hit its time limit); ``error`` (the sandbox failed, or the problem's assert tests are broken:
they do not parse, or they have no executable statement, e.g. only comments, and would pass any
program; :func:`tests_defect` decides this before anything runs). :func:`check_problem` refuses only
problems without tests at all (it raises and stops the whole batch); broken tests are one problem's
defect, reported in its own verdict.
"""

from __future__ import annotations

import ast
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from starloop.sandbox import ExecResult, Limits, Program, default_pool
from starloop.verifiers.records import Problem, Verdict
from starloop.verifiers.registry import VerifyItem, register_verifier

__all__ = ["CodeConfig", "extract_code", "verify_code", "verify_code_batch"]

VERSION = "1.1"
ANSWER_FORMAT = "Write your complete solution as one Python program in a single ```python code block."
_PY_TAGS = ("python", "python3", "py", "py3")
_FENCE = re.compile(r"^[ \t]{0,3}(`{3,}|~{3,})[ \t]*([^\s`]*)[^\n`]*$")


@dataclass(frozen=True)
class CodeConfig:
    """Options of the code verifier (``verify.options.code`` in a run config)."""

    timeout: float = 10.0
    """Wall-clock seconds per program run (one run per stdin/stdout case; one for all asserts)."""
    cpu_s: float | None = None
    """CPU seconds per process; default: ``timeout``."""
    memory_mb: int = 1024
    """Address-space limit per process."""
    max_processes: int = 16
    """Processes and threads the program may have at once."""
    max_output_kb: int = 1024
    """stdout and stderr are each capped at this; a program printing more fails (output_limit)."""
    disk_mb: int = 64
    """Size of the run's private tmpfs (working directory, /tmp, /dev/shm)."""
    float_tolerance: float = 1e-6
    """stdin/stdout tests: numeric tokens match within this absolute or relative difference (0: exact)."""
    allow_unisolated: bool = False
    """Run programs even where no isolation backend exists (rlimits only). Never on shared machines."""

    def __post_init__(self) -> None:
        if not 0 < self.timeout <= 3600:
            raise ValueError(f"code option timeout must be in (0, 3600] seconds, got {self.timeout!r}")
        if self.cpu_s is not None and not self.cpu_s > 0:
            raise ValueError(f"code option cpu_s must be positive, got {self.cpu_s!r}")
        if not self.memory_mb >= 64:
            raise ValueError(f"code option memory_mb must be at least 64, got {self.memory_mb!r}")
        for name in ("max_processes", "max_output_kb", "disk_mb"):
            if not getattr(self, name) >= 1:
                raise ValueError(f"code option {name} must be at least 1, got {getattr(self, name)!r}")
        if not self.float_tolerance >= 0:
            raise ValueError(f"code option float_tolerance must be >= 0, got {self.float_tolerance!r}")

    def limits(self) -> Limits:
        return Limits(
            wall_s=self.timeout,
            cpu_s=self.cpu_s or self.timeout,
            memory_mb=self.memory_mb,
            max_processes=self.max_processes,
            max_output_bytes=self.max_output_kb * 1024,
            disk_mb=self.disk_mb,
            allow_unisolated=self.allow_unisolated,
        )


# ---------------------------------------------------------------------------------------------
# extraction


def _blocks(text: str) -> list[tuple[str, str, bool]]:
    """Fenced blocks of ``text``: (language tag, code, closed)."""
    out: list[tuple[str, str, bool]] = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, tag = m.group(1), m.group(2).lower()
        body: list[str] = []
        i += 1
        closed = False
        while i < len(lines):
            close = _FENCE.match(lines[i])
            if close and close.group(1)[0] == fence[0] and len(close.group(1)) >= len(fence) and not close.group(2):
                closed = True
                i += 1
                break
            body.append(lines[i])
            i += 1
        out.append((tag, "\n".join(body), closed))
    return out


def extract_code(completion: str, finish_reason: str | None = None) -> tuple[str | None, str]:
    """The program in ``completion`` and how it was found.

    Returns (code, how) where how is ``block``, ``text`` (the whole completion), or, with no
    code, ``truncated`` (cut off by the length limit before a complete block) or ``none``.
    """
    blocks = _blocks(completion)
    closed = [b for b in blocks if b[2]]
    for wanted in (lambda t: t in _PY_TAGS, lambda t: t == ""):
        chosen = [b for b in closed if wanted(b[0])]
        if chosen and chosen[-1][1].strip():
            return chosen[-1][1], "block"
    if finish_reason == "length":
        return None, "truncated"
    open_tail = blocks[-1] if blocks and not blocks[-1][2] and (blocks[-1][0] in _PY_TAGS or not blocks[-1][0]) else None
    if open_tail is not None and open_tail[1].strip():
        return open_tail[1], "block"  # an unclosed final block, the completion having ended normally
    if not blocks and completion.strip() and _compiles(completion):
        return completion, "text"
    return None, "none"


def _compiles(source: str) -> bool:
    return _syntax_error(source) is None


def _syntax_error(source: str) -> str | None:
    """Why ``source`` does not compile, or None. (Compiling runs none of it.)"""
    try:
        compile(source, "solution.py", "exec", dont_inherit=True)
    except SyntaxError as exc:
        return f"{type(exc).__name__}: {exc.msg} (line {exc.lineno})"
    except (ValueError, MemoryError, RecursionError, OverflowError) as exc:
        return f"{type(exc).__name__}: {exc}"[:200]
    return None


# ---------------------------------------------------------------------------------------------
# tests


def stdio_cases(tests: Any) -> list[tuple[str, str]] | None:
    """(input, expected output) pairs if ``tests`` are stdin/stdout tests, else None."""
    if isinstance(tests, str):
        head = tests.lstrip()[:1]
        if head not in ("[", "{"):
            return None
        try:
            tests = json.loads(tests)
        except ValueError:
            return None
    if isinstance(tests, dict) and "inputs" in tests and "outputs" in tests:
        ins, outs = list(tests["inputs"]), list(tests["outputs"])
        if len(ins) != len(outs):
            raise ValueError(f"stdin/stdout tests have {len(ins)} inputs but {len(outs)} outputs")
        return [(_as_text(i), _as_text(o)) for i, o in zip(ins, outs, strict=True)]
    if isinstance(tests, Sequence) and not isinstance(tests, str) and all(isinstance(t, dict) for t in tests):
        cases = []
        for t in tests:
            if "input" not in t or "output" not in t:
                raise ValueError(f"a stdin/stdout test needs 'input' and 'output', got keys {sorted(t)}")
            cases.append((_as_text(t["input"]), _as_text(t["output"])))
        return cases
    return None


def assert_tests(tests: Any) -> str | None:
    """Assert-style tests as one string of Python: a string as is, a list of assert strings (MBPP's
    ``test_list``) joined line by line; None for anything else."""
    if isinstance(tests, str):
        return tests
    if isinstance(tests, list) and tests and all(isinstance(t, str) for t in tests):
        return "\n".join(t.rstrip() for t in tests) + "\n"
    return None


def check_problem(problem: Problem) -> None:
    """A code problem needs tests: assert code (a string, or a list of assert strings) or stdin/stdout
    cases (``[{input, output}, ...]`` or ``{inputs: [...], outputs: [...]}``)."""
    tests = problem.tests
    if tests is None or (isinstance(tests, str | list | dict) and not tests):
        raise ValueError(f"code problem {problem.id!r} has no tests")
    try:
        cases = stdio_cases(tests)
    except ValueError as exc:
        raise ValueError(f"code problem {problem.id!r}: {exc}") from None
    if cases is None and assert_tests(tests) is None:
        raise ValueError(f"code problem {problem.id!r}: tests must be Python assert code (a string or a list of "
                         f"assert strings) or stdin/stdout cases ([{{input, output}}, ...]), got "
                         f"{type(tests).__name__}{' of ' + type(tests[0]).__name__ if isinstance(tests, list) else ''}")


def tests_defect(tests: str) -> str | None:
    """Why assert-style tests cannot test anything, or None: they do not parse, or they have no
    executable statement (only comments, blank lines, docstrings, ``pass``), so running them
    would pass any program."""
    try:
        tree = ast.parse(tests, "<tests>")
    except SyntaxError as exc:
        return f"the tests do not parse: {exc.msg} (line {exc.lineno})"
    except (ValueError, MemoryError, RecursionError) as exc:
        return f"the tests do not parse: {type(exc).__name__}: {exc}"[:200]
    body = [n for n in tree.body
            if not (isinstance(n, ast.Pass) or (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)))]
    if not body:
        return "the tests have no executable statement (only comments, docstrings or pass)"
    return None


def _as_text(x: Any) -> str:
    if isinstance(x, str):
        return x
    if isinstance(x, list):
        return "\n".join(map(str, x)) + "\n"
    return str(x)


def same_output(got: str, want: str, tolerance: float = 1e-6) -> bool:
    """Whether a program's stdout matches the expected output (token by token)."""
    if got == want:
        return True
    a, b = got.split(), want.split()
    if a == b:
        return True
    if len(a) != len(b) or tolerance <= 0:
        return False
    for x, y in zip(a, b, strict=True):
        if x == y:
            continue
        try:
            fx, fy = float(x), float(y)
        except ValueError:
            return False
        if not (math.isfinite(fx) and math.isfinite(fy)):
            return False
        if abs(fx - fy) > tolerance * max(1.0, abs(fy)):
            return False
    return True


# ---------------------------------------------------------------------------------------------
# verification


def _program_source(code: str, problem: Problem) -> str:
    """The program to run: the completion's code, after what the prompt gave (HumanEval).

    A HumanEval stub (``meta["stub"]``: imports, helper functions, the signature and docstring
    of the function to write) is valid Python on its own, so it goes first, as in the reference
    harness (prompt + completion): a solution that restates only its function still has the
    imports and the helpers (``poly``, ``encode_cyclic``...) the tests call; its definition
    replaces the stub's. Without a stub, ``meta["imports"]`` goes first.
    """
    for key in ("stub", "imports"):
        head = problem.meta.get(key)
        if isinstance(head, str) and head.strip():
            return f"{head.rstrip()}\n\n\n{code}"
    return code


def _reason(results: Sequence[ExecResult]) -> str:
    if any(r.status == "error" for r in results):
        return "error"
    if any(r.status == "timeout" for r in results):
        return "timeout"
    return "wrong"


def _brief(r: ExecResult) -> str:
    lines = r.stderr.strip().splitlines()
    text = r.detail or (lines[-1] if lines else "")
    return f"{r.status}: {text}"[:300] if text else r.status


def _program_key(source: str) -> str:
    """What decides a program's behaviour: its syntax tree (comments, blank lines and formatting left out)."""
    try:
        return ast.dump(ast.parse(source))
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return source


def verify_code_batch(items: Sequence[VerifyItem], config: CodeConfig | None, workers: int) -> list[Verdict]:
    """Judge ``items`` (results in input order), running every program through the sandbox pool.

    Programs that differ only in comments and formatting (the same syntax tree) for the same tests run
    once per batch, and every copy gets that run's verdict: a model sampled n times often writes one
    program several times, with other comments.
    """
    config = config or CodeConfig()
    limits = config.limits()
    verdicts: list[Verdict | None] = [None] * len(items)
    programs: list[Program] = []
    plan: list[tuple[int, str, list[str] | None, str, int]] = []  # item, kind, expected outputs, code, first run
    first_run: dict[tuple[str, str, str | None], int] = {}
    for i, it in enumerate(items):
        problem = it.problem
        check_problem(problem)
        cases = stdio_cases(problem.tests)
        defect = None if cases is not None else tests_defect(assert_tests(problem.tests) or "")
        if defect is not None:  # the problem's tests are broken, not the model's code: nothing to run
            verdicts[i] = Verdict.fail("error", detail=f"problem {problem.id!r}: {defect}")
            continue
        code, how = extract_code(it.completion, it.finish_reason)
        if code is None:
            if how == "truncated":
                verdicts[i] = Verdict.fail("truncated", detail="cut off before a complete code block")
            else:
                verdicts[i] = Verdict.fail("unparseable", detail="no Python code found")
            continue
        source = _program_source(code, problem)
        problem_text = _syntax_error(source)
        if problem_text is not None:  # no need to run what cannot compile
            verdicts[i] = Verdict.fail("wrong", extracted=code, detail=f"the program does not compile: {problem_text}")
            continue
        kind = "stdio" if cases is not None else "assert"
        key = (_program_key(source), json.dumps(problem.tests, sort_keys=True, default=str),
               problem.meta.get("entry_point"))
        if key not in first_run:
            first_run[key] = len(programs)
            if cases is not None:
                programs.extend(Program(source, stdin=inp) for inp, _ in cases)
            else:
                programs.append(Program(source, tests=assert_tests(problem.tests),
                                        entry_point=problem.meta.get("entry_point")))
        plan.append((i, kind, [want for _, want in cases] if cases is not None else None, code, first_run[key]))
    results = default_pool(workers).run_many(programs, limits, workers=max(1, workers)) if programs else []
    for i, kind, wants, code, k in plan:
        if kind == "assert":
            verdicts[i] = _assert_verdict(results[k], code)
        else:
            verdicts[i] = _stdio_verdict(results[k:k + len(wants)], wants, code, config.float_tolerance)
    return verdicts  # type: ignore[return-value]


def _assert_verdict(r: ExecResult, code: str) -> Verdict:
    total = r.tests_total
    score = r.tests_passed / total if total else 0.0
    if r.status == "passed":
        return Verdict.ok(extracted=code, detail=f"{r.tests_passed}/{total} tests passed", score=1.0)
    detail = f"{r.tests_passed}/{total} tests passed; {_brief(r)}"
    return Verdict.fail(_reason([r]), extracted=code, detail=detail, score=score)


def _stdio_verdict(rs: Sequence[ExecResult], wants: Sequence[str], code: str, tol: float) -> Verdict:
    ok = [r.status == "passed" and same_output(r.stdout, want, tol) for r, want in zip(rs, wants, strict=True)]
    passed = sum(ok)
    if passed == len(ok):
        return Verdict.ok(extracted=code, detail=f"{passed}/{len(ok)} tests passed", score=1.0)
    first = next(j for j, good in enumerate(ok) if not good)
    r = rs[first]
    why = "wrong output" if r.status == "passed" else _brief(r)
    failed = [r for r, good in zip(rs, ok, strict=True) if not good]
    return Verdict.fail(_reason(failed), extracted=code, score=passed / len(ok),
                        detail=f"{passed}/{len(ok)} tests passed; case {first + 1}: {why}")


@register_verifier("code", version=VERSION, config_cls=CodeConfig, answer_format=ANSWER_FORMAT,
                   batch_fn=verify_code_batch, check_problem=check_problem)
def verify_code(completion: str, problem: Problem, *, finish_reason: str | None = None,
                config: CodeConfig | None = None) -> Verdict:
    """Judge one completion: run its program against ``problem.tests`` in the sandbox."""
    return verify_code_batch([VerifyItem(completion, problem, finish_reason)], config, 1)[0]
