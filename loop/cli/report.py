"""``starloop report``: table + PNG plots of a run, from its directory alone; ``--compare``: several
runs' held-out pass@1 in one PNG, seeds of one experiment grouped (mean and min-max band)."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table

from starloop.loop.errors import InputError
from starloop.loop.runtime.compare import plot_compare, read_groups, summary_lines
from starloop.loop.runtime.report import print_table, write_report
from starloop.loop.runtime.rundir import RunDir


def add_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("report", parents=parents, help="table + PNG plots of a run (report.md in the run dir)",
                       description="Write report.md and the plots of a run directory (its own config is used), "
                                   "or with --compare one plot of several runs' held-out pass@1.")
    p.add_argument("run_dir", nargs="?", type=Path, default=None, metavar="RUN_DIR",
                   help="a run directory (with metrics.jsonl)")
    p.add_argument("--compare", nargs="+", type=Path, default=None, metavar="RUN_DIR",
                   help="several run directories: their held-out pass@1 per iteration in one PNG; runs with the "
                        "same config except the seed are one group (mean, min-max band, n=runs)")
    p.add_argument("--output", type=Path, default=None, metavar="PNG",
                   help="with --compare: where the PNG goes (default: compare.png)")
    p.add_argument("--labels", nargs="+", default=None, metavar="LABEL",
                   help="with --compare: one label per run directory (default: the config's name)")
    p.add_argument("--title", default=None, help="with --compare: the plot's title")
    p.add_argument("--levels", nargs="+", default=None, metavar="LEVEL",
                   help="with --compare: one curve per run and level (the held-out problems of that level, e.g. "
                        "the arithmetic task's number of operands) instead of the overall pass@1")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.compare is not None:
        if args.run_dir is not None:
            raise InputError("give RUN_DIR (one run's report) or --compare RUN_DIR ... (several runs), not both")
        return compare(args)
    if args.output is not None or args.labels is not None or args.title is not None or args.levels is not None:
        raise InputError("--output, --labels, --title and --levels go with --compare")
    if args.run_dir is None:
        raise InputError("give a run directory: starloop report RUN_DIR, or starloop report --compare RUN_DIR ...")
    rd = RunDir(args.run_dir)
    if not rd.metrics_path.exists():
        raise InputError(f"{args.run_dir} has no metrics.jsonl (not a starloop run directory?)")
    path = write_report(rd)
    print_table(rd)
    pngs = ", ".join(p.name for p in sorted(rd.root.glob("*.png")))
    print(f"wrote {path} and {pngs}")
    return 0


def compare(args: argparse.Namespace) -> int:
    groups = read_groups(args.compare, args.labels, args.levels)
    path = plot_compare(groups, args.output or Path("compare.png"), args.title)
    header, body = summary_lines(groups)
    table = Table(title="held-out pass@1 (greedy), mean over each group's runs")
    for h in header:
        table.add_column(h, justify="left" if h == "run group" else "right")
    for row in body:
        table.add_row(*row)
    Console(width=max(100, Console().width)).print(table)
    print(f"wrote {path}")
    return 0
