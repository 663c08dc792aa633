"""pass@k / maj@k over verdicts, and starloop's verifier metric loaded through Hugging Face ``evaluate``."""

from __future__ import annotations

import pytest

from starloop.loop.stages import evaluation
from starloop.verifiers import metrics


@pytest.fixture
def offline(monkeypatch, tmp_path):
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HF_EVALUATE_OFFLINE"):
        monkeypatch.setenv(var, "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))


def test_the_loop_and_the_metric_share_one_estimator():
    assert evaluation.pass_at_k is metrics.pass_at_k


def test_score_math():
    predictions = [[r"so \boxed{4}", r"so \boxed{5}", r"so \boxed{4}"],  # 2 of 3 right, majority right
                   [r"\boxed{7}", r"\boxed{8}", r"\boxed{8}"],  # 1 of 3 right, majority wrong
                   [r"\boxed{\frac{1}{2}}", r"\boxed{0.5}", "no idea"]]  # 2 of 3 right
    got = metrics.score(predictions, ["4", "7", "1/2"], verifier="math", k=[1, 3, 5])
    assert got["pass@1"] == pytest.approx((2 / 3 + 1 / 3 + 2 / 3) / 3)
    assert got["pass@3"] == 1.0 and got["maj@3"] == pytest.approx(2 / 3)
    assert "pass@5" not in got  # more than the samples per problem


def test_evaluate_load_opens_the_shipped_metric(offline):
    import evaluate

    metric = evaluate.load(metrics.evaluate_script(), verifier="math", k=[1, 2])
    result = metric.compute(predictions=[[r"\boxed{4}", r"\boxed{5}"], [r"\boxed{x^2-1}", r"\boxed{(x-1)(x+1)}"]],
                            references=["4", "(x+1)(x-1)"])
    assert result == {"pass@1": pytest.approx(0.75), "maj@1": pytest.approx(1.0), "pass@2": 1.0, "maj@2": 1.0}

    code = evaluate.load(metrics.evaluate_script(), verifier="code", k=[1])
    tests = "assert add(1, 2) == 3\nassert add(2, 2) == 4\n"
    result = code.compute(predictions=[["def add(a, b):\n    return a + b\n", "def add(a, b):\n    return a - b\n"]],
                          references=[tests])
    assert result["pass@1"] == pytest.approx(0.5)
