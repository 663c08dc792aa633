"""Rescore finished runs on a larger held-out set: every checkpoint of each run, greedily, on N problems per
level, without touching the runs.

    OMP_NUM_THREADS=1 python bench/rescore.py RUN_DIR... [--per-level 1000] [--reference VARIANT]
                                              [--out bench/results/rescore.json] [--markdown FILE]

A run scores each checkpoint on its config's held-out set, which for the unlabeled demo is 200 chains per
level: one point of 200 moves by about 3.5 points, and iteration 0 (the same seed model in every run) reads
anywhere from 53.5% to 64% on 6-operand chains depending on which chains the run seed drew. A gain measured
against that one point carries its noise. This script evaluates each checkpoint a run's evaluate stages scored
(the model named in their samples; iteration 0 is the starting model) again with the run's own config, its
held-out set enlarged to ``--per-level`` problems per level (``data.eval.options.per_level``; drawn with the
run's seed, as the run draws its own, so the run's problems are among them), greedy decoding only. A
checkpoint is what it is whatever the run's evaluation sampled, so rescoring never changes what a run learned.

Per run and level it reports the curve, the mean of the last 3 iterations and its gain over iteration 0;
with ``--reference``, per variant (a run directory's parent folder, e.g. ``majority`` of
``.../majority/seed-0``) the paired difference to the reference variant's run of the same seed, per level,
over the iterations both runs have. Results are written to ``--out`` as each checkpoint finishes; rerunning
the same command skips what is there. Rescoring every checkpoint of a 6-iteration run on 3,000 problems takes
about 4 minutes on one core.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
LAST = 3
GREEDY_ONLY = ("eval.n=0", "eval.k=[]", "runtime.progress=false")


def checkpoints(root: Path) -> dict[int, str]:
    """``{iteration: model}`` for every finished evaluate stage of run directory ``root``: the model its greedy
    samples name (a checkpoint inside the run, or the starting model), else iteration ``it``'s trained model."""
    from starloop.loop.runtime.artifacts import Artifacts
    from starloop.loop.runtime.rundir import RunDir

    rd = RunDir(root)
    out = {}
    for key in rd.manifest()["stages"]:
        it, stage = key.split("/")
        it = int(it.removeprefix("iter-"))
        if stage != "evaluate" or not rd.is_done(key):
            continue
        first = next(iter((rd.path(key) / "greedy.jsonl").read_text(encoding="utf-8").splitlines()), "")
        model = json.loads(first).get("model") if first.strip() else None
        if not model or not Path(model).is_dir():
            model = str(Artifacts(rd).model(it)) if it > 0 else None
        if model and Path(model).is_dir():
            out[it] = model
    return dict(sorted(out.items()))


def rescore(root: Path, it: int, model: str, per_level: int, size_key: str) -> dict[str, Any]:
    """Greedy pass@1 of ``model`` on run ``root``'s held-out set enlarged to ``per_level`` problems per level."""
    from starloop.loop.api import evaluate_model  # heavy: loads vLLM / torch

    t0 = time.time()
    result = evaluate_model(model, config=root / "config.yaml",
                            overrides=[f"{size_key}={per_level}", *GREEDY_ONLY])
    levels = {lv: {"pass@1": b["pass@1"], "problems": b["problems"]} for lv, b in (result.get("per_level") or {}).items()}
    return {"iteration": it, "model": model, "problems": result["problems"], "pass@1": result["pass@1"],
            "per_level": levels, "seconds": round(time.time() - t0, 1)}


def curve(rows: list[dict[str, Any]], level: str | None) -> dict[int, float]:
    """``{iteration: pass@1 in percent}`` of rescored rows, overall or of one level."""
    if level is None:
        return {r["iteration"]: 100 * r["pass@1"] for r in rows}
    return {r["iteration"]: 100 * r["per_level"][level]["pass@1"] for r in rows if level in r["per_level"]}


def last_mean(c: dict[int, float], its: list[int] | None = None) -> float | None:
    """Mean over the last ``LAST`` iterations after 0 (of ``its`` when given)."""
    pick = sorted(it for it in (c if its is None else its) if it >= 1 and it in c)[-LAST:]
    return statistics.fmean(c[it] for it in pick) if pick else None


def summary(rows: list[dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    """Per level (and ``all``): start, last-3 mean and gain, in points."""
    levels = sorted({lv for r in rows for lv in r["per_level"]}, key=lambda s: (len(s), s))
    out = {}
    for lv in [None, *levels]:
        c = curve(rows, lv)
        lm = last_mean(c)
        out[lv or "all"] = {"start": c.get(0), "last3": lm,
                            "gain": None if lm is None or 0 not in c else lm - c[0]}
    return out


def paired(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> dict[str, float | None]:
    """Per level (and ``all``): last-3 mean of ``a`` minus that of ``b``, over the iterations both have."""
    out = {}
    for lv in ["all", *sorted({x for r in a for x in r["per_level"]}, key=lambda s: (len(s), s))]:
        ca, cb = curve(a, None if lv == "all" else lv), curve(b, None if lv == "all" else lv)
        both = sorted(set(ca) & set(cb))
        ma, mb = last_mean(ca, both), last_mean(cb, both)
        out[lv] = None if ma is None or mb is None else ma - mb
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", type=Path, help="run directories (VARIANT/seed-S folders of bench/learning.py)")
    p.add_argument("--per-level", type=int, default=1000, help="held-out problems per level (default 1000)")
    p.add_argument("--size-key", default="data.eval.options.per_level", help="the config key that sets it")
    p.add_argument("--reference", default=None, help="variant (parent folder name) to pair the others with")
    p.add_argument("--out", type=Path, default=HERE / "results" / "rescore.json", help="results (JSON), resumable")
    p.add_argument("--markdown", type=Path, default=None, help="also write the tables here")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    results: dict[str, Any] = json.loads(args.out.read_text(encoding="utf-8")) if args.out.exists() else {}
    load = os.getloadavg()[0]
    from tqdm import tqdm

    from starloop.loop.fileio import write_json

    todo = []
    for root in args.runs:
        root = root.resolve()
        if not (root / "manifest.json").is_file():
            print(f"{root}: not a run directory (no manifest.json)", file=sys.stderr)
            return 2
        done = {r["iteration"] for r in results.get(str(root), {}).get(str(args.per_level), [])}
        todo += [(root, it, m) for it, m in checkpoints(root).items() if it not in done]
    for root, it, model in tqdm(todo, desc="rescoring", unit="checkpoint", dynamic_ncols=True):
        row = rescore(root, it, model, args.per_level, args.size_key)
        runs = results.setdefault(str(root), {}).setdefault(str(args.per_level), [])
        runs[:] = sorted([*runs, row], key=lambda r: r["iteration"])
        write_json(args.out, results)

    rows = {root.resolve(): results.get(str(root.resolve()), {}).get(str(args.per_level), []) for root in args.runs}
    lines = report(rows, args.per_level, args.reference)
    print(f"load average {load:.2f} at the start")
    print("\n".join(lines))
    if args.markdown:
        args.markdown.write_text("\n".join(lines) + "\n", encoding="utf-8")
        print(f"wrote {args.markdown}")
    print(f"wrote {args.out}")
    return 0


def report(rows: dict[Path, list[dict[str, Any]]], per_level: int, reference: str | None) -> list[str]:
    """Markdown: per run the curve per level, start, last-3 mean and gain; with ``reference``, paired differences."""
    out = [f"Greedy pass@1 %, {per_level} held-out problems per level (`bench/rescore.py`); gain: mean of the last "
           f"{LAST} iterations minus iteration 0.", "", "| run | level | curve | start | last 3 | gain |",
           "|---|---|---|---|---|---|"]
    for root, rs in rows.items():
        for lv, v in summary(rs).items():
            if v["start"] is None or v["last3"] is None:
                continue
            c = curve(rs, None if lv == "all" else lv)
            out.append(f"| {root.parent.name}/{root.name} | {lv} | {' '.join(f'{x:.1f}' for x in c.values())} | "
                       f"{v['start']:.1f} | {v['last3']:.1f} | {v['gain']:+.1f} |")
    refs = {root.name: rs for root, rs in rows.items() if root.parent.name == reference}
    pairs = [(root, paired(rs, refs[root.name])) for root, rs in rows.items()
             if reference and root.parent.name != reference and root.name in refs]
    if pairs:
        levels = list(pairs[0][1])
        out += ["", f"Paired by seed: last-{LAST} mean minus {reference}'s, over the iterations both have (points).", "",
                "| run | " + " | ".join(levels) + " |", "|---|" + "---|" * len(levels)]
        out += [f"| {root.parent.name}/{root.name} | " + " | ".join("-" if d[lv] is None else f"{d[lv]:+.1f}" for lv in levels)
                + " |" for root, d in pairs]
    return out


if __name__ == "__main__":
    sys.exit(main())
