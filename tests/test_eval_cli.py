"""`starloop eval` and `starloop sample` on the tiny model with fixture datasets, and on a demo run."""

import json
from pathlib import Path

import pytest
import yaml

from starloop.loop.cli.main import main
from starloop.loop.config import EvalConfig, SamplingConfig, VerifyConfig, load_config
from starloop.loop.records import Sample
from starloop.loop.runtime.prompts import problem_prompts
from starloop.loop.stages.evaluation import evaluate_model, maj_at_k, summarize
from starloop.loop.tasks import load_problems
from starloop.verifiers.records import Problem, Verdict

FIX = Path(__file__).parent / "fixtures"


def write_config(path: Path, **sections) -> Path:
    cfg = {
        "name": "fixture-eval",
        "data": {
            "train": {"source": "gsm8k", "path": str(FIX / "gsm8k.jsonl"), "split": "train[:4]"},
            "eval": {"source": "gsm8k", "path": str(FIX / "gsm8k.jsonl"), "split": "train[4:]"},
        },
        "sampling": {"backend": "transformers", "n": 2, "max_tokens": 12},
        "eval": {"n": 3, "k": [1, 3]},
        "verify": {"workers": 1},
        "runtime": {"progress": False},
    }
    for key, value in sections.items():
        cfg[key] = {**cfg.get(key, {}), **value}
    path.write_text(yaml.safe_dump(cfg))
    return path


def S(pid, reason="ok", extracted=None, text=""):
    v = Verdict.ok(extracted) if reason == "ok" else Verdict.fail(reason, extracted)
    return Sample(pid, text, prompt=f"P:{pid}", iteration=-1, finish_reason="stop", num_tokens=1, verdict=v)


def test_maj_at_k_ties_and_non_voting_samples():
    # a tie goes to the answer seen first, whichever is correct
    assert maj_at_k([S("a", "wrong", "3"), S("a", "ok", "4")], 2) == 0.0
    assert maj_at_k([S("a", "ok", "4"), S("a", "wrong", "3")], 2) == 1.0
    assert maj_at_k([S("a", "wrong", "1"), S("a", "wrong", "2"), S("a", "ok", "4")], 3) == 0.0  # 1-1-1
    # unparseable, truncated and error samples do not vote, even with something extracted
    s = [S("a", "truncated", "9"), S("a", "truncated", "9"), S("a", "error", "9"), S("a", "unparseable"),
         S("a", "ok", "4")]
    assert maj_at_k(s, 5) == 1.0 and maj_at_k(s, 4) == 0.0  # only non-voters among the first 4
    # only the first k samples vote: "7" (wrong) leads 2-1 at k=3; at k=4 a 2-2 tie goes to "4", seen first
    s = [S("a", "ok", "4"), S("a", "wrong", "7"), S("a", "wrong", "7"), S("a", "ok", "4"), S("a", "ok", "4")]
    assert [maj_at_k(s, k) for k in (1, 2, 3, 4, 5)] == [1.0, 1.0, 0.0, 1.0, 1.0]


def test_summarize_per_task_per_level_and_reasons_hand_computed():
    probs = [Problem("a", "math", "x", "1", meta={"level": 1}), Problem("b", "math", "y", "2", meta={"level": 2}),
             Problem("c", "code", "z", tests="assert True", meta={"level": 2})]
    sampled = [S("a", "ok", "1"), S("a", "wrong", "5"), S("a", "ok", "1"), S("a", "unparseable"),
               S("b", "wrong", "3"), S("b", "wrong", "3"), S("b", "ok", "2"), S("b", "truncated"),
               S("c", "timeout"), S("c", "ok", "prog"), S("c", "wrong", "prog2"), S("c", "wrong", "prog3")]
    greedy = [S("a", "ok", "1"), S("b", "wrong", "3"), S("c", "ok", "prog")]
    m = summarize(probs, sampled, greedy, [1, 2, 4])
    # pass@k per problem from (n=4, c): a c=2, b c=1, c c=1
    pk = {1: [2 / 4, 1 / 4, 1 / 4], 2: [1 - 1 / 6, 1 - 3 / 6, 1 - 3 / 6], 4: [1.0, 1.0, 1.0]}
    for k, vals in pk.items():
        assert m["pass@k"][str(k)] == pytest.approx(sum(vals) / 3)
        assert m["per_task"]["math"]["pass@k"][str(k)] == pytest.approx((vals[0] + vals[1]) / 2)
        assert m["per_task"]["code"]["pass@k"][str(k)] == pytest.approx(vals[2])
    # maj@k: a: k1 "1" ok, k2 tie 1-1 -> "1" first ok, k4 "1" x2 ok; b: "3" wins at every k; c: k1 no vote,
    # k2 "prog" ok, k4 1-1-1 tie -> "prog" first ok
    assert m["maj@k"] == pytest.approx({"1": 1 / 3, "2": 2 / 3, "4": 2 / 3})
    assert m["per_task"]["code"]["maj@k"] == pytest.approx({"1": 0.0, "2": 1.0, "4": 1.0})
    assert m["pass@1"] == pytest.approx(2 / 3) and m["per_task"]["math"]["pass@1"] == 0.5
    assert m["per_level"]["2"]["problems"] == 2 and m["per_level"]["2"]["pass@1"] == 0.5
    # reasons: share of all 15 samples (sampled + greedy) of the block
    assert m["reasons"] == pytest.approx({"ok": 6 / 15, "wrong": 6 / 15, "unparseable": 1 / 15,
                                          "truncated": 1 / 15, "timeout": 1 / 15})
    assert m["per_task"]["code"]["reasons"] == pytest.approx({"ok": 2 / 5, "wrong": 2 / 5, "timeout": 1 / 5})


def test_evaluate_model_with_a_scripted_sampler(tmp_path):
    """evaluate_model needs no run dir and no Driver: prompts in, samples from a scripted sampler, real
    verification."""
    probs = [Problem("p1", "math", "1+1", "2"), Problem("p2", "math", "2+2", "4")]
    script = {("1+1", 0.0): ["#### 2"], ("2+2", 0.0): ["#### 5"],
              ("1+1", 0.7): ["#### 2", "#### 3", "#### 3"], ("2+2", 0.7): ["#### 4", "no idea", "#### 4"]}
    seen = []

    class ScriptedSampling:
        def sample(self, request):
            params = request.params
            seen.append((request.model, request.prompts, params.n, params.temperature, params.max_tokens, params.seed))
            return [Sample(p.id, text, prompt=pr, iteration=request.iteration, finish_reason="stop", num_tokens=3,
                           index=j)
                    for p, pr in zip(request.problems, request.prompts, strict=True)
                    for j, text in enumerate(script[(p.prompt, params.temperature)])]

    m = evaluate_model(ScriptedSampling(), "m", probs, ["A", "B"], sampling_cfg=SamplingConfig(max_tokens=33),
                       eval_cfg=EvalConfig(n=3, k=[1, 3], temperature=0.7), verify_cfg=VerifyConfig(workers=1),
                       out=tmp_path, seed=5)
    assert seen == [("m", ["A", "B"], 1, 0.0, 33, 5), ("m", ["A", "B"], 3, 0.7, 33, 5)]
    assert m["pass@1"] == 0.5
    assert m["pass@k"] == pytest.approx({"1": (1 / 3 + 2 / 3) / 2, "3": 1.0})
    assert m["maj@k"] == pytest.approx({"1": 1.0, "3": 0.5})  # p1: "3" outvotes "2" at k=3
    assert json.loads((tmp_path / "metrics.json").read_text()) == m
    assert len((tmp_path / "sampled.jsonl").read_text().splitlines()) == 6


def test_eval_on_fixture_dataset(tmp_path, tiny_model, capsys):
    cfg_path = write_config(tmp_path / "c.yaml")
    out, samples = tmp_path / "eval.json", tmp_path / "samples"
    assert main(["eval", "--model", tiny_model, "--config", str(cfg_path), "--output", str(out),
                 "--samples-dir", str(samples)]) == 0
    res = json.loads(out.read_text())
    assert res["model"] == tiny_model and res["split"] == "eval" and res["problems"] == 2
    assert res["dataset"]["source"] == "gsm8k" and res["eval"]["k"] == [1, 3]
    assert 0.0 <= res["pass@1"] <= 1.0 and set(res["pass@k"]) == set(res["maj@k"]) == {"1", "3"}
    assert sum(res["reasons"].values()) == pytest.approx(1.0)
    printed = capsys.readouterr().out
    assert "pass@1 (greedy)" in printed and "maj@3" in printed and "verdict reasons" in printed
    greedy = [json.loads(x) for x in (samples / "greedy.jsonl").read_text().splitlines()]
    sampled = [json.loads(x) for x in (samples / "sampled.jsonl").read_text().splitlines()]
    assert len(greedy) == 2 and len(sampled) == 2 * 3 and all(s["verdict"] for s in greedy + sampled)
    # the prompts are the loop's prompts: the model's template plus the math verifier's answer format
    from transformers import AutoTokenizer

    cfg = load_config(cfg_path)
    want = problem_prompts(AutoTokenizer.from_pretrained(tiny_model), load_problems(cfg.data.eval), cfg.prompt)
    assert [g["prompt"] for g in greedy] == want

    # --split train evaluates the train pool instead
    assert main(["eval", "--model", tiny_model, "--config", str(cfg_path), "--split", "train", "--set", "eval.n=1",
                 "--set", "eval.k=[1]", "--output", str(out)]) == 0
    assert json.loads(out.read_text())["problems"] == 4


def test_eval_mixed_math_and_code_per_task(tmp_path, tiny_model):
    mixed = {"source": "mixed", "parts": [
        {"source": "gsm8k", "path": str(FIX / "gsm8k.jsonl"), "split": "train[4:]"},
        {"source": "mbpp", "path": str(FIX / "mbpp.jsonl"), "split": "train[4:]"}]}
    cfg_path = write_config(tmp_path / "c.yaml", data={"eval": mixed}, eval={"n": 1, "k": [1]})
    out = tmp_path / "eval.json"
    assert main(["eval", "--model", tiny_model, "--config", str(cfg_path), "--output", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["problems"] == 4 and set(res["per_task"]) == {"math", "code"}
    assert res["per_task"]["math"]["problems"] == 2 and res["per_task"]["code"]["problems"] == 2


def test_eval_user_errors_exit_2(tmp_path, tiny_model, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question": "2+2?", "solution": "#### 4"}) + "\n")
    cfg_path = write_config(tmp_path / "c.yaml", data={"eval": {"source": "gsm8k", "path": str(bad)}})
    assert main(["eval", "--model", tiny_model, "--config", str(cfg_path)]) == 2
    err = capsys.readouterr().err
    assert "missing field 'answer'" in err and "GSM8K" in err
    good = write_config(tmp_path / "g.yaml")
    assert main(["eval", "--model", str(tmp_path / "no-model"), "--config", str(good)]) == 2
    assert "no such model folder" in capsys.readouterr().err
    assert main(["eval", "--model", tiny_model, "--config", str(good), "--set", "eval.k=[9]"]) == 2
    assert "eval.k" in capsys.readouterr().err


def test_sample_then_verify(tmp_path, tiny_model):
    cfg_path = write_config(tmp_path / "c.yaml")
    out, verified = tmp_path / "samples.jsonl", tmp_path / "verified.jsonl"
    assert main(["sample", "--config", str(cfg_path), "--model", tiny_model, "--output", str(out),
                 "--split", "eval", "--n", "3"]) == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == 2 * 3
    assert {r["problem_id"] for r in rows} == {"gsm8k-train-4", "gsm8k-train-5"}
    assert all(r["task"] == "math" and r["answer"] in ("3", "70000") and r["finish_reason"] in ("stop", "length")
               and r["model"] == tiny_model and "verdict" not in r for r in rows)
    assert main(["verify", "--verifier", "math", "--input", str(out), "--output", str(verified)]) == 0
    assert all(json.loads(x)["verdict"]["reason"] for x in verified.read_text().splitlines())


def test_eval_and_report_on_demo_run(tmp_path, tiny_overrides, capsys):
    """A demo run (tiny overrides, iteration 0 only), then `starloop eval` of its starting model and
    `starloop report`: the standalone evaluation reproduces the loop's evaluate stage exactly."""
    overrides = [*tiny_overrides, "iterations=0", "sampling.backend=transformers"]
    sets = sum((["--set", o] for o in overrides), [])
    run = tmp_path / "run"
    assert main(["run", "--run-dir", str(run), *sets]) == 0
    (row,) = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    out = tmp_path / "eval.json"
    # the loop evaluates iteration 0 with seed = run seed + 7919; the same seed gives the same samples
    assert main(["eval", *sets, "--seed", "7919", "--output", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["model"].endswith("/model") and res["problems"] == 12
    for key in ("pass@1", "pass@k", "maj@k", "reasons"):
        assert res[key] == row[key], key
    capsys.readouterr()
    assert main(["report", str(run)]) == 0
    for name in ("report.md", "accuracy.png", "reasons.png", "data.png"):
        assert (run / name).stat().st_size > 0
    assert (run / "accuracy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
