"""Arguments the commands share (what they load and run is in :mod:`starloop.loop.api`)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_config_args(p: argparse.ArgumentParser, *, what: str = "the experiment config",
                    default: str = "the shipped demo config, configs/demo.yaml") -> None:
    """``--config`` and ``--set``: every command that reads a config takes both."""
    p.add_argument("--config", type=Path, default=None, metavar="CONFIG",
                   help=f"YAML file with {what} (default: {default})")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set sampling.n=8 (repeatable; YAML values)")
