"""Several runs side by side: held-out pass@1 per iteration of each run, read from the run
directories alone (``metrics.jsonl``, ``config.yaml``), drawn in one PNG (``starloop report --compare``).

Runs of one experiment are grouped: runs whose resolved configs (read with today's schema, so a
setting added since a run was made counts at its default) are equal once the keys that differ
between seeds of one experiment are left out (:data:`PER_RUN_KEYS`: the seed, the run's name and
where it lives, and what may change between invocations of a run) form a group, drawn as the mean
over its runs with a band from the lowest to the highest run, labelled with ``n=<runs>``.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from starloop.loop.config import ConfigError, RunConfig, build, to_plain
from starloop.loop.errors import InputError
from starloop.loop.runtime.rundir import RESUMABLE_KEYS, RunDir, digest

PER_RUN_KEYS = ("seed", "name", "runs_dir", *RESUMABLE_KEYS)
"""Config keys (dotted) left out when deciding whether two runs are seeds of one experiment."""


@dataclass
class RunCurve:
    """One run's held-out greedy pass@1 (a fraction) per evaluated iteration."""

    root: Path
    label: str
    experiment: str
    """A digest of the config without :data:`PER_RUN_KEYS` (the run dir itself when it has no config)."""
    seed: int | None
    points: dict[int, float]


@dataclass
class Group:
    """Runs of one experiment (same config but for :data:`PER_RUN_KEYS`) under one label."""

    label: str
    runs: list[RunCurve] = field(default_factory=list)

    def stats(self) -> list[dict[str, Any]]:
        """Per iteration (any run has): mean, min, max and sample sd of pass@1 over the runs that have it."""
        out = []
        for it in sorted({i for r in self.runs for i in r.points}):
            vals = [r.points[it] for r in self.runs if it in r.points]
            out.append({"iteration": it, "n": len(vals), "mean": statistics.fmean(vals), "min": min(vals),
                        "max": max(vals), "sd": statistics.stdev(vals) if len(vals) > 1 else 0.0})
        return out


def _strip(config: dict[str, Any]) -> dict[str, Any]:
    out = json.loads(json.dumps(config, default=str))
    for key in PER_RUN_KEYS:
        node, parts = out, key.split(".")
        for p in parts[:-1]:
            node = node.get(p) if isinstance(node.get(p), dict) else {}
        node.pop(parts[-1], None)
    return out


def experiment_key(config: dict[str, Any]) -> str:
    """Equal for two resolved configs that differ only in :data:`PER_RUN_KEYS`."""
    return digest(_strip(config))


def _config(root: Path) -> dict[str, Any] | None:
    path = root / "config.yaml"
    if not path.is_file():
        return None
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise InputError(f"{path} is not readable YAML ({type(exc).__name__})") from None
    if not isinstance(data, dict):
        return None
    try:  # with the settings added since the run wrote it at their defaults, as the run resumed today would
        return to_plain(build(RunConfig, data))
    except (ConfigError, TypeError, ValueError):
        return data  # a key since removed or renamed: compared as written


def read_curve(root: str | Path, label: str | None = None, level: str | None = None) -> RunCurve:
    """The pass@1 curve of run directory ``root`` (of its held-out problems of ``level`` only, when given: the
    evaluation's ``per_level``); an unusable directory is an :class:`InputError`."""
    root = Path(root)
    rd = RunDir(root)
    if not root.is_dir():
        raise InputError(f"{root} is not a directory (a starloop run directory was expected)")
    if not rd.metrics_path.is_file():
        raise InputError(f"{root} has no metrics.jsonl (not a starloop run directory?)")
    rows = rd.metrics()
    if not rows:
        raise InputError(f"{rd.metrics_path} has no rows (no iteration evaluated yet)")
    points = {}
    for n, row in enumerate(rows, 1):
        it, p1 = row.get("iteration"), row.get("pass@1")
        if level is not None:
            p1 = ((row.get("per_level") or {}).get(str(level)) or {}).get("pass@1")
        if not isinstance(it, int) or isinstance(p1, bool) or not isinstance(p1, int | float):
            what = "'pass@1'" if level is None else f"'per_level' pass@1 of level {level}"
            raise InputError(f"{rd.metrics_path}: row {n} has no integer 'iteration' and numeric {what}")
        points[it] = float(p1)
    cfg = _config(root)
    seed = cfg.get("seed") if cfg else None
    return RunCurve(root=root, label=label or str((cfg or {}).get("name") or root.name),
                    experiment=experiment_key(cfg) if cfg else f"dir:{root.resolve()}",
                    seed=seed if isinstance(seed, int) else None, points=points)


def group_runs(curves: list[RunCurve]) -> list[Group]:
    """Runs with the same label and experiment, in the order first seen. Two experiments under one
    label stay apart (the second's label gets ``#2``)."""
    groups: dict[tuple[str, str], Group] = {}
    for c in curves:
        groups.setdefault((c.label, c.experiment), Group(c.label)).runs.append(c)
    seen: dict[str, int] = {}
    for (label, _), g in groups.items():
        seen[label] = seen.get(label, 0) + 1
        if seen[label] > 1:
            g.label = f"{label} #{seen[label]}"
    return list(groups.values())


def read_groups(run_dirs: list[str | Path], labels: list[str] | None = None,
                levels: list[str] | None = None) -> list[Group]:
    """Read and group run directories; ``labels``, when given, name each run directory in order. With
    ``levels``, every run gives one curve per level (``per_level``), labelled "LABEL, level L"."""
    if labels is not None and len(labels) != len(run_dirs):
        raise InputError(f"--labels: {len(labels)} labels for {len(run_dirs)} run directories (give one per run "
                         f"directory; runs with the same label and config are grouped)")
    if not levels:
        return group_runs([read_curve(d, labels[i] if labels else None) for i, d in enumerate(run_dirs)])
    curves = []
    for lv in levels:
        for i, d in enumerate(run_dirs):
            c = read_curve(d, labels[i] if labels else None, level=lv)
            curves.append(replace(c, label=f"{c.label}, level {lv}"))
    return group_runs(curves)


def plot_compare(groups: list[Group], path: str | Path, title: str | None = None) -> Path:
    """One PNG: per group, the mean pass@1 (%) per iteration with a min-max band over its runs."""
    import matplotlib  # heavy: deferred until a plot is drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # heavy: deferred

    path = Path(path)
    fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=110)
    its: set[int] = set()
    for k, g in enumerate(groups):
        st = g.stats()
        x = [s["iteration"] for s in st]
        its.update(x)
        color = f"C{k % 10}"
        ax.plot(x, [100 * s["mean"] for s in st], marker="o", markersize=4, color=color, clip_on=False,
                label=f"{g.label} (n={len(g.runs)})")
        if len(g.runs) > 1:
            ax.fill_between(x, [100 * s["min"] for s in st], [100 * s["max"] for s in st], color=color, alpha=0.18,
                            linewidth=0)
    ax.set_xlabel("iteration (0 = the starting model)")
    ax.set_ylabel("held-out pass@1, greedy (%)")
    ax.set_ylim(0, 100)
    if its:
        ax.set_xticks(sorted(its))
        ax.set_xlim(min(its) - 0.3, max(its) + 0.3)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="best")
    several = any(len(g.runs) > 1 for g in groups)
    ax.set_title(title or "held-out pass@1 per iteration" + (": mean over n runs, band min-max" if several else ""))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def summary_lines(groups: list[Group]) -> tuple[list[str], list[list[str]]]:
    """Per group: runs (seeds), iterations, starting and final mean pass@1 (%) with the min-max over runs."""
    header = ["run group", "n", "seeds", "iterations", "start pass@1 %", "final pass@1 % (min-max)"]
    body = []
    for g in groups:
        st = g.stats()
        first, last = st[0], st[-1]
        seeds = ",".join(str(r.seed) if r.seed is not None else "?" for r in g.runs)
        fewer = f", {last['n']} of {len(g.runs)} runs" if last["n"] < len(g.runs) else ""
        body.append([g.label, str(len(g.runs)), seeds, f"{first['iteration']}-{last['iteration']}",
                     f"{100 * first['mean']:.1f}",
                     f"{100 * last['mean']:.1f} ({100 * last['min']:.1f}-{100 * last['max']:.1f}{fewer})"])
    return header, body
