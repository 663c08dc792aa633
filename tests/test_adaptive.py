"""Adaptive sampling (``sampling.adaptive``): rounds verified inside the sample stage, drawing stops for
problems with enough verified samples, the budget moves to the unsolved ones, the verify stage keeps
the verdicts."""

from __future__ import annotations

import json
import random
from collections import Counter
from types import SimpleNamespace

import pytest

from starloop.loop.config import ConfigError, load_config
from starloop.loop.driver import Driver
from starloop.loop.records import GenParams, Sample
from starloop.loop.runtime.sampling import Sampling
from starloop.loop.stages.adaptive import round_problems, sample_adaptive
from starloop.loop.stages.verify import verify_samples
from starloop.verifiers.records import Problem, Verdict
from starloop.verifiers.registry import register_verifier


@register_verifier("adaptive_probe", version="1")
def _probe(completion: str, problem: Problem, *, finish_reason=None, config=None) -> Verdict:
    """Whatever the model writes: right on a problem marked solvable, wrong on the others."""
    ok = bool(problem.meta["solvable"])
    return Verdict(ok, float(ok), "ok" if ok else "wrong", None, "probe")


POOL = [Problem(f"p{i}", "adaptive_probe", f"{i}+{i}=", answer=str(2 * i), meta={"solvable": i % 2 == 0})
        for i in range(6)]


def _ctx(tiny_model, overrides):
    cfg = load_config(None, ["sampling.backend=transformers", "sampling.n=4", "sampling.max_tokens=4",
                             "select.max_per_problem=2", "verify.workers=1", "runtime.progress=false",
                             "sampling.adaptive.enabled=true", *overrides])
    return SimpleNamespace(cfg=cfg, prompts=lambda ps: [p.prompt for p in ps], problems_by_id={p.id: p for p in POOL},
                           sampling=Sampling(cfg.sampling, engine_seed=0))


def _run(tiny_model, overrides):
    ctx = _ctx(tiny_model, overrides)
    with ctx.sampling:
        return sample_adaptive(ctx, 1, tiny_model, POOL, GenParams(4, 1.0, 1.0, 4, seed=3))


def test_budget_moves_from_solved_to_unsolved_problems(tiny_model):
    samples, info = _run(tiny_model, [])
    per = Counter(s.problem_id for s in samples)
    # Solved problems stop after their first round (2 verified); the fixed budget (6 x 4) left over
    # goes to the unsolved ones: 2 + 2 + 2 samples each, more than the fixed n=4.
    assert per == {"p0": 2, "p2": 2, "p4": 2, "p1": 6, "p3": 6, "p5": 6}
    assert len(samples) == 24 and info["rounds"] == 3 and info["samples_per_round"] == [12, 6, 6]
    assert info["satisfied_problems"] == 3 and info["saved_fraction"] == 0.0
    assert all(s.verdict is not None for s in samples)
    for pid in per:  # numbered across rounds, in problem order
        assert [s.index for s in samples if s.problem_id == pid] == list(range(per[pid]))
    assert [s.problem_id for s in samples] == sorted((s.problem_id for s in samples), key=lambda x: int(x[1:]))
    # Each round draws with its own seed: a problem's rounds are not copies of each other.
    seeds = {s.seed for s in samples if s.problem_id == "p1"}
    assert len(seeds) == 3


def test_per_problem_cap_and_savings(tiny_model):
    samples, info = _run(tiny_model, ["sampling.adaptive.budget=3.0", "sampling.adaptive.max_per_problem=8"])
    per = Counter(s.problem_id for s in samples)
    assert per == {"p0": 2, "p2": 2, "p4": 2, "p1": 8, "p3": 8, "p5": 8}
    assert info["capped_problems"] == 3 and info["rounds"] == 4
    samples, info = _run(tiny_model, ["sampling.adaptive.max_per_problem=2"])
    assert len(samples) == 12 and info["saved_fraction"] == 0.5  # every problem stops after one round


def test_round_order_when_the_budget_is_short():
    active = POOL[:4]
    verified, drawn = Counter({"p0": 1, "p1": 0, "p2": 0, "p3": 1}), Counter({"p0": 2, "p1": 4, "p2": 2, "p3": 2})
    assert [p.id for p in round_problems(active, verified, drawn, 1, random.Random(0))] == ["p2"]
    assert [p.id for p in round_problems(active, verified, drawn, 2, random.Random(0))] == ["p1", "p2"]
    assert round_problems(active, verified, drawn, 9, random.Random(0)) == active


def test_verify_keeps_verdicts_already_given():
    given = Verdict(True, 1.0, "ok", "2", "judged in the sample stage")
    samples = [Sample("p1", "x", verdict=given), Sample("p3", "y")]
    stats = verify_samples(samples, {p.id: p for p in POOL}, load_config(None, ["verify.workers=1"]).verify)
    assert samples[0].verdict is given and samples[1].verdict.reason == "wrong"  # p1/p3 are unsolvable
    assert stats["adaptive_probe"]["n"] == 2 and stats["adaptive_probe"]["pass_rate"] == 0.5


def test_config_checks():
    with pytest.raises(ConfigError, match="sampling.adaptive.round_n"):
        load_config(None, ["sampling.adaptive.round_n=0"])
    with pytest.raises(ConfigError, match="sampling.adaptive.max_per_problem"):
        load_config(None, ["sampling.adaptive.round_n=4", "sampling.adaptive.max_per_problem=2"])


def test_one_adaptive_iteration(tmp_path, tiny_overrides):
    cfg = load_config(None, [*tiny_overrides, "sampling.backend=transformers", "sampling.n=4",
                             "sampling.adaptive.enabled=true", "sampling.adaptive.round_n=2"])
    driver = Driver(cfg, tmp_path / "run")
    driver.run()
    stages = driver.rd.manifest()["stages"]
    info = stages["iter-001/sample"]
    assert info["adaptive"]["rounds"] >= 1 and info["samples"] <= info["adaptive"]["fixed_budget"] == 24 * 4
    rows = [json.loads(x) for x in (driver.rd.root / "iter-001/sample/samples.jsonl").read_text().splitlines()]
    assert len(rows) == info["samples"] and all(r["verdict"] is not None for r in rows)
    verified = [json.loads(x) for x in (driver.rd.root / "iter-001/verify/verified.jsonl").read_text().splitlines()]
    assert [r["verdict"] for r in verified] == [r["verdict"] for r in rows]
    assert stages["iter-001/verify"]["samples"] == info["samples"]
