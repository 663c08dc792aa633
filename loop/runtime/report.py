"""Run reports: a per-iteration table (printed, and written to report.md) and PNG plots, read from
the run directory only (``metrics.jsonl``, ``manifest.json``, ``iter-NNN/select/sft.jsonl``).

Plots: ``accuracy.png`` (held-out pass@1 / pass@k / maj@k per iteration, and pass@1 per task),
``reasons.png`` (verdict reasons per iteration: the verify stage's samples and the held-out
evaluation), ``data.png`` (the SFT set's mix of self-generated, rationalized, real and replayed
rows, and its distinct-2 diversity).

Experiment trackers (TensorBoard, Weights & Biases) are :mod:`~starloop.loop.runtime.trackers`.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table

from starloop.loop.runtime.artifacts import Artifacts
from starloop.loop.runtime.rundir import RunDir
from starloop.verifiers.records import REASONS

log = logging.getLogger(__name__)

STAGE_COLS = ("synthesize", "sample", "label", "verify", "rationalize", "select", "pairs", "train", "evaluate")
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
            "pseudo_labeled": _stage(rd, stages, it, "label").get("labeled"),
            "pool": _stage(rd, stages, it, "synthesize").get("pool_size"),
            "level": (_stage(rd, stages, it, "sample").get("curriculum") or {}).get("level"),
            "new_problems": _stage(rd, stages, it, "synthesize").get("accepted"),
            "verified": ver.get("verified"),
            "rationalized": _stage(rd, stages, it, "rationalize").get("rationalized"),
            "sft_rows": sel.get("rows"),
            "distinct_2": sel.get("distinct_2"),
            "train_reasons": train_reasons(ver),
            "eval_reasons": m.get("reasons", {}),
            "sources": sft_sources(rd, it, sel) if sel else {},
            "per_task": {t: b.get("pass@1") for t, b in (m.get("per_task") or {}).items()},
            "seconds": {s: _stage(rd, stages, it, s).get("seconds") for s in STAGE_COLS if _stage(rd, stages, it, s)},
            "sft_loss": (_stage(rd, stages, it, "train").get("sft") or {}).get("train_loss"),
            "dpo_loss": (_stage(rd, stages, it, "train").get("dpo") or {}).get("train_loss"),
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
    """Held-out accuracy (greedy pass@1; pass@k and maj@k of the sampled completions), the
    iteration's data and its training loss."""
    k = next((r["pass@k"][0] for r in rows if r["pass@k"]), "k")
    dpo = any(r["dpo_loss"] is not None for r in rows)
    labels = any(r["pseudo_labeled"] is not None for r in rows)
    pool = any(r["pool"] is not None for r in rows)
    level = any(r["level"] is not None for r in rows)
    header = ["iteration", "pass@1 greedy", f"pass@{k} sampled", f"maj@{k} sampled",
              *(["new problems", "pool"] if pool else []), *(["level"] if level else []), "samples", *(["pseudo-labeled"] if labels else []),
              "verified", "rationales kept", "SFT rows", "SFT loss", *(["DPO loss"] if dpo else [])]
    body = []
    for r in rows:
        body.append([str(r["iteration"]), _fmt(r["pass@1"]), _fmt(r["pass@k"][1] if r["pass@k"] else None),
                     _fmt(r["maj@k"]), *([_fmt(r["new_problems"]), _fmt(r["pool"])] if pool else []),
                     *([_fmt(r["level"])] if level else []),
                     _fmt(r["samples"]), *([_fmt(r["pseudo_labeled"])] if labels else []),
                     _fmt(r["verified"]), _fmt(r["rationalized"]),
                     _fmt(r["sft_rows"]), _fmt(r["sft_loss"]), *([_fmt(r["dpo_loss"])] if dpo else [])])
    return header, body


def seconds_lines(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Wall-clock seconds of each stage per iteration."""
    cols = [s for s in STAGE_COLS  # the optional stages only when they ran
            if s not in ("synthesize", "label") or any(s in r["seconds"] for r in rows)]
    header = ["iteration", *cols, "total"]
    def sec(v: Any) -> str:
        return "-" if v is None else f"{v:.1f}"

    body = [[str(r["iteration"]), *[sec(r["seconds"].get(s)) for s in cols],
             sec(sum(v or 0.0 for v in r["seconds"].values()))] for r in rows]
    return header, body


def _config(rd: RunDir) -> dict[str, Any]:
    try:
        data = yaml.safe_load((rd.root / "config.yaml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def _duration(seconds: float) -> str:
    minutes, sec = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {sec:02d} s"


def _dataset(d: dict[str, Any] | None) -> str:
    if not d or not d.get("source"):
        return "-"
    where = d.get("path") or ", ".join(f"{k}={v}" for k, v in (d.get("options") or {}).items() if k != "seed")
    return f"{d['source']}" + (f" ({where})" if where else "")


def summary_lines(rd: RunDir, rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """What was run: model, data, key settings, wall time (from config.yaml and the manifest)."""
    cfg = _config(rd)
    stages = rd.manifest()["stages"]
    first = next((v for k, v in sorted(stages.items()) if k.endswith("/sample")), {})
    metrics = rd.metrics()
    last = metrics[-1] if metrics else {}
    data, sampling, train, ev = (cfg.get(k) or {} for k in ("data", "sampling", "train", "eval"))
    sft, dpo = train.get("sft") or {}, train.get("dpo") or {}

    def keys(section: dict[str, Any], names: tuple[str, ...]) -> str:
        return ", ".join(f"{n}={section[n]}" for n in names if section.get(n) is not None) or "TRL's defaults"

    real_rows = [r["sources"].get("real") for r in rows if r["sources"]]
    return [
        ("model", str((cfg.get("model") or {}).get("path", "-"))),
        ("train problems", f"{_dataset(data.get('train'))}; {first.get('problems', '-')} per iteration"),
        ("held-out problems", f"{_dataset(data.get('eval'))}; {last.get('problems', '-')} evaluated"),
        ("real data mixed in", f"{_dataset(data.get('real'))}; {real_rows[-1] if real_rows else 0} rows per iteration"),
        ("iterations, seed", f"{len(rows) - 1 if rows else 0} done of {cfg.get('iterations', '-')}, seed {cfg.get('seed', '-')}"),
        ("sampling", keys(sampling, ("backend", "n", "temperature", "top_p", "max_tokens"))),
        ("SFT", keys(sft, ("learning_rate", "max_steps", "num_train_epochs", "per_device_train_batch_size"))
         if sft.get("enabled", True) else "off"),
        ("DPO", keys(dpo, ("beta", "loss_type", "learning_rate", "max_steps")) if dpo.get("enabled") else "off"),
        ("evaluation", f"pass@1 greedy; pass@k and maj@k over n={ev.get('n', '-')} samples at temperature "
                       f"{ev.get('temperature', '-')}"),
        ("wall time", _duration(sum(float(v.get("seconds") or 0.0) for v in stages.values()))),
    ]


def data_lines(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """The SFT set per iteration: rows per source and distinct-2."""
    header = ["iteration", *SOURCES, "distinct-2"]
    body = [[str(r["iteration"]), *[_fmt(r["sources"].get(s)) for s in SOURCES], _fmt(r["distinct_2"])]
            for r in rows if r["sources"]]
    return header, body


def reason_lines(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Verdict-reason rates per iteration: train samples (verify stage) / held-out evaluation."""
    header = ["iteration", *REASONS]
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
    return ["iteration", *tasks], [[str(r["iteration"]), *[_fmt(r["per_task"].get(t)) for t in tasks]] for r in rows]


def print_table(rd: RunDir, console=None) -> None:
    console = console or Console(width=max(140, Console().width))
    rows = iteration_rows(rd)
    summary = Table(title=f"starloop run {rd.root}", show_header=False)
    for key, value in summary_lines(rd, rows):
        summary.add_row(key, value)
    console.print(summary)
    tables = [("per iteration: held-out accuracy, data, training loss", table_lines(rows)),
              ("seconds per stage", seconds_lines(rows)),
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
        ax.plot(its, [r.get("pass@k", {}).get(k) for r in rows], marker="s", label=f"pass@{k} (sampled)")
        ax.plot(its, [r.get("maj@k", {}).get(k) for r in rows], marker="^", label=f"maj@{k} (sampled)")
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
        if ax.get_legend_handles_labels()[0]:  # no bars when every SFT set was empty
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
    md = [f"# starloop run `{rd.root.name}`", "", *_md_table(["", ""], [[k, v] for k, v in summary_lines(rd, rows)]),
          "", "## Per iteration", "", "pass@1 greedy: one greedy completion per held-out problem; pass@k and maj@k: "
          "over the sampled completions (unbiased pass@k estimator; maj@k scores the most frequent answer). SFT loss: "
          "the mean training loss of the iteration's SFT phase.", "", *_md_table(*table_lines(rows)), ""]
    md += [f"![held-out accuracy]({pngs[0].name})", "", "## Seconds per stage", "", *_md_table(*seconds_lines(rows)), ""]
    if any(r["per_task"] for r in rows):
        md += ["## Held-out pass@1 per task", "", *_md_table(*task_lines(rows)), ""]
    md += ["## Verdict reasons", "", "Share of samples per verdict reason: train samples (verify stage) / held-out "
           "evaluation.", "", *_md_table(*reason_lines(rows)), "", f"![verdict reasons]({pngs[1].name})", ""]
    md += ["## SFT data", "", "Rows per source and distinct-2 (distinct word bigrams / all bigrams) of each "
           "iteration's SFT set.", "", *_md_table(*data_lines(rows)), "", f"![data mix and diversity]({pngs[2].name})", ""]
    path = rd.root / "report.md"
    path.write_text("\n".join(md))
    return path
