"""Every seed a run derives from its ``seed``, in one function.

A run's ``seed`` varies everything the loop does. What each stage draws with:

============  =========================  ==================================================
purpose       seed                       what it drives
============  =========================  ==================================================
subset        ``"{seed}-{it}"``          which problems of the pool iteration ``it`` samples
sample        ``seed + it``              the sampling call of iteration ``it`` (``it`` >= 1)
rationalize   ``seed + 1000 + it``       the hinted re-asking of failed problems
label         ``seed + 2000 + it``       the tests written for unlabeled code problems
                                         and the statements of ``label.rewrite``
synthesize    ``seed + 3000 + it``       new problems proposed, and their labeling samples
select        ``seed + it``              the order of candidates, real and replayed rows
pairs         ``seed + it``              the order of candidate pairs within each prompt
evaluate      ``seed + 7919 * (it + 1)`` held-out sampling of the checkpoint of iteration ``it``
============  =========================  ==================================================

The offsets keep the streams apart: sampling and rationalization seeds never meet for fewer
than 1000 iterations, and evaluation seeds (a prime stride, from iteration 0) never meet the
other two for fewer than 7919. Seeds set elsewhere: the sampler engine is seeded with the run
seed itself (vLLM on CPU draws from that one stream), the problems of a split with the run seed
(``data.*.options.seed`` fixes it), the trainers with TRL's ``seed`` / ``data_seed`` in
``train.sft`` / ``train.dpo``, and a built-in model with its own build seed.
"""

from __future__ import annotations

from typing import Literal

Purpose = Literal["subset", "sample", "rationalize", "label", "synthesize", "select", "pairs", "evaluate"]


def stage_seed(run_seed: int, purpose: Purpose, iteration: int) -> int | str:
    """The seed ``purpose`` uses in ``iteration`` of a run seeded with ``run_seed`` (table above);
    ``subset`` is a string seed for :class:`random.Random`."""
    if purpose == "subset":
        return f"{run_seed}-{iteration}"
    if purpose in ("sample", "select", "pairs"):
        return run_seed + iteration
    if purpose == "rationalize":
        return run_seed + 1000 + iteration
    if purpose == "label":
        return run_seed + 2000 + iteration
    if purpose == "synthesize":
        return run_seed + 3000 + iteration
    if purpose == "evaluate":
        return run_seed + 7919 * (iteration + 1)
    raise ValueError(f"unknown seed purpose {purpose!r}")
