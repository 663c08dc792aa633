"""starloop verifiers: judge a model's completion against a problem and return a Verdict.

Built in: ``math`` (final-answer extraction and SymPy equivalence), ``code`` (the program runs
against unit tests in the sandbox) and ``judge`` (an LLM judge on an OpenAI-compatible server
grades the completion against a rubric). Add your own with :func:`register_verifier`, or from a
separate package through the ``starloop.verifiers`` entry-point group.
"""

from starloop.verifiers.records import REASONS, Problem, Verdict
from starloop.verifiers.registry import (
    VerifierSpec,
    VerifyItem,
    get_verifier,
    list_verifiers,
    register_verifier,
    verify_batch,
    verify_one,
)

__all__ = [
    "REASONS",
    "Problem",
    "Verdict",
    "VerifierSpec",
    "VerifyItem",
    "get_verifier",
    "list_verifiers",
    "register_verifier",
    "verify_batch",
    "verify_one",
]
