"""The label stage: pseudo-labels for train problems that have no gold answer, by majority vote.

Self-consistency as a label (Wang et al. 2023; Lee et al. 2025 train on majority-voted answers):
the iteration's own samples of an unlabeled problem (never drawn twice) vote with their final
answers, read as the math verifier reads them (only an answer the completion marks as final:
``\\boxed{}``, ``#### x``, "the answer is x"). Answers the math verifier judges equivalent
(``1/2`` and ``0.5``, ``x = 5`` and ``5``) vote together. The largest group's answer becomes the
problem's pseudo-label when it holds at least ``label.min_agreement`` of the problem's samples
and no other group ties with it; otherwise the problem is skipped this iteration (its samples
are not verified, so nothing of it is trained on). A truncated or unparseable sample counts in
the denominator but votes for nothing.

A code problem without tests is labeled by execution agreement instead (CodeT; see
``starloop.verifiers.agreement``): the model writes tests for it (``label.tests_n`` completions of
``label.tests_prompt``, kept in ``tests.jsonl``), every solution runs against every test in the
sandbox, and the tests of the best consensus set (solutions x tests they pass) become its
pseudo-tests, when those solutions are at least ``label.min_agreement`` of its samples.

With ``label.rewrite`` the sample stage draws an unlabeled problem's samples under ``label.forms`` equivalent
statements (:func:`sample_forms`; for the arithmetic task, reorderings of the chain's terms), and they vote
together: a slip the model makes on one statement gives different wrong answers on the others, while the
right answer is the same on all of them. Each sample keeps the statement it was drawn for as its ``prompt``,
so it trains under that statement.

The verify stage then checks the samples against the pseudo-label with the problem's verifier.
Labels are written with their provenance (votes, agreement, iteration, every answer's votes) to
``labels.jsonl``, never change the problems themselves, and never reach evaluation (held-out
problems need gold answers).
"""

from __future__ import annotations

import dataclasses
import logging
import random
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from starloop.loop.config import RunConfig
from starloop.loop.errors import InputError
from starloop.loop.records import GenParams, Sample, SampleRequest
from starloop.loop.runtime.context import RunContext, Stage
from starloop.loop.tasks.arithmetic import reorderings
from starloop.verifiers.agreement import Consensus, dual_agreement, extract_tests
from starloop.verifiers.math import verify_math_batch
from starloop.verifiers.math.extract import find_answer
from starloop.verifiers.records import Problem, Verdict
from starloop.verifiers.registry import VerifyItem, get_verifier

log = logging.getLogger(__name__)

STATUSES = ("labeled", "tie", "low_agreement", "no_answer", "own")
TESTS = "tests.jsonl"  # label: the tests written for unlabeled code problems, as Sample rows
Equivalent = Callable[[Sequence[tuple[str, str]]], list[bool]]


Rewrite = Callable[[str, int, random.Random], list[str]]
REWRITES: dict[str, Rewrite] = {"arithmetic": reorderings}
"""``label.rewrite``: the statement, then up to ``k - 1`` distinct equivalent statements of it."""


def unlabeled(problem: Problem) -> bool:
    """A problem with nothing to check a completion against: no gold answer, no tests."""
    return problem.answer is None and problem.tests is None


@dataclass
class Vote:
    """The outcome of one problem's vote."""

    status: str
    """``labeled``; ``tie`` (two groups share the most votes); ``low_agreement`` (the largest group holds
    less than ``min_agreement``); ``no_answer`` (no sample has a final answer); ``own`` (``label.vote: own``:
    no label, each sample is its own)."""
    label: str | None
    votes: int
    n: int
    answers: dict[str, int] = field(default_factory=dict)
    """Each group's answer (its most written form) and its votes, largest first."""

    @property
    def agreement(self) -> float:
        return self.votes / self.n if self.n else 0.0


def _find(parent: list[int], i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


def group_answers(answers: Sequence[str], equivalent: Equivalent) -> list[list[int]]:
    """Indices of ``answers`` grouped by equivalence (exact text first, then ``equivalent`` on every pair of
    distinct texts); transitive, in order of first appearance."""
    texts = list(dict.fromkeys(a.strip() for a in answers))
    parent = list(range(len(texts)))
    pairs = [(i, j) for i in range(len(texts)) for j in range(i + 1, len(texts))]
    for (i, j), same in zip(pairs, equivalent([(texts[i], texts[j]) for i, j in pairs]) if pairs else [], strict=True):
        if same:
            parent[_find(parent, j)] = _find(parent, i)
    groups: dict[int, list[int]] = defaultdict(list)
    index = {t: k for k, t in enumerate(texts)}
    for k, a in enumerate(answers):
        groups[_find(parent, index[a.strip()])].append(k)
    return list(groups.values())


def vote(answers: Sequence[str | None], min_agreement: float, equivalent: Equivalent) -> Vote:
    """The majority vote of one problem's sample answers (None: a sample without a final answer)."""
    given = [a for a in answers if a is not None and a.strip()]
    n = len(answers)
    if not given:
        return Vote("no_answer", None, 0, n)
    groups = sorted(group_answers(given, equivalent), key=len, reverse=True)
    forms = [Counter(given[k].strip() for k in g).most_common(1)[0][0] for g in groups]
    tally = {form: len(g) for form, g in zip(forms, groups, strict=True)}
    top = len(groups[0])
    if len(groups) > 1 and len(groups[1]) == top:
        return Vote("tie", None, top, n, tally)
    if top / n < min_agreement:
        return Vote("low_agreement", None, top, n, tally)
    return Vote("labeled", forms[0], top, n, tally)


def math_equivalent(workers: int = 1) -> Equivalent:
    """Equivalence of answer texts as the math verifier decides it (the second of a pair as the gold)."""

    def judge(pairs: Sequence[tuple[str, str]]) -> list[bool]:
        items = [VerifyItem(f"\\boxed{{{a}}}", Problem(id=f"vote-{k}", task="math", prompt="", answer=b))
                 for k, (a, b) in enumerate(pairs)]
        return [v.correct for v in verify_math_batch(items, workers=workers)] if items else []

    return judge


def marked_answer(completion: str) -> str | None:
    """The final answer a completion marks as such (``\\boxed{}``, ``#### x``, "the answer is x"), as the math
    verifier reads it; None for a completion without one, or that does not stand by it. A bare text or its last
    number is no vote: a model that repeats the same garbage must not label a problem with it."""
    found = find_answer(completion)
    return found.answer if found.answer and found.source in ("boxed", "phrase") and not found.withdrawn else None


def vote_all(samples: Sequence[Sample], problem_ids: Sequence[str], min_agreement: float,
             equivalent: Equivalent) -> dict[str, Vote]:
    """Votes for every problem of ``problem_ids`` that has samples; the pairs to judge for all problems go
    to ``equivalent`` in one batch."""
    wanted = set(problem_ids)
    answers: dict[str, list[str | None]] = defaultdict(list)
    for s in samples:
        if s.problem_id in wanted:
            answers[s.problem_id].append(None if s.finish_reason == "length" else marked_answer(s.completion))
    asked: dict[tuple[str, str], bool] = {}

    def collect(pairs: Sequence[tuple[str, str]]) -> list[bool]:
        for p in pairs:
            asked.setdefault(p, False)
        return [False] * len(pairs)

    for a in answers.values():  # first pass: every pair any problem needs, judged together
        vote(a, min_agreement, collect)
    todo = list(asked)
    for p, same in zip(todo, equivalent(todo) if todo else [], strict=True):
        asked[p] = same
    return {pid: vote(a, min_agreement, lambda pairs: [asked[p] for p in pairs]) for pid, a in answers.items()}


def label_row(pid: str, v: Vote, iteration: int, forms: int = 1) -> dict[str, Any]:
    """``forms``: the statements its samples were drawn under (``label.rewrite``)."""
    return {"problem_id": pid, "status": v.status, "label": v.label, "votes": v.votes, "n": v.n,
            "agreement": round(v.agreement, 4), "iteration": iteration, "answers": v.answers, "forms": forms}


def code_row(pid: str, c: Consensus, tests: list[str], n: int, min_agreement: float, iteration: int) -> dict[str, Any]:
    """The label row of a code problem: the winning consensus set's tests, when enough solutions pass them."""
    votes = len(c.solutions)
    status = c.status
    if status == "labeled" and votes / n < min_agreement:
        status = "low_agreement"
    elif status == "no_consensus":
        status = "no_answer"
    return {"problem_id": pid, "status": status, "tests": [tests[j] for j in c.tests] if status == "labeled" else None,
            "votes": votes, "n": n, "agreement": round(votes / n, 4) if n else 0.0, "iteration": iteration,
            "candidate_tests": len(tests), "score": c.score, "runner_up": c.runner_up}


def labeled_problems(problems: dict[str, Problem], rows: Sequence[dict[str, Any]]) -> dict[str, Problem]:
    """``problems`` with each labeled row's pseudo-label (an answer, or a code problem's tests) in place
    (provenance in ``meta.pseudo_label``); problems without a label are left out when they have none of their own."""
    out = {pid: p for pid, p in problems.items() if not unlabeled(p)}
    for r in rows:
        if r["status"] == "labeled" and r["problem_id"] in problems:
            p = problems[r["problem_id"]]
            meta = {**p.meta, "pseudo_label": {k: r[k] for k in ("votes", "n", "agreement", "iteration")}}
            out[p.id] = (dataclasses.replace(p, tests=r["tests"], meta=meta) if r.get("tests") is not None
                         else dataclasses.replace(p, answer=r["label"], meta=meta))
    return out


def judged_by(problem: Problem) -> str:
    """What a pseudo-label must be for ``problem``'s verifier: ``answer`` or ``tests``; InputError if neither."""
    check = get_verifier(problem.task).check
    for kind, trial in (("answer", {"answer": "0"}), ("tests", {"tests": "assert True"})):
        try:
            check([dataclasses.replace(problem, **trial)])
            return kind
        except ValueError:
            continue
    raise InputError(f"unlabeled problem {problem.id!r}: its verifier {problem.task!r} judges neither by an answer nor "
                     f"by tests, so no pseudo-label can stand in for its gold")


def enabled(cfg: RunConfig) -> bool:
    return cfg.label.enabled


def own_verdict(sample: Sample) -> Verdict:
    """``label.vote: own`` (no agreement filter): the sample's own marked final answer is its label."""
    if sample.finish_reason == "length":
        return Verdict.fail("truncated", detail="cut off before a final answer")
    answer = marked_answer(sample.completion)
    if answer is None:
        return Verdict.fail("unparseable", detail="no marked final answer")
    return Verdict.ok(answer, "its own answer taken as its label (label.vote: own)")


def label_code(ctx: RunContext, it: int, out: Path, problems: list[Problem],
               samples: Sequence[Sample]) -> list[dict[str, Any]]:
    """CodeT for ``problems``: sample tests (``label.tests_prompt``, kept in ``tests.jsonl``), run every solution
    against every test in the sandbox, keep the best consensus set's tests."""
    cfg, s = ctx.cfg.label, ctx.cfg.sampling
    params = GenParams(cfg.tests_n, s.temperature, s.top_p, s.max_tokens, tuple(s.stop), seed=ctx.seed("label", it))
    prompts = ctx.prompts(problems, texts=[cfg.tests_prompt.format(prompt=p.prompt) for p in problems])
    written = ctx.sampling.sample(SampleRequest(ctx.sampler_model(it), problems, prompts, params, iteration=it))
    ctx.files.write_samples(out, "label", written, name=TESTS)
    tests: dict[str, list[str]] = defaultdict(list)
    for w in written:
        for t in extract_tests(w.completion):
            if t not in tests[w.problem_id] and len(tests[w.problem_id]) < cfg.max_tests:
                tests[w.problem_id].append(t)
    solutions: dict[str, list[str]] = defaultdict(list)
    for x in samples:
        solutions[x.problem_id].append(x.completion)
    code_cfg = get_verifier("code").make_config(ctx.cfg.verify.options.get("code"))
    rows = []
    for p in tqdm(problems, desc="label (code)", disable=not ctx.progress, unit="problem"):
        c = dual_agreement(p, solutions[p.id], tests[p.id], config=code_cfg, workers=ctx.cfg.verify.workers)
        rows.append(code_row(p.id, c, tests[p.id], len(solutions[p.id]), cfg.min_agreement, it))
    return rows


def statements(problem: Problem, rewrite: Rewrite, k: int, rng: random.Random, held_out: set[str]) -> list[str]:
    """The statements an unlabeled ``problem`` is sampled under: its own, then its rewrites that are no held-out
    problem's statement; a labeled problem: its own only."""
    if not unlabeled(problem):
        return [problem.prompt]
    own, *rest = rewrite(problem.prompt, k, rng)
    return [own, *(f for f in rest if f not in held_out)]


def sample_forms(ctx: RunContext, it: int, model: str, pool: Sequence[Problem], params: GenParams) -> list[Sample]:
    """``params.n`` samples of each problem of ``pool``, an unlabeled one's split evenly among ``label.forms``
    statements of it (``label.rewrite``; drawn with the label seed of ``it``), in pool order, indexed 0..n-1 per
    problem; one sampling call per number of samples per statement. A rewrite that is the statement of a held-out
    problem is never drawn (a sample trains under the statement it was drawn for)."""
    cfg = ctx.cfg.label
    rng = random.Random(ctx.seed("label", it))
    held_out = {p.prompt for p in ctx.eval_problems}
    calls: dict[int, list[tuple[tuple[int, int], Problem, str]]] = defaultdict(list)
    for k, p in enumerate(pool):
        forms = statements(p, REWRITES[cfg.rewrite], cfg.forms, rng, held_out)
        for j, text in enumerate(forms):
            count = params.n // len(forms) + (j < params.n % len(forms))
            if count:
                calls[count].append(((k, j), p, text))
    drawn: list[tuple[tuple[int, int], int, Sample]] = []
    for count, items in sorted(calls.items()):
        problems, texts = [p for _, p, _ in items], [t for _, _, t in items]
        request = SampleRequest(model, problems, ctx.prompts(problems, texts=texts),
                                dataclasses.replace(params, n=count), iteration=it)
        drawn += [(items[i // count][0], i, s) for i, s in enumerate(ctx.sampling.sample(request))]
    out: list[Sample] = []
    index: Counter[str] = Counter()
    for _, _, s in sorted(drawn, key=lambda d: (d[0], d[1])):
        out.append(dataclasses.replace(s, index=index[s.problem_id]))
        index[s.problem_id] += 1
    return out


def run(ctx: RunContext, it: int, out: Path) -> dict[str, Any]:
    cfg = ctx.cfg.label
    samples = ctx.files.samples(it)
    todo = sorted({s.problem_id for s in samples if unlabeled(ctx.problems_by_id[s.problem_id])})
    kinds = {pid: judged_by(ctx.problems_by_id[pid]) for pid in todo}
    if cfg.vote == "own" and "tests" in kinds.values():
        raise InputError("label.vote: own takes each sample's own answer as its label; code problems have no answer "
                         "to take (use label.vote: majority, execution agreement)")
    answer_ids = [pid for pid in todo if kinds[pid] == "answer"]
    own = cfg.vote == "own"
    votes = vote_all(samples, answer_ids, 1.0 if own else cfg.min_agreement, math_equivalent(ctx.cfg.verify.workers))
    if own:  # the tally is kept for the record; every sample with an answer trains (verify stage)
        votes = {pid: dataclasses.replace(v, status="own", label=None) for pid, v in votes.items()}
    forms: dict[str, set[str | None]] = defaultdict(set)
    for x in samples:
        forms[x.problem_id].add(x.prompt)
    rows = [label_row(pid, votes[pid], it, len(forms[pid])) for pid in answer_ids]
    code = [ctx.problems_by_id[pid] for pid in todo if kinds[pid] == "tests"]
    if code:
        rows += label_code(ctx, it, out, code, [x for x in samples if kinds.get(x.problem_id) == "tests"])
    ctx.files.write_rows(out, "label", sorted(rows, key=lambda r: r["problem_id"]))
    counts = Counter(r["status"] for r in rows)
    agreements = [r["agreement"] for r in rows if r["status"] == "labeled"]
    stats = {"unlabeled_problems": len(todo), "code_problems": len(code), **{k: counts[k] for k in STATUSES},
             "mean_agreement": round(sum(agreements) / len(agreements), 4) if agreements else None}
    log.info("label: %d of %d unlabeled problems labeled (%d by majority vote, %d by execution agreement; tie %d, "
             "agreement below %.2f %d, no answer %d)", counts["labeled"], len(todo), len(answer_ids), len(code),
             counts["tie"], cfg.min_agreement, counts["low_agreement"], counts["no_answer"])
    return stats


STAGE = Stage("label", run, needs=("sample",), when=enabled)
