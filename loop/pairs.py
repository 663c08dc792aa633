"""DPO preference pairs from verified completions: chosen = a verified-correct completion,
rejected = a failed completion of the same prompt.

Rows are TRL's standard preference format (``prompt``, ``chosen``, ``rejected`` strings; the prompt
is the rendered text the model saw, as in the SFT rows) plus provenance columns (:data:`COLUMNS`).

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

Selection, at most ``per_prompt`` pairs per prompt: the combinations are taken in the strategy's
order, first only those whose chosen and rejected are both still unused (k pairs use k distinct
chosen and k distinct rejected completions where the prompt has that many), then the remaining
combinations in order.
"""

from __future__ import annotations

import logging
import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from starloop.loop.dedup import jaccard, shingles
from starloop.loop.select import normalize
from starloop.loop.types import Sample
from starloop.verifiers.types import Verdict

log = logging.getLogger(__name__)

Strategy = Literal["random", "hardest", "length_matched"]
STRATEGIES: tuple[str, ...] = ("random", "hardest", "length_matched")

# Column -> datasets feature type, in output order. The first three are TRL's preference format.
COLUMNS: dict[str, str] = {
    "prompt": "string",
    "chosen": "string",
    "rejected": "string",
    "problem_id": "string",
    "iteration": "int64",
    "strategy": "string",
    "verifier": "string",
    "verifier_version": "string",
    "chosen_reason": "string",
    "rejected_reason": "string",
    "chosen_score": "float64",
    "rejected_score": "float64",
    "chosen_finish_reason": "string",
    "rejected_finish_reason": "string",
    "chosen_model": "string",
    "rejected_model": "string",
    "chosen_temperature": "float64",
    "rejected_temperature": "float64",
    "chosen_seed": "int64",
    "rejected_seed": "int64",
}


@dataclass(frozen=True)
class Candidate:
    """A verified completion as pairing sees it: from a loop :class:`Sample` or a ``starloop verify``
    row. Provenance fields are None where the source does not record them."""

    prompt: str | None
    """The rendered prompt; None when the source has none (then pairs group by problem id and
    carry an empty prompt)."""
    problem_id: str
    completion: str
    verdict: Verdict
    finish_reason: str | None = None
    iteration: int | None = None
    model: str | None = None
    temperature: float | None = None
    seed: int | None = None
    verifier: str | None = None
    verifier_version: str | None = None

    @property
    def truncated(self) -> bool:
        return self.verdict.reason == "truncated" or self.finish_reason == "length"

    @classmethod
    def from_sample(cls, s: Sample, verifier: str | None = None, verifier_version: str | None = None) -> Candidate:
        if s.verdict is None:
            raise ValueError(f"sample of problem {s.problem_id!r} has no verdict")
        return cls(
            prompt=s.prompt, problem_id=s.problem_id, completion=s.completion, verdict=Verdict.from_dict(s.verdict),
            finish_reason=s.finish_reason, iteration=s.iteration, model=s.model or None,
            temperature=s.temperature, seed=s.seed, verifier=verifier, verifier_version=verifier_version,
        )


def candidates_from_samples(samples: Iterable[Sample], task_of: Mapping[str, str]) -> list[Candidate]:
    """Candidates from a run's verified samples; ``task_of`` maps problem id -> verifier name."""
    from starloop.verifiers.registry import get_verifier

    out = []
    for s in samples:
        spec = get_verifier(task_of[s.problem_id])
        out.append(Candidate.from_sample(s, spec.name, spec.version))
    return out


def _similarity(a: str, b: str) -> float:
    return jaccard(shingles(a), shingles(b))


def _order(strategy: str, pos: list[Candidate], neg: list[Candidate], rng: random.Random) -> list[tuple[int, int]]:
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


def _row(c: Candidate, r: Candidate, strategy: str) -> dict[str, Any]:
    return {
        "prompt": c.prompt or "",
        "chosen": c.completion,
        "rejected": r.completion,
        "problem_id": c.problem_id,
        "iteration": c.iteration,
        "strategy": strategy,
        "verifier": c.verifier or r.verifier,
        "verifier_version": c.verifier_version or r.verifier_version,
        "chosen_reason": c.verdict.reason,
        "rejected_reason": r.verdict.reason,
        "chosen_score": c.verdict.score,
        "rejected_score": r.verdict.score,
        "chosen_finish_reason": c.finish_reason,
        "rejected_finish_reason": r.finish_reason,
        "chosen_model": c.model,
        "rejected_model": r.model,
        "chosen_temperature": c.temperature,
        "rejected_temperature": r.temperature,
        "chosen_seed": c.seed,
        "rejected_seed": r.seed,
    }


def build_pairs(
    candidates: Sequence[Candidate],
    *,
    strategy: Strategy = "random",
    per_prompt: int = 2,
    exclude_truncated: bool = True,
    seed: int = 0,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Preference rows (TRL format plus provenance) from ``candidates``, grouped by prompt text
    (by problem id for candidates without a prompt).

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
    # The prompt text groups the pairs; candidates without a prompt are grouped by problem id.
    groups: dict[tuple[str, str], list[Candidate]] = defaultdict(list)
    for c in candidates:
        groups[("prompt", c.prompt) if c.prompt is not None else ("id", c.problem_id)].append(c)
    by_prompt = {k: groups[k] for k in sorted(groups, key=lambda k: (min(c.problem_id for c in groups[k]), k))}
    stats: dict[str, Any] = {
        "candidates": len(candidates), "prompts": len(by_prompt), "prompts_with_pairs": 0,
        "prompts_without_correct": 0, "prompts_without_rejected": 0,
        "truncated_chosen_dropped": 0, "truncated_rejected_dropped": 0, "duplicate_completions": 0,
        "conflicting_verdicts": 0, "pairs": 0, "candidates_by_reason": dict(Counter(c.verdict.reason for c in candidates)),
    }
    rows: list[dict[str, Any]] = []
    rejected_reasons: Counter[str] = Counter()
    length_gap = 0
    for key, cands in by_prompt.items():
        rng = random.Random(f"{seed}\x00{key[0]}\x00{key[1]}")
        pos: list[Candidate] = []
        neg: list[Candidate] = []
        same_text: dict[str, list[Candidate]] = defaultdict(list)
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
        for i, j in _pick(_order(strategy, pos, neg, rng), per_prompt):
            rows.append(_row(pos[i], neg[j], strategy))
            rejected_reasons[neg[j].verdict.reason] += 1
            length_gap += abs(len(pos[i].completion) - len(neg[j].completion))
    stats["pairs"] = len(rows)
    stats["rejected_by_reason"] = dict(rejected_reasons)
    stats["mean_abs_length_diff"] = round(length_gap / len(rows), 2) if rows else 0.0
    return rows, stats


def no_pairs_message(stats: Mapping[str, Any]) -> str:
    """Why no pair could be formed, in one line (for logs and CLI errors)."""
    return (
        f"no preference pairs: {stats['prompts']} prompt(s), none with both a correct and a usable failed "
        f"completion ({stats['prompts_without_correct']} without a correct one, "
        f"{stats['prompts_without_rejected']} without a failed one; verdicts {stats['candidates_by_reason']}; "
        f"truncated left out: {stats['truncated_rejected_dropped']} failed, {stats['truncated_chosen_dropped']} correct)"
    )


# ---------------------------------------------------------------------------------------------
# Writing a preference dataset: save_to_disk + JSONL + Parquet + dataset card.


def features():
    """The datasets ``Features`` of a pairs dataset (stable types even when a column is all None)."""
    import datasets

    return datasets.Features({k: datasets.Value(t) for k, t in COLUMNS.items()})


def to_dataset(rows: Sequence[Mapping[str, Any]]):
    """A ``datasets.Dataset`` of preference rows with the :data:`COLUMNS` schema."""
    import datasets

    return datasets.Dataset.from_list([{k: r.get(k) for k in COLUMNS} for r in rows], features=features())


def dataset_card(stats: Mapping[str, Any], meta: Mapping[str, Any]) -> str:
    """A Hugging Face dataset card (README.md) for a pairs dataset: counts, settings, per-reason stats."""
    reasons = sorted(set(stats["candidates_by_reason"]) | set(stats["rejected_by_reason"]))
    reason_rows = "\n".join(
        f"| {r} | {stats['candidates_by_reason'].get(r, 0)} | {stats['rejected_by_reason'].get(r, 0)} |"
        for r in reasons
    )
    settings = "\n".join(f"- {k}: `{v}`" for k, v in meta.items())
    columns = ", ".join(f"`{c}`" for c in COLUMNS)
    return f"""---
tags:
- dpo
- preference
- starloop
configs:
- config_name: default
  data_files: pairs.parquet
---

# Preference pairs (DPO)

Chosen = a verified-correct completion, rejected = a failed completion of the same prompt, in TRL's
standard preference format (`prompt`, `chosen`, `rejected`; the prompt is the rendered text the model
was sampled with). Made by `starloop pairs`.

## Counts

| | |
|---|---|
| pairs | {stats['pairs']} |
| prompts | {stats['prompts']} |
| prompts with pairs | {stats['prompts_with_pairs']} |
| prompts without a correct completion | {stats['prompts_without_correct']} |
| prompts without a usable failed completion | {stats['prompts_without_rejected']} |
| candidate completions | {stats['candidates']} |
| duplicate completions merged | {stats['duplicate_completions']} |
| completions judged both ways, left out | {stats['conflicting_verdicts']} |
| truncated failed completions left out | {stats['truncated_rejected_dropped']} |
| truncated correct completions left out | {stats['truncated_chosen_dropped']} |
| mean length difference chosen/rejected (chars) | {stats['mean_abs_length_diff']} |

## Settings

{settings}

## Verdict reasons

| reason | candidates | as rejected in pairs |
|---|---|---|
{reason_rows}

## Files and columns

`pairs.parquet`, `pairs.jsonl`, and the `datasets` files of `save_to_disk` (this folder loads with
`datasets.load_from_disk`). Columns: {columns}.

```python
import datasets
from trl import DPOConfig, DPOTrainer

ds = datasets.load_from_disk("THIS_FOLDER")
trainer = DPOTrainer(model="MODEL", args=DPOConfig(output_dir="out"), train_dataset=ds)
```
"""


def write_dataset(rows: Sequence[Mapping[str, Any]], stats: Mapping[str, Any], out: str | Path,
                  meta: Mapping[str, Any]) -> Path:
    """Write ``rows`` to the (new) folder ``out``: save_to_disk files, pairs.jsonl, pairs.parquet,
    stats.json and README.md. Returns ``out``."""
    import json

    out = Path(out)
    ds = to_dataset(rows)
    ds.save_to_disk(str(out))
    ds.to_parquet(str(out / "pairs.parquet"))
    with (out / "pairs.jsonl").open("w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps({k: r.get(k) for k in COLUMNS}, ensure_ascii=False) + "\n")
    (out / "stats.json").write_text(json.dumps({"stats": dict(stats), "settings": dict(meta)}, indent=2) + "\n")
    (out / "README.md").write_text(dataset_card(stats, meta), encoding="utf-8")
    return out
