"""Benchmark: does the loop learn, and does each of its mechanisms earn its place? Named variants
(the loop and its ablations) x seeds, each a full `starloop run`, compared on held-out pass@1.

    python bench/learning.py --suite demo [--variants sft,control] [--seeds 0,1,2] [--iterations N]
                             [--eval-size 1000] [--out bench/results] [--report-only]

A suite is a list of variants, each a config and extra ``--set`` overrides, and a reference
variant. Suite ``demo``: ``sft`` (configs/demo.yaml, the loop), ``control`` (the matched control:
same training steps on the seed data alone), ``no_rationalization``, ``unfiltered`` (no verifier
filter), from configs/ablations/, ``adaptive`` (the loop with ``sampling.adaptive``, capped at
``sampling.n`` samples per problem), the preference-training variants ``sft_dpo``, ``sft_rpo``,
``rpo_only``, ``sft_rpo_rationales`` (their failed texts cut where they depart from the chosen one;
``*_whole``: whole texts, the earlier recipe) and the loop from seed models of other build seeds
(``build_seed_1``, ``build_seed_2``). ``--variants`` picks a subset. Suite ``code``:
configs/demo-code.yaml (see SUITES). Suite ``unlabeled``: configs/demo-unlabeled.yaml (``majority``, learning
6- and 7-operand chains from majority-vote pseudo-labels, each problem's votes drawn under 4 orders of its terms)
against ``own_vote`` (no agreement filter); every other variant votes on the chain as given (``ONE_FORM``): that
earlier config and its own-vote run (``majority_one_form``, ``own_vote_one_form``), both with 8
iterations (``majority_iter8``, ``own_vote_iter8``), all 8 votes (``majority_8of8``, 8 iterations), 750 problems
per iteration (``majority_750``), 20 SFT steps per iteration
(``majority_steps20``), the config's earlier settings (``majority_steps60``, ``own_vote_steps60``,
``majority_7of8``, ``majority_6of8``, ``own_vote_quarter``), a seed model stopped at 70% (``majority_stop70``,
``own_vote_stop70``, 8 iterations), 7-operand chains joining at a 70% solved share (``majority_join70``) and votes
at temperature 1.0 (``majority_temp1``), 12 votes on 333 problems per iteration (``majority_12votes``), other
learning rates (``majority_lr6e4``, ``majority_lr1e3``, ``majority_lr2e4``: 10 iterations) and 16 votes per
problem (``majority_16votes``), compared per level of the held-out set as well (5, 6 and 7 operands;
columns "per level"). Suite ``star``: configs/demo-star.yaml (``star``: STaR's arithmetic task, column-by-column
sums whose lines carry the answer's digits, with rationalization) against ``no_rationalization`` and
``reask_without_hint`` (the failed problems re-asked under the plain prompt, the same number of samples: what the
hint adds over more samples). Runs of different lengths are compared over the iterations both have. ``bench/rescore.py``
scores the finished runs' checkpoints again on a larger held-out set.

Each run is a subprocess,

    starloop run CONFIG --run-dir OUT/learning/SUITE/VARIANT/seed-S --set seed=S [--set ...]
                 --set data.eval.options.per_level=EVAL_SIZE --iterations N

(N: ``--iterations``, else the suite's: 10 for ``demo``, whose config runs 5, so each run reaches its
plateau; the config's own for ``code``)

with its output in ``seed-S.log`` next to its run directory. The held-out set is larger than the
demo's own (``--eval-size``, default 1000 problems, against the demo's 200) so that differences of a
few points are not noise of the eval set. Runs survive sessions: a run whose metrics.jsonl has every
iteration is skipped, a partial one is resumed (`starloop run` resumes a run directory), so the
same command can be run again until everything is done. A changed ``--eval-size`` makes a new
experiment: `starloop run` refuses the old run directories (use another ``--out``).

Written after the runs (or with ``--report-only``, from the run directories alone):

- ``OUT/learning.json``: per suite (merged with other suites' results), per variant and seed, the
  pass@1 curve, final pass@1 and the mean over the last 3 iterations, wall seconds (this bench's
  invocations of the run, from ``OUT/learning/SUITE/invocations.jsonl``; and the stages' own sum),
  samples drawn (sample + rationalize stages; the evaluation's are not counted), distinct train
  problems solved by unhinted sampling over all iterations, failed problems rescued by STaR
  rationalization per iteration, and the comparisons;
- ``OUT/learning.md``: the same as tables, every suite in the JSON;
- ``OUT/learning.png`` (suite demo; other suites ``learning-SUITE.png``): every variant's mean curve
  over seeds with a min-max band (``starloop report --compare``'s plot).

Comparison statistic: for each variant against the reference (``sft``), per seed the difference of
the mean held-out pass@1 over the last 3 iterations (variant - reference, in points; paired by
seed, since a seed fixes the train and eval problems), and the mean, min and max of those
differences. Only seeds where both runs are complete are paired.

Expected wall time on a 2-core CPU machine: a demo run is about 8-11 minutes with the seed model
cached (``$STARLOOP_CACHE``; measured: about 65 s per iteration of ``sft``, sampling 40 s and
training 15 s of it, plus about 20 s of start-up per invocation); the seed model's build, about
4 minutes, happens once per cache. The control is faster (it samples 8 problems per iteration:
about 25 s per iteration). ``--eval-size 1000`` adds about 15 s per evaluation, 2-3 minutes per
run. All 14 variants x 3 seeds: about 7-8 hours. The load average is printed at the start and the
end: on a shared machine other work slows every number.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_OUT = HERE / "results"
LAST = 3  # the comparison statistic: mean held-out pass@1 over the last LAST iterations


@dataclass(frozen=True)
class Variant:
    name: str
    config: str  # relative to the repository
    overrides: tuple[str, ...] = ()


@dataclass(frozen=True)
class Suite:
    name: str
    reference: str
    variants: tuple[Variant, ...]
    eval_size_key: str | None  # the config key that sets the held-out set's size (None: not settable)
    iterations: int | None = None  # iterations per run unless --iterations (None: the config's)
    levels: tuple[str, ...] = ()  # also per level of the held-out set (metrics' per_level): curves, comparisons


# The unlabeled suite's earlier evaluation: 2 sampled completions per held-out problem besides the greedy one.
EVAL_SAMPLED = ("eval.n=2", "eval.k=[1, 2]")
STOP70 = ("model.builtin_options.target_accuracy=0.7",)
# The unlabeled config before its votes were drawn under several statements: the chain as given, 7 of 8 votes.
ONE_FORM = ("label.rewrite=none", "label.min_agreement=0.875")

SUITES = {
    "demo": Suite("demo", "sft", (
        Variant("sft", "configs/demo.yaml"),
        Variant("control", "configs/ablations/control.yaml"),
        Variant("no_rationalization", "configs/ablations/no_rationalization.yaml"),
        Variant("unfiltered", "configs/ablations/unfiltered.yaml"),
        # Adaptive sampling that only stops early (cap = sampling.n): fewer samples, same pass@1?
        Variant("adaptive", "configs/demo.yaml", ("sampling.adaptive.enabled=true", "sampling.adaptive.max_per_problem=8")),
        # Preference training on verified pairs (pairs stage): after SFT, DPO or DPO + NLL (Iterative
        # RPO); DPO + NLL alone; and RPO whose pairs also take STaR rationales as the chosen side for
        # problems the model did not solve itself.
        Variant("sft_dpo", "configs/ablations/sft_dpo.yaml"),
        Variant("sft_rpo", "configs/ablations/sft_rpo.yaml"),
        Variant("rpo_only", "configs/ablations/rpo_only.yaml"),
        Variant("sft_rpo_rationales", "configs/ablations/sft_rpo.yaml", ("pairs.rationales_as_chosen=true",)),
        # The same with whole rejected texts and the earlier learning rates (2e-5 after SFT, 1e-4 alone):
        # the recipe the cut replaced (see configs/ablations/sft_dpo.yaml).
        Variant("sft_dpo_whole", "configs/ablations/sft_dpo.yaml",
                ("pairs.cut_rejected=none", "train.dpo.learning_rate=2.0e-5")),
        Variant("sft_rpo_whole", "configs/ablations/sft_rpo.yaml",
                ("pairs.cut_rejected=none", "train.dpo.learning_rate=2.0e-5")),
        Variant("rpo_only_whole", "configs/ablations/rpo_only.yaml", ("pairs.cut_rejected=none",)),
        # The loop from seed models built with other seeds (is the seed model a lottery?); data.real replays
        # each one's own seed set.
        Variant("build_seed_1", "configs/demo.yaml", ("model.builtin_options.seed=1", "data.real.options.seed=1")),
        Variant("build_seed_2", "configs/demo.yaml", ("model.builtin_options.seed=2", "data.real.options.seed=2")),
    ), eval_size_key="data.eval.options.per_level", iterations=10),  # the demo runs 5; its plateau needs 10
    # Suite `code`: the code demo (configs/demo-code.yaml): programs checked only by their tests in the
    # sandbox, and its matched control (the same steps on the seed programs alone).
    "code": Suite("code", "sft", (
        Variant("sft", "configs/demo-code.yaml"),
        Variant("control", "configs/ablations/code_control.yaml"),
    ), eval_size_key="data.eval.options.per_level"),
    # Suite `unlabeled`: learning 6- and 7-operand chains without answers (configs/demo-unlabeled.yaml: majority-vote
    # pseudo-labels, 8 votes under 4 orders of the terms and 6 of them needed, half the SFT rows replayed from the
    # seed set, 30 SFT steps per iteration, 6 iterations, greedy evaluation only), against the same run without the
    # agreement filter (every sample's own answer its label). Every other variant votes on the chain as given, 7 of
    # 8 votes needed (ONE_FORM, the earlier config). The other variants were benched while the config's evaluation also sampled 2 completions
    # per held-out problem (EVAL_SAMPLED). The in-process engine is seeded once and serves the evaluation and the next
    # iteration's sampling in turn, so that evaluation changes the random stream, not the recipe: the config and
    # the own-vote run with 8 iterations (the comparisons pair runs over the iterations both have); all 8 votes (8
    # iterations); 750 problems per iteration; 20 SFT steps per iteration; and the config's earlier settings (60
    # steps; 6 or 7 of 8 votes; a quarter replayed). Scored per level on the config's own held-out set (200 chains
    # per level; 3 levels).
    "unlabeled": Suite("unlabeled", "majority", (
        Variant("majority", "configs/demo-unlabeled.yaml"),
        Variant("own_vote", "configs/ablations/unlabeled_own_vote.yaml"),
        # Every variant below ran before the config drew its votes under 4 statements (ONE_FORM: the chain as given,
        # 7 of 8 votes); the first two are that earlier config and its own-vote run.
        Variant("majority_one_form", "configs/demo-unlabeled.yaml", ONE_FORM),
        Variant("own_vote_one_form", "configs/ablations/unlabeled_own_vote.yaml", ONE_FORM),
        Variant("majority_iter8", "configs/demo-unlabeled.yaml", (*ONE_FORM, *EVAL_SAMPLED, "iterations=8")),
        Variant("own_vote_iter8", "configs/ablations/unlabeled_own_vote.yaml", (*ONE_FORM, *EVAL_SAMPLED, "iterations=8")),
        Variant("majority_8of8", "configs/demo-unlabeled.yaml", (*ONE_FORM, *EVAL_SAMPLED, "label.min_agreement=1.0", "iterations=8")),
        Variant("majority_750", "configs/demo-unlabeled.yaml", (*ONE_FORM, *EVAL_SAMPLED, "sampling.problems_per_iteration=750")),
        Variant("majority_steps20", "configs/demo-unlabeled.yaml", (*ONE_FORM, *EVAL_SAMPLED, "train.sft.max_steps=20")),
        Variant("majority_steps60", "configs/demo-unlabeled.yaml", (*ONE_FORM, *EVAL_SAMPLED, "train.sft.max_steps=60")),
        Variant("own_vote_steps60", "configs/ablations/unlabeled_own_vote.yaml", (*ONE_FORM, *EVAL_SAMPLED, "train.sft.max_steps=60")),
        Variant("majority_7of8", "configs/demo-unlabeled.yaml",
                (*ONE_FORM, *EVAL_SAMPLED, "train.sft.max_steps=60", "select.real_fraction=0.25")),
        Variant("majority_6of8", "configs/demo-unlabeled.yaml",
                (*ONE_FORM, *EVAL_SAMPLED, "train.sft.max_steps=60", "label.min_agreement=0.75", "select.real_fraction=0.25")),
        Variant("own_vote_quarter", "configs/ablations/unlabeled_own_vote.yaml",
                (*ONE_FORM, *EVAL_SAMPLED, "train.sft.max_steps=60", "select.real_fraction=0.25")),
        # A seed model stopped at 70% of the validation chains (step 600, not 700: 70 s less to build), 8 iterations.
        Variant("majority_stop70", "configs/demo-unlabeled.yaml", (*ONE_FORM, *STOP70, "iterations=8")),
        Variant("own_vote_stop70", "configs/ablations/unlabeled_own_vote.yaml", (*ONE_FORM, *STOP70, "iterations=8")),
        # 7-operand chains join later (when 70% of the sampled 6-operand problems get a label they agree with), and
        # votes drawn at temperature 1.0.
        Variant("majority_join70", "configs/demo-unlabeled.yaml", (*ONE_FORM, "curriculum.threshold=0.7")),
        Variant("majority_temp1", "configs/demo-unlabeled.yaml", (*ONE_FORM, "sampling.temperature=1.0")),
        # 12 votes per problem on 333 problems per iteration: the same number of samples, labels from more votes.
        Variant("majority_12votes", "configs/demo-unlabeled.yaml", (*ONE_FORM, "sampling.n=12", "sampling.problems_per_iteration=333")),
        # The variants below ran after the config's seed model moved to 2 torch threads (the same model to the byte,
        # built in 317 s instead of 502). Another learning rate in the loop (the seed model stopped
        # with its own at about 1.4e-3): higher ones were stopped after 3 iterations (worse at every point); a lower
        # one with 10 iterations (the time the faster build leaves).
        Variant("majority_lr6e4", "configs/demo-unlabeled.yaml", (*ONE_FORM, "train.sft.learning_rate=6.0e-4")),
        Variant("majority_lr1e3", "configs/demo-unlabeled.yaml", (*ONE_FORM, "train.sft.learning_rate=1.0e-3")),
        Variant("majority_lr2e4", "configs/demo-unlabeled.yaml", (*ONE_FORM, "train.sft.learning_rate=2.0e-4", "iterations=10")),
        # 16 votes per problem (a label needs 14 of 16): twice the samples.
        Variant("majority_16votes", "configs/demo-unlabeled.yaml", (*ONE_FORM, "sampling.n=16")),
        # Votes drawn at temperature 0.6 (1.0 was worse than the config's 0.8), and a seed model stopped at 85% of
        # the validation chains (not 80%): a stronger start whose labels are more often right, with less room.
        Variant("majority_temp06", "configs/demo-unlabeled.yaml", (*ONE_FORM, "sampling.temperature=0.6")),
        Variant("majority_stop85", "configs/demo-unlabeled.yaml", (*ONE_FORM, "model.builtin_options.target_accuracy=0.85")),
        # The temperature-0.6 runs resumed on to 8 iterations (the 6 are the same runs, point for point).
        Variant("majority_temp06_iter8", "configs/demo-unlabeled.yaml", (*ONE_FORM, "sampling.temperature=0.6", "iterations=8")),
        # The same with a fifth of each SFT set replayed from earlier iterations' pseudo-labeled rows (the 6-operand
        # chains are not forgotten once 7-operand ones join).
        Variant("majority_temp06_replay", "configs/demo-unlabeled.yaml",
                (*ONE_FORM, "sampling.temperature=0.6", "iterations=8", "select.replay_fraction=0.2")),
    ), eval_size_key=None, levels=("5", "6", "7")),
    # Suite `star`: the rationalization demo (configs/demo-star.yaml: STaR's own arithmetic task, sums worked column
    # by column whose every line carries the answer's digits found so far), without rationalization, and with the
    # failed problems re-asked without the hint (the same number of samples under the plain prompt).
    "star": Suite("star", "star", (
        Variant("star", "configs/demo-star.yaml"),
        Variant("no_rationalization", "configs/demo-star.yaml", ("rationalize.enabled=false",)),
        Variant("reask_without_hint", "configs/demo-star.yaml", ('rationalize.hint_template="{prompt}"',)),
    ), eval_size_key="data.eval.options.per_level"),
}


# ----------------------------------------------------------------------------------------------
# Run directories: state and summaries (read from the run directory alone).


def run_dir(out: Path, suite: str, variant: str, seed: int) -> Path:
    return out / "learning" / suite / variant / f"seed-{seed}"


def metrics_rows(root: Path) -> list[dict[str, Any]]:
    """The rows of a run directory's metrics.jsonl; empty when it has none yet, or a damaged one (which
    `starloop run` rebuilds from the evaluate stages)."""
    path = root / "metrics.jsonl"
    if not path.is_file():
        return []
    try:
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except ValueError:
        return []
    return [r for r in rows if isinstance(r, dict) and isinstance(r.get("iteration"), int)
            and isinstance(r.get("pass@1"), int | float)]


def read_metrics(root: Path, level: str | None = None) -> dict[int, float]:
    """``{iteration: pass@1}`` of a run directory (pass@1 a fraction; of the held-out problems of ``level`` only,
    when given)."""
    if level is None:
        return {r["iteration"]: float(r["pass@1"]) for r in metrics_rows(root)}
    per = {r["iteration"]: ((r.get("per_level") or {}).get(level) or {}).get("pass@1") for r in metrics_rows(root)}
    return {it: float(v) for it, v in per.items() if isinstance(v, int | float)}


def level_summary(root: Path, levels: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """Per level: the curve (percent), start, final and last-3 mean."""
    out = {}
    for lv in levels:
        curve = read_metrics(root, lv)
        lm = last_mean(curve)
        out[lv] = {"curve": {str(it): round(100 * v, 2) for it, v in sorted(curve.items())},
                   "start": round(100 * curve[0], 2) if 0 in curve else None,
                   "final": round(100 * curve[max(curve)], 2) if curve else None,
                   "last3_mean": round(100 * lm, 2) if lm is not None else None}
    return out


def run_state(root: Path, iterations: int) -> str:
    """``done`` (every iteration 0..iterations evaluated), ``partial`` (a run directory with less) or ``new``."""
    if not root.exists():
        return "new"
    curve = read_metrics(root)
    return "done" if all(it in curve for it in range(iterations + 1)) else "partial"


def last_mean(curve: dict[int, float], last: int = LAST) -> float | None:
    """Mean pass@1 over the last ``last`` evaluated iterations after the starting model (fewer if the run has
    fewer); None before iteration 1."""
    its = sorted(it for it in curve if it >= 1)[-last:]
    return statistics.fmean(curve[it] for it in its) if its else None


def samples_drawn(root: Path) -> int:
    """Completions sampled for training: the sample stages' and the rationalize stages' (hinted) samples."""
    path = root / "manifest.json"
    if not path.is_file():
        return 0
    stages = json.loads(path.read_text(encoding="utf-8")).get("stages", {})
    return sum(int(v.get("samples") or 0) for k, v in stages.items() if k.endswith("/sample")) + sum(
        int(v.get("hinted_samples") or 0) for k, v in stages.items() if k.endswith("/rationalize"))


def solved_train_problems(root: Path) -> int:
    """Distinct train problems solved by unhinted sampling (a verified sample of the sample stage), over all
    iterations so far: how much of the pool the loop has learned to solve on its own."""
    solved: set[str] = set()
    for path in sorted(root.glob("iter-*/verify/verified.jsonl")):
        with path.open(encoding="utf-8") as f:
            for line in f:
                row = json.loads(line)
                if (row.get("verdict") or {}).get("correct") and not row.get("hinted"):
                    solved.add(row["problem_id"])
    return len(solved)


def rescued_per_iteration(root: Path) -> dict[str, int]:
    """Failed problems STaR rationalization rescued (a verified rationale kept), per iteration."""
    path = root / "manifest.json"
    if not path.is_file():
        return {}
    stages = json.loads(path.read_text(encoding="utf-8")).get("stages", {})
    return {k.split("/")[0].removeprefix("iter-").lstrip("0") or "0": int(v.get("rationalized_problems") or 0)
            for k, v in sorted(stages.items()) if k.endswith("/rationalize")}


def stage_seconds(root: Path) -> float:
    path = root / "manifest.json"
    if not path.is_file():
        return 0.0
    stages = json.loads(path.read_text(encoding="utf-8")).get("stages", {})
    return sum(float(v.get("seconds") or 0.0) for v in stages.values())


def invocations(out: Path, suite: str) -> list[dict[str, Any]]:
    path = out / "learning" / suite / "invocations.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def summarise_run(root: Path, iterations: int, calls: list[dict[str, Any]], levels: tuple[str, ...] = ()) -> dict[str, Any]:
    """One run: its curve (percent), final and last-3 pass@1, wall seconds, samples drawn (and per level)."""
    curve = read_metrics(root)
    lm = last_mean(curve)
    return {"run_dir": str(root), "complete": run_state(root, iterations) == "done",
            "curve": {str(it): round(100 * v, 2) for it, v in sorted(curve.items())},
            "final": round(100 * curve[max(curve)], 2) if curve else None,
            "last3_mean": round(100 * lm, 2) if lm is not None else None,
            "wall_s": round(sum(c["seconds"] for c in calls), 1) if calls else None, "invocations": len(calls),
            "stage_s": round(stage_seconds(root), 1), "samples_drawn": samples_drawn(root),
            "solved_train": solved_train_problems(root), "rescued": rescued_per_iteration(root),
            "eval_problems": max((r.get("problems") or 0 for r in metrics_rows(root)), default=None),
            "levels": level_summary(root, levels)}


def _paired_last3(a: dict[str, Any], b: dict[str, Any]) -> tuple[float | None, float | None]:
    """The last-3 means of two runs over the iterations both have: a run with more iterations than the other
    (a variant benched before the reference's iteration count changed) is compared at the other's horizon."""
    ca, cb = a.get("curve"), b.get("curve")
    if not ca or not cb:
        return a["last3_mean"], b["last3_mean"]
    horizon = min(max(map(int, ca)), max(map(int, cb)))
    means = [last_mean({int(it): v for it, v in c.items() if int(it) <= horizon}) for c in (ca, cb)]
    return tuple(round(m, 2) if m is not None else None for m in means)  # type: ignore[return-value]


def paired_differences(variant: dict[str, dict[str, Any]], reference: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per seed: variant - reference of the last-3 mean pass@1 (points), over the iterations both runs have, for
    seeds where both are complete; with their mean, min and max (None without a pair)."""
    pairs = {s: _paired_last3(r, reference[s]) for s, r in sorted(variant.items())
             if s in reference and r["complete"] and reference[s]["complete"]}
    per_seed = {s: round(a - b, 2) for s, (a, b) in pairs.items() if a is not None and b is not None}
    vals = list(per_seed.values())
    ratios = [variant[s]["solved_train"] / reference[s]["solved_train"] for s in per_seed
              if variant[s].get("solved_train") is not None and reference[s].get("solved_train")]
    return {"per_seed": per_seed, "n": len(vals), "mean": round(statistics.fmean(vals), 2) if vals else None,
            "min": min(vals, default=None), "max": max(vals, default=None),
            "solved_train_ratio": round(statistics.fmean(ratios), 3) if ratios else None}


# ----------------------------------------------------------------------------------------------
# Running.


def planned_iterations(variant: Variant, seed: int, iterations: int | None) -> int:
    if iterations is not None:
        return iterations
    from starloop.loop.config import load_config

    return load_config(REPO / variant.config, [*variant.overrides, f"seed={seed}"]).iterations


def command(suite: Suite, variant: Variant, seed: int, root: Path, args: argparse.Namespace) -> list[str]:
    cmd = [sys.executable, "-m", "starloop.loop.cli", "run", str(REPO / variant.config), "--run-dir", str(root),
           "--set", f"seed={seed}"]
    for o in variant.overrides:
        cmd += ["--set", o]
    if suite.eval_size_key and args.eval_size:
        cmd += ["--set", f"{suite.eval_size_key}={args.eval_size}"]
    if args.iterations is not None:
        cmd += ["--iterations", str(args.iterations)]
    return cmd


def execute(cmd: list[str], log_path: Path) -> tuple[int, float, bool]:
    """Run ``cmd`` with its output appended to ``log_path``: (exit status, seconds, interrupted). On Ctrl-C
    the run (which got the SIGINT too) is given a minute to stop at its own pace, keeping finished stages."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    t0, interrupted = time.time(), False
    with log_path.open("a", encoding="utf-8") as log:
        log.write(f"\n$ {' '.join(cmd)}\n")
        log.flush()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        try:
            rc = proc.wait()
        except KeyboardInterrupt:
            interrupted = True
            try:
                rc = proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                rc = proc.wait()
    return rc, time.time() - t0, interrupted


def last_line(path: Path) -> str:
    lines = [x for x in path.read_text(encoding="utf-8", errors="replace").splitlines() if x.strip()]
    return lines[-1].strip() if lines else ""


def run_all(suite: Suite, variants: list[Variant], seeds: list[int], args: argparse.Namespace) -> int:
    """Run (or skip, or resume) every variant x seed; returns the number of failed runs."""
    from tqdm import tqdm

    plan = [(v, s) for v in variants for s in seeds]
    failed = 0
    calls_path = args.out / "learning" / suite.name / "invocations.jsonl"
    bar = tqdm(plan, desc=f"suite {suite.name}", unit="run", dynamic_ncols=True)
    for v, s in bar:
        root = run_dir(args.out, suite.name, v.name, s)
        state = run_state(root, planned_iterations(v, s, args.iterations))
        bar.set_postfix_str(f"{v.name} seed {s}")
        if state == "done":
            tqdm.write(f"{v.name} seed {s}: complete, skipped ({root})")
            continue
        log_path = root.parent / f"seed-{s}.log"
        rc, seconds, interrupted = execute(command(suite, v, s, root, args), log_path)
        calls_path.parent.mkdir(parents=True, exist_ok=True)
        with calls_path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps({"variant": v.name, "seed": s, "resumed": state == "partial", "rc": rc,
                                 "seconds": round(seconds, 1), "ended": time.strftime("%Y-%m-%dT%H:%M:%S")}) + "\n")
        curve = read_metrics(root)
        final = f", pass@1 {100 * curve[max(curve)]:.1f}% at iteration {max(curve)}" if curve else ""
        if rc != 0:
            failed += 1
            tqdm.write(f"{v.name} seed {s}: FAILED (exit {rc}) after {seconds:.0f} s: {last_line(log_path)} "
                       f"(log: {log_path})")
        else:
            tqdm.write(f"{v.name} seed {s}: {'resumed' if state == 'partial' else 'ran'} in {seconds:.0f} s{final}")
        if interrupted or rc in (130, 143):
            raise KeyboardInterrupt
    return failed


# ----------------------------------------------------------------------------------------------
# Report.


def summarise(suite: Suite, variants: list[Variant], seeds: list[int], args: argparse.Namespace) -> dict[str, Any]:
    calls = invocations(args.out, suite.name)
    out: dict[str, Any] = {"suite": suite.name, "reference": suite.reference, "last": LAST, "variants": {}}
    for v in variants:
        runs = {}
        for s in seeds:
            root = run_dir(args.out, suite.name, v.name, s)
            if root.exists():
                mine = [c for c in calls if c["variant"] == v.name and c["seed"] == s]
                runs[str(s)] = summarise_run(root, planned_iterations(v, s, args.iterations), mine, suite.levels)
        out["variants"][v.name] = {"config": v.config, "overrides": list(v.overrides), "seeds": runs}
    out["eval_problems"] = sorted({r["eval_problems"] for d in out["variants"].values() for r in d["seeds"].values()
                                   if r["eval_problems"]})
    ref = out["variants"].get(suite.reference, {}).get("seeds", {})
    out["comparisons"] = {name: {"reference": suite.reference, **paired_differences(d["seeds"], ref),
                                 "levels": {lv: paired_differences(*(per_level(runs, lv) for runs in (d["seeds"], ref)))
                                            for lv in suite.levels}}
                          for name, d in out["variants"].items() if name != suite.reference and ref}
    out["levels"] = list(suite.levels)
    return out


def per_level(runs: dict[str, dict[str, Any]], level: str) -> dict[str, dict[str, Any]]:
    """Runs as :func:`paired_differences` reads them, with the last-3 mean of one level."""
    return {s: {"complete": r["complete"], "last3_mean": r["levels"][level]["last3_mean"],
                "curve": r["levels"][level].get("curve")} for s, r in runs.items() if level in r.get("levels", {})}


def _cell(v: Any, fmt: str = "{:.1f}") -> str:
    return "-" if v is None else fmt.format(v)


def run_table(result: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = ["variant", "seed", "iterations", "start %", "final %", f"last-{LAST} mean %", "wall s", "stage s",
              "samples drawn", "train solved", "rescued by STaR"]
    body = []
    for name, d in result["variants"].items():
        for s, r in d["seeds"].items():
            its = list(r["curve"])
            body.append([name, s, f"{its[-1] if its else '-'}{'' if r['complete'] else ' (partial)'}",
                         _cell(r["curve"].get("0")), _cell(r["final"]), _cell(r["last3_mean"]),
                         _cell(r["wall_s"], "{:.0f}"), _cell(r["stage_s"], "{:.0f}"), str(r["samples_drawn"]),
                         str(r.get("solved_train", "-")), " ".join(map(str, r.get("rescued", {}).values())) or "-"])
            if result.get("levels"):
                body[-1].append("; ".join(f"{lv}: {_cell(x['start'])} -> {_cell(x['final'])}"
                                          for lv, x in r.get("levels", {}).items()) or "-")
    if result.get("levels"):
        header.append("per level: start -> final %")
    return header, body


def comparison_table(result: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = ["variant", f"vs {result['reference']}", "pairs", "mean diff (points)", "min", "max", "per seed",
              "train solved ratio"]
    body = [[name, result["reference"], str(c["n"]), _cell(c["mean"], "{:+.1f}"), _cell(c["min"], "{:+.1f}"),
             _cell(c["max"], "{:+.1f}"), ", ".join(f"seed {s}: {d:+.1f}" for s, d in c["per_seed"].items()) or "-",
             _cell(c.get("solved_train_ratio"), "{:.2f}")]
            for name, c in result["comparisons"].items()]
    if result.get("levels"):
        header.append("per level: mean diff (points)")
        for row, c in zip(body, result["comparisons"].values(), strict=True):
            row.append("; ".join(f"{lv}: {_cell(x['mean'], '{:+.1f}')}" for lv, x in c.get("levels", {}).items()))
    return header, body


def print_table(title: str, header: list[str], body: list[list[str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for h in header:
        table.add_column(h, justify="left" if h in ("variant", "per seed") else "right")
    for row in body:
        table.add_row(*row)
    Console(width=max(120, Console().width)).print(table)


def _md(header: list[str], body: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *["| " + " | ".join(b) + " |" for b in body]]


def figure_name(suite: str) -> str:
    return "learning.png" if suite == "demo" else f"learning-{suite}.png"


def write_markdown(data: dict[str, Any], path: Path) -> None:
    md = ["# Learning benchmark (`bench/learning.py`)", "",
          f"Held-out greedy pass@1 in percent; the comparison is the mean over the last {LAST} iterations, "
          "variant - reference per seed (points), over the seeds where both runs are complete. Wall s: this "
          "benchmark's invocations of the run (seed-model build included when it happened); stage s: the sum of "
          "the run's stage times.", ""]
    for name, result in data.items():
        load = result.get("machine", {}).get("load_avg") or ["-", "-"]
        sizes = " or ".join(map(str, result.get("eval_problems") or [])) or "-"
        md += [f"## Suite `{name}`", "", f"Held-out problems per evaluation: {sizes}; machine load average "
               f"(1 min) {load[0]} at the start, {load[1]} at the end.", "",
               *_md(*run_table(result)), "", *_md(*comparison_table(result)), "",
               f"![held-out pass@1 per iteration]({figure_name(name)})", ""]
    path.write_text("\n".join(md), encoding="utf-8")


def write_figure(result: dict[str, Any], path: Path) -> Path | None:
    from starloop.loop.runtime.compare import plot_compare, read_groups

    dirs, labels = [], []
    for name, d in result["variants"].items():
        for r in d["seeds"].values():
            if r["curve"]:
                dirs.append(r["run_dir"])
                labels.append(name)
    if not dirs:
        return None
    title = f"suite {result['suite']}: held-out pass@1, mean over seeds (band: min-max)"
    return plot_compare(read_groups(dirs, labels, result.get("levels") or None), path, title)


# ----------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--suite", choices=sorted(SUITES), default="demo")
    p.add_argument("--variants", default=None, help="comma-separated variant names (default: all of the suite)")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated run seeds (default 0,1,2)")
    p.add_argument("--iterations", type=int, default=None, help="iterations per run (default: demo 10, code: the config's)")
    p.add_argument("--eval-size", type=int, default=1000, help="held-out problems (default 1000; 0: the config's)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results folder (default bench/results)")
    p.add_argument("--report-only", action="store_true", help="no runs: the report from the run directories")
    args = p.parse_args(argv)
    args.out = args.out.resolve()
    suite = SUITES[args.suite]
    if args.iterations is None:
        args.iterations = suite.iterations
    missing = sorted({v.config for v in suite.variants if not (REPO / v.config).is_file()})
    if missing:
        print(f"suite {suite.name}: {', '.join(missing)} does not exist (yet); nothing to run", file=sys.stderr)
        return 2
    names = args.variants.split(",") if args.variants else [v.name for v in suite.variants]
    unknown = [n for n in names if n not in {v.name for v in suite.variants}]
    if unknown:
        print(f"suite {suite.name} has no variant {', '.join(unknown)} (it has "
              f"{', '.join(v.name for v in suite.variants)})", file=sys.stderr)
        return 2
    variants = [v for v in suite.variants if v.name in names]
    seeds = [int(s) for s in args.seeds.split(",")]
    if suite.eval_size_key is None and args.eval_size:
        print(f"suite {suite.name}: --eval-size is not applied (no eval_size_key in SUITES); the config's held-out set")
    load_before = os.getloadavg()
    print(f"suite {suite.name}: {len(variants)} variant(s) x {len(seeds)} seed(s) into {args.out / 'learning'}; "
          f"load average {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f} at start; "
          f"STARLOOP_CACHE={os.environ.get('STARLOOP_CACHE', '~/.cache/starloop')}")
    failed, interrupted, t0 = 0, False, time.time()
    if not args.report_only:
        try:
            failed = run_all(suite, variants, seeds, args)
        except KeyboardInterrupt:
            interrupted = True
            print("interrupted: finished stages are kept, rerun the same command to resume")
    result = summarise(suite, variants, seeds, args)
    load_after = os.getloadavg()
    result["machine"] = {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                         "load_avg": [round(load_before[0], 2), round(load_after[0], 2)]}
    print_table(f"suite {suite.name}: held-out pass@1 per run", *run_table(result))
    print_table(f"paired by seed: mean of the last {LAST} iterations, variant - {suite.reference} (points)",
                *comparison_table(result))
    args.out.mkdir(parents=True, exist_ok=True)
    json_path = args.out / "learning.json"
    data = json.loads(json_path.read_text(encoding="utf-8")) if json_path.exists() else {}
    data[suite.name] = result
    json_path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    write_markdown(data, args.out / "learning.md")
    fig = write_figure(result, args.out / figure_name(suite.name))
    print(f"load average {load_before[0]:.2f} at start, {load_after[0]:.2f} at end; this session "
          f"{time.time() - t0:.0f} s")
    print(f"wrote {json_path}, {args.out / 'learning.md'}" + (f", {fig}" if fig else ""))
    return 130 if interrupted else 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
