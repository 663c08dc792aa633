"""The pairs stage: DPO preference pairs from verified completions: chosen = a verified-correct
completion, rejected = a failed completion of the same prompt.

Rows are TRL's standard preference format (``prompt``, ``chosen``, ``rejected`` strings; the prompt
is the rendered text the model saw, as in the SFT rows) plus provenance columns
(``records.PAIR_COLUMNS``). The train stage runs DPO on them when ``train.dpo.enabled``; ``starloop
pairs`` makes the same pairs from a file.

Eligibility
    chosen: the verdict is correct and the completion was not cut off by ``max_tokens``
    (``finish_reason != "length"``); an unparseable or failed completion is never chosen.
    rejected: any failed verdict (``wrong``, ``unparseable``, ``timeout``, ``error``); a truncated one
    (reason ``truncated`` or ``finish_reason == "length"``) only when ``exclude_truncated`` is false.
    TRL appends EOS to both completions, so a cut-off text would become a finished one, and a
    truncated completion is not a wrong one.
    Completions of one prompt that are equal up to whitespace are merged before pairing, so no two
    pairs are equal and no pair has the same text on both sides; a text judged both correct and
    failed (a nondeterministic verdict, e.g. a timeout) is used on neither side.

Strategies (each orders all (chosen, rejected) combinations of a prompt; ties in random order)
    ``random``: uniformly random order.
    ``hardest``: the hardest negatives first: highest verifier score of the rejected (partial
    credit, e.g. a share of tests passed), then the highest similarity to the chosen (Jaccard
    of word 3-grams: a near miss, the same reasoning with a slip).
    ``length_matched``: the smallest length difference (characters) first, so that the preference
    is not a length preference (DPO otherwise learns "longer/shorter is better").

Cut rejected (``cut_rejected``: ``step`` / ``word``)
    The rejected text ends with the line (or word) where it first departs from the chosen one
    (``text.cut_at_departure``; ``rejected_cut`` records the cut). Two failed texts that cut to the
    same one make one pair with a given chosen text (the next combination is taken instead). A failed chain usually goes on
    computing correctly from its first wrong value, and DPO on the whole text pushes that correct
    work down too: on the demo, one DPO step from the iteration-1 SFT model (30 steps, learning rate
    2e-5) took held-out pass@1 from 59.1% to 26.0% with whole rejected texts and to 52.4% (step) /
    51.9% (word) with cut ones.

Selection, at most ``per_prompt`` pairs per prompt: the combinations are taken in the strategy's
order, first only those whose chosen and rejected are both still unused (k pairs use k distinct
chosen and k distinct rejected completions where the prompt has that many), then the remaining
combinations in order.
"""

from __future__ import annotations

import logging
import random
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from starloop.loop.records import Sample, pair_row, samples_from_verified_rows
from starloop.loop.runtime.context import RunContext, Stage
from starloop.loop.runtime.text import CUTS, cut_at_departure, jaccard, normalize, shingles

log = logging.getLogger(__name__)

Strategy = Literal["random", "hardest", "length_matched"]
STRATEGIES: tuple[str, ...] = ("random", "hardest", "length_matched")


def _order(strategy: str, pos: list[Sample], neg: list[Sample], rng: random.Random) -> list[tuple[int, int]]:
    combos = [(i, j) for i in range(len(pos)) for j in range(len(neg))]
    rng.shuffle(combos)  # ties keep this random order (sorts below are stable)
    if strategy == "hardest":
        pos_sh = [shingles(c.completion) for c in pos]
        neg_sh = [shingles(c.completion) for c in neg]
        combos.sort(key=lambda c: (-neg[c[1]].verdict.score, -jaccard(pos_sh[c[0]], neg_sh[c[1]])))
    elif strategy == "length_matched":
        combos.sort(key=lambda c: abs(len(pos[c[0]].completion) - len(neg[c[1]].completion)))
    elif strategy != "random":
        raise ValueError(f"unknown pairing strategy {strategy!r}; known: {list(STRATEGIES)}")
    return combos


def _pick(combos: list[tuple[int, int]], cap: int) -> list[tuple[int, int]]:
    picked: list[tuple[int, int]] = []
    used_pos: set[int] = set()
    used_neg: set[int] = set()
    for i, j in combos:  # fresh chosen and fresh rejected first
        if len(picked) == cap:
            return picked
        if i not in used_pos and j not in used_neg:
            picked.append((i, j))
            used_pos.add(i)
            used_neg.add(j)
    taken = set(picked)
    for c in combos:
        if len(picked) == cap:
            break
        if c not in taken:
            picked.append(c)
    return picked


def build_pairs(
    candidates: Sequence[Sample],
    *,
    strategy: Strategy = "random",
    per_prompt: int = 2,
    exclude_truncated: bool = True,
    seed: int = 0,
    cut_rejected: str = "none",
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Preference rows (TRL format plus provenance) from verified samples, grouped by prompt text
    (by problem id for samples without a prompt).

    Returns the rows (grouped by prompt, in problem-id order) and counts: prompts, prompts with
    pairs / without a correct / without a usable failed completion, candidates per verdict reason,
    truncated completions left out (chosen and rejected), merged duplicates, completions left out
    for conflicting verdicts, pairs, rejected per reason, mean absolute length difference
    (characters) of the pairs. Each prompt's pairs depend only on ``seed`` and that prompt's
    candidates, not on the rest of the data.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown pairing strategy {strategy!r}; known: {list(STRATEGIES)}")
    if per_prompt < 1:
        raise ValueError(f"pairs per prompt must be >= 1, got {per_prompt}")
    if cut_rejected not in CUTS:
        raise ValueError(f"unknown cut_rejected {cut_rejected!r}; known: {list(CUTS)}")
    # The prompt text groups the pairs; candidates without a prompt are grouped by problem id.
    groups: dict[tuple[str, str], list[Sample]] = defaultdict(list)
    for c in candidates:
        if c.verdict is None:
            raise ValueError(f"sample of problem {c.problem_id!r} has no verdict")
        groups[("prompt", c.prompt) if c.prompt is not None else ("id", c.problem_id)].append(c)
    by_prompt = {k: groups[k] for k in sorted(groups, key=lambda k: (min(c.problem_id for c in groups[k]), k))}
    stats: dict[str, Any] = {
        "candidates": len(candidates), "prompts": len(by_prompt), "prompts_with_pairs": 0,
        "prompts_without_correct": 0, "prompts_without_rejected": 0,
        "truncated_chosen_dropped": 0, "truncated_rejected_dropped": 0, "duplicate_completions": 0,
        "conflicting_verdicts": 0, "duplicate_cut_pairs": 0, "pairs": 0, "candidates_by_reason": dict(Counter(c.verdict.reason for c in candidates)),
    }
    rows: list[dict[str, Any]] = []
    rejected_reasons: Counter[str] = Counter()
    length_gap = 0
    for key, cands in by_prompt.items():
        rng = random.Random(f"{seed}\x00{key[0]}\x00{key[1]}")
        pos: list[Sample] = []
        neg: list[Sample] = []
        same_text: dict[str, list[Sample]] = defaultdict(list)
        for c in cands:
            same_text[normalize(c.completion)].append(c)
        for dups in same_text.values():
            if len({d.verdict.correct for d in dups}) > 1:  # judged both ways (e.g. a timeout): use neither
                stats["conflicting_verdicts"] += len(dups)
                continue
            stats["duplicate_completions"] += len(dups) - 1
            c = dups[0]
            if c.verdict.correct:
                if c.finish_reason == "length":
                    stats["truncated_chosen_dropped"] += 1
                else:
                    pos.append(c)
            elif c.truncated and exclude_truncated:
                stats["truncated_rejected_dropped"] += 1
            else:
                neg.append(c)
        if not pos:
            stats["prompts_without_correct"] += 1
            continue
        if not neg:
            stats["prompts_without_rejected"] += 1
            continue
        stats["prompts_with_pairs"] += 1
        combos = _order(strategy, pos, neg, rng)
        made: set[tuple[str, str]] = set()  # two failed texts may cut to the same one: no pair twice
        for i, j in _pick(combos, len(combos)):
            if len(made) == per_prompt:
                break
            row = pair_row(pos[i], neg[j], strategy)
            row["rejected"] = cut_at_departure(row["chosen"], row["rejected"], cut_rejected)
            if (row["chosen"], row["rejected"]) in made:
                stats["duplicate_cut_pairs"] += 1
                continue
            made.add((row["chosen"], row["rejected"]))
            if row["rejected"] != neg[j].completion:
                row["rejected_cut"] = cut_rejected
            rows.append(row)
            rejected_reasons[neg[j].verdict.reason] += 1
            length_gap += abs(len(row["chosen"]) - len(row["rejected"]))
    stats["pairs"] = len(rows)
    stats["rejected_by_reason"] = dict(rejected_reasons)
    stats["mean_abs_length_diff"] = round(length_gap / len(rows), 2) if rows else 0.0
    stats["rejected_cut"] = sum(r["rejected_cut"] is not None for r in rows)
    return rows, stats


def pairs_from_verified_rows(rows: Sequence[dict[str, Any]], path: Any, *, verifier: str | None = None,
                             **settings: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """:func:`build_pairs` on verified rows (``starloop verify`` output), in TRL's standard or, when the
    rows' prompts are conversations, conversational preference form (the prompt's messages; chosen and
    rejected as assistant messages)."""
    conversations: dict[str, list[dict[str, str]]] = {}
    samples = samples_from_verified_rows(rows, path, verifier, conversations)
    pairs, stats = build_pairs(samples, **settings)
    if conversations:
        for row in pairs:
            row["prompt"] = conversations[row["prompt"]]
            for side in ("chosen", "rejected"):
                row[side] = [{"role": "assistant", "content": row[side]}]
    return pairs, stats


def no_pairs_message(stats: Mapping[str, Any]) -> str:
    """Why no pair could be formed, in one line (for logs and CLI errors)."""
    return (
        f"no preference pairs: {stats['prompts']} prompt(s), none with both a correct and a usable failed "
        f"completion ({stats['prompts_without_correct']} without a correct one, "
        f"{stats['prompts_without_rejected']} without a failed one; verdicts {stats['candidates_by_reason']}; "
        f"truncated left out: {stats['truncated_rejected_dropped']} failed, {stats['truncated_chosen_dropped']} correct)"
    )


def with_rationales(verified: Sequence[Sample], rationales: Sequence[Sample]) -> tuple[list[Sample], int]:
    """``verified`` plus the rationales of problems none of whose own samples is correct (the STaR
    rationales are stored under the hint-free prompt, so they group with the failed samples), and
    how many problems gained a chosen side that way."""
    solved = {s.problem_id for s in verified if s.verdict is not None and s.verdict.correct}
    extra = [r for r in rationales if r.problem_id not in solved and r.verdict is not None and r.verdict.correct]
    return [*verified, *extra], len({r.problem_id for r in extra})


def run(ctx: RunContext, it: int, out: Path) -> dict[str, Any]:
    p = ctx.cfg.pairs
    candidates, rescued = ctx.files.verified(it), 0
    if p.rationales_as_chosen:
        candidates, rescued = with_rationales(candidates, ctx.files.rationales(it))
    rows, stats = build_pairs(candidates, strategy=p.strategy, per_prompt=p.per_prompt,
                              exclude_truncated=p.exclude_truncated, seed=ctx.seed("pairs", it),
                              cut_rejected=p.cut_rejected)
    stats["problems_chosen_from_rationales"] = rescued
    ctx.files.write_rows(out, "pairs", rows)
    log.info("pairs: %d pairs from %d of %d prompts (%s%s%s)", len(rows), stats["prompts_with_pairs"], stats["prompts"],
             p.strategy, f", {rescued} problems with a rationale as chosen" if p.rationales_as_chosen else "",
             f", {stats['rejected_cut']} rejected cut at their first departure ({p.cut_rejected})"
             if p.cut_rejected != "none" else "")
    return stats


STAGE = Stage("pairs", run, needs=("verify", "rationalize"))
