"""``starloop verifiers``: list the registered verifiers (built in and from plugins)."""

from __future__ import annotations

import argparse

from starloop.verifiers.registry import list_verifiers


def add_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("verifiers", parents=parents, help="list registered verifiers",
                       description="List the registered verifiers: name, version, what they check.")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    for spec in list_verifiers():
        doc = (spec.fn.__doc__ or "").strip().splitlines()
        print(f"{spec.name:12s} v{spec.version:6s} {doc[0] if doc else ''}")
    return 0
