"""The evaluate stage, and the evaluation of any checkpoint: greedy pass@1, sampled pass@k (the
unbiased estimator of Chen et al., 2021) and maj@k on held-out problems, with per-task,
per-level and per-verdict-reason breakdowns.

:func:`evaluate_model` is the whole evaluation of one checkpoint, shared by the loop's evaluate
stage and ``starloop eval``; it needs no run directory.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from starloop.loop.config import EvalConfig, SamplingConfig, VerifyConfig
from starloop.loop.fileio import write_json, write_jsonl
from starloop.loop.records import GenParams, Sample, SampleRequest, sample_to_row
from starloop.loop.runtime.context import RunContext, Stage
from starloop.loop.runtime.sampling import Sampling
from starloop.loop.runtime.trackers import log_iteration
from starloop.loop.stages.verify import verify_samples
from starloop.verifiers.metrics import maj_at_k as verifier_maj_at_k
from starloop.verifiers.metrics import pass_at_k
from starloop.verifiers.records import Problem


def maj_at_k(samples: Sequence[Sample], k: int) -> float:
    """1.0 if the most frequent extracted answer among the first ``k`` samples is correct (see
    :func:`starloop.verifiers.metrics.maj_at_k`)."""
    return verifier_maj_at_k([s.verdict for s in samples], k)


def summarize(
    problems: Sequence[Problem],
    sampled: Sequence[Sample],
    greedy: Sequence[Sample] = (),
    ks: Sequence[int] = (1,),
) -> dict[str, Any]:
    """Metrics over ``problems`` from verified samples."""
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
        reasons = Counter(s.verdict.reason if s.verdict else "none" for s in [*sampled, *greedy] if s.problem_id in ids)
        total = sum(reasons.values()) or 1
        out["reasons"] = {r: c / total for r, c in sorted(reasons.items())}
        return out

    metrics = block(problems)
    if len(tasks) > 1:
        metrics["per_task"] = {t: block([p for p in problems if p.task == t]) for t in tasks}
    levels = sorted({p.meta.get("level") for p in problems if p.meta.get("level") is not None})
    if len(levels) > 1:
        metrics["per_level"] = {str(lv): block([p for p in problems if p.meta.get("level") == lv]) for lv in levels}
    return metrics


def evaluate_model(sampling: Sampling, model: str, problems: Sequence[Problem], prompts: Sequence[str], *,
                   eval_cfg: EvalConfig, sampling_cfg: SamplingConfig, verify_cfg: VerifyConfig,
                   out: str | Path | None = None, seed: int = 0, progress: bool = False) -> dict[str, Any]:
    """Greedy pass@1 and sampled pass@k / maj@k of ``model`` on ``problems`` (rendered ``prompts``).

    Samples come from ``sampling`` (the one sampling path); verification runs in this process.
    With ``out``, writes ``greedy.jsonl``, ``sampled.jsonl`` (verified samples) and ``metrics.json``.
    """
    problems, prompts = list(problems), list(prompts)
    by_id = {p.id: p for p in problems}
    max_tokens = eval_cfg.max_tokens or sampling_cfg.max_tokens
    stop = tuple(sampling_cfg.stop)
    out = Path(out) if out is not None else None

    def sample_and_verify(params: GenParams, name: str) -> list[Sample]:
        samples = sampling.sample(SampleRequest(model, problems, prompts, params))
        verify_samples(samples, by_id, verify_cfg, progress=progress)
        if out is not None:
            write_jsonl(out / name, (sample_to_row(x) for x in samples))
        return samples

    greedy = sample_and_verify(GenParams(1, 0.0, 1.0, max_tokens, stop, seed), "greedy.jsonl") if eval_cfg.greedy else []
    sampled: list[Sample] = []
    if eval_cfg.n > 0 and eval_cfg.k:
        sampled = sample_and_verify(GenParams(eval_cfg.n, eval_cfg.temperature, 1.0, max_tokens, stop, seed),
                                    "sampled.jsonl")
    metrics = summarize(problems, sampled, greedy, eval_cfg.k)
    if out is not None:
        write_json(out / "metrics.json", metrics)
    return metrics


def run(ctx: RunContext, it: int, out: Path) -> dict[str, Any]:
    c = ctx.cfg
    metrics = evaluate_model(ctx.sampling, ctx.model_for(it), ctx.eval_problems, ctx.prompts(ctx.eval_problems),
                             eval_cfg=c.eval, sampling_cfg=c.sampling, verify_cfg=c.verify, out=out,
                             seed=ctx.seed("evaluate", it), progress=ctx.progress)
    row = {"iteration": it, **metrics}
    ctx.rd.write_metrics_row(row)
    stats = {stage: ctx.rd.stage_info(ctx.rd.key(it, stage)) or {} for stage in TRACKED_STAGES}
    log_iteration(c, ctx.rd.root, row, {s: {k: v for k, v in info.items() if k != "outputs"} for s, info in stats.items()})
    return {"pass@1": metrics.get("pass@1"), "pass@k": metrics.get("pass@k")}


TRACKED_STAGES = ("synthesize", "sample", "label", "verify", "rationalize", "select", "pairs", "train")
"""The stages whose numeric stats go to the trackers with each iteration's metrics (training loss and
rows, samples, verified counts, seconds)."""

STAGE = Stage("evaluate", run, needs=("train",))
