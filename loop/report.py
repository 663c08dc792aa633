"""Run reports: a per-iteration table (printed, and written to report.md) and PNG plots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starloop.loop.rundir import RunDir

STAGE_COLS = ("sample", "verify", "rationalize", "select", "train", "evaluate")


def iteration_rows(rd: RunDir) -> list[dict[str, Any]]:
    """One row per evaluated iteration: metrics plus stage stats and wall times."""
    stages = rd.manifest()["stages"]
    rows = []
    for m in rd.metrics():
        it = m["iteration"]

        def info(stage: str, _it: int = it) -> dict[str, Any]:
            return stages.get(RunDir.key(_it, stage), {})

        pk = m.get("pass@k", {})
        kmax = max(pk, key=int) if pk else None
        row = {
            "iteration": it,
            "pass@1": m.get("pass@1"),
            "pass@k": (kmax, pk[kmax]) if kmax else None,
            "maj@k": m.get("maj@k", {}).get(kmax) if kmax else None,
            "samples": info("sample").get("samples"),
            "verified": info("verify").get("verified"),
            "rationalized": info("rationalize").get("rationalized"),
            "sft_rows": info("select").get("rows"),
            "seconds": {s: info(s).get("seconds") for s in STAGE_COLS if info(s)},
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


def print_table(rd: RunDir, console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console(width=max(140, Console().width))
    header, body = table_lines(iteration_rows(rd))
    t = Table(title=f"starloop run {rd.root}")
    for h in header:
        t.add_column(h, justify="right")
    for b in body:
        t.add_row(*b)
    console.print(t)


def plot(rd: RunDir, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = rd.metrics()
    its = [r["iteration"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    ax.plot(its, [r.get("pass@1") for r in rows], marker="o", label="pass@1 (greedy)")
    ks = sorted({k for r in rows for k in r.get("pass@k", {})}, key=int)
    if ks:
        k = ks[-1]
        ax.plot(its, [r.get("pass@k", {}).get(k) for r in rows], marker="s", label=f"pass@{k}")
        ax.plot(its, [r.get("maj@k", {}).get(k) for r in rows], marker="^", label=f"maj@{k}")
    ax.set_xlabel("iteration")
    ax.set_ylabel("held-out accuracy")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(f"{rd.root.name}: held-out accuracy per iteration")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def write_report(rd: RunDir) -> Path:
    """Write report.md and accuracy.png into the run dir; return the report path."""
    png = plot(rd, rd.root / "accuracy.png")
    header, body = table_lines(iteration_rows(rd))
    md = [f"# starloop run `{rd.root.name}`", "", "| " + " | ".join(header) + " |",
          "|" + "---|" * len(header)]
    md += ["| " + " | ".join(b) + " |" for b in body]
    md += ["", f"![held-out accuracy]({png.name})", ""]
    path = rd.root / "report.md"
    path.write_text("\n".join(md))
    return path
