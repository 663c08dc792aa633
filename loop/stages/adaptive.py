"""Adaptive sampling (``sampling.adaptive``): the sample stage draws in rounds and verifies each round
as it comes, so it can stop drawing for a problem that already has enough verified traces.

Round 1 draws ``round_n`` samples for every problem of the iteration's pool. A problem stays active
while it has fewer than ``select.max_per_problem`` verified samples (what the select stage keeps at
most) and another round would not take it past ``adaptive.max_per_problem`` samples (default
2 x ``sampling.n``); every later round draws ``round_n`` more for each active problem. The stage stops when no problem is active
or the budget (``adaptive.budget`` x problems x ``sampling.n`` samples, the fixed stage's count by
default) is spent; when a round cannot cover every active problem, those with the fewest verified
samples, then the fewest drawn, go first (ties in a seeded random order). What easy problems do not
use goes to hard ones: a problem the model rarely solves can get more samples than ``sampling.n``.

Every sample leaves the stage with its verdict; the verify stage keeps those verdicts instead of
judging the samples again. Each round is its own sampler call with its own seed, and a problem's
samples are numbered across rounds (``index``), so they are told apart in the run directory.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from typing import Any

from starloop.loop.records import GenParams, Sample, SampleRequest
from starloop.loop.runtime.context import RunContext
from starloop.loop.runtime.samplers import problem_seed
from starloop.loop.stages.verify import verify_samples
from starloop.verifiers.records import Problem

log = logging.getLogger(__name__)


def round_problems(active: list[Problem], verified: Counter, drawn: Counter, room: int, rng: random.Random) -> list[Problem]:
    """The active problems a round can cover with ``room`` prompts: all of them, or those with the
    fewest verified samples, then the fewest drawn, first (ties in ``rng``'s order), in pool order."""
    if room >= len(active):
        return active
    order = list(range(len(active)))
    rng.shuffle(order)
    order.sort(key=lambda i: (verified[active[i].id], drawn[active[i].id]))
    chosen = set(order[:room])
    return [p for i, p in enumerate(active) if i in chosen]


def sample_adaptive(ctx: RunContext, it: int, model: str, pool: list[Problem],
                    params: GenParams) -> tuple[list[Sample], dict[str, Any]]:
    """Verified samples of ``pool``, drawn in rounds; returns them (pool order, then index) and stats."""
    s, a = ctx.cfg.sampling, ctx.cfg.sampling.adaptive
    need = ctx.cfg.select.max_per_problem
    cap = a.max_per_problem or 2 * s.n
    budget = max(1, round(a.budget * len(pool) * s.n))
    prompts = dict(zip((p.id for p in pool), ctx.prompts(pool), strict=True))
    drawn: Counter = Counter()
    verified: Counter = Counter()
    by_problem: dict[str, list[Sample]] = {p.id: [] for p in pool}
    rng = random.Random(f"adaptive-{params.seed}")
    active, rounds, per_round = list(pool), 0, []
    while active and sum(drawn.values()) < budget:
        k = a.round_n
        room = (budget - sum(drawn.values())) // k
        if room < 1:
            break
        chosen = round_problems(active, verified, drawn, room, rng)
        seed = params.seed if rounds == 0 or params.seed is None else problem_seed(params.seed, f"round-{rounds}")
        request = SampleRequest(model, chosen, [prompts[p.id] for p in chosen],
                                GenParams(k, params.temperature, params.top_p, params.max_tokens, params.stop, seed=seed),
                                iteration=it)
        new = ctx.sampling.sample(request)
        verify_samples(new, ctx.problems_by_id, ctx.cfg.verify)
        for x in new:
            x.index = drawn[x.problem_id] + x.index
            by_problem[x.problem_id].append(x)
        for p in chosen:
            drawn[p.id] += k
        verified.update(x.problem_id for x in new if x.correct)
        rounds += 1
        per_round.append(len(new))
        active = [p for p in active if verified[p.id] < need and drawn[p.id] + k <= cap]
        log.info("iteration %d: adaptive round %d: %d samples for %d problems, %d verified so far, %d problems still "
                 "active", it, rounds, len(new), len(chosen), sum(verified.values()), len(active))
    samples = [x for p in pool for x in by_problem[p.id]]
    fixed = len(pool) * s.n
    return samples, {
        "rounds": rounds,
        "samples_per_round": per_round,
        "fixed_budget": fixed,
        "saved_fraction": round(1 - len(samples) / fixed, 4) if fixed else 0.0,
        "satisfied_problems": sum(verified[p.id] >= need for p in pool),
        "capped_problems": sum(verified[p.id] < need and drawn[p.id] + a.round_n > cap for p in pool),
    }
