"""``starloop`` subcommands: sample, eval."""

from __future__ import annotations

import argparse


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register this module's subcommands on ``sub``."""
