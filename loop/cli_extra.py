"""Further ``starloop`` subcommands (sample, pairs, train, eval), kept apart from the core CLI."""

from __future__ import annotations

import argparse


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register the extra subcommands on ``sub``."""
