"""What a verification worker does once when it starts, so that no real job pays for a first use.

Most of a cold worker's time on its first comparisons is not the comparisons: the LaTeX
parser (ANTLR, inside ``latex2sympy2_extended``) builds its prediction tables lazily, one
grammar construct at a time, the first time it meets that construct, and SymPy imports and
caches its simplification, solving and set machinery on first use. Measured on 69 SymPy
comparisons of the public benchmark set: about 2.0 s in a freshly started worker, 0.26 s in
the same worker once those tables exist. A worker is long-lived (it serves a whole run), so
it pays this once, at start, with the pairs below: everyday answer forms of each kind the
parser and :mod:`~starloop.verifiers.math.equivalence` handle (fractions, roots, powers,
trigonometry, logarithms, sums, matrices, equations, inequalities, intervals and sets),
written with values of their own. SymPy's result caches are cleared afterwards, so nothing
computed here is reused as a result.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

PAIRS: tuple[tuple[str, str], ...] = (
    # scalars: fractions, roots, powers, constants
    (r"\frac{x}{7}+\frac{2}{7}", r"\frac{x+2}{7}"),
    (r"\dfrac{3\sqrt{5}}{10}", r"\frac{3}{2\sqrt{5}}"),
    (r"\sqrt{2}+1", r"1+\sqrt{2}"),
    (r"\sqrt[3]{a^{2}}", r"a^{2/3}"),
    (r"2^{\frac{1}{2}} \cdot 3", r"3\sqrt{2}"),
    (r"\pi r^2 h", r"h \pi r^{2}"),
    (r"-\frac{b}{2a}", r"\frac{-b}{2 a}"),
    (r"\left(\frac{p}{q}\right)^{3}", r"\frac{p^3}{q^3}"),
    (r"e^{i\pi/3}", r"\frac{1}{2}+\frac{\sqrt{3}}{2}i"),
    (r"\binom{7}{3}", r"\frac{7!}{3!\,4!}"),
    (r"|{-4}| + |t|", r"4 + |t|"),
    (r"\frac{\sqrt{6}-\sqrt{2}}{4}", r"\sin(15^\circ)"),
    (r"0.25 m", r"\frac{m}{4}"),
    # trigonometry, logarithms, exponentials
    (r"\sec^2\theta", r"1+\tan^2\theta"),
    (r"\sin(2u)", r"2\sin u \cos u"),
    (r"\cot x \csc x", r"\frac{\cos x}{\sin^2 x}"),
    (r"\arctan(1)", r"\frac{\pi}{4}"),
    (r"\log_2 8 + \ln e", r"4"),
    (r"\log(ab)", r"\log a + \log b"),
    (r"e^{2\ln 3}", r"9"),
    # calculus-style answers
    (r"\sum_{j=1}^{m} j", r"\frac{m(m+1)}{2}"),
    (r"G_m = \sum_{i=0}^{m-1} G_i G_{m-i-1}", r"G_m = \sum_{i=0}^{m-1} G_{m-i-1} G_i"),
    (r"\frac{d}{dx} x^3", r"3x^2"),
    (r"\int_0^1 s\,ds", r"\frac{1}{2}"),
    (r"\frac{2}{3(w^2-1)^{1/3}}", r"\frac{2}{3\sqrt[3]{w^2-1}}"),
    # expressions, factorisations, polynomials
    (r"(c+3)(d-1)", r"cd - c + 3d - 3"),
    (r"u^2-9", r"(u-3)(u+3)"),
    (r"f(y)", r"f(y)"),
    (r"g_{n+1}", r"g_{n+1}"),
    # equations and assignments
    (r"2x+4y=3", r"y=\frac{3-2x}{4}"),
    (r"\frac{x^2}{9}+\frac{y^2}{4}=1", r"4x^2+9y^2=36"),
    (r"k = 5, m = -2", r"m=-2, k=5"),
    (r"z_1 = 1+i, z_2 = 1-i", r"1 \pm i"),
    (r"w_{1}=3 t^{2}-t+4,\quad w_{2}=2^{\frac{1}{3}}", r"3t^2 - t + 4, \sqrt[3]{2}"),
    (r"\text{17}", r"17"),
    # inequalities, intervals, sets
    (r"x \le 5", r"5 \ge x"),
    (r"-q \geq -4", r"q \le 4"),
    (r"-3 < t \leq 8", r"t \in (-3, 8]"),
    (r"y < -1 \text{ or } y > 2", r"(-\infty,-1)\cup(2,\infty)"),
    (r"[-2, 7)", r"[-2, 7)"),
    (r"\left[0, \frac{\pi}{2}\right]", r"[0, \frac{\pi}{2}]"),
    (r"\{1, 2, 3\}", r"\{3, 2, 1\}"),
    (r"\emptyset", r"\varnothing"),
    (r"2 \le |v| \le 3", r"[-3,-2]\cup[2,3]"),
    (r"v \in [-3,-2]\cup[2,3]", r"2 \le |v| \le 3"),
    (r"w^2 < 9", r"-3 < w < 3"),  # solved: linear relations and |x| bounds are read directly
    # matrices and vectors
    (r"\begin{pmatrix} 1 & 0 \\ 0 & 1 \end{pmatrix}", r"\begin{bmatrix} 1 & 0 \\ 0 & 1 \end{bmatrix}"),
    (r"\begin{pmatrix} 2 \\ -1 \end{pmatrix}", r"(2, -1)"),
    (r"\begin{pmatrix} a & b \\ c & d \end{pmatrix}^{-1}", r"\frac{1}{ad-bc}\begin{pmatrix} d & -b \\ -c & a \end{pmatrix}"),
)


ANTLR_FORMS: tuple[str, ...] = (
    # everyday forms the fast reader declines, so ANTLR still parses: calls, functions, bars, sets
    "f(x)", "g(t)", "h(2)", "f^{-1}(x)", "F(n+1)", r"\sin(3v)", r"\cos^2(w)", r"\tan^2(y)+1", r"\sec^2(q)",
    r"\sin 4t", r"\sin^2 s + \cos^2 s", r"\arctan 2", r"\arcsin(\frac{1}{3})", r"\log_3 9", r"\log(uv)", r"\ln(5)",
    r"\ln 7 + 1", r"e^{3\ln 2}", r"\exp(k)", "|w|", "|p-2|", r"2|q+1|", r"\lfloor m \rfloor", r"\lceil m \rceil",
    r"-[2,5)", "E", r"\{1, 3\}", r"\emptyset", r"\mathbb{R}", r"50\%", r"\text{yes}", r"a \bmod b",
)
"""Answer forms the fast reader declines, parsed once by ANTLR alone (``prime``) so their tables exist."""

QUICK = 4
"""How many of the pairs a quick warm-up judges (a worker replacing one killed mid-run)."""


def run(judge: Callable[[str, str, dict[str, Any]], tuple[str, str]], clear_cache: Callable[[], None],
        quick: bool = False, prime: Callable[[tuple[str, ...]], None] | None = None) -> None:
    """Judge the pairs once with the default options (verdicts are discarded), prime the ANTLR
    parser with :data:`ANTLR_FORMS` (full warm-up only), then clear caches."""
    for pred, gold in PAIRS[:QUICK] if quick else PAIRS:
        judge(pred, gold, {})
    if prime is not None and not quick:
        prime(ANTLR_FORMS)
    clear_cache()
