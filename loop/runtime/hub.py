"""Publishing checkpoints to the Hugging Face Hub (the config's ``hub`` section), each with a model card.

:func:`hub_folder` lays out what a model repository gets for iteration ``it``: the checkpoint's files
(hard links where the file system allows, copies otherwise) and a ``README.md`` model card stating
the run's config, where its data came from, what each iteration trained on and the held-out metrics
of every iteration so far. It lives in ``<run dir>/hub/iter-NNN`` (outside the stages' folders, whose
files are fingerprinted). :func:`push` uploads that folder with ``huggingface_hub``'s maintained
calls (``create_repo``, ``upload_folder``), the token read from the environment variable
``hub.token_env``; it is the only code that talks to the Hub.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any

import yaml

from starloop.loop.config import HubConfig, RunConfig, to_plain
from starloop.loop.runtime.rundir import RunDir

log = logging.getLogger(__name__)


def _pct(v: Any) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def model_card(cfg: RunConfig, rd: RunDir, it: int) -> str:
    """The model card of iteration ``it``'s checkpoint."""
    plain = to_plain(cfg)
    plain.pop("hub", None)
    stages = rd.manifest()["stages"]
    metrics = [m for m in rd.metrics() if m["iteration"] <= it]
    k = next((max(m["pass@k"], key=int) for m in metrics if m.get("pass@k")), None)
    rows = "\n".join(
        f"| {m['iteration']} | {_pct(m.get('pass@1'))} | {_pct((m.get('pass@k') or {}).get(k))} | "
        f"{_pct((m.get('maj@k') or {}).get(k))} | {m.get('problems', '-')} |" for m in metrics)
    data = []
    for j in range(1, it + 1):
        sel = stages.get(RunDir.key(j, "select"), {})
        train = stages.get(RunDir.key(j, "train"), {})
        sft, dpo = train.get("sft") or {}, train.get("dpo") or {}
        data.append(f"| {j} | {sel.get('selfgen_rows', '-')} | {sel.get('real_rows', '-')} | "
                    f"{sel.get('replay_rows', '-')} | {sft.get('rows', '-')} | {dpo.get('rows', '-')} |")
    sources = "\n".join(f"- {split}: `{d.get('source')}`" + (f" `{d.get('path')}`" if d.get("path") else "")
                        + (f", options `{d.get('options')}`" if d.get("options") else "")
                        for split, d in plain.get("data", {}).items() if isinstance(d, dict) and d.get("source"))
    base = plain.get("model", {}).get("path")
    return f"""---
tags:
- starloop
- rejection-sampling
- star
base_model_relation: finetune
---

# {cfg.name}, iteration {it}

Trained by starloop from `{base}`: {it} iteration(s) of sampling
solutions, verifying them, and training on the verified ones (the `train` section below says how).

## Held-out metrics (percent)

pass@1 greedy; pass@{k or 'k'} and maj@{k or 'k'} over the sampled completions.

| iteration | pass@1 greedy | pass@{k or 'k'} sampled | maj@{k or 'k'} sampled | problems |
|---|---|---|---|---|
{rows}

## Data

Problems and real data:

{sources}

Training rows per iteration (self-generated verified traces, real rows, replayed rows; SFT and DPO rows):

| iteration | self-generated | real | replayed | SFT rows | DPO pairs |
|---|---|---|---|---|---|
{chr(10).join(data) if data else '| - | - | - | - | - | - |'}

## Config

```yaml
{yaml.safe_dump(plain, sort_keys=False).rstrip()}
```
"""


def hub_folder(cfg: RunConfig, rd: RunDir, it: int, model_dir: str | Path) -> Path:
    """``<run dir>/hub/iter-NNN``: iteration ``it``'s checkpoint files and its model card."""
    out = rd.root / "hub" / f"iter-{it:03d}"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for src in sorted(Path(model_dir).iterdir()):
        if src.is_file() and src.name != "README.md":
            try:
                os.link(src, out / src.name)
            except OSError:  # another file system, or links not allowed
                shutil.copy2(src, out / src.name)
    (out / "README.md").write_text(model_card(cfg, rd, it), encoding="utf-8")
    return out


def push(folder: Path, hub: HubConfig, it: int) -> str:
    """Upload ``folder`` to ``hub.repo_id`` (created if needed); returns the commit URL."""
    from huggingface_hub import HfApi  # heavy: deferred

    api = HfApi(token=os.environ.get(hub.token_env) or None)
    api.create_repo(hub.repo_id, repo_type="model", private=hub.private, exist_ok=True)
    info = api.upload_folder(repo_id=hub.repo_id, repo_type="model", folder_path=str(folder),
                             commit_message=f"starloop: iteration {it}")
    return str(info)


def publish(cfg: RunConfig, rd: RunDir, it: int, model_dir: str | Path) -> Path | None:
    """Lay out and push iteration ``it``'s checkpoint when ``hub.repo_id`` is set; returns its folder."""
    if not cfg.hub.repo_id:
        return None
    folder = hub_folder(cfg, rd, it, model_dir)
    log.info("hub: pushing iteration %d (%s) to %s", it, folder, cfg.hub.repo_id)
    log.info("hub: %s", push(folder, cfg.hub, it))
    return folder
