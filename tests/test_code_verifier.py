"""The code verifier: extraction, assert-style and stdin/stdout tests, verdict reasons, registry paths."""

from __future__ import annotations

import pytest

from starloop.sandbox import select_backend
from starloop.verifiers import Problem, VerifyItem, get_verifier, verify_batch, verify_one
from starloop.verifiers.code import CodeConfig, extract_code, same_output, stdio_cases

needs_sandbox = pytest.mark.skipif(not select_backend().isolated, reason="no sandbox backend here (install bubblewrap)")
OPTS = {"timeout": 3.0}

MBPP = Problem(
    id="mbpp-1", task="code", prompt="Write add(a, b).",
    tests="import math\nassert add(1, 2) == 3\nassert add(0, 0) == 0\nassert math.isclose(add(0.1, 0.2), 0.3)\n",
    meta={"entry_point": "add"},
)
HUMANEVAL = Problem(
    id="HumanEval/0", task="code", prompt="...",
    tests="METADATA = {}\n\n\ndef check(candidate):\n    assert candidate([1, 2, 3]) == 6\n    assert candidate([]) == 0\n"
          "    assert candidate([-1, 1]) == 0\n\n\ncheck(total)\n",
    meta={"entry_point": "total", "imports": "from typing import List"},
)
STDIO = Problem(
    id="apps-1", task="code", prompt="Read two ints, print their sum.",
    tests=[{"input": "1 2\n", "output": "3\n"}, {"input": "10 20\n", "output": "30"}, {"input": "-5 5\n", "output": "0\n"}],
)


def block(code: str, tag: str = "python") -> str:
    return f"```{tag}\n{code}\n```"


# --------------------------------------------------------------------------- extraction (no sandbox)


@pytest.mark.parametrize(
    ("completion", "finish", "code", "how"),
    [
        ("Sure:\n" + block("x = 1") + "\nand better:\n" + block("x = 2") + "\nDone.", None, "x = 2", "block"),
        (block("x = 1") + "\n" + block("echo hi", "bash"), None, "x = 1", "block"),
        (block("x = 1", "py") + "\n" + block("y = 2", ""), None, "x = 1", "block"),  # a tagged block wins
        (block("y = 2", ""), None, "y = 2", "block"),
        ("~~~python\nz = 3\n~~~", None, "z = 3", "block"),
        ("````python\nprint('```')\n````", None, "print('```')", "block"),
        ("def f():\n    return 1\n", None, "def f():\n    return 1\n", "text"),
        ("The answer is 42.", None, None, "none"),
        ("", None, None, "none"),
        (block("echo hi", "bash"), None, None, "none"),
        ("```python\ndef f():\n    return", "length", None, "truncated"),
        ("Let me think about this problem step by step", "length", None, "truncated"),
        (block("x = 1") + "\n```python\nx = 2", "length", "x = 1", "block"),  # a complete block before the cut
        ("```python\nx = 5\n", "stop", "x = 5\n", "block"),  # unclosed, but the completion ended normally
    ],
)
def test_extract_code(completion, finish, code, how):
    assert extract_code(completion, finish) == (code, how)


def test_same_output():
    assert same_output("3\n", "3")
    assert same_output("1 2\n3  \n\n", "1 2\n3")
    assert same_output("0.3333333\n", "0.33333333")
    assert not same_output("0.34\n", "0.33")
    assert same_output("0.34\n", "0.33", tolerance=0.1)
    assert not same_output("0.3333333\n", "0.33333333", tolerance=0)
    assert not same_output("YES", "yes")
    assert not same_output("1 2", "1 2 3")
    assert same_output("nan", "nan") and not same_output("nan", "0")


def test_stdio_cases_forms():
    assert stdio_cases("assert f(1) == 2") is None
    assert stdio_cases([{"input": "1", "output": "2"}]) == [("1", "2")]
    assert stdio_cases({"inputs": ["1\n", ["2", "3"]], "outputs": ["a", "b"]}) == [("1\n", "a"), ("2\n3\n", "b")]
    assert stdio_cases('{"inputs": ["1"], "outputs": ["2"]}') == [("1", "2")]
    with pytest.raises(ValueError, match="inputs"):
        stdio_cases({"inputs": ["1"], "outputs": []})


def test_config_through_the_registry():
    spec = get_verifier("code")
    assert spec.config_cls is CodeConfig and spec.answer_format and spec.batch_fn is not None
    cfg = spec.make_config({"timeout": 2, "memory_mb": 256})
    assert cfg.limits().wall_s == 2 and cfg.limits().cpu_s == 2 and cfg.limits().memory_mb == 256
    with pytest.raises(ValueError, match="timout"):
        spec.make_config({"timout": 2})
    with pytest.raises(ValueError, match="timeout"):
        CodeConfig(timeout=0)


def test_no_code_needs_no_sandbox():
    items = [VerifyItem("I am not sure.", MBPP), VerifyItem("```python\ndef add(a, b):\n", MBPP, "length")]
    reasons = [v.reason for v in verify_batch("code", items, options=OPTS)]
    assert reasons == ["unparseable", "truncated"]


def test_problem_without_tests_is_a_programmer_error():
    with pytest.raises(ValueError, match="no tests"):
        verify_one("code", block("x = 1"), Problem(id="p", task="code", prompt=""))


# --------------------------------------------------------------------------- through the sandbox


@needs_sandbox
def test_assert_style_verdicts():
    items = [
        VerifyItem(block("def add(a, b):\n    return a + b"), MBPP),
        VerifyItem(block("def add(a, b):\n    return a * b"), MBPP),
        VerifyItem(block("def add(a, b):\n    while True:\n        pass"), MBPP),
        VerifyItem(block("import sys\nsys.exit(0)"), MBPP),
        VerifyItem(block("def add(a, b) return a"), MBPP),
    ]
    v = verify_batch("code", items, options=OPTS, workers=2)
    assert (v[0].correct, v[0].reason, v[0].score) == (True, "ok", 1.0)
    assert v[0].extracted == "def add(a, b):\n    return a + b"
    assert (v[1].correct, v[1].reason) == (False, "wrong") and v[1].score == pytest.approx(1 / 3)
    assert "assert add(1, 2) == 3" in v[1].detail
    assert (v[2].reason, v[2].score) == ("timeout", 0.0)
    assert (v[3].reason, v[3].score) == ("wrong", 0.0)
    assert (v[4].reason, v[4].score) == ("wrong", 0.0)  # code that does not compile is a wrong program


@needs_sandbox
def test_humaneval_style_with_prompt_imports():
    good = block("def total(xs: List[int]) -> int:\n    return sum(xs)")
    wrong = block("def total(xs: List[int]) -> int:\n    return sum(xs) if xs else 1")
    v = verify_batch("code", [VerifyItem(good, HUMANEVAL), VerifyItem(wrong, HUMANEVAL)], options=OPTS, workers=2)
    assert v[0].correct and v[0].detail == "3/3 tests passed"
    assert not v[1].correct and v[1].score == pytest.approx(2 / 3)


@needs_sandbox
def test_humaneval_stub_helpers_are_available():
    stub = ('def encode(s: str) -> str:\n    return s[::-1]\n\n\ndef decode(s: str) -> str:\n'
            '    """Undo encode."""\n')
    tests = "def check(candidate):\n    assert candidate(encode('abc')) == 'abc'\n\n\ncheck(decode)\n"
    problem = Problem(id="HumanEval/38", task="code", prompt="", tests=tests,
                      meta={"entry_point": "decode", "stub": stub, "imports": ""})
    v = verify_one("code", block("def decode(s: str) -> str:\n    return s[::-1]"), problem, options=OPTS)
    assert v.correct, v.detail


@needs_sandbox
def test_stdio_style():
    items = [
        VerifyItem(block("a, b = map(int, input().split())\nprint(a + b)"), STDIO),
        VerifyItem(block("a, b = map(int, input().split())\nprint(a + b if a > 0 else 1)"), STDIO),
        VerifyItem(block("a, b = map(int, input().split())\nprint(a + b)\nraise SystemExit(1)"), STDIO),
        VerifyItem(block("import time\ntime.sleep(100)"), STDIO),
    ]
    v = verify_batch("code", items, options={"timeout": 1.5}, workers=2)
    assert (v[0].reason, v[0].score) == ("ok", 1.0)
    assert (v[1].reason, v[1].score) == ("wrong", pytest.approx(2 / 3)) and "case 3: wrong output" in v[1].detail
    assert (v[2].reason, v[2].score) == ("wrong", 0.0)  # right output, but the program failed
    assert v[3].reason == "timeout"


@needs_sandbox
def test_bad_tests_are_an_error_not_a_wrong_answer():
    broken = Problem(id="b", task="code", prompt="", tests="assert add(1, 2) ==")
    v = verify_one("code", block("def add(a, b):\n    return a + b"), broken, options=OPTS)
    assert v.reason == "error" and not v.correct


@needs_sandbox
def test_batch_keeps_order_across_kinds():
    items = [
        VerifyItem(block("print(sum(map(int, input().split())))"), STDIO),
        VerifyItem("no code here", MBPP),
        VerifyItem(block("def add(a, b):\n    return a + b"), MBPP),
        VerifyItem(block("def total(xs):\n    return 0"), HUMANEVAL),
    ]
    v = verify_batch("code", items, options=OPTS, workers=2)
    assert [x.reason for x in v] == ["ok", "unparseable", "ok", "wrong"]


@needs_sandbox
def test_reward_function_path():
    from starloop.verifiers.reward import make_reward_func

    reward = make_reward_func("code", options=OPTS, workers=2)
    scores = reward(
        prompts=["p", "p", "p"],
        completions=[block("def add(a, b):\n    return a + b"),
                     [{"role": "assistant", "content": block("def add(a, b):\n    return a - b")}],
                     "nothing"],
        tests=[MBPP.tests] * 3,
    )
    assert scores == [1.0, pytest.approx(1 / 3), 0.0]


# --------------------------------------------------------------------------- tests that test nothing


@pytest.mark.parametrize(
    "tests",
    [
        "# nothing\n   \n",
        "# a comment\n\n# another one\n",
        '"""Tests for add."""\n',
        '"""Tests for add."""\npass\n',
        "pass\n...\n",
        ["# nothing here", "   "],
    ],
)
def test_tests_without_a_statement_are_an_error_before_anything_runs(tests):
    problem = Problem(id="empty-tests", task="code", prompt="", tests=tests)
    for completion in (block("def add(a, b):\n    return a + b"), block("def add(a, b):\n    return 0"), "no code"):
        v = verify_one("code", completion, problem, options=OPTS)
        assert (v.reason, v.correct, v.score) == ("error", False, 0.0), v
        assert "no executable statement" in v.detail and "'empty-tests'" in v.detail


def test_tests_defect():
    from starloop.verifiers.code import tests_defect

    assert tests_defect("# nothing\n   \n") is not None
    assert "do not parse" in tests_defect("assert add(1, 2) ==")
    for good in (
        "assert add(1, 2) == 3\n",
        "check(add)\n",
        "x = add(1, 2)\n",
        "import unittest\n\nclass T(unittest.TestCase):\n    def test_add(self):\n        self.assertEqual(add(1, 2), 3)\n",
        '"""Docstring."""\nassert add(1, 2) == 3\n',
    ):
        assert tests_defect(good) is None, good


UNITTEST = (
    "import unittest\n\n"
    "class TestAdd(unittest.TestCase):\n"
    "    def test_small(self):\n"
    "        self.assertEqual(add(1, 2), 3)\n"
    "    def test_zero(self):\n"
    "        self.assertEqual(add(0, 0), 0)\n\n"
    "result = unittest.TextTestRunner().run(unittest.defaultTestLoader.loadTestsFromTestCase(TestAdd))\n"
    "if not result.wasSuccessful():\n"
    "    raise AssertionError('unit tests failed')\n"
)
CALLS = (
    "def check(f):\n"
    "    if f(1, 2) != 3 or f(0, 0) != 0:\n"
    "        raise ValueError('wrong sum')\n\n"
    "check(add)\n"
)


@needs_sandbox
@pytest.mark.parametrize("tests", [UNITTEST, CALLS])
def test_tests_without_assert_statements_still_run(tests):
    problem = Problem(id="no-assert", task="code", prompt="", tests=tests)
    right = verify_one("code", block("def add(a, b):\n    return a + b"), problem, options=OPTS)
    wrong = verify_one("code", block("def add(a, b):\n    return a * b"), problem, options=OPTS)
    assert (right.reason, right.correct) == ("ok", True), right.detail
    assert (wrong.reason, wrong.correct) == ("wrong", False), wrong.detail


@needs_sandbox
def test_a_program_written_twice_with_other_comments_runs_once(monkeypatch):
    """Programs with the same syntax tree for the same tests run once per batch; each copy gets the verdict,
    with its own code as `extracted`. Another program, or the same one for other tests, runs on its own."""
    import starloop.verifiers.code as code_mod

    real_pool, ran = code_mod.default_pool, []

    def counting_pool(workers):
        pool = real_pool(workers)
        run_many = pool.run_many

        def run(programs, limits, **kw):
            ran.append(len(programs))
            return run_many(programs, limits, **kw)

        monkeypatch.setattr(pool, "run_many", run)
        return pool

    monkeypatch.setattr(code_mod, "default_pool", counting_pool)
    other = Problem(id="mbpp-2", task="code", prompt="Write add(a, b).", tests="assert add(1, 1) == 3\n",
                    meta={"entry_point": "add"})
    a = "def add(a, b):\n    return a + b  # the sum"
    b = "def add(a, b):\n\n    # add them\n    return a+b"
    items = [VerifyItem(block(a), MBPP), VerifyItem(block(b), MBPP), VerifyItem(block("def add(a, b):\n    return a - b"), MBPP),
             VerifyItem(block(a), other)]
    verdicts = verify_batch("code", items, workers=2, options=OPTS)
    assert ran == [3]
    assert [v.correct for v in verdicts] == [True, True, False, False]
    assert verdicts[1].extracted.startswith("def add(a, b):\n\n    # add them") and verdicts[0].detail == verdicts[1].detail
