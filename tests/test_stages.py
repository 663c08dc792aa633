from math import comb

import pytest

from starloop.loop.config import RationalizeConfig, SelectConfig
from starloop.loop.records import Sample
from starloop.loop.runtime.text import distinct_n
from starloop.loop.stages.evaluation import maj_at_k, pass_at_k, summarize
from starloop.loop.stages.rationalize import failed_problems, keep_rationales, restates_hint, template_phrases
from starloop.loop.stages.selection import mix, select_traces
from starloop.verifiers.records import Problem, Verdict


def S(pid, text, reason="ok", extracted=None, it=1, hinted=False, finish="stop"):
    v = Verdict.ok(extracted) if reason == "ok" else Verdict.fail(reason, extracted)
    return Sample(pid, text, prompt=f"P:{pid}", iteration=it, finish_reason=finish, num_tokens=len(text), hinted=hinted,
                  verdict=v)


def test_pass_at_k_hand_computed():
    assert pass_at_k(4, 0, 1) == 0.0
    assert pass_at_k(4, 4, 4) == 1.0
    assert pass_at_k(4, 1, 1) == pytest.approx(0.25)
    assert pass_at_k(4, 1, 2) == pytest.approx(1 - comb(3, 2) / comb(4, 2))  # 0.5
    assert pass_at_k(10, 3, 5) == pytest.approx(1 - comb(7, 5) / comb(10, 5))
    with pytest.raises(ValueError):
        pass_at_k(2, 1, 3)


def test_maj_at_k():
    samples = [S("a", "", "wrong", "3"), S("a", "", "ok", "4"), S("a", "", "ok", "4"), S("a", "", "wrong", "3"),
               S("a", "", "wrong", "5")]
    assert maj_at_k(samples, 3) == 1.0  # 4 wins 2-1
    assert maj_at_k(samples, 5) == 0.0  # 3 and 4 tie 2-2: the first seen (3) wins
    assert maj_at_k([S("a", "", "unparseable")], 1) == 0.0


def test_summarize_greedy_and_sampled():
    probs = [Problem("a", "math", "x", "1"), Problem("b", "math", "y", "2")]
    sampled = [S("a", "", "ok", "1"), S("a", "", "wrong", "0"), S("b", "", "wrong", "0"), S("b", "", "wrong", "9")]
    greedy = [S("a", "", "ok", "1"), S("b", "", "wrong", "0")]
    m = summarize(probs, sampled, greedy, [1, 2])
    assert m["pass@1"] == 0.5
    assert m["pass@k"]["1"] == pytest.approx(0.25) and m["pass@k"]["2"] == pytest.approx(0.5)


def test_select_caps_dedups_and_filters():
    samples = [S("a", "x = 1"), S("a", "x  =  1"), S("a", "y = 1"), S("a", "z = 1"),
               S("b", "bad", "wrong"), S("b", "cut", "truncated", finish="length"), S("c", "junk", "unparseable")]
    rows, st = select_traces(samples, [], SelectConfig(max_per_problem=2), seed=0)
    assert {r["problem_id"] for r in rows} == {"a"}
    assert len(rows) == 2 and st["exact_duplicates"] == 1 and st["not_verified"] == 3
    rows, _ = select_traces(samples, [], SelectConfig(max_per_problem=9, include_unverified=True), seed=0)
    assert {r["problem_id"] for r in rows} == {"a", "b", "c"}


def test_select_near_dedup():
    a = "step one then step two then step three gives 4"
    samples = [S("a", a), S("a", a + " ."), S("a", "a completely different way of getting to 4 here")]
    rows, st = select_traces(samples, [], SelectConfig(max_per_problem=9, dedup="near", near_dup_threshold=0.7), 0)
    assert len(rows) == 2 and st["near_duplicates"] == 1


def test_mix_fractions():
    self_rows = [{"prompt": str(i), "completion": "c", "problem_id": str(i)} for i in range(8)]
    real = [{"prompt": f"r{i}", "completion": "g", "problem_id": f"r{i}"} for i in range(100)]
    cfg = SelectConfig(real_fraction=0.2)
    rows, st = mix(self_rows, real, [], cfg, 0)
    assert st["real_rows"] == 2 and len(rows) == 10 and st["real_fraction"] == pytest.approx(0.2)
    rows, st = mix([], real, [], SelectConfig(selfgen=False), 0)
    assert len(rows) == 100  # the seed-only control trains on the real data whole


def test_rationalize_keeps_verified_under_plain_prompt():
    probs = {"a": Problem("a", "math", "2+2", "4"), "b": Problem("b", "math", "3+3", "6")}
    hinted = [S("a", "=4\n2+2 is 4 by counting\n#### 4", hinted=True), S("b", "#### 6", hinted=True),
              S("a", "#### 5", "wrong", hinted=True), S("b", "the hint says 6\n#### 6", hinted=True)]
    kept, st = keep_rationales(hinted, probs, {"a": "PLAIN a", "b": "PLAIN b"}, RationalizeConfig())
    assert [k.problem_id for k in kept] == ["a"] and kept[0].prompt == "PLAIN a" and kept[0].hinted
    assert st["rejected_restated_hint"] == 2 and st["rationalized"] == 1


def test_restates_hint():
    assert restates_hint("#### 42", "42")
    assert restates_hint("As the hint says, 42.", "42")
    assert not restates_hint("=40+2\n=42\n#### 42", "42")
    # the template's own wording leaks into the rationale: rejected
    template = "{prompt} (Given: the result equals {answer}.)"
    assert template_phrases(template) == ["Given: the result equals"]
    assert restates_hint("=40+2 given: the result equals 42\n#### 42", "42", template)
    assert not restates_hint("=40+2\n=42\n#### 42", "42", template)
    assert template_phrases("({answer}) {prompt}") == [] and template_phrases(RationalizeConfig.hint_template) == [
        "Hint: the answer is"]


def test_failed_problems():
    probs = [Problem("a", "math", "", "1"), Problem("b", "math", "", "2")]
    assert [p.id for p in failed_problems(probs, [S("a", "", "ok"), S("b", "", "wrong")])] == ["b"]


def test_distinct_n():
    assert distinct_n(["a b c", "a b c"], 2) == 0.5
    assert distinct_n([], 2) == 0.0
