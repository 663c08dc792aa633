"""The run directory: resolved config, manifest of finished stages, atomic stage outputs, the
metrics file, and parts of unfinished stages kept across interruptions.

A stage writes into ``iter-NNN/.<stage>.partial`` and is renamed to ``iter-NNN/<stage>`` when
complete; only then is it recorded in ``manifest.json`` (itself replaced atomically). A stage
directory not in the manifest is an interrupted attempt and is discarded on resume, so a
SIGKILL at any moment never corrupts or loses a finished stage.

Work inside a stage that is worth keeping across an interruption (a sampler replica's shard;
later, server requests and verification output) goes to :class:`Parts`: one folder per call,
named by a digest of everything the parts depend on, one JSONL file per finished part.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml

from starloop.loop.config import RunConfig, diff_configs, dump_config
from starloop.loop.runtime.fileio import atomic_open, read_json, read_jsonl, write_json, write_jsonl

# Keys that may change between invocations of the same run without changing its meaning.
RESUMABLE_KEYS = ("iterations", "runtime", "verify.workers")
# The layout of run directories this version writes; 1 (no "layout" in the manifest) had flat
# train keys and no pairs stage.
LAYOUT = 2


class RunDirMismatch(RuntimeError):
    """The run directory was made with a different config, or by an older layout."""


def _strip(d: dict[str, Any]) -> dict[str, Any]:
    d = json.loads(json.dumps(d))
    for key in RESUMABLE_KEYS:
        node = d
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.get(p, {})
        node.pop(parts[-1], None)
    return d


def digest(payload: Any) -> str:
    """A short stable digest of JSON-able ``payload``."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


class Parts:
    """Finished parts of one call's work, kept across interruptions (one JSONL file per part)."""

    def __init__(self, folder: str | Path):
        self.dir = Path(folder)
        self.dir.mkdir(parents=True, exist_ok=True)

    def path(self, name: str) -> Path:
        return self.dir / f"{name}.jsonl"

    def done(self, name: str) -> bool:
        return self.path(name).exists()

    def write(self, name: str, rows: Iterable[dict[str, Any]]) -> int:
        return write_jsonl(self.path(name), rows)

    def read(self, name: str) -> list[dict[str, Any]]:
        return read_jsonl(self.path(name))

    def discard(self, name: str) -> Path:
        """Move a part that proved unusable aside (``<name>.bad``); returns where it went."""
        bad = self.dir / f"{name}.bad"
        self.path(name).replace(bad)
        return bad


class RunDir:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.manifest_path = self.root / "manifest.json"
        self.metrics_path = self.root / "metrics.jsonl"

    # ---------------------------------------------------------------- config
    def init(self, cfg: RunConfig) -> bool:
        """Create the run dir, or check it matches ``cfg``. Returns True if it already existed."""
        cfg_path = self.root / "config.yaml"
        if cfg_path.exists():
            if self.manifest().get("layout") != LAYOUT:
                raise RunDirMismatch(
                    f"run directory {self.root} was written by an older version of starloop (run-dir layout "
                    f"{self.manifest().get('layout', 1)}, this version writes {LAYOUT}: nested train sections and a "
                    f"pairs stage); it cannot be resumed. Start a new --run-dir (its metrics.jsonl and report stay "
                    f"readable with `starloop report`).")
            old = yaml.safe_load(cfg_path.read_text()) or {}
            diffs = diff_configs(_strip(old), _strip(cfg.to_dict()))
            if diffs:
                raise RunDirMismatch(
                    f"run directory {self.root} was started with a different config:\n  "
                    + "\n  ".join(diffs)
                    + f"\nUse the same config to resume, or start fresh with another --run-dir "
                    f"(or delete {self.root})."
                )
            # Keep the recorded config current for keys that may change (iterations, runtime).
            self._write_config(cfg)
            return True
        self.root.mkdir(parents=True, exist_ok=True)
        self._write_config(cfg)
        if not self.manifest_path.exists():
            write_json(self.manifest_path, {"layout": LAYOUT, "stages": {}})
        return False

    def _write_config(self, cfg: RunConfig) -> None:
        with atomic_open(self.root / "config.yaml") as fh:
            fh.write(dump_config(cfg))

    # ---------------------------------------------------------------- manifest
    def manifest(self) -> dict[str, Any]:
        if not self.manifest_path.exists():
            return {"layout": LAYOUT, "stages": {}}
        return read_json(self.manifest_path)

    def is_done(self, key: str) -> bool:
        return key in self.manifest()["stages"] and (self.root / key).exists()

    def record(self, key: str, info: dict[str, Any]) -> None:
        m = self.manifest()
        m["stages"][key] = {**info, "completed_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
        write_json(self.manifest_path, m)

    def stage_info(self, key: str) -> dict[str, Any] | None:
        return self.manifest()["stages"].get(key)

    @staticmethod
    def key(iteration: int, stage: str) -> str:
        return f"iter-{iteration:03d}/{stage}"

    def path(self, key: str) -> Path:
        return self.root / key

    @contextlib.contextmanager
    def stage(self, key: str) -> Iterator[Path]:
        """Yield a fresh partial directory; on success it is renamed into place.

        The caller records the stage in the manifest afterwards (:meth:`record`).
        """
        final = self.root / key
        partial = final.with_name("." + final.name + ".partial")
        for stale in (partial, final):
            if stale.exists():
                shutil.rmtree(stale)
        partial.mkdir(parents=True)
        yield partial
        os.replace(partial, final)

    def parts(self, kind: str, key: Any) -> Parts:
        """The parts folder ``<run dir>/<kind>/<digest of key>`` (safe to delete once its stage is done)."""
        return Parts(self.root / kind / digest(key))

    # ---------------------------------------------------------------- metrics
    def metrics(self) -> list[dict[str, Any]]:
        if not self.metrics_path.exists():
            return []
        rows = []
        for line in self.metrics_path.read_text().splitlines():
            if line.strip():
                with contextlib.suppress(json.JSONDecodeError):
                    rows.append(json.loads(line))
        return rows

    def write_metrics_row(self, row: dict[str, Any]) -> None:
        """Insert or replace the row for ``row['iteration']``: never two rows for one iteration."""
        rows = [r for r in self.metrics() if r.get("iteration") != row["iteration"]]
        rows.append(row)
        rows.sort(key=lambda r: r["iteration"])
        write_jsonl(self.metrics_path, rows)
