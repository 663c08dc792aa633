"""``starloop report``: table + PNG plots of a run, from its directory alone."""

from __future__ import annotations

import argparse
from pathlib import Path

from starloop.loop.errors import InputError
from starloop.loop.runtime.report import print_table, write_report
from starloop.loop.runtime.rundir import RunDir


def add_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("report", parents=parents, help="table + PNG plots of a run (report.md in the run dir)",
                       description="Write report.md and the plots of a run directory (its own config is used).")
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run directory (with metrics.jsonl)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    rd = RunDir(args.run_dir)
    if not rd.metrics_path.exists():
        raise InputError(f"{args.run_dir} has no metrics.jsonl (not a starloop run directory?)")
    path = write_report(rd)
    print_table(rd)
    pngs = ", ".join(p.name for p in sorted(rd.root.glob("*.png")))
    print(f"wrote {path} and {pngs}")
    return 0
