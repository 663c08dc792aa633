"""The sandbox's contract: statuses, captured output, limits, tests judged by the evaluator, the pool."""

from __future__ import annotations

import time

import pytest

from starloop.sandbox import (
    ExecResult,
    Limits,
    Program,
    SandboxPool,
    SandboxUnavailable,
    run,
    run_many,
    select_backend,
)
from starloop.sandbox import backend as sandbox_backend

pytestmark = pytest.mark.skipif(
    not select_backend().isolated, reason="no sandbox backend here (install bubblewrap); see test_refuses_unisolated"
)

FAST = Limits(wall_s=5, cpu_s=5)


@pytest.fixture(scope="module")
def pool():
    with SandboxPool(2) as p:
        yield p


def test_passed_with_output_and_timings(pool):
    r = pool.run(Program("import sys\nprint('out')\nprint('err', file=sys.stderr)"), FAST)
    assert isinstance(r, ExecResult)
    assert (r.status, r.stdout, r.stderr, r.exit_code) == ("passed", "out\n", "err\n", 0)
    assert r.passed and r.backend == select_backend().name
    assert 0 < r.wall_s < 5 and r.cpu_s >= 0


def test_stdin_is_fed_and_then_closed(pool):
    r = pool.run(Program("import sys\ndata = sys.stdin.read()\nprint(len(data), data.split()[-1])\nprint(repr(sys.stdin.read()))",
                         stdin="a b\n" * 100_000 + "last\n"), FAST)
    assert r.status == "passed"
    assert r.stdout == f"{4 * 100_000 + 5} last\n''\n"
    assert pool.run(Program("print(input())"), FAST).status == "failed"  # no stdin: EOFError


@pytest.mark.parametrize(
    ("source", "status", "code"),
    [
        ("raise SystemExit(3)", "failed", 3),
        ("import sys; sys.exit('message')", "failed", 1),
        ("import sys; sys.exit(0)", "passed", 0),
        ("raise ValueError('boom')", "failed", 1),
        ("import os; os._exit(7)", "failed", 7),
        ("def f(:\n    pass", "failed", 1),
    ],
)
def test_exit_status(pool, source, status, code):
    r = pool.run(Program(source), FAST)
    assert (r.status, r.exit_code) == (status, code)


def test_traceback_names_the_solution(pool):
    r = pool.run(Program("def f():\n    raise KeyError('k')\nf()"), FAST)
    assert r.status == "failed"
    assert "solution.py" in r.stderr and "KeyError" in r.stderr
    assert "_zygote" not in r.stderr and "<string>" not in r.stderr


def test_killed_by_a_signal(pool):
    r = pool.run(Program("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)"), FAST)
    assert (r.status, r.signal) == ("killed", 11)


def test_limits_wall_cpu_memory_output(pool):
    t = time.monotonic()
    r = pool.run(Program("while True:\n    pass"), Limits(wall_s=1.0, cpu_s=30))
    assert r.status == "timeout" and time.monotonic() - t < 5
    r = pool.run(Program("while True:\n    pass"), Limits(wall_s=30, cpu_s=1))
    assert r.status == "timeout" and r.detail == "cpu time limit" and r.cpu_s >= 0.9
    r = pool.run(Program("x = bytearray(600 * 1024 * 1024)"), Limits(memory_mb=256))
    assert r.status == "memory_limit"
    r = pool.run(Program("print('x' * 5000)"), Limits(max_output_bytes=1000))
    assert r.status == "output_limit" and r.truncated and len(r.stdout) == 1000


def test_file_size_and_open_files(pool):
    r = pool.run(Program("open('f', 'wb').write(b'x' * (3 << 20))"), Limits(max_file_mb=1))
    assert r.status == "failed" and "File too large" in r.stderr
    r = pool.run(Program("fs = [open('/dev/null') for _ in range(100)]"), Limits(max_open_files=32))
    assert r.status == "failed" and "Too many open files" in r.stderr


def test_each_run_starts_clean(pool):
    write = "import os\nfor d in ('.', '/tmp', '/dev/shm'):\n    open(os.path.join(d, 'left-behind'), 'w').write('x')\nprint(os.getcwd())"
    check = "import os\nprint([os.path.exists(os.path.join(d, 'left-behind')) for d in ('.', '/tmp', '/dev/shm')])"
    for _ in range(3):  # several times, so that both workers see both programs
        assert pool.run(Program(write), FAST).status == "passed"
        r = pool.run(Program(check), FAST)
        assert r.stdout == "[False, False, False]\n"


def test_programs_get_different_random_numbers(pool):
    outs = {r.stdout for r in pool.run_many([Program("import random; print(random.random())")] * 6, FAST)}
    assert len(outs) == 6


def test_run_many_keeps_order_and_runs_in_parallel(pool):
    progs = [Program(f"import time; time.sleep({0.3 if i % 3 == 0 else 0}); print({i})") for i in range(12)]
    t = time.monotonic()
    rs = pool.run_many(progs, FAST, workers=2)
    assert [r.stdout for r in rs] == [f"{i}\n" for i in range(12)]
    assert time.monotonic() - t < 0.3 * 4 + 1.0  # 4 sleepers over 2 workers, not one after another


def test_module_level_api():
    assert run("print(6 * 7)").stdout == "42\n"
    assert [r.stdout for r in run_many(["print(1)", "print(2)", "print(3)"], workers=2)] == ["1\n", "2\n", "3\n"]


def test_limits_validate():
    with pytest.raises(ValueError, match="wall_s"):
        Limits(wall_s=0)
    with pytest.raises(ValueError, match="max_open_files"):
        Limits(max_open_files=3)


# --------------------------------------------------------------------------- assert-style tests

ADD_TESTS = "assert add(1, 2) == 3\nassert add(2, 2) == 4\nassert add(-1, 1) == 0\n"


def test_tests_pass_and_fail_one_by_one(pool):
    r = pool.run(Program("def add(a, b):\n    return a + b", tests=ADD_TESTS), FAST)
    assert r.status == "passed" and (r.tests_passed, r.tests_total) == (3, 3)
    r = pool.run(Program("def add(a, b):\n    return a * b", tests=ADD_TESTS), FAST)
    assert r.status == "failed" and (r.tests_passed, r.tests_total) == (1, 3)
    assert [t.passed for t in r.tests] == [False, True, False]
    assert r.tests[0].test == "assert add(1, 2) == 3" and r.tests[0].error == "AssertionError"
    assert r.detail.startswith("assert add(1, 2) == 3")


def test_setup_statements_and_stdlib_modules(pool):
    tests = "import math\nassert math.isclose(area(1), 3.14159, rel_tol=1e-4)\nx = area(2)\nassert round(x) == 13\n"
    r = pool.run(Program("from math import pi\ndef area(r):\n    return pi * r * r", tests=tests), FAST)
    assert r.status == "passed" and r.tests_total == 2
    # the tests may rely on the solution's imports: the evaluator uses the genuine module
    r = pool.run(Program("import math\ndef area(r):\n    return math.pi * r * r",
                         tests="assert math.isclose(area(1), math.pi)"), FAST)
    assert r.status == "passed"


def test_humaneval_check_counts_each_assert(pool):
    tests = "METADATA = {}\n\ndef check(candidate):\n    assert candidate([1, 2]) == 3\n    xs = [5]\n" \
            "    assert candidate(xs) == 5\n    assert candidate([]) == 1\n\n\ncheck(total)\n"
    r = pool.run(Program("def total(xs):\n    return sum(xs)", tests=tests, entry_point="total"), FAST)
    assert (r.status, r.tests_passed, r.tests_total) == ("failed", 2, 3)
    assert r.tests[1].test == "assert candidate(xs) == 5"
    r = pool.run(Program("def total(xs):\n    return sum(xs) or 1", tests=tests, entry_point="total"), FAST)
    assert r.status == "passed"
    # without the entry point the whole check is a single test
    r = pool.run(Program("def total(xs):\n    return sum(xs)", tests=tests), FAST)
    assert (r.status, r.tests_total) == ("failed", 1)


def test_values_objects_and_callbacks_cross_the_boundary(pool):
    source = """
import collections, fractions
def sort_in_place(xs):
    xs.sort()
def squares(n):
    for i in range(n):
        yield i * i
class Box:
    def __init__(self, v):
        self.v = v
    def get(self):
        return self.v
def apply(f, xs):
    return [f(x) for x in xs]
def kinds():
    return (1, 2.5, 'é', b'\\x00', None, True, {1: [2]}, {3}, frozenset([4]), 10**40, float('inf'),
            collections.Counter('aab'), collections.OrderedDict(a=1), fractions.Fraction(1, 3), 1j)
def fail(x):
    raise ValueError(f'bad {x}')
"""
    tests = """
a = [3, 1, 2]
sort_in_place(a)
assert a == [1, 2, 3]
assert list(squares(4)) == [0, 1, 4, 9]
assert Box(7).get() == 7 and Box(8).v == 8
assert apply(lambda x: x * 2, [1, 2]) == [2, 4] and apply(str, [5]) == ['5']
import collections, fractions
assert kinds() == (1, 2.5, 'é', b'\\x00', None, True, {1: [2]}, {3}, frozenset([4]), 10**40, float('inf'),
                   collections.Counter('aab'), collections.OrderedDict(a=1), fractions.Fraction(1, 3), 1j)
try:
    fail(1)
    raised = False
except ValueError as e:
    raised = 'bad 1' in str(e)
assert raised
"""
    r = pool.run(Program(source, tests=tests), FAST)
    assert r.status == "passed", r.tests


def test_timeout_keeps_the_results_so_far(pool):
    source = "import time\ndef f(x):\n    if x > 1:\n        time.sleep(100)\n    return x"
    r = pool.run(Program(source, tests="assert f(0) == 0\nassert f(1) == 1\nassert f(2) == 2\nassert f(3) == 3"),
                 Limits(wall_s=1.5))
    assert r.status == "timeout"
    assert [t.passed for t in r.tests] == [True, True, False, False]


def test_tests_that_do_not_parse_are_an_error(pool):
    r = pool.run(Program("x = 1", tests="assert x ==="), FAST)
    assert r.status == "error" and "do not parse" in r.detail


def test_solution_that_fails_to_load_fails_every_test(pool):
    r = pool.run(Program("raise RuntimeError('at import')", tests=ADD_TESTS), FAST)
    assert r.status == "failed" and r.tests_total == 3 and r.tests_passed == 0
    assert "RuntimeError: at import" in r.stderr


# large values: streamed across the boundary, bounded by the run's memory limit

BIG = Limits(wall_s=30, cpu_s=30)


def test_large_module_level_values_reach_the_tests(pool):
    # each was over the old single-frame limit of the call channel (64 MiB of JSON)
    source = ("DATA = list(range(3_000_000))\nTEXT = 'é' * 12_000_000\nBLOB = bytes(range(256)) * 200_000\n"
              "ROWS = [[i, str(i)] for i in range(300_000)]")
    tests = ("assert len(DATA) == 3_000_000\nassert DATA[-1] == 2_999_999 and DATA[1234] == 1234\n"
             "assert len(TEXT) == 12_000_000 and TEXT[-1] == 'é'\n"
             "assert len(BLOB) == 51_200_000 and BLOB[-1] == 255\nassert ROWS[-1] == [299_999, '299999']")
    r = pool.run(Program(source, tests=tests), BIG)
    assert r.status == "passed", (r.detail, r.stderr[-500:])
    assert r.tests_passed == 5


@pytest.mark.parametrize("changed", [None, 1_234_567], ids=["equal", "one-element-differs"])
def test_large_results_are_compared_with_large_expected_values(pool, changed):
    source = f"def f(n, at={changed!r}):\n    r = list(range(n))\n    if at is not None and at < n:\n        r[at] = -1\n    return r\n"
    tests = "assert f(3_000_000) == list(range(3_000_000))\nassert f(3) == [0, 1, 2]"
    r = pool.run(Program(source, tests=tests), BIG)
    if changed is None:
        assert r.status == "passed", (r.detail, r.stderr[-500:])
    else:
        assert r.status == "failed" and [t.passed for t in r.tests] == [False, True]
        assert r.tests[0].error == "AssertionError"


def test_a_value_beyond_the_memory_limit_is_an_honest_memory_verdict(pool):
    # 80 MB in the program, about 240 MB as data (each character is escaped): over memory_mb
    source = "def f():\n    return '\\U0001F600' * 20_000_000\nSMALL = 1"
    r = pool.run(Program(source, tests="assert len(f()) == 20_000_000\nassert SMALL == 1"),
                 Limits(memory_mb=200, wall_s=30, cpu_s=30))
    assert r.status == "memory_limit"
    assert [t.passed for t in r.tests] == [False, True]  # the channel stays usable
    assert "ValueTooLarge" in r.tests[0].error and "memory limit" in r.tests[0].error


# a program that writes its own frames on the call channel (fd 4) instead of answering
FORGERIES = {
    "abort-then-forged-answer": "os.write(4, struct.pack('!I', 0x80000000 | 5) + b'{\"t\":')\n"
                                "os.write(4, struct.pack('!I', 0xFFFFFFFF))\n"
                                "os.write(4, frame({'t': 'r', 'i': 999, 'v': 3}))\n",
    "endless-chunks": "while True:\n        os.write(4, struct.pack('!I', 0x80000000 | 65536) + b' ' * 65536)\n",
    "huge-declared-chunk": "os.write(4, struct.pack('!I', 0x7FFFFFFF) + b'[' * 1000)\n",
    "chunks-then-exit": "os.write(4, struct.pack('!I', 0x80000000 | 2) + b'{}')\n        os._exit(0)\n",
}


@pytest.mark.parametrize("forgery", list(FORGERIES), ids=list(FORGERIES))
def test_forged_chunked_frames_never_pass(pool, forgery):
    source = ("import json, os, struct\n"
              "def frame(obj):\n    data = json.dumps(obj).encode()\n    return struct.pack('!I', len(data)) + data\n"
              "def add(a, b):\n    if a == 1:\n        " + FORGERIES[forgery] + "    return 0\n")
    r = pool.run(Program(source, tests="assert add(1, 2) == 3\nassert add(2, 3) == 5"), Limits(wall_s=3, cpu_s=3))
    assert r.status != "passed"
    assert r.tests_passed == 0


# --------------------------------------------------------------------------- backends


def test_refuses_unisolated_unless_allowed():
    pool = SandboxPool(1)
    pool._backend = sandbox_backend.unisolated()
    try:
        with pytest.raises(SandboxUnavailable, match="allow_unisolated"):
            pool.run(Program("print(1)"))
        r = pool.run(Program("print(1)"), Limits(allow_unisolated=True))
        assert (r.status, r.stdout, r.backend) == ("passed", "1\n", "none")
        r = pool.run(Program("def f():\n    return 1", tests="assert f() == 1"), Limits(allow_unisolated=True))
        assert r.status == "passed"
    finally:
        pool.close()


def test_backend_is_bwrap_when_root():
    import os

    if os.geteuid() != 0:
        pytest.skip("runs as root in CI")
    assert select_backend().name == "bwrap"


def test_worker_restarts_after_its_zygote_dies(pool):
    w = pool._workers[0]
    w.proc.kill()
    w.proc.wait()
    assert all(r.status == "passed" for r in pool.run_many([Program("print(1)")] * 4, FAST))
