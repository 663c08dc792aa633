"""The fast LaTeX reader (:mod:`~starloop.verifiers.math.fast_reader`) against the ANTLR path it stands in for.

Whatever the fast reader reads must be the very tree ``latex2sympy2_extended`` builds (same
node types, same argument order, same symbols and assumptions), and whatever the ANTLR path
refuses the fast reader must decline: then which reader ran can never change a verdict.
Checked on the answer texts of the benchmark sets as they reach the parser, on edge cases,
on generated expressions and on random token soup.
"""

from __future__ import annotations

import random

import pytest
import sympy

from starloop.verifiers.math import fast_reader
from starloop.verifiers.math.latex import _Converter, latex_to_sympy
from starloop.verifiers.math.sympy_values import _prep

CORPUS = r"""
\frac{x+2}{7}
\frac{x}{7}+\frac{2}{7}
\frac{3}{2\sqrt{5}}
\frac{3\sqrt{5}}{10}
1+\sqrt{2}
\sqrt{2}+1
a^{2/3}
\sqrt[3]{a^{2}}
3\sqrt{2}
2^{\frac{1}{2}} \cdot 3
h \pi r^{2}
\pi r^2
\frac{-b}{2 a}
-\frac{b}{2a}
\frac{p^3}{q^3}
(\frac{p}{q})^{3}
\frac{1}{2}+\frac{\sqrt{3}}{2}i
e^{i\pi/3}
\frac{7!}{3! 4!}
\binom{7}{3}
4 + |t|
|{-4}| + |t|
\sin(15 )
\frac{\sqrt{6}-\sqrt{2}}{4}
\frac{m}{4}
\frac{25}{100}
1+\tan^2\theta
\sec^2\theta
2\sin u \cos u
\sin(2u)
\frac{\cos x}{\sin^2 x}
\cot x \csc x
\frac{\pi}{4}
\arctan(1)
4
\log_2 8 + \ln e
\log a + \log b
\log(ab)
9
e^{2\ln 3}
\frac{m(m+1)}{2}
\sum_{j=1}^{m} j
\sum_{i=0}^{m-1} G_{m-i-1} G_i
\sum_{i=0}^{m-1} G_i G_{m-i-1}
3x^2
\frac{d}{dx} x^3
\int_0^1 s\
\frac{2}{3\sqrt[3]{w^2-1}}
\frac{2}{3(w^2-1)^{1/3}}
cd - c + 3d - 3
(c+3)(d-1)
(u-3)(u+3)
u^2-9
2x+4y
3
y
\frac{3-2x}{4}
4x^2+9y^2
36
\frac{x^2}{9}+\frac{y^2}{4}
1
1 + i
1+i
1 - i
1-i
3t^2 - t + 4
3 t^{2}-t+4
\sqrt[3]{2}
2^{\frac{1}{3}}
5
x
q
-q
-4
\frac{\pi}{2}
\varnothing
\emptyset
\frac{1}{ad-bc}\begin{pmatrix} d & -b \\ -c & a \end{pmatrix}
\begin{pmatrix} a & b \\ c & d \end{pmatrix}^{-1}
2
AZYUK2A
-[0,1)
10
9+1
\frac{\pi r}{h+r}
\frac{9}{4}\pi
-x
-1
2x+4y-3
0
-\frac{1}{2}x+\frac{3}{4}
x^2/4 + y^2/3
x^2/16 + y^2/12
1/4
\begin{pmatrix}1 & 2 \\ 3 & 4\end{pmatrix} + \begin{pmatrix}5 & 6 \\ 7 & 8\end{pmatrix}
6
8
12
\begin{pmatrix}1 & 0 \\ 0 & 1\end{pmatrix} \begin{pmatrix}1 & 0 \\ 0 & 1\end{pmatrix}
\tan^2(y)+1
\sec^2(y)
\frac{1}{3\sqrt[3]{x}^2}
\frac{1}{3x^{2/3}}
34x+45y-20z+100
-34x-45y+20z-100
\frac{\sqrt{\sqrt{11}+\sqrt{194}}}{15+2\sqrt{33}}
\frac{\sqrt{\sqrt{11}+\sqrt{194}}}{2\sqrt{33}+15}
(a+5)(b+2)
(+5)(b+2)
\frac{1+\sqrt{5}}{2}
\frac{34}{16}+\frac{\sqrt{1358}}{16}
1\sqrt{19}
x+2n+1
x+1
-\infty
-3
\infty
\frac{5\sqrt{42}}{27}
\frac{10\sqrt{\frac{105}{10}}}{27}
-2
7
\frac{4123105625617661}{1000000000000000}
\sqrt{17}
4\sqrt{2}
ext{13}
13
|z|
\frac{3}{2}
-\frac{3}{2}
z
\frac{1}{\sqrt{6}}
d
E
f(x)
-793
a
\frac{1}{2}
\frac{-1 + \sqrt{13}}{4}
\frac{-1 - \sqrt{13}}{4}
10^{\frac{-5+\sqrt{13}}{6}}
10^{\frac{\sqrt{13} - 5}{6}}
10^{\frac{-5-\sqrt{13}}{6}}
10^{-\frac{5 + \sqrt{13}}{6}}
-2 x^{2}+4 x+3
-2(x - 1)^2 + 5
3 x^{2}+12 x+10
3(x + 2)^2 - 2
\frac{1}{2}+\frac{31\sqrt{5}}{216}
\frac{108 + 31\sqrt{5}}{216}
\frac{1}{2}-\frac{31\sqrt{5}}{216}
\frac{108 - 31\sqrt{5}}{216}
f(y)
\sum_{k=0}^{n-1} F_k F_{n-k-1}
\sum_{k=0}^{n-2} F_k F_{n-k-2}
\sum_{k=0}^{n-1} F_{n-k-1} F_k
1 - \frac{1}{e}
1 + \frac{1}{e}
1/3 + 1
\frac{1333}{1000}
\frac{1}{2} + 2/3
\frac{1}{2} + \frac{1}{72}
\frac{1}{2} +\frac{1}{72}
\frac{3}{4}i
x + y - z + 2
5x - 7y + 11z + 4
-\frac{2(x^2+6)}{9(x^2-2)\sqrt[3]{x^2-2}^2}
-\frac{8x^2}{9(x^2-2)^{5/3}}+\frac{2}{3(x^2-2)^{2/3}}
\frac{1}{2006!}
\frac{1}{2004!}
\frac{1}{3001!}
\frac{1}{3000!}
\frac{3001}{3001!}
2^{100}+1
2^{100}
1267650600228229401496703205376
10^{30}+1
10^{30}
10^{100}
\sqrt{10^{200}+1}
100!
\frac{1}{10^{40}}
9^{9^{9^9}}
9^{387420489}
(10^{6})!
\pi
\frac{314}{100}
90
60
\frac{x^2-1}{x-1}
x^2+2x+1
(x+1)^2
x^2+1
\sin^2 x + \cos^2 x
\log_2 8
2\sqrt{3}
\sqrt{12}
\binom{5}{2}
\arctan 1
\sin 2x
2\sin x\cos x
\sqrt{x^2}
\sqrt[3]{x}
x^{1/3}
\frac{x+y}{xy}
\frac{1}{x}+\frac{1}{y}
2x+4
2x+3
2x - y + 3
2x + 3
x^2 + y^2
\frac{\sqrt{3}}{2}
"""
"""Scalar texts of the public and own benchmark sets and of the worker warm-up, as they reach the parser."""

EDGE_CASES = [
    r"\frac{\frac{1}{2}}{\frac{3}{4}}", r"\frac{1}{1+\frac{1}{x}}", r"\dfrac{a}{b}+\tfrac{c}{d}", r"\cfrac{1}{2}",
    r"\sqrt[3]{x^2}", r"\sqrt[n]{a}", r"\sqrt{\sqrt{2}}", r"\sqrt[3]{-8}", r"\sqrt{x}^2", r"\sqrt[3]{x}^{2}",
    r"2\pi r", r"2\pi r^2", r"\pi r^2 h", r"4\pi", r"\frac{4}{3}\pi r^3", r"2 \pi",
    r"x^{-1}", r"x^{-2}", r"10^{3}", r"10^{-3}", r"2^{10}", "2^10", "x^23", r"a^{b^{c}}", r"2^{3}^{2}", "2^3^2",
    r"-x^2", r"-(x+1)", r"-\frac{1}{2}", "1--2", r"2\cdot-3", "-2x", "(-2)^3", "-2^3", "x-(-1)", "+3", "-+3", "--x",
    "a-b-c", "a-(b-c)", "a+b-c+d", "2-3", "1-2x", r"1-\frac{x}{2}", r"-\infty", r"\infty", r"2\infty",
    "3(x+1)", "(x+1)(x-1)", r"2\sqrt{2}", r"x\sqrt{3}", r"\frac{1}{2}x", "2 3", "3 2 1", r"3\frac{1}{2}",
    r"2\frac{3}{2}", r"-2\frac{1}{2}", r"(-2)\frac{1}{2}", r"2 2 \frac{1}{2}", r"\frac{1}{2}\frac{1}{2}", r"3\frac{x}{2}",
    r"2\cdot\frac{1}{2}", "m(m+1)", "x(y+1)", "x(2y)", "x(-1)", r"x(\frac{1}{2})", "x(3!)", "x_1(y+1)", "x^2(y+1)",
    r"\pi(r+1)", "x{y}", "2^x(y)", "e(x)", r"\infty(2)", "(a)(b)", "5!", "(n+1)!", "n!", "3!!", "(3)!", "x^2!",
    r"\binom{n}{2}", r"\binom{5}{2}", r"\dbinom{10}{3}", r"2\cdot 3", r"2\times x", r"6\div 3", "a/b/c", "a/bc",
    "a*b*c", r"\frac{a}{b}/c", "x_1", "x_{12}", "a_{n+1}", "x_12", "x_n^2", "x_{a}^{2}", r"\alpha_1", r"\alpha_{n}",
    r"\theta^2", r"\Pi", r"\Theta", r"\pi_1", r"\varphi", r"\omega t", "e^{i\\pi}", "e^{-x}", "2e", "e^2", "e^x", "e",
    "xe", "ex^2", "e^2x", "e x", "0012", "00", "0", "2!3", r"\frac{1}{0}", r"\frac{0}{0}", r"2\frac{1}{0}",
    r"\begin{pmatrix}1 & 2 \\ 3 & 4\end{pmatrix}", r"\begin{bmatrix}a \\ b\end{bmatrix}",
    r"\begin{pmatrix}1 \\ 2\\\end{pmatrix}", r"\begin{matrix}x & y\end{matrix}",
    r"\begin{pmatrix}1 & 2 \\ 3 & 4\end{pmatrix} + \begin{pmatrix}5 & 6 \\ 7 & 8\end{pmatrix}",
    r"\begin{pmatrix}1 & 0 \\ 0 & 1\end{pmatrix} \begin{pmatrix}2 \\ 3\end{pmatrix}", r"2\begin{pmatrix}1 \\ 2\end{pmatrix}",
    r"-\begin{pmatrix}1 \\ 2\end{pmatrix}", r"\begin{pmatrix}1 \\ 2\end{pmatrix} - \begin{pmatrix}3 \\ 4\end{pmatrix}",
    r"\sum_{k=1}^{n} k", r"2\sum_{k=1}^{n} k x", r"\sum_{k=1}^{n} k / 2", r"\sum_{k=1}^{n} k \cdot 2 + 1",
    r"\sum^{n}_{k=1} k", r"\prod_{k=1}^{n} k", r"\sum_{i=1}^{n}\sum_{j=1}^{m} ij", r"x\sum_{k=1}^{n} k",
    r"\sum_{k=1}^{n} -k", r"\sum_{k=1}^n k^2", r"\sum_{k=1}^{n} k!", r"\sum_{k=1}^{n} (k+1)(k-1)",
    r"\frac{1}{\sum_{k=1}^{n} k}", r"\sum_{k=0}^{n-1} F_k F_{n-k-1}", r"\sum_{k=1}^{n} k \sum_{j=1}^{k} j",
    r"1\,000", r"x \, y", r"x\!y", r"x\;+\:1", r"x \quad + 1", "ad - bc", "cd - c + 3d - 3", "xd", "d", "d2",
]
"""Forms the fast reader is meant to read, and corners of the grammar it must read the same way."""

RAW = ["1.5e3", "2.5x", "0.25", "10.5", "3.14r^2", "x^2.5", "1.5\\pi"]
"""Answers as written: the parser's input is their ``_prep`` form (decimals as fractions)."""

MUST_DECLINE = [
    "f(x)", "x (2)", "g(t)", "x^2(y)", r"\pi(2)", "x{(y)}", "x_{1}(2)", "x(y^2)", "a(b)(c)", r"\sin x", r"\sin(2u)",
    r"\log_2 8", r"\ln x", r"\sum_{k=1}^{n}", r"\sum_{k==1}^{n} k", r"\sum k", r"\sum_{k=1} k",
    r"\sum^n_{k=1} k", r"\sum_{k=1}^{n} k = 5", r"\int_0^1 x\,dx", "|x|", "2|x-1|", "a, b", "x = 1", "x < 1",
    r"\{1, 2\}", "{x}", "{x+1}", "[0, 1)", "(0, 1)", "[x]", r"\left(x\right)", "dx", r"\frac{d}{dx}x", r"d\theta",
    "tr", "2rows", "xones", "E", "2E5", "I", "x^T", "x^{T}", "x'", "1.5", r"50\%", "50%", "π", r"\emptyset",
    r"\varnothing", "x^{y}_{1}", "b_n^{a}^{c}", "e^{x}^{2}", "e^x^2", "x^-1", "2^-1", r"\frac12", r"\sqrt2", "", " ",
    r"\alpha_{\beta}", "x_{e}", "x_e", "3_2", r"x^\frac{1}{2}", r"2 \pm 1", r"\infty_1", "1!=2", "x_n_m", r"\gamma",
    r"\Gamma", r"\mathbb{R}", r"\text{cm}", r"\begin{vmatrix}1 & 2\\3 & 4\end{vmatrix}", r"\begin{pmatrix}\end{pmatrix}",
    r"\begin{pmatrix}1 & 2\\3\end{pmatrix}", "x+", "(x", "x)", r"\frac{1}", "^2", "x^", "x_", r"1 \choose 2",
    r"\pir", r"x \mod 3", "a:b", "2.", ".5",
]
"""Texts the fast reader must leave to the ANTLR path (other forms, or ones the grammar reads unexpectedly)."""


def antlr(text: str):
    return _Converter(None, True).parse(text)


def same(a, b) -> bool:
    """Structurally identical: node types, argument order, leaves (symbols with their assumptions)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, sympy.MatrixBase):
        return a.shape == b.shape and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, sympy.Basic) and (a.args or b.args):
        return a.func == b.func and len(a.args) == len(b.args) and all(
            same(x, y) for x, y in zip(a.args, b.args, strict=True))
    if isinstance(a, sympy.Symbol) and a.assumptions0 != b.assumptions0:
        return False
    return a == b


def agree(text: str) -> str | None:
    """Why the fast reader and the ANTLR path disagree on ``text``, or None."""
    fast = fast_reader.read(text)
    if fast is None:
        return None
    try:
        slow = antlr(text)
    except Exception as exc:
        return f"ANTLR refuses it ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
    if not same(fast, slow) or sympy.srepr(fast) != sympy.srepr(slow):
        return f"{sympy.srepr(fast)} != {sympy.srepr(slow)}"
    return None


@pytest.mark.parametrize("texts", [CORPUS.strip().splitlines(), EDGE_CASES, [_prep(t) for t in RAW]],
                         ids=["corpus", "edge-cases", "raw"])
def test_fast_reader_gives_the_antlr_tree(texts):
    bad = [(t, why) for t in texts if (why := agree(t)) is not None]
    assert not bad


def test_fast_reader_reads_the_everyday_forms():
    """Not a vacuous agreement: the common forms are read fast (most of the corpus, all the edge cases)."""
    corpus = CORPUS.strip().splitlines()
    assert sum(fast_reader.read(t) is not None for t in corpus) >= 0.8 * len(corpus)
    assert [t for t in EDGE_CASES if fast_reader.read(t) is None] == []


def test_fast_reader_declines_what_it_does_not_handle():
    assert [t for t in MUST_DECLINE if fast_reader.read(t) is not None] == []


def test_verifier_parser_uses_the_fast_reader_and_falls_back():
    assert same(latex_to_sympy(r"\frac{x}{7}+\frac{2}{7}", is_real=True), antlr(r"\frac{x}{7}+\frac{2}{7}"))
    assert same(latex_to_sympy("f(x)", is_real=True), antlr("f(x)"))  # declined: ANTLR reads it
    with pytest.raises(Exception, match="I expected something else here"):  # ANTLR's syntax error
        latex_to_sympy("x+", is_real=True)


_ATOMS = ["x", "y", "n", "a", "b", "k", "r", "z", "2", "3", "10", "0", "1", "12", "007", r"\pi", r"\theta", r"\alpha",
          "e", r"\infty", "i", "F_k", "x_1", "a_{n-1}", "x_{12}", "b_n", r"\Pi", "A", "G_i"]
_SUPS = ["2", "3", "x", "n", "23", "-1", r"\pi", "{-1}", "T", "{x+1}"]


def _expression(rng: random.Random, depth: int = 0) -> str:
    if depth > 3 or rng.random() < 0.3:
        return rng.choice(_ATOMS)

    def sub() -> str:
        return _expression(rng, depth + 1)

    forms = [
        lambda: f"{sub()}+{sub()}", lambda: f"{sub()}-{sub()}", lambda: f"{sub()} {sub()}", lambda: f"{sub()}{sub()}",
        lambda: rf"\frac{{{sub()}}}{{{sub()}}}", lambda: rf"\dfrac{{{sub()}}}{{{sub()}}}", lambda: rf"\sqrt{{{sub()}}}",
        lambda: rf"\sqrt[{rng.choice(['3', 'n', '4'])}]{{{sub()}}}", lambda: f"{sub()}^{{{sub()}}}",
        lambda: f"{rng.choice(_ATOMS)}^{rng.choice(_SUPS)}", lambda: f"({sub()})", lambda: f"-{sub()}",
        lambda: rf"{sub()}\cdot {sub()}", lambda: f"{sub()}/{sub()}", lambda: f"{sub()}!",
        lambda: f"{rng.choice(_ATOMS)}({sub()})", lambda: rf"{sub()}\times{sub()}", lambda: rf"\binom{{{sub()}}}{{{sub()}}}",
        lambda: rf"\sum_{{k={sub()}}}^{{{sub()}}} {sub()}", lambda: rf"\prod_{{{rng.choice(_ATOMS)}=1}}^{rng.choice(_SUPS)}{sub()}",
    ]
    return rng.choice(forms)()


_PIECES = ["x", "y", "2", "10", "0", "+", "-", "*", "/", "^", "_", "!", "(", ")", "{", "}", "[", "]", r"\frac", r"\sqrt",
           r"\binom", r"\cdot", r"\times", r"\div", r"\pi", "e", r"\infty", " ", "&", "\\\\", r"\begin{pmatrix}",
           r"\end{pmatrix}", "n", "k", r"\,", r"\!", "|", "{1}", "{x}", "(x)", "(2)", "^2", "_1", "_{n}", "d", "a", "b",
           "c", "r", "o", "w", "s", "t", r"\sum", r"\prod", "=", "_{k=1}", "^{n}"]


def test_fast_reader_agrees_on_generated_expressions():
    rng = random.Random(20261130)
    texts = [_expression(rng) for _ in range(600)]
    bad = [(t, why) for t in texts if (why := agree(t)) is not None]
    assert not bad
    assert sum(fast_reader.read(t) is not None for t in texts) > 400


def test_fast_reader_agrees_on_token_soup():
    """Random token sequences, mostly not mathematics: whatever the fast reader accepts, ANTLR reads the same way."""
    rng = random.Random(7)
    texts = ["".join(rng.choice(_PIECES) for _ in range(rng.randint(1, 9))) for _ in range(3000)]
    bad = [(t, why) for t in texts if (why := agree(t)) is not None]
    assert not bad
