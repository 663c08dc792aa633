"""Benchmark: starloop's math verifier vs Math-Verify, side by side on the same cases.

    python bench/verify_math.py [--cases PUBLIC.jsonl] [--own bench/math_cases_own.jsonl]
                                [--repeats 3] [--out bench/results/verify_math.json]

Case sets: the public answer-equivalence cases harvested from other graders' test suites
(``shared/bench-data/math_public_cases.jsonl``, see its README; ``ambiguous`` cases are not
scored) and our own cases (``bench/math_cases_own.jsonl``: Math-Verify's known weaknesses,
hedges, magnitudes, units, intervals, matrices...). Both verifiers read ``pred`` and ``gold``
through their own answer extraction.

Each case carries the options of the grader it came from; both verifiers get the
equivalent of those options:

- Math-Verify: its test-suite call (``compare_strings`` with the case's match types,
  ``float_rounding``, ``strict``, ``allow_set_relation_comp``; ``sympy_expr_eq`` on SymPy
  objects; ``verify(parse(gold), parse(pred))`` with defaults otherwise).
- ours: ``float_rounding`` -> ``float_rounding``; Qwen's ``is_close`` -> ``rel_tol=1e-4``;
  the hendrycks string grader (ordered lists) -> ``unordered_lists=False``; ``strict=False``
  -> ``strict_variables=False``; ``allow_set_relation_comp`` -> ``relation_matches_set``.
  Cases without options (our own) use the defaults of both.

Timing (medians over ``--repeats``; the machine is shared, so single runs are noisy):

- throughput: cases / wall-clock seconds for the whole set. Math-Verify runs case after
  case in one process (a long-lived child, so a case that hangs inside C code can be cut
  off at ``--mv-limit`` seconds and counted as rejected); ours runs through the batch API
  with 1 and 2 worker processes, workers restarted (cold caches) before each repeat.
- latency: per-case wall-clock time of a single verification; p99 and max. For ours with
  N workers, N threads call :func:`verify_math` concurrently.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEFAULT_PUBLIC = Path(__file__).resolve().parents[1].parent / "shared/bench-data/math_public_cases.jsonl"
DEFAULT_OWN = HERE / "math_cases_own.jsonl"
DEFAULT_OUT = HERE / "results" / "verify_math.json"
MODULE = Path(__file__).stem  # workers import this file by name (its folder is on their path)


def load_cases(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        raise SystemExit(f"case file not found: {path} (use --cases / --own)")
    cases = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    for k, case in enumerate(cases):
        case.setdefault("id", f"{path.stem}-{k}")
    return cases


def our_options(case: dict[str, Any]) -> dict[str, Any]:
    """The math verifier options equivalent to the grader options recorded with a case."""
    config = case.get("config") or {}
    call = str(config.get("call", ""))
    options: dict[str, Any] = {}
    if config.get("float_rounding") is not None:
        options["float_rounding"] = int(config["float_rounding"])
    if "is_close=True" in call:
        options["rel_tol"] = 1e-4
    if call.startswith("is_equiv"):
        options["unordered_lists"] = False
    if config.get("strict") is False:
        options["strict_variables"] = False
    if config.get("allow_set_relation_comp"):
        options["relation_matches_set"] = True
    return options


# --------------------------------------------------------------------------- Math-Verify side


def mv_judge(case: dict[str, Any]) -> tuple[bool, float]:
    """Math-Verify's verdict on one case, as its own test suite calls it (runs in a worker)."""
    import sympy
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify
    from math_verify.grader import sympy_expr_eq

    config = case.get("config") or {}
    call = str(config.get("call", ""))
    gold, pred = case["gold"], case["pred"]
    # Math-Verify reads LaTeX only inside math delimiters: bare answers get them.
    if config.get("pre_extracted"):
        gold, pred = f"${gold}$", f"${pred}$"
    elif not call and case.get("gold_form") == "answer":
        gold = f"${gold}$"
    start = time.perf_counter()
    try:
        if call == "compare_strings":
            targets = []
            for kind in config.get("match_types", ["latex", "expr"]):
                targets.append(LatexExtractionConfig(boxed_match_priority=0) if kind == "latex" else ExprExtractionConfig())
            result = verify(
                parse(gold, targets), parse(pred, targets),
                float_rounding=config.get("float_rounding", 6), strict=config.get("strict", True),
                allow_set_relation_comp=config.get("allow_set_relation_comp", False),
            )
        elif call == "sympy_expr_eq":
            result = sympy_expr_eq(sympy.sympify(gold), sympy.Float(pred), config["float_rounding"],
                                   config.get("numeric_precision", 15))
        else:
            result = verify(parse(gold), parse(pred), float_rounding=config.get("float_rounding", 6))
    except Exception:
        result = False
    return bool(result), time.perf_counter() - start


def run_math_verify(cases: list[dict[str, Any]], repeats: int, limit: float) -> dict[str, Any]:
    from starloop.verifiers.math.pool import Job, WorkerPool

    pool = WorkerPool(preload=("math_verify",))
    try:
        pool.start(1)
        pool.run([Job(f"{MODULE}:mv_judge", (cases[0],))], timeout=limit, memory_mb=4096)  # warm-up
        runs = []
        for _ in range(repeats):
            outcomes = pool.run([Job(f"{MODULE}:mv_judge", (c,)) for c in cases], timeout=limit, memory_mb=4096)
            accepted = [bool(o.status == "ok" and o.value[0]) for o in outcomes]
            seconds = [o.value[1] if o.status == "ok" else o.seconds for o in outcomes]
            runs.append((accepted, seconds, [o.status for o in outcomes]))
    finally:
        pool.shutdown()
    accepted, _, statuses = runs[-1]
    totals = [sum(s) for _, s, _ in runs]
    latencies = [statistics.median(run[1][k] for run in runs) for k in range(len(cases))]
    return {
        "accepted": accepted,
        "cut_off": sum(s != "ok" for s in statuses),
        "throughput": len(cases) / statistics.median(totals),
        "latencies": latencies,
    }


# --------------------------------------------------------------------------- our side


def _items(cases: list[dict[str, Any]]):
    from starloop.verifiers import Problem, VerifyItem

    return [VerifyItem(c["pred"], Problem(id=str(c["id"]), task="math", prompt="", answer=c["gold"])) for c in cases]


def _grouped(cases: list[dict[str, Any]]) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = {}
    for k, case in enumerate(cases):
        groups.setdefault(json.dumps(our_options(case), sort_keys=True), []).append(k)
    return groups


def run_ours(cases: list[dict[str, Any]], workers: int, repeats: int) -> dict[str, Any]:
    from starloop.verifiers import verify_batch
    from starloop.verifiers.math import MathConfig, start_workers, stop_workers, verify_math

    items = _items(cases)
    groups = _grouped(cases)
    totals, verdicts = [], [None] * len(cases)
    for _ in range(repeats):
        stop_workers()
        start_workers(workers)  # start-up is not timed; caches start cold
        start = time.perf_counter()
        for key, rows in groups.items():
            out = verify_batch("math", [items[k] for k in rows], options=json.loads(key), workers=workers)
            for k, verdict in zip(rows, out, strict=True):
                verdicts[k] = verdict
        totals.append(time.perf_counter() - start)

    def one(k: int) -> float:
        config = MathConfig(**our_options(cases[k]))
        start = time.perf_counter()
        verify_math(items[k].completion, items[k].problem, config=config)
        return time.perf_counter() - start

    runs = []
    for _ in range(repeats):
        stop_workers()
        start_workers(workers)
        with ThreadPoolExecutor(workers) as ex:
            runs.append(list(ex.map(one, range(len(cases)))))
    latencies = [statistics.median(run[k] for run in runs) for k in range(len(cases))]
    worst = [max(run[k] for run in runs) for k in range(len(cases))]
    return {
        "accepted": [v.correct for v in verdicts],
        "reasons": [v.reason for v in verdicts],
        "details": [v.detail for v in verdicts],
        "throughput": len(cases) / statistics.median(totals),
        "latencies": latencies,
        "worst_latency": max(worst),
    }


# --------------------------------------------------------------------------- scoring and report


def score(cases: list[dict[str, Any]], accepted: list[bool]) -> dict[str, Any]:
    scored = [(c, a) for c, a in zip(cases, accepted, strict=True) if not c.get("ambiguous")]
    correct = sum(bool(c["expected"]) == a for c, a in scored)
    false_accepts = [c["id"] for c, a in scored if a and not c["expected"]]
    false_rejects = [c["id"] for c, a in scored if not a and c["expected"]]
    return {
        "scored": len(scored),
        "correct": correct,
        "accuracy": correct / len(scored) if scored else 0.0,
        "false_accepts": len(false_accepts),
        "false_rejects": len(false_rejects),
        "false_accept_ids": false_accepts,
        "false_reject_ids": false_rejects,
    }


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]


def summarize(name: str, cases: list[dict[str, Any]], result: dict[str, Any]) -> dict[str, Any]:
    lat = [v for v, c in zip(result["latencies"], cases, strict=True) if not c.get("ambiguous")]
    return {
        "verifier": name,
        **score(cases, result["accepted"]),
        "throughput_cases_per_s": result["throughput"],
        "p99_latency_ms": 1000 * p99(lat),
        "max_latency_ms": 1000 * max(result.get("worst_latency", max(lat)), max(lat)),
    }


def print_table(title: str, rows: list[dict[str, Any]]) -> None:
    headers = ["verifier", "correct", "accuracy", "false acc.", "false rej.", "cases/s", "p99 ms", "max ms"]
    cells = [
        [r["verifier"], f"{r['correct']}/{r['scored']}", f"{100 * r['accuracy']:.1f}%", str(r["false_accepts"]),
         str(r["false_rejects"]), f"{r['throughput_cases_per_s']:.1f}", f"{r['p99_latency_ms']:.0f}",
         f"{r['max_latency_ms']:.0f}"]
        for r in rows
    ]
    try:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=title)
        for h in headers:
            table.add_column(h, justify="left" if h == "verifier" else "right")
        for row in cells:
            table.add_row(*row)
        Console(width=max(100, Console().width)).print(table)
    except ImportError:
        widths = [max(len(h), *(len(row[i]) for row in cells)) for i, h in enumerate(headers)]
        print(title)
        print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
        for row in cells:
            print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=Path, default=DEFAULT_PUBLIC, help="public cases (JSONL)")
    parser.add_argument("--own", type=Path, default=DEFAULT_OWN, help="our own cases (JSONL)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--mv-limit", type=float, default=10.0, help="seconds before a Math-Verify case is cut off")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(HERE))  # so that worker processes can import this module by name

    from starloop.verifiers.math import MathConfig

    report: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "repeats": args.repeats,
        "our_timeout_s": MathConfig().timeout,
        "sets": {},
    }
    ok = True
    for label, path in (("public", args.cases), ("own", args.own)):
        cases = load_cases(path)
        mv = run_math_verify(cases, args.repeats, args.mv_limit)
        ours1 = run_ours(cases, 1, args.repeats)
        ours2 = run_ours(cases, 2, args.repeats)
        rows = [
            summarize("Math-Verify (1 process)", cases, mv),
            summarize("starloop math (1 worker)", cases, ours1),
            summarize("starloop math (2 workers)", cases, ours2),
        ]
        print_table(f"{label}: {path.name} ({len(cases)} cases)", rows)
        disagreements = [
            {"id": c["id"], "expected": c["expected"], "ours": a, "reason": r, "detail": d, "math_verify": m,
             "pred": c["pred"][-160:], "gold": c["gold"][-120:]}
            for c, a, r, d, m in zip(cases, ours1["accepted"], ours1["reasons"], ours1["details"], mv["accepted"],
                                     strict=True)
            if not c.get("ambiguous") and a != bool(c["expected"])
        ]
        for row in disagreements:
            print(f"  ours wrong on {row['id']}: expected {row['expected']}, got {row['reason']} ({row['detail']})")
        limit = MathConfig().timeout + 1
        ok &= all(r["max_latency_ms"] <= 1000 * limit for r in rows[1:])
        report["sets"][label] = {
            "path": str(path),
            "cases": len(cases),
            "rows": rows,
            "math_verify_cut_off": mv["cut_off"],
            "our_disagreements": disagreements,
            "math_verify_only_wrong": [
                c["id"] for c, a, m in zip(cases, ours1["accepted"], mv["accepted"], strict=True)
                if not c.get("ambiguous") and m != bool(c["expected"]) and a == bool(c["expected"])
            ],
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
