"""Further ``starloop`` subcommands, each group in its own module."""

from __future__ import annotations

import argparse


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register the extra subcommands on ``sub``."""
    from starloop.loop import cli_eval, cli_train

    cli_train.add_commands(sub)
    cli_eval.add_commands(sub)
