"""Run reports: a per-iteration table (printed, and written to report.md) and PNG plots, read from
the run directory only (``metrics.jsonl``, ``manifest.json``, ``iter-NNN/select/sft.jsonl``).

Plots: ``accuracy.png`` (held-out pass@1 / pass@k / maj@k per iteration, and pass@1 per task),
``reasons.png`` (verdict reasons per iteration: the verify stage's samples and the held-out
evaluation), ``data.png`` (the SFT set's mix of self-generated, rationalized, real and replayed
rows, and its distinct-2 diversity).

:func:`log_iteration` sends each iteration's metrics row to TensorBoard and / or Weights & Biases
when ``runtime.report_to`` names them (also the trainers' default ``report_to``; off by default).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import Counter
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from starloop.loop.config import RunConfig
from starloop.loop.runtime.artifacts import Artifacts
from starloop.loop.runtime.rundir import RunDir
from starloop.verifiers.records import REASONS

log = logging.getLogger(__name__)

STAGE_COLS = ("sample", "verify", "rationalize", "select", "pairs", "train", "evaluate")
SOURCES = ("selfgen", "rationalized", "real", "replay")
REASON_COLORS = {"ok": "#2ca02c", "wrong": "#d62728", "unparseable": "#ff7f0e", "truncated": "#9467bd",
                 "timeout": "#8c564b", "error": "#7f7f7f", "none": "#c7c7c7"}
PLOTS = ("accuracy.png", "reasons.png", "data.png")


# ----------------------------------------------------------------------------------------------
# Reading the run directory.


def _stage(rd: RunDir, stages: dict[str, Any], it: int, stage: str) -> dict[str, Any]:
    return stages.get(RunDir.key(it, stage), {})


def train_reasons(verify_info: dict[str, Any]) -> dict[str, float]:
    """Verdict-reason rates over all verifiers of one verify stage (weighted by samples)."""
    per = verify_info.get("per_verifier") or {}
    total = sum(v.get("n", 0) for v in per.values())
    if not total:
        return {}
    return {r: sum(v.get(f"{r}_rate", 0.0) * v.get("n", 0) for v in per.values()) / total for r in REASONS}


def sft_sources(rd: RunDir, it: int, select_info: dict[str, Any]) -> dict[str, int]:
    """Rows of iteration ``it``'s SFT set per source (from sft.jsonl; the select stage's stats otherwise)."""
    path = Artifacts(rd).path(it, "select")
    if path.exists():
        counts: Counter[str] = Counter()
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    counts[json.loads(line).get("source", "selfgen")] += 1
        return {s: counts.get(s, 0) for s in SOURCES}
    if not select_info:
        return {}
    return {"selfgen": select_info.get("selfgen_rows", 0), "rationalized": 0,
            "real": select_info.get("real_rows", 0), "replay": select_info.get("replay_rows", 0)}


def iteration_rows(rd: RunDir) -> list[dict[str, Any]]:
    """One row per evaluated iteration: metrics plus stage stats and wall times."""
    stages = rd.manifest()["stages"]
    rows = []
    for m in rd.metrics():
        it = m["iteration"]
        pk = m.get("pass@k", {})
        kmax = max(pk, key=int) if pk else None
        sel = _stage(rd, stages, it, "select")
        ver = _stage(rd, stages, it, "verify")
        row = {
            "iteration": it,
            "pass@1": m.get("pass@1"),
            "pass@k": (kmax, pk[kmax]) if kmax else None,
            "maj@k": m.get("maj@k", {}).get(kmax) if kmax else None,
            "samples": _stage(rd, stages, it, "sample").get("samples"),
            "verified": ver.get("verified"),
            "rationalized": _stage(rd, stages, it, "rationalize").get("rationalized"),
            "sft_rows": sel.get("rows"),
            "distinct_2": sel.get("distinct_2"),
            "train_reasons": train_reasons(ver),
            "eval_reasons": m.get("reasons", {}),
            "sources": sft_sources(rd, it, sel) if sel else {},
            "per_task": {t: b.get("pass@1") for t, b in (m.get("per_task") or {}).items()},
            "seconds": {s: _stage(rd, stages, it, s).get("seconds") for s in STAGE_COLS if _stage(rd, stages, it, s)},
        }
        rows.append(row)
    return rows


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 10 else f"{v:.0f}"
    return str(v)


def table_lines(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    header = ["iter", "pass@1", "pass@k", "maj@k", "samples", "verified", "rationalized", "SFT rows",
              *[f"{s[:5]} s" for s in STAGE_COLS]]
    body = []
    for r in rows:
        pk = f"{r['pass@k'][1]:.3f}@{r['pass@k'][0]}" if r["pass@k"] else "-"
        body.append([str(r["iteration"]), _fmt(r["pass@1"]), pk, _fmt(r["maj@k"]), _fmt(r["samples"]),
                     _fmt(r["verified"]), _fmt(r["rationalized"]), _fmt(r["sft_rows"]),
                     *[_fmt(r["seconds"].get(s)) for s in STAGE_COLS]])
    return header, body


def data_lines(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """The SFT set per iteration: rows per source and distinct-2."""
    header = ["iter", *SOURCES, "distinct-2"]
    body = [[str(r["iteration"]), *[_fmt(r["sources"].get(s)) for s in SOURCES], _fmt(r["distinct_2"])]
            for r in rows if r["sources"]]
    return header, body


def reason_lines(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Verdict-reason rates per iteration: train samples (verify stage) / held-out evaluation."""
    header = ["iter", *REASONS]
    body = []
    for r in rows:
        cells = []
        for reason in REASONS:
            tr = r["train_reasons"].get(reason, 0.0) if r["train_reasons"] else None
            ev = r["eval_reasons"].get(reason, 0.0) if r["eval_reasons"] else None
            cells.append(f"{_fmt(tr)} / {_fmt(ev)}")
        body.append([str(r["iteration"]), *cells])
    return header, body


def task_lines(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    tasks = sorted({t for r in rows for t in r["per_task"]})
    return ["iter", *tasks], [[str(r["iteration"]), *[_fmt(r["per_task"].get(t)) for t in tasks]] for r in rows]


def print_table(rd: RunDir, console=None) -> None:
    console = console or Console(width=max(140, Console().width))
    rows = iteration_rows(rd)
    tables = [(f"starloop run {rd.root}", table_lines(rows)),
              ("verdict reasons (train samples / held-out)", reason_lines(rows))]
    if any(r["sources"] for r in rows):
        tables.append(("SFT data: rows per source, diversity", data_lines(rows)))
    if any(r["per_task"] for r in rows):
        tables.append(("held-out pass@1 per task", task_lines(rows)))
    for title, (header, body) in tables:
        t = Table(title=title)
        for h in header:
            t.add_column(h, justify="right")
        for b in body:
            t.add_row(*b)
        console.print(t)


# ----------------------------------------------------------------------------------------------
# Plots.


def _pyplot():
    import matplotlib  # heavy: deferred until a plot is drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # heavy: deferred

    return plt


def plot(rd: RunDir, path: Path) -> Path:
    """accuracy.png: held-out accuracy per iteration (and pass@1 per task when there are several)."""
    plt = _pyplot()
    rows = rd.metrics()
    its = [r["iteration"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    ax.plot(its, [r.get("pass@1") for r in rows], marker="o", label="pass@1 (greedy)")
    ks = sorted({k for r in rows for k in r.get("pass@k", {})}, key=int)
    if ks:
        k = ks[-1]
        ax.plot(its, [r.get("pass@k", {}).get(k) for r in rows], marker="s", label=f"pass@{k}")
        ax.plot(its, [r.get("maj@k", {}).get(k) for r in rows], marker="^", label=f"maj@{k}")
    for task in sorted({t for r in rows for t in (r.get("per_task") or {})}):
        ax.plot(its, [(r.get("per_task") or {}).get(task, {}).get("pass@1") for r in rows], linestyle="--",
                marker=".", label=f"pass@1 {task}")
    ax.set_xlabel("iteration")
    ax.set_ylabel("held-out accuracy")
    ax.set_ylim(0, 1)
    ax.set_xticks(its)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    ax.set_title(f"{rd.root.name}: held-out accuracy per iteration")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _stacked(ax, its: list[int], series: dict[str, list[float]], colors: dict[str, str] | None = None) -> float:
    """Stacked bars per iteration; returns the tallest stack."""
    bottom = [0.0] * len(its)
    for name, vals in series.items():
        if not any(vals):
            continue
        ax.bar(its, vals, bottom=bottom, label=name, color=(colors or {}).get(name), width=0.6)
        bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
    if its:
        ax.set_xlim(min(its) - 0.8, max(its) + 0.8)
        ax.set_xticks(its)
    return max(bottom, default=0.0)


def plot_reasons(rows: list[dict[str, Any]], path: Path, title: str) -> Path:
    """reasons.png: verdict-reason shares per iteration, train samples (left) and held-out (right)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), dpi=100, sharey=True)
    for ax, key, name in ((axes[0], "train_reasons", "train samples (verify stage)"),
                          (axes[1], "eval_reasons", "held-out evaluation")):
        sub = [r for r in rows if r[key]]
        its = [r["iteration"] for r in sub]
        reasons = [x for x in (*REASONS, "none") if any(r[key].get(x) for r in sub)]
        _stacked(ax, its, {x: [r[key].get(x, 0.0) for r in sub] for x in reasons}, REASON_COLORS)
        ax.set_title(name)
        ax.set_xlabel("iteration")
        ax.set_ylim(0, 1)
        if not its:
            ax.text(0.5, 0.5, "no data yet", ha="center", va="center", transform=ax.transAxes)
    axes[0].set_ylabel("share of samples")
    handles = {}
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(lab, h)
    order = [x for x in (*REASONS, "none") if x in handles]
    if order:
        fig.legend([handles[x] for x in order], order, loc="center right", fontsize="small")
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0, 0.88, 1))
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_data(rows: list[dict[str, Any]], path: Path, title: str) -> Path:
    """data.png: SFT rows per source per iteration (bars) and distinct-2 of the SFT set (line)."""
    plt = _pyplot()
    sub = [r for r in rows if r["sources"]]
    its = [r["iteration"] for r in sub]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    top = _stacked(ax, its, {s: [r["sources"].get(s, 0) for r in sub] for s in SOURCES})
    ax.set_xlabel("iteration")
    ax.set_ylabel("SFT rows")
    if its:
        ax.set_ylim(0, max(1.0, top) * 1.3)  # room for the legends above the bars
        ax.legend(fontsize="small", loc="upper left")
        d2 = [(r["iteration"], r["distinct_2"]) for r in sub if r["distinct_2"] is not None]
        if d2:
            ax2 = ax.twinx()
            ax2.plot([x for x, _ in d2], [y for _, y in d2], color="black", marker="o", label="distinct-2")
            ax2.set_ylim(0, 1.3)
            ax2.set_yticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
            ax2.set_ylabel("distinct-2 (diversity)")
            ax2.legend(fontsize="small", loc="upper right")
    else:
        ax.text(0.5, 0.5, "no SFT set yet (iteration 0 only)", ha="center", va="center", transform=ax.transAxes)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plots(rd: RunDir) -> list[Path]:
    """Write every plot into the run directory; return their paths."""
    rows = iteration_rows(rd)
    name = rd.root.name
    return [plot(rd, rd.root / "accuracy.png"),
            plot_reasons(rows, rd.root / "reasons.png", f"{name}: verdict reasons per iteration"),
            plot_data(rows, rd.root / "data.png", f"{name}: SFT data mix and diversity")]


def _md_table(header: list[str], body: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *["| " + " | ".join(b) + " |" for b in body]]


def write_report(rd: RunDir) -> Path:
    """Write report.md and the PNG plots into the run dir; return the report path."""
    pngs = plots(rd)
    rows = iteration_rows(rd)
    md = [f"# starloop run `{rd.root.name}`", "", "## Per iteration", "", *_md_table(*table_lines(rows)), ""]
    md += [f"![held-out accuracy]({pngs[0].name})", ""]
    if any(r["per_task"] for r in rows):
        md += ["## Held-out pass@1 per task", "", *_md_table(*task_lines(rows)), ""]
    md += ["## Verdict reasons", "", "Share of samples per verdict reason: train samples (verify stage) / held-out "
           "evaluation.", "", *_md_table(*reason_lines(rows)), "", f"![verdict reasons]({pngs[1].name})", ""]
    md += ["## SFT data", "", "Rows per source and distinct-2 (distinct word bigrams / all bigrams) of each "
           "iteration's SFT set.", "", *_md_table(*data_lines(rows)), "", f"![data mix and diversity]({pngs[2].name})", ""]
    path = rd.root / "report.md"
    path.write_text("\n".join(md))
    return path


# ----------------------------------------------------------------------------------------------
# Experiment trackers.


def flatten_metrics(row: dict[str, Any], prefix: str = "starloop") -> dict[str, float]:
    """Numeric leaves of a metrics row as ``prefix/a/b`` keys (``starloop/pass@k/4``)."""
    out: dict[str, float] = {}
    for key, value in row.items():
        name = f"{prefix}/{key}"
        if isinstance(value, dict):
            out.update(flatten_metrics(value, name))
        elif isinstance(value, int | float) and not isinstance(value, bool) and key != "iteration":
            out[name] = float(value)
    return out


def _trackers(report_to: list[str]) -> list[str]:
    wanted = set(report_to)
    if "all" in wanted:
        wanted |= {"tensorboard", "wandb"}
    return [t for t in ("tensorboard", "wandb") if t in wanted]


def log_iteration(cfg: RunConfig, root: str | Path, row: dict[str, Any]) -> list[str]:
    """Log one iteration's metrics row to the trackers named in ``cfg.runtime.report_to``.

    TensorBoard event files go to ``<run dir>/tensorboard``; Weights & Biases gets a run named after
    the experiment whose id is derived from the run directory, resumed on every call (or the
    active run, when one is open in this process). A named tracker that is not installed is
    reported with a warning, one that fails with an error (the row is safe in metrics.jsonl
    already, so the evaluation is not lost). Returns the trackers that were written to.
    """
    done = []
    for tracker in _trackers(list(cfg.runtime.report_to)):
        try:
            if _LOGGERS[tracker](cfg, Path(root), int(row["iteration"]), flatten_metrics(row)):
                done.append(tracker)
        except Exception as exc:  # the row is already in metrics.jsonl; a tracker outage must not fail the stage
            log.error("could not log iteration %s to %s: %s: %s", row["iteration"], tracker, type(exc).__name__, exc)
    return done


def _log_tensorboard(cfg: RunConfig, root: Path, step: int, scalars: dict[str, float]) -> bool:
    try:
        from torch.utils.tensorboard import SummaryWriter  # heavy, optional: deferred
    except ImportError:
        log.warning("runtime.report_to names tensorboard, but it is not installed (pip install tensorboard)")
        return False
    writer = SummaryWriter(log_dir=str(root / "tensorboard"))
    try:
        for key, value in scalars.items():
            writer.add_scalar(key, value, global_step=step)
    finally:
        writer.close()
    return True


def _log_wandb(cfg: RunConfig, root: Path, step: int, scalars: dict[str, float]) -> bool:
    try:
        import wandb  # optional: deferred
    except ImportError:
        log.warning("runtime.report_to names wandb, but it is not installed (pip install wandb)")
        return False
    run, own = wandb.run, False
    if run is None:
        run_id = "starloop-" + hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:12]
        run = wandb.init(project=os.environ.get("WANDB_PROJECT", "starloop"), name=cfg.name, id=run_id,
                         resume="allow", config=cfg.to_dict(), dir=str(root))
        own = True
    run.define_metric("starloop/*", step_metric="starloop/iteration")
    run.log({**scalars, "starloop/iteration": step})
    if own:
        run.finish()
    return True


_LOGGERS = {"tensorboard": _log_tensorboard, "wandb": _log_wandb}
