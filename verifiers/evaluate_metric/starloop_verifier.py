"""starloop's verifier-backed pass@k and maj@k as a Hugging Face ``evaluate`` metric.

Load it with ``evaluate.load(starloop.verifiers.metrics.evaluate_script(), verifier="math",
k=[1, 4])``; the computation is :func:`starloop.verifiers.metrics.score`.
"""

import datasets
import evaluate

from starloop.verifiers.metrics import score

_DESCRIPTION = """pass@k (unbiased estimator) and maj@k (self-consistency) of sampled completions, each judged
by a starloop verifier (math: SymPy equivalence of the final answer; code: sandboxed tests; or any
verifier registered through the starloop.verifiers entry points)."""

_KWARGS = """
Args:
    predictions: per problem, a list of sampled completions.
    references: per problem, the gold answer (math) or the tests (code).
Init args: verifier (default "math"), k (default [1]), options (verifier options), workers.
Returns: {"pass@k": ..., "maj@k": ...} for every k no larger than the fewest samples of a problem.
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS)
class StarloopVerifier(evaluate.Metric):
    def __init__(self, verifier: str = "math", k=(1,), options=None, workers: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.verifier, self.k, self.options, self.workers = verifier, list(k), options, workers

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS,
            features=datasets.Features({
                "predictions": datasets.Sequence(datasets.Value("string")),
                "references": datasets.Value("string"),
            }),
        )

    def _compute(self, predictions, references):
        return score(predictions, references, verifier=self.verifier, k=self.k, options=self.options,
                     workers=self.workers)
