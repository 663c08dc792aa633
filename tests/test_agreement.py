"""Execution agreement (CodeT) for code problems without tests: planted solutions and tests, run in the sandbox."""

from starloop.verifiers.agreement import consensus, dual_agreement, extract_tests, pass_matrix
from starloop.verifiers.records import Problem

PROBLEM = Problem("add", "code", "Write add(a, b), the sum of a and b.", meta={"entry_point": "add"})


def solution(body: str) -> str:
    return f"```python\ndef add(a, b):\n    return {body}\n```"


RIGHT, MINUS, TIMES = solution("a + b"), solution("a - b"), solution("a * b")
T_SUM, T_DOUBLE, T_ZERO, T_WRONG = ("assert add(1, 2) == 3", "assert add(2, 2) == 4", "assert add(2, 0) == 2",
                                    "assert add(1, 2) == -1")


def test_tests_are_the_parseable_assert_lines():
    text = "Here are tests:\nassert add(1, 2) == 3\n  assert add(2, 2) == 4\nassert add(1,\nassert add(1, 2) == 3\nprint(1)"
    assert extract_tests(text) == [T_SUM, T_DOUBLE]
    assert extract_tests(text, max_tests=1) == [T_SUM]
    assert extract_tests("no tests here") == []


def test_the_sandbox_fills_the_pass_matrix():
    m = pass_matrix(PROBLEM, [RIGHT, MINUS, TIMES, "no code at all"], [T_SUM, T_DOUBLE, T_ZERO, T_WRONG])
    assert m == [[True, True, True, False],   # a + b
                 [False, False, True, True],  # a - b: passes the wrong test and the one both agree on
                 [False, True, False, False],  # a * b: right for 2, 2 only
                 [False, False, False, False]]


def test_agreeing_solutions_and_tests_win_over_a_larger_disagreeing_crowd():
    # 3 right solutions, 4 subtracting ones, 1 multiplying; tests: 3 right ones and one that agrees with subtraction
    c = dual_agreement(PROBLEM, [RIGHT, MINUS, RIGHT, MINUS, TIMES, MINUS, RIGHT, MINUS],
                       [T_SUM, T_DOUBLE, T_ZERO, T_WRONG])
    assert c.status == "labeled" and c.solutions == [0, 2, 6] and c.tests == [0, 1, 2]
    assert (c.score, c.runner_up) == (9, 8)  # 3 solutions x 3 tests against 4 x 2 (T_ZERO, T_WRONG)


def test_a_tie_and_no_consensus_give_no_tests():
    c = dual_agreement(PROBLEM, [RIGHT, RIGHT, MINUS, MINUS], [T_SUM, T_WRONG])
    assert (c.status, c.solutions, c.tests, c.score, c.runner_up) == ("tie", [], [], 2, 2)
    assert dual_agreement(PROBLEM, [TIMES], [T_SUM]).status == "no_consensus"  # passes nothing
    assert dual_agreement(PROBLEM, [RIGHT], []).status == "no_consensus"
    assert consensus([]).status == "no_consensus"
