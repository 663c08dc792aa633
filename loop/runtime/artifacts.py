"""The one place that knows the run directory's file names: what each stage writes into its
folder, and how later stages (and reports) read it back as records."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from starloop.loop.fileio import read_jsonl, write_jsonl
from starloop.loop.records import Sample, sample_from_row, sample_to_row
from starloop.loop.runtime.rundir import RunDir
from starloop.verifiers.records import Problem

FILES = {
    "synthesize": "accepted.jsonl",  # new problems that passed every filter (Problem rows with provenance)
    "sample": "samples.jsonl",      # Sample rows, unverified (verified with sampling.adaptive)
    "label": "labels.jsonl",        # majority-vote pseudo-labels of unlabeled problems, with provenance
    "verify": "verified.jsonl",     # Sample rows with verdicts
    "rationalize": "rationales.jsonl",  # verified rationales, under the hint-free prompt
    "select": "sft.jsonl",          # the SFT set (TRL prompt/completion rows + provenance)
    "pairs": "pairs.jsonl",         # DPO preference rows (TRL format + provenance)
}
HINTED = "hinted.jsonl"  # rationalize: every hinted sample, verified
MODEL = "model"          # train: the checkpoint the iteration ends with
SFT_MODEL = "sft_model"  # train: the SFT checkpoint, when DPO follows
ADAPTER = "adapter"      # inside a checkpoint trained with LoRA: the adapter, unmerged (what a server loads)


class Artifacts:
    """Read finished stages' outputs of a run; write a stage's outputs into its (partial) folder."""

    def __init__(self, rd: RunDir):
        self.rd = rd

    def path(self, iteration: int, stage: str, name: str | None = None) -> Path:
        return self.rd.path(RunDir.key(iteration, stage)) / (name or FILES[stage])

    def samples(self, iteration: int, stage: str = "sample") -> list[Sample]:
        return [sample_from_row(r) for r in read_jsonl(self.path(iteration, stage))]

    def verified(self, iteration: int) -> list[Sample]:
        return self.samples(iteration, "verify")

    def rationales(self, iteration: int) -> list[Sample]:
        return self.samples(iteration, "rationalize")

    def synthesized(self, iteration: int) -> list[Problem]:
        """The problems iteration ``iteration``'s synthesize stage added to the pool."""
        return [Problem.from_dict(r) for r in read_jsonl(self.path(iteration, "synthesize"))]

    def rows(self, iteration: int, stage: str) -> list[dict[str, Any]]:
        """Plain rows of a stage's file (``select``: SFT rows, ``pairs``: preference rows)."""
        return read_jsonl(self.path(iteration, stage))

    def model(self, iteration: int) -> Path:
        return self.rd.path(RunDir.key(iteration, "train")) / MODEL

    @staticmethod
    def write_samples(out: Path, stage: str, samples: Iterable[Sample], name: str | None = None) -> int:
        return write_jsonl(out / (name or FILES[stage]), (sample_to_row(s) for s in samples))

    @staticmethod
    def write_rows(out: Path, stage: str, rows: Iterable[dict[str, Any]], name: str | None = None) -> int:
        return write_jsonl(out / (name or FILES[stage]), rows)
