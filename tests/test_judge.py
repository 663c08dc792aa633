"""The ``judge`` verifier without a model: score parsing, rubrics, truncation, the cache, and a server that is
not there (a closed port on 127.0.0.1). The judge answering through a real server is in test_served.py."""

from __future__ import annotations

import socket
import sqlite3
import threading

import pytest

from starloop.verifiers import Problem, Verdict, VerifyItem, get_verifier, verify_batch, verify_one
from starloop.verifiers.judge import (
    DETAIL_CHARS,
    RUBRIC,
    RUBRIC_WITH_ANSWER,
    JudgeCache,
    JudgeConfig,
    Reply,
    render,
    score_reply,
)
from starloop.verifiers.reward import make_reward_func

PROBLEM = Problem("q1", "judge", "Name a prime number.")
WITH_ANSWER = Problem("q2", "judge", "What is 2+2?", answer="4")


def closed_port_url() -> str:
    """A loopback URL nobody listens at: a port bound, read, and closed again."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def config(**over) -> JudgeConfig:
    return JudgeConfig(**{"base_url": closed_port_url(), "model": "judge", "cache": None, "max_retries": 0, **over})


def options(cfg: JudgeConfig) -> dict:
    return {k: getattr(cfg, k) for k in ("base_url", "model", "cache", "max_retries", "rubric", "threshold")}


def test_the_default_pattern_reads_the_last_score():
    cfg = config()
    v = score_reply(Reply("The answer is right, a score of 2 would be unfair.\nScore: 3\n\nSCORE: 8"), cfg)
    assert (v.correct, v.reason, v.score, v.extracted) == (True, "ok", 0.8, "8")
    assert v.detail.endswith("SCORE: 8")  # the judge's explanation
    assert score_reply(Reply("**SCORE:** 6.5"), cfg) == Verdict.fail("wrong", "6.5", "**SCORE:** 6.5", 0.65)
    assert score_reply(Reply("score: 7"), cfg).reason == "ok"  # 0.7 >= threshold 0.7; any case


def test_custom_pattern_scale_and_clipping():
    cfg = config(score_pattern=r"#### (-?\d+)", max_score=5, threshold=0.5)
    assert score_reply(Reply("#### 1\n#### 3"), cfg).score == pytest.approx(0.6)
    assert score_reply(Reply("#### 12"), cfg).score == 1.0 and score_reply(Reply("#### 12"), cfg).correct
    low = score_reply(Reply("#### -4"), cfg)
    assert (low.score, low.reason, low.extracted) == (0.0, "wrong", "-4")
    words = score_reply(Reply("VERDICT: pass"), config(score_pattern=r"VERDICT: (\w+)"))
    assert words.reason == "error" and "not a number" in words.detail


def test_no_score_is_an_error_quoting_the_output():
    v = score_reply(Reply("I would rather not grade this.", "stop"), config())
    assert (v.correct, v.reason, v.score) == (False, "error", 0.0)
    assert "no score" in v.detail and "I would rather not grade this." in v.detail
    cut = score_reply(Reply("Let me think step by step " * 40, "length"), config(max_tokens=64))
    assert "max_tokens=64" in cut.detail and len(cut.detail) < 500


def test_a_long_explanation_is_shortened_around_its_score():
    v = score_reply(Reply("x" * 10_000 + "\nSCORE: 9"), config())
    assert v.reason == "ok" and len(v.detail) < DETAIL_CHARS + 100 and v.detail.endswith("SCORE: 9")


def test_rubric_rendering():
    cfg = config()
    assert cfg.template(PROBLEM) == RUBRIC and cfg.template(WITH_ANSWER) == RUBRIC_WITH_ANSWER
    text = render(cfg.template(WITH_ANSWER), "It is {4}.", WITH_ANSWER)
    assert "What is 2+2?" in text and "It is {4}." in text and "Reference answer:\n4" in text and "SCORE:" in text
    assert "{answer}" not in render(RUBRIC, "x", PROBLEM)
    custom = config(rubric='Q: {prompt}\nA: {completion}\nGold: {answer}\nJSON: {{"score": n}}')
    assert render(custom.rubric, "5", WITH_ANSWER) == 'Q: What is 2+2?\nA: 5\nGold: 4\nJSON: {"score": n}'


def test_bad_rubrics_are_refused_before_any_request():
    with pytest.raises(ValueError, match=r"unknown placeholder\(s\) \{question\}"):
        config(rubric="{question} {completion}")
    with pytest.raises(ValueError, match="not a valid template"):
        config(rubric="{completion} {")
    with pytest.raises(ValueError, match="no {completion} placeholder"):
        config(rubric="Grade {prompt}")
    with pytest.raises(ValueError, match=r"'q1' has no answer, but the rubric uses \{answer\}"):
        verify_batch("judge", [VerifyItem("7", PROBLEM)],
                     options=options(config(rubric="{prompt} {completion} {answer}")))


def test_options_are_checked():
    spec = get_verifier("judge")
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['url'\] for verifier 'judge'"):
        spec.make_config({"url": "http://127.0.0.1:8000/v1", "model": "m"})
    with pytest.raises(ValueError, match="base_url is required"):
        spec.make_config(None)
    with pytest.raises(ValueError, match="endpoint must be 'chat' or 'completions'"):
        spec.make_config({"base_url": "http://127.0.0.1:8000/v1", "model": "m", "endpoint": "responses"})
    with pytest.raises(ValueError, match="needs a group"):
        spec.make_config({"base_url": "http://127.0.0.1:8000/v1", "model": "m", "score_pattern": r"SCORE: \d+"})
    with pytest.raises(ValueError, match="unknown option"):
        make_reward_func("judge", options={"base_url": "http://127.0.0.1:8000/v1", "model": "m", "temp": 0})
    cfg = spec.make_config({"base_url": "http://127.0.0.1:8000/v1", "model": "m"})
    assert cfg.cache.endswith("judge.sqlite") and cfg.endpoint == "chat" and cfg.threshold == 0.7


def test_problems_need_a_prompt():
    with pytest.raises(ValueError, match="'e' has an empty prompt"):
        verify_batch("judge", [VerifyItem("x", Problem("e", "judge", " "))], options=options(config()))


def test_truncated_and_empty_completions_are_not_sent():
    """The judge is unreachable: a request would be an error verdict, so these were never asked."""
    items = [VerifyItem("Seven, because", PROBLEM, "length"), VerifyItem("  \n", PROBLEM, "stop")]
    verdicts = verify_batch("judge", items, options=options(config()))
    assert [v.reason for v in verdicts] == ["truncated", "unparseable"]
    assert {(v.verifier, v.verifier_version) for v in verdicts} == {("judge", "1")}


def test_an_unreachable_server_is_an_error_verdict_for_every_item(tmp_path):
    cfg = config(max_retries=1, concurrency=2, cache=str(tmp_path / "judge.sqlite"))
    items = [VerifyItem(str(k), PROBLEM) for k in range(5)]
    verdicts = verify_batch("judge", items, options=options(cfg))
    assert [v.reason for v in verdicts] == ["error"] * 5 and not any(v.correct for v in verdicts)
    for v in verdicts:
        assert "\n" not in v.detail and cfg.base_url in v.detail and "failed after 1 retries" in v.detail
        assert "refused" in v.detail.lower()
    assert verify_one("judge", "7", PROBLEM, options=options(cfg)).reason == "error"
    with sqlite3.connect(tmp_path / "judge.sqlite") as db:  # errors are not cached: asked again next time
        assert db.execute("SELECT COUNT(*) FROM replies").fetchone() == (0,)
    reward = make_reward_func("judge", options=options(cfg))
    prompt = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": PROBLEM.prompt}]
    assert reward(prompts=[prompt], completions=[[{"role": "assistant", "content": "7"}]]) == [0.0]


def test_the_cache(tmp_path):
    path = tmp_path / "sub" / "judge.sqlite"
    cfg = config(cache=str(path))
    key = JudgeCache.key(cfg, RUBRIC, "7", PROBLEM)
    others = [JudgeCache.key(config(model="other"), RUBRIC, "7", PROBLEM),  # the judge model,
              JudgeCache.key(cfg, RUBRIC_WITH_ANSWER, "7", PROBLEM),  # the rubric,
              JudgeCache.key(config(endpoint="completions"), RUBRIC, "7", PROBLEM),  # the endpoint,
              JudgeCache.key(cfg, RUBRIC, "7", Problem("q1", "judge", "Name a prime.")),  # the prompt,
              JudgeCache.key(cfg, RUBRIC, "8", PROBLEM),  # the completion,
              JudgeCache.key(cfg, RUBRIC, "7", Problem("q1", "judge", PROBLEM.prompt, answer="7")),  # the answer
              JudgeCache.key(config(max_tokens=64), RUBRIC, "7", PROBLEM)]
    assert len({key, *others}) == 8
    assert JudgeCache.key(config(threshold=0.9, base_url="http://127.0.0.1:1/v1"), RUBRIC, "7", PROBLEM) == key
    cache = JudgeCache(path)
    assert cache.get(key) is None
    threads = [threading.Thread(target=cache.put, args=(f"k{i}", Reply(f"SCORE: {i}", "stop"))) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    cache.put(key, Reply("Seven is prime.\nSCORE: 9", "stop"))
    cache.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert db.execute("SELECT COUNT(*) FROM replies").fetchone() == (9,)
    assert JudgeCache(path).get("k3") == Reply("SCORE: 3", "stop")  # kept across opens (and processes)
    # A cached reply answers without a request (the server is unreachable: a request would be an error)
    # and is scored with the options of now.
    items = [VerifyItem("7", PROBLEM), VerifyItem("7", PROBLEM), VerifyItem("8", PROBLEM)]
    first, again, other = verify_batch("judge", items, options=options(cfg))
    assert first == again and (first.reason, first.score, first.extracted) == ("ok", 0.9, "9")
    assert "Seven is prime." in first.detail and other.reason == "error"
    strict = verify_one("judge", "7", PROBLEM, options={**options(cfg), "threshold": 0.95})
    assert (strict.reason, strict.score) == ("wrong", 0.9)
    assert verify_one("judge", "7", PROBLEM, options={**options(cfg), "cache": None}).reason == "error"
    scores = make_reward_func("judge", options=options(cfg))(prompts=[PROBLEM.prompt] * 2, completions=["7", "8"])
    assert scores == [0.9, 0.0]


def test_judge_rows_need_no_answer_or_tests(tmp_path):
    """A dataset for the judge loads without answers or tests (the math verifier's still need them)."""
    from starloop.loop.config import DatasetConfig
    from starloop.loop.errors import InputError
    from starloop.loop.tasks import load_problems
    from starloop.verifiers.registry import needs_gold

    path = tmp_path / "open.jsonl"
    path.write_text('{"prompt": "Explain why the sky is blue."}\n')
    (p,) = load_problems(DatasetConfig(source="jsonl", path=str(path), task="judge"))
    assert p.answer is None and p.tests is None and p.task == "judge"
    with pytest.raises(InputError, match="missing field 'answer' or 'tests'"):
        load_problems(DatasetConfig(source="jsonl", path=str(path), task="math"))
    assert not needs_gold("judge") and needs_gold("math") and needs_gold("code") and needs_gold("no-such")
