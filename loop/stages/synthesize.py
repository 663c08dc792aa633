"""The synthesize stage (Self-Instruct): the model proposes new problems; the ones that pass every filter
join the pool for the iterations after this one.

Each of ``synthesize.proposals`` prompts shows ``k`` problems drawn from the pool (rendered by
``synthesize.example`` into ``synthesize.template``), and the sampler model of the iteration (the
teacher where ``sampling.teacher`` sets one) writes one more. A proposal must be parseable, of a
bounded length, new to the pool (ROUGE-L) and free of held-out n-grams (``runtime.synthesis``), and pass
an LLM judge where ``synthesize.judge`` sets one; the ones left are sampled ``synthesize.n_solutions`` times and labeled by majority vote, as the label stage
labels them (they come without answers), and a problem joins only if that estimated pass rate lies
strictly inside ``(min_pass_rate, max_pass_rate)``. Accepted problems are written to ``accepted.jsonl``
with their provenance (iteration, the problems shown, novelty, pass rate); every proposal and the
filter that stopped it to ``proposals.jsonl``. The pool lives in the run directory: a later iteration
reads the accepted problems of the finished synthesize stages before it (``RunContext.grow``), so a
resumed or redone run sees the same pool.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any

from starloop.loop.config import RunConfig
from starloop.loop.records import GenParams, SampleRequest
from starloop.loop.runtime.context import RunContext, Stage
from starloop.loop.runtime.synthesis import FILTERS, Screen, in_band, pick_examples, proposal_prompt
from starloop.loop.stages.label import math_equivalent, vote_all
from starloop.verifiers.records import Problem
from starloop.verifiers.registry import VerifyItem, verify_batch

log = logging.getLogger(__name__)
PROPOSALS = "proposals.jsonl"


def enabled(cfg: RunConfig) -> bool:
    return cfg.synthesize.enabled


def run(ctx: RunContext, it: int, out: Path) -> dict[str, Any]:
    c, s = ctx.cfg.synthesize, ctx.cfg.sampling
    pool = ctx.train_problems
    task = c.task or (pool[0].task if pool else "math")
    rng = random.Random(f"{ctx.cfg.seed}-synthesize-{it}")
    shown = [pick_examples([p.prompt for p in pool], c.k, rng) for _ in range(c.proposals)]
    prompts = [proposal_prompt(c.template, c.example, x) for x in shown]
    asks = [Problem(id=f"proposal-{it:03d}-{j:04d}", task=task, prompt=p) for j, p in enumerate(prompts)]
    model = ctx.sampler_model(it)
    written = ctx.sampling.sample(SampleRequest(model, asks, prompts, GenParams(
        1, c.temperature, s.top_p, c.max_new_tokens, tuple(c.stop), seed=ctx.seed("synthesize", it)), iteration=it))
    screen = Screen([p.prompt for p in pool], [p.prompt for p in ctx.eval_problems], kind=c.kind,
                    min_tokens=c.min_tokens, max_tokens=c.max_tokens, novelty_threshold=c.novelty_threshold,
                    decontam_n=c.decontam_n)
    records, candidates = [], []
    for j, w in enumerate(written):
        text, why, novelty = screen.check(w.completion)
        records.append({"proposal": j, "completion": w.completion, "problem": text, "rejected_by": why,
                        "novelty": None if novelty is None else round(novelty, 4), "iteration": it})
        if why is None:
            candidates.append(Problem(id=f"syn-{it:03d}-{j:04d}", task=task, prompt=text, meta={"synthesized": {
                "iteration": it, "shown": shown[j], "novelty": round(novelty or 0.0, 4), "model": str(model)}}))
    candidates = judged(c.judge, candidates, prompts, screen.counts, records)
    accepted = difficulty(ctx, it, model, candidates, screen.counts, records)
    ctx.files.write_rows(out, "synthesize", (p.to_dict() for p in accepted))
    ctx.files.write_rows(out, "synthesize", records, name=PROPOSALS)
    stats = {"proposals": len(written), "accepted": len(accepted), "pool_size": len(pool) + len(accepted),
             "rejected": dict(screen.counts)}
    log.info("synthesize: %d of %d proposals accepted (pool %d -> %d); rejected: %s", len(accepted), len(written),
             len(pool), stats["pool_size"], ", ".join(f"{f} {screen.counts[f]}" for f in FILTERS))
    return stats


def proposal_index(problem: Problem) -> int:
    """The proposal a candidate came from (its id ends with the proposal's number, its place in ``records``)."""
    return int(problem.id.rsplit("-", 1)[1])


def judged(options: dict[str, Any], candidates: list[Problem], prompts: list[str], counts: dict[str, int],
           records: list[dict[str, Any]]) -> list[Problem]:
    """The candidates an LLM judge with ``options`` (``synthesize.judge``) passes; all of them without options.
    Each is graded as the response to its own proposal prompt; a judge that fails (no score, a server down)
    passes nothing."""
    if not options or not candidates:
        return candidates
    index = [proposal_index(p) for p in candidates]
    items = [VerifyItem(p.prompt, Problem(id=p.id, task="judge", prompt=prompts[j]))
             for p, j in zip(candidates, index, strict=True)]
    kept = []
    for p, j, v in zip(candidates, index, verify_batch("judge", items, options=options), strict=True):
        records[j]["judge"] = {"score": v.score, "reason": v.reason}
        if v.correct:
            kept.append(p)
        else:
            counts["judge"] += 1
            records[j]["rejected_by"] = "judge"
    return kept


def difficulty(ctx: RunContext, it: int, model: str, candidates: list[Problem], counts: dict[str, int],
               records: list[dict[str, Any]]) -> list[Problem]:
    """The candidates whose pass rate, estimated by a majority vote over ``n_solutions`` samples, lies inside the
    band (a problem without a majority has no estimate and is rejected)."""
    if not candidates:
        return []
    c, s = ctx.cfg.synthesize, ctx.cfg.sampling
    samples = ctx.sampling.sample(SampleRequest(model, candidates, ctx.prompts(candidates), GenParams(
        c.n_solutions, s.temperature, s.top_p, s.max_tokens, tuple(s.stop), seed=ctx.seed("synthesize", it)),
        iteration=it))
    votes = vote_all(samples, [p.id for p in candidates], ctx.cfg.label.min_agreement,
                     math_equivalent(ctx.cfg.verify.workers))
    accepted = []
    for p in candidates:
        v = votes.get(p.id)
        rate = v.agreement if v is not None and v.status == "labeled" else None
        record = records[proposal_index(p)]
        record["pass_rate"] = rate
        if in_band(rate, c.min_pass_rate, c.max_pass_rate):
            p.meta["synthesized"]["pass_rate"] = rate
            accepted.append(p)
        else:
            counts["difficulty"] += 1
            record["rejected_by"] = "difficulty"
    return accepted


STAGE = Stage("synthesize", run, when=enabled)
