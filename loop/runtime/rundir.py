"""The run directory: resolved config, manifest of finished stages, atomic stage outputs, the
metrics file, and parts of unfinished stages kept across interruptions.

A stage writes into ``iter-NNN/.<stage>.partial`` and is renamed to ``iter-NNN/<stage>`` when
complete; only then is it recorded in ``manifest.json`` (itself replaced atomically), with a
fingerprint of its files (size of each, and a SHA-256 of each file up to ``HASH_LIMIT`` bytes:
JSONL, metrics and configs in full, model weights by size). A stage directory not in the manifest
is an interrupted attempt and is discarded on resume, so a SIGKILL at any moment never corrupts
or loses a finished stage; a finished stage whose files no longer match their fingerprint is
found on resume (:meth:`RunDir.damage`) and redone, with every stage after it.

``metrics.jsonl`` is derived: each row is the ``metrics.json`` of a finished evaluate stage, and
the file is rebuilt from them (:meth:`RunDir.rebuild_metrics`), so a damaged row is never lost.

Work inside a stage that is worth keeping across an interruption (a sampler replica's shard;
later, server requests and verification output) goes to :class:`Parts`: one folder per call,
named by a digest of everything the parts depend on, one JSONL file per finished part.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import time
import typing
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

from starloop.loop.config import OpenSection, RunConfig, diff_configs, dump_config, to_plain
from starloop.loop.errors import InputError
from starloop.loop.fileio import atomic_open, read_jsonl, write_json, write_jsonl

HASH_LIMIT = 64 << 20
# Keys that may change between invocations of the same run without changing its meaning.
RESUMABLE_KEYS = ("iterations", "runtime", "verify.workers", "hub", "sampling.base_url", "sampling.teacher.base_url",
                  "sampling.api_key_env", "sampling.teacher.api_key_env", "sampling.server.concurrency",
                  "sampling.server.timeout", "sampling.server.max_retries")
# The layout of run directories this version writes; 1 (no "layout" in the manifest) had flat
# train keys and no pairs stage.
LAYOUT = 2


class RunDirMismatch(RuntimeError):
    """The run directory was made with a different config, or by an older layout."""


def _section_type(tp: Any) -> type | None:
    """The config section class a field holds (``X`` or ``X | None``), or None for a plain value."""
    for t in (tp, *typing.get_args(tp)):
        if dataclasses.is_dataclass(t) and not issubclass(t, OpenSection):
            return t
    return None


def with_new_keys(old: dict[str, Any], cls: type = RunConfig) -> dict[str, Any]:
    """``old`` (a run's recorded config) with every key it lacks set to this version's default: a key
    added to starloop after the run started does not make the run a different one."""
    out = dict(old)
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name not in out:
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            out[f.name] = json.loads(json.dumps(to_plain(default)))
        elif isinstance(out[f.name], dict) and (sub := _section_type(hints[f.name])) is not None:
            out[f.name] = with_new_keys(out[f.name], sub)
    return out


def _strip(d: dict[str, Any]) -> dict[str, Any]:
    d = json.loads(json.dumps(d))
    for key in RESUMABLE_KEYS:
        node = d
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.get(p, {})
        node.pop(parts[-1], None)
    return d


def fingerprint(folder: Path) -> dict[str, list[Any]]:
    """``{relative path: [size, sha256 or None]}`` of every file under ``folder``."""
    out = {}
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        size = f.stat().st_size
        out[f.relative_to(folder).as_posix()] = [size, hashlib.sha256(f.read_bytes()).hexdigest()
                                                 if size <= HASH_LIMIT else None]
    return out


def _changes(recorded: dict[str, list[Any]], now: dict[str, list[Any]]) -> list[str]:
    out = []
    for name, (size, sha) in recorded.items():
        if name not in now:
            out.append(f"{name} is missing")
        elif now[name][0] != size:
            out.append(f"{name} changed size ({size} -> {now[name][0]} bytes)")
        elif now[name][1] != sha:
            out.append(f"{name} changed content")
    return out


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
    def check(self, cfg: RunConfig) -> bool:
        """Refuse a run dir that is not one, was written by an older layout, or by another config;
        True if it is an existing run of ``cfg``. Writes nothing."""
        if self.root.exists() and not self.root.is_dir():
            raise InputError(f"run directory {self.root} is a file, not a folder; give another --run-dir")
        cfg_path = self.root / "config.yaml"
        if not cfg_path.exists():
            return False
        layout = self.manifest().get("layout", 1)
        if layout != LAYOUT:
            raise RunDirMismatch(
                f"run directory {self.root} was written by an older version of starloop (run-dir layout {layout}, "
                f"this version writes {LAYOUT}: nested train sections and a pairs stage); it cannot be resumed. "
                f"Start a new --run-dir (its metrics.jsonl and report stay readable with `starloop report`).")
        try:
            old = yaml.safe_load(cfg_path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise InputError(f"{cfg_path} is damaged ({exc}); restore it or start a new --run-dir") from None
        diffs = diff_configs(_strip(with_new_keys(old)), _strip(cfg.to_dict()))
        if diffs:
            raise RunDirMismatch(
                f"run directory {self.root} was started with a different config:\n  " + "\n  ".join(diffs)
                + f"\nUse the same config to resume, or start fresh with another --run-dir (or delete {self.root}).")
        return True

    def init(self, cfg: RunConfig) -> bool:
        """Tie the run dir to ``cfg`` (after :meth:`check`): write the config, and a manifest if there is
        none. Returns True if it already existed."""
        existed = self.check(cfg)
        self.root.mkdir(parents=True, exist_ok=True)
        # Also keeps the recorded config current for keys that may change (iterations, runtime).
        with atomic_open(self.root / "config.yaml") as fh:
            fh.write(dump_config(cfg))
        if not self.manifest_path.exists():
            write_json(self.manifest_path, {"layout": LAYOUT, "stages": {}})
        return existed

    # ---------------------------------------------------------------- manifest
    def manifest(self) -> dict[str, Any]:
        if not self.manifest_path.exists():
            return {"layout": LAYOUT, "stages": {}}
        try:
            m = json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise InputError(f"{self.manifest_path} is damaged ({exc}); it records which stages finished: restore "
                             f"it, or start a new --run-dir") from None
        if not isinstance(m, dict) or not isinstance(m.get("stages"), dict):
            raise InputError(f"{self.manifest_path} has no 'stages' record; it records which stages finished: "
                             f"restore it, or start a new --run-dir")
        return m

    def is_done(self, key: str) -> bool:
        return key in self.manifest()["stages"] and (self.root / key).is_dir()

    def record(self, key: str, info: dict[str, Any]) -> None:
        """Record ``key`` as finished, with its stats and the fingerprint of its files."""
        m = self.manifest()
        m["stages"][key] = {**info, "completed_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
                            "outputs": fingerprint(self.root / key)}
        write_json(self.manifest_path, m)

    def damage(self, key: str) -> str | None:
        """Why the finished stage ``key`` can no longer be trusted (its folder or files changed), or None."""
        info = self.manifest()["stages"].get(key)
        if info is None:
            return None
        if not (self.root / key).is_dir():
            return "its folder is missing"
        recorded = info.get("outputs")
        changes = _changes(recorded, fingerprint(self.root / key)) if recorded is not None else []
        return "; ".join(changes[:3]) + ("; ..." if len(changes) > 3 else "") if changes else None

    def forget(self, keys: Sequence[str]) -> None:
        """Drop finished-stage records (they will be redone)."""
        m = self.manifest()
        if any(k in m["stages"] for k in keys):
            for k in keys:
                m["stages"].pop(k, None)
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
        """The rows of ``metrics.jsonl``; a damaged row is an error naming its line."""
        if not self.metrics_path.exists():
            return []
        try:
            return read_jsonl(self.metrics_path)
        except InputError as exc:
            raise InputError(f"{exc}; rerun `starloop run` with the run's config to rebuild it from the "
                             f"evaluate stages") from None

    def write_metrics_row(self, row: dict[str, Any]) -> None:
        """Insert or replace the row for ``row['iteration']``: never two rows for one iteration."""
        rows = [r for r in self.metrics() if r.get("iteration") != row["iteration"]]
        rows.append(row)
        rows.sort(key=lambda r: r["iteration"])
        write_jsonl(self.metrics_path, rows)


def rebuild_metrics(rd: RunDir) -> list[int]:
    """Rewrite ``metrics.jsonl`` from the finished evaluate stages; returns the iterations whose rows
    were missing or different in the file."""
    rows = []
    for key in sorted(k for k in rd.manifest()["stages"] if k.endswith("/evaluate")):
        path = rd.root / key / "metrics.json"
        if rd.is_done(key) and path.is_file():
            rows.append({"iteration": int(key[len("iter-"):].split("/")[0]), **json.loads(path.read_text())})
    old = {}
    if rd.metrics_path.exists():
        for line in rd.metrics_path.read_text(encoding="utf-8", errors="replace").splitlines():
            with contextlib.suppress(ValueError):  # a damaged row counts as missing: it is rewritten
                row = json.loads(line)
                old[row.get("iteration")] = row
    changed = [r["iteration"] for r in rows if old.get(r["iteration"]) != r]
    if changed or len(old) != len(rows):
        write_jsonl(rd.metrics_path, rows)
    return changed
