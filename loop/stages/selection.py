"""The select stage: the SFT set of one iteration.

Verified traces (and verified STaR rationales), at most ``k`` per problem, duplicates removed;
truncated or unparseable samples are never selected (only ``ok`` verdicts are). Optional real
(gold) rows and a replay of earlier iterations' SFT rows are mixed in by fraction.

``include_unverified`` is the unfiltered ablation: it skips the verdict filter entirely, so wrong,
unparseable and truncated samples are selected too (the cap and dedup still apply).

Near duplicates (``dedup: near``) are found by exact Jaccard similarity of word 3-gram sets within
each problem's candidates (see ``runtime.text``).
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from starloop.loop.config import SelectConfig
from starloop.loop.records import Sample, sft_row, solution_sft_row
from starloop.loop.runtime.context import RunContext, Stage
from starloop.loop.runtime.text import distinct_n, drop_near_duplicates, normalize
from starloop.loop.tasks import load_solutions


def select_traces(
    samples: list[Sample], rationales: list[Sample], cfg: SelectConfig, seed: int
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Self-generated SFT rows: verified traces first, then rationales, ``<= k`` per problem.

    Stats: candidates, samples left out for their verdict (total and per reason), exact and near
    duplicates dropped (and their sum).
    """
    rng = random.Random(seed)
    stats: dict[str, Any] = {"candidates": 0, "exact_duplicates": 0, "near_duplicates": 0, "not_verified": 0,
                             "not_verified_by_reason": {}}
    if not cfg.selfgen:
        return [], stats
    by_problem: dict[str, dict[str, list[Sample]]] = defaultdict(lambda: {"selfgen": [], "rationalized": []})
    for s in samples:
        by_problem[s.problem_id]["selfgen"].append(s)
    for s in rationales:
        by_problem[s.problem_id]["rationalized"].append(s)
    dropped: Counter[str] = Counter()
    rows: list[dict[str, Any]] = []
    for pid in sorted(by_problem):
        cands: list[tuple[Sample, str]] = []
        for src, group in by_problem[pid].items():  # own traces first, then rationales; random within each
            group = list(group)
            rng.shuffle(group)
            cands += [(s, src) for s in group]
        stats["candidates"] += len(cands)
        if not cfg.include_unverified:
            dropped.update(s.verdict.reason if s.verdict else "none" for s, _ in cands if not s.correct)
            ok = [(s, src) for s, src in cands if s.correct]
            stats["not_verified"] += len(cands) - len(ok)
            cands = ok
        seen: set[str] = set()
        picked: list[tuple[Sample, str]] = []
        for s, src in cands:
            key = normalize(s.completion)
            if cfg.dedup != "none" and key in seen:
                stats["exact_duplicates"] += 1
                continue
            seen.add(key)
            picked.append((s, src))
        if cfg.dedup == "near":
            before = len(picked)
            picked = drop_near_duplicates(picked, key=lambda t: t[0].completion, threshold=cfg.near_dup_threshold)
            stats["near_duplicates"] += before - len(picked)
        rows.extend(sft_row(s, src) for s, src in picked[: cfg.max_per_problem])
    stats["not_verified_by_reason"] = dict(dropped)
    stats["duplicates"] = stats["exact_duplicates"] + stats["near_duplicates"]
    return rows, stats


def mix(
    selfgen: list[dict[str, Any]],
    real: list[dict[str, Any]],
    replay: list[dict[str, Any]],
    cfg: SelectConfig,
    seed: int,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Mix real and replay rows into the self-generated ones by the configured fractions.

    With fractions f_real and f_replay, the final set has ``n_self / (1 - f_real - f_replay)``
    rows; real and replay rows are drawn without replacement (as many as exist). When there is
    no self-generated data (the seed-only control), the real rows are used whole. Stats: rows
    (total, self-generated, real, replay), the real fraction, problems, distinct-1/2 of the completions.
    """
    rng = random.Random(seed)
    rows = list(selfgen)
    n_real = n_replay = 0
    if not selfgen and real and not cfg.selfgen:
        rows, n_real = list(real), len(real)
    else:
        rest = 1.0 - cfg.real_fraction - cfg.replay_fraction
        total = len(selfgen) / rest if rest > 0 else len(selfgen)
        if cfg.real_fraction and real:
            n_real = min(len(real), round(total * cfg.real_fraction))
            rows += [{**r, "source": "real"} for r in rng.sample(real, n_real)]
        if cfg.replay_fraction and replay:
            n_replay = min(len(replay), round(total * cfg.replay_fraction))
            rows += [{**r, "source": "replay"} for r in rng.sample(replay, n_replay)]
    rng.shuffle(rows)
    stats = {
        "rows": len(rows),
        "selfgen_rows": len(selfgen),
        "real_rows": n_real,
        "replay_rows": n_replay,
        "real_fraction": n_real / len(rows) if rows else 0.0,
        "problems": len({r.get("problem_id") for r in rows}),
        "distinct_1": distinct_n([r["completion"] for r in rows], 1),
        "distinct_2": distinct_n([r["completion"] for r in rows], 2),
    }
    return rows, stats


def real_rows(ctx: RunContext) -> list[dict[str, Any]]:
    """``data.real`` as SFT rows: each gold solution under its problem's rendered prompt."""
    if ctx.cfg.data.real is None:
        return []
    problems = load_solutions(ctx.cfg.data.real, ctx.cfg.seed)
    return [solution_sft_row(p, prompt) for p, prompt in zip(problems, ctx.prompts(problems), strict=True)]


def run(ctx: RunContext, it: int, out: Path) -> dict[str, Any]:
    seed = ctx.seed("select", it)
    rows, stats = select_traces(ctx.files.verified(it), ctx.files.rationales(it), ctx.cfg.select, seed)
    replay: list[dict[str, Any]] = []
    if ctx.cfg.select.replay_fraction:
        for j in range(1, it):
            replay += [r for r in ctx.files.rows(j, "select") if r.get("source") not in ("real", "replay")]
    rows, mix_stats = mix(rows, real_rows(ctx), replay, ctx.cfg.select, seed)
    ctx.files.write_rows(out, "select", rows)
    return {**stats, **mix_stats}


STAGE = Stage("select", run, needs=("verify", "rationalize"))
