"""LaTeX to SymPy with ``latex2sympy2_extended``, parsed in ANTLR's two stages (worker side).

``latex2sympy2_extended`` parses with ANTLR's full LL prediction, which for this grammar falls
back to full-context prediction at many decisions, on every parse (full-context results are
not cached). ANTLR's recommended strategy is two-stage parsing: parse with SLL prediction
first, which either gives exactly the tree LL prediction would give or reports a syntax error
(the grammar's only predicates are precedence predicates, which SLL honours), and only on an
error parse again with LL, so an input LL can read is never refused. The converter that turns
the tree into SymPy is ``latex2sympy2_extended``'s own, unchanged. Measured on the 105 answers
of the benchmark sets that reach SymPy: about a third less parse time; verdicts identical.

Most answers never reach ANTLR: :mod:`~starloop.verifiers.math.fast_reader` reads the everyday
forms (fractions, roots, powers, products...) into the identical SymPy tree far faster and
declines the rest, which is parsed here.

If the library's converter class is not there (another version), :func:`latex_to_sympy` uses
its public ``latex2sympy`` as it is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from antlr4.atn.PredictionMode import PredictionMode
from latex2sympy2_extended import latex2sympy2

from starloop.verifiers.math import fast_reader


class _TwoStageParser:
    """Stands in for the ANTLR parser the converter creates: ``math()`` parses SLL, then LL on an error."""

    def __init__(self, make: Callable[[str], Any], text: str) -> None:
        self.make, self.text = make, text

    def math(self) -> Any:
        parser = self.make(self.text)
        parser._interp.predictionMode = PredictionMode.SLL
        try:
            return parser.math()
        except Exception:  # a syntax error under SLL: LL decides
            return self.make(self.text).math()


_Base = getattr(latex2sympy2, "_Latex2Sympy", None)

if _Base is not None and hasattr(_Base, "create_parser") and hasattr(_Base, "parse"):

    class _Converter(_Base):  # type: ignore[misc, valid-type]
        def create_parser(self, latex_str: str) -> Any:
            return _TwoStageParser(super().create_parser, latex_str)

    def latex_to_sympy(text: str, *, is_real: bool | None = None) -> Any:
        """``latex2sympy(text, normalization_config=None, is_real=...)``: the fast reader, else two-stage parsing."""
        if is_real is True:
            value = fast_reader.read(text)
            if value is not None:
                return value
        return _Converter(None, is_real).parse(text)

else:  # pragma: no cover - another library version

    def latex_to_sympy(text: str, *, is_real: bool | None = None) -> Any:
        return latex2sympy2.latex2sympy(text, normalization_config=None, is_real=is_real)


def prime(texts: Iterable[str]) -> None:
    """Parse ``texts`` with the ANTLR path only, discarding results and errors: builds ANTLR's
    prediction tables for the forms :mod:`~starloop.verifiers.math.fast_reader` leaves to it,
    which a warm-up through the verifier would now mostly read fast (worker warm-up)."""
    for text in texts:
        try:
            if _Base is not None and hasattr(_Base, "create_parser"):
                _Converter(None, True).parse(text)
            else:  # pragma: no cover - another library version
                latex2sympy2.latex2sympy(text, normalization_config=None, is_real=True)
        except Exception:  # a form ANTLR refuses still builds the tables it passed through
            pass
