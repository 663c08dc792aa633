"""Evaluation on held-out problems: greedy pass@1, sampled pass@k (the unbiased estimator of
Chen et al., 2021) and maj@k, with per-task and per-verdict-reason breakdowns.

:func:`evaluate_model` is the whole evaluation of one checkpoint, shared by the loop's evaluate
stage and ``starloop eval``; it needs no run directory.
"""

from __future__ import annotations

import dataclasses
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from math import comb
from pathlib import Path
from typing import Any

from starloop.loop.config import EvalConfig, PromptConfig, SamplingConfig, VerifyConfig
from starloop.loop.sample import GenParams
from starloop.loop.types import Sample
from starloop.verifiers.types import Problem

SampleFn = Callable[[str, list[Problem], list[str], GenParams, int], list[Sample]]
"""``(model, problems, prompts, params, seed) -> samples``: ``params.n`` samples per problem."""


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased estimate of pass@k from ``n`` samples of which ``c`` are correct."""
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples, got {n}")
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def maj_at_k(samples: Sequence[Sample], k: int) -> float:
    """1.0 if the most frequent extracted answer among the first ``k`` samples is correct.

    Samples without an extracted answer do not vote; ties go to the answer seen first.
    """
    votes: Counter[str] = Counter()
    correct_of: dict[str, bool] = {}
    for s in samples[:k]:
        v = s.verdict or {}
        ans = v.get("extracted")
        if ans is None or v.get("reason") in ("unparseable", "truncated", "error"):
            continue
        votes[ans] += 1
        correct_of.setdefault(ans, bool(v.get("correct")))
    if not votes:
        return 0.0
    best = max(votes, key=lambda a: (votes[a], -list(votes).index(a)))
    return float(correct_of[best])


def summarize(
    problems: Sequence[Problem],
    sampled: Sequence[Sample],
    greedy: Sequence[Sample] = (),
    ks: Sequence[int] = (1,),
) -> dict[str, Any]:
    """Metrics over ``problems`` from verified samples (``verdict`` set)."""
    by_pid: dict[str, list[Sample]] = defaultdict(list)
    for s in sampled:
        by_pid[s.problem_id].append(s)
    greedy_ok = {s.problem_id: s.correct for s in greedy}
    tasks = sorted({p.task for p in problems})

    def block(ps: Sequence[Problem]) -> dict[str, Any]:
        ids = {p.id for p in ps}
        out: dict[str, Any] = {"problems": len(ps)}
        if greedy:
            out["pass@1"] = sum(greedy_ok.get(p.id, False) for p in ps) / max(1, len(ps))
        if sampled:
            out["pass@k"] = {}
            out["maj@k"] = {}
            for k in ks:
                vals = [pass_at_k(len(by_pid[p.id]), sum(s.correct for s in by_pid[p.id]), k) for p in ps]
                out["pass@k"][str(k)] = sum(vals) / max(1, len(vals))
                out["maj@k"][str(k)] = sum(maj_at_k(by_pid[p.id], k) for p in ps) / max(1, len(ps))
            if not greedy:
                out["pass@1"] = out["pass@k"].get("1", 0.0)
        reasons = Counter((s.verdict or {}).get("reason", "none") for s in [*sampled, *greedy] if s.problem_id in ids)
        total = sum(reasons.values()) or 1
        out["reasons"] = {r: c / total for r, c in sorted(reasons.items())}
        return out

    metrics = block(problems)
    if len(tasks) > 1:
        metrics["per_task"] = {}
        for t in tasks:
            sub = [p for p in problems if p.task == t]
            metrics["per_task"][t] = block(sub)
    levels = sorted({p.meta.get("level") for p in problems if p.meta.get("level") is not None})
    if len(levels) > 1:
        metrics["per_level"] = {}
        for lv in levels:
            sub = [p for p in problems if p.meta.get("level") == lv]
            metrics["per_level"][str(lv)] = block(sub)
    return metrics


def generate_samples(model: str, problems: Sequence[Problem], prompts: Sequence[str], params: GenParams, *,
                     sampling: SamplingConfig, engine_seed: int = 0, iteration: int = -1, hinted: bool = False,
                     progress: bool = False) -> list[Sample]:
    """Sample ``params.n`` completions per problem in this process (the live sampler is reused)."""
    from starloop.loop.sample import get_sampler

    sampler = get_sampler(model, sampling, engine_seed)
    gens = sampler.generate(list(prompts), params, progress=progress)
    out = []
    for p, prompt, glist in zip(problems, prompts, gens, strict=True):
        for j, g in enumerate(glist):
            out.append(Sample(problem_id=p.id, iteration=iteration, prompt=prompt, completion=g.text,
                              finish_reason=g.finish_reason, num_tokens=g.num_tokens, index=j, hinted=hinted,
                              model=model, temperature=params.temperature, top_p=params.top_p, seed=params.seed or 0))
    return out


def evaluate_model(
    model: str,
    problems: Sequence[Problem],
    *,
    prompt_cfg: PromptConfig,
    sampling_cfg: SamplingConfig,
    eval_cfg: EvalConfig,
    verify_cfg: VerifyConfig,
    out: str | Path | None = None,
    seed: int = 0,
    engine_seed: int = 0,
    prompts: Sequence[str] | None = None,
    sample_fn: SampleFn | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Greedy pass@1 and sampled pass@k / maj@k of ``model`` on ``problems``.

    Prompts are rendered with ``prompt_cfg`` and the model's own tokenizer unless given. Samples
    come from ``sample_fn`` (default: a sampler in this process, ``sampling_cfg``'s backend with
    engine seed ``engine_seed``); verification runs here, in this process. With ``out``, writes
    ``greedy.jsonl``, ``sampled.jsonl`` (verified samples) and ``metrics.json`` there.
    """
    problems = list(problems)
    if prompts is None:
        from starloop.loop.prompts import problem_prompts
        from starloop.loop.run import load_tokenizer

        prompts = problem_prompts(load_tokenizer(model), problems, prompt_cfg)
    prompts = list(prompts)
    if sample_fn is None:
        def sample_fn(m: str, ps: list[Problem], pr: list[str], params: GenParams, s: int) -> list[Sample]:
            return generate_samples(m, ps, pr, dataclasses.replace(params, seed=s), sampling=sampling_cfg,
                                    engine_seed=engine_seed, progress=progress)

    from starloop.loop.io import write_json, write_jsonl
    from starloop.loop.verify import verify_samples

    by_id = {p.id: p for p in problems}
    max_tokens = eval_cfg.max_tokens or sampling_cfg.max_tokens
    stop = tuple(sampling_cfg.stop)
    out = Path(out) if out is not None else None
    greedy: list[Sample] = []
    if eval_cfg.greedy:
        greedy = sample_fn(model, problems, prompts, GenParams(1, 0.0, 1.0, max_tokens, stop), seed)
        verify_samples(greedy, by_id, verify_cfg, progress=progress)
        if out is not None:
            write_jsonl(out / "greedy.jsonl", (x.to_dict() for x in greedy))
    sampled: list[Sample] = []
    if eval_cfg.n > 0 and eval_cfg.k:
        params = GenParams(eval_cfg.n, eval_cfg.temperature, 1.0, max_tokens, stop)
        sampled = sample_fn(model, problems, prompts, params, seed)
        verify_samples(sampled, by_id, verify_cfg, progress=progress)
        if out is not None:
            write_jsonl(out / "sampled.jsonl", (x.to_dict() for x in sampled))
    metrics = summarize(problems, sampled, greedy, eval_cfg.k)
    if out is not None:
        write_json(out / "metrics.json", metrics)
    return metrics
