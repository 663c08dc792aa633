"""A hand-written reader for the everyday LaTeX of answers, giving exactly ``latex2sympy2_extended``'s result.

Why: in a verification worker most of a SymPy comparison's time went into parsing the two
answers with the ANTLR grammar of ``latex2sympy2_extended`` (:mod:`~starloop.verifiers.math.latex`),
whose Python runtime builds its prediction tables lazily and re-predicts at many decisions on
every parse: tens of milliseconds for a fraction, where the comparison itself takes a few.

What: a recursive-descent reader for the forms answers are mostly written in (integers,
``\\frac``/``\\dfrac``/``\\tfrac``/``\\cfrac``, ``\\sqrt`` and ``\\sqrt[n]``, ``\\binom``, powers,
``+ - * / \\cdot \\times \\div``, implicit products such as ``2\\pi r``, unary signs, groups in
``()`` and ``{}``, ``!``, letters with subscripts, Greek letters, ``e``, ``\\infty``, matrices,
``\\sum`` and ``\\prod`` with both limits) that builds the very SymPy tree the ANTLR path
builds: the same grammar shape (left-associative ``+ -`` and ``* /``, implicit products binding
tighter than ``/``, the library's mixed-number rule ``2\\frac{1}{2} = 5/2``) and the converter's
own helpers (``add_flat``, ``mul_flat``...) and symbol function. Anything else (functions,
relations, lists and sets, brackets, ``|x|``, differentials, letters the ANTLR lexer reads as
keywords, ``f(x)``-like calls...) makes it decline (:func:`read` returns ``None``) and the ANTLR
path reads the text as before, so a verdict never depends on which reader ran.
``tests/test_math_fast_reader.py`` checks the two trees are identical node by node on the
benchmark answer texts, edge cases, generated expressions and random token soup (where ANTLR
refuses a text, the fast reader must decline it).
"""

from __future__ import annotations

from typing import Any

import sympy

from starloop.verifiers.math.fast_tokens import Cursor, Decline, tokens

try:
    from latex2sympy2_extended.latex2sympy2 import _Latex2Sympy
    from latex2sympy2_extended.symbols import get_symbol

    _HELP: Any = _Latex2Sympy(None, True)
    if not all(hasattr(_HELP, n) for n in ("add_flat", "mul_flat", "mat_add_flat", "mat_mul_flat")):
        _HELP = None
except (ImportError, TypeError):  # pragma: no cover - another library version: never read fast
    _HELP = None


def read(text: str) -> Any | None:
    """SymPy value of ``text`` exactly as ``latex2sympy(text, is_real=True)`` gives it, or None (not handled)."""
    if _HELP is None:
        return None
    try:
        cur = Cursor(tokens(text))
        if not cur.toks or (cur.peek() == "{" and cur.closing(0) == len(cur.toks) - 1):
            return None  # empty, or a whole "{...}": the grammar reads a set
        value = _expr(cur)
        if cur.pos != len(cur.toks):
            return None
        return value
    except Exception:  # Decline, too deep, or a step SymPy refused (a ragged matrix): the ANTLR path decides
        return None


def _matrix(v: Any) -> bool:
    return bool(getattr(v, "is_Matrix", False))


def _expr(cur: Cursor) -> Any:
    """``additive``: left-associative ``+``/``-`` over products (as ``convert_add``)."""
    lh = _mp(cur)
    while cur.peek() in ("+", "-"):
        op = cur.take()[0]
        rh = _mp(cur)
        if _matrix(lh) or _matrix(rh):
            lh = _HELP.mat_add_flat(lh, rh if op == "+" else _HELP.mat_mul_flat(-1, rh))
        elif op == "+":
            lh = _HELP.add_flat(lh, rh)
        else:
            lh = _HELP.add_flat(lh, -rh if rh.func.is_Number else _HELP.mul_flat(-1, rh))
    return lh


def _mp(cur: Cursor) -> Any:
    """``mp``: left-associative ``* \\cdot \\times / \\div`` over unary terms (as ``convert_mp``)."""
    lh = _unary(cur)
    while cur.peek() in ("mul", "div"):
        op = cur.take()[0]
        rh = _unary(cur)
        if op == "mul":
            lh = _HELP.mat_mul_flat(lh, rh) if _matrix(lh) or _matrix(rh) else _HELP.mul_flat(lh, rh)
        elif _matrix(lh) or _matrix(rh):
            lh = sympy.MatMul(lh, sympy.Pow(rh, -1, evaluate=False), evaluate=False)
        elif getattr(lh, "is_Integer", False) and getattr(rh, "is_Integer", False):
            lh = sympy.Rational(lh, rh)
        else:
            lh = sympy.Mul(lh, sympy.Pow(rh, -1, evaluate=False), evaluate=False)
    return lh


_STARTS = frozenset({"num", "letter", "greek", "inf", "e", "(", "{", "frac", "binom", "sqrt", "begin", "sum", "prod"})


def _unary(cur: Cursor) -> Any:
    """``unary``: a sign and a term, or an implicit product of postfix terms (as ``convert_unary``)."""
    if cur.peek() == "+":
        cur.take()
        return _unary(cur)
    if cur.peek() == "-":
        cur.take()
        v = _unary(cur)
        if _matrix(v):
            return _HELP.mat_mul_flat(-1, v)
        if v.func.is_Number or getattr(v, "is_Number", False):
            return -v
        return _HELP.mul_flat(-1, v)
    items = []
    while cur.peek() in _STARTS:
        items.append(_postfix(cur))
    if not items:
        raise Decline("expected a term")
    return _product(items)


def _product(items: list[Any]) -> Any:
    """Implicit product, folded from the right with the mixed-number rule (as ``convert_postfix_list``)."""
    rh = items[-1]
    for res in reversed(items[:-1]):
        if not isinstance(res, (sympy.Expr, sympy.Matrix)):
            raise Decline("not an expression")
        if _matrix(res) or _matrix(rh):
            rh = _HELP.mat_mul_flat(res, rh)
        elif getattr(res, "is_Integer", False) and getattr(rh, "is_Rational", False) and rh.p > 0 and rh.q > 0:
            rh = sympy.Rational(res * rh.q - rh.p if res < 0 else res * rh.q + rh.p, rh.q)
        else:
            rh = _HELP.mul_flat(res, rh)
    if not isinstance(rh, (sympy.Expr, sympy.Matrix)):
        raise Decline("not an expression")
    return rh


def _postfix(cur: Cursor) -> Any:
    """``postfix``: a power, then factorials."""
    v = _power(cur)
    while cur.peek() == "!":
        cur.take()
        v = sympy.factorial(v, evaluate=False)
    return v


def _power(cur: Cursor) -> Any:
    """``exp``: a component raised to superscripts, left to right (``2^3^2`` is ``(2^3)^2``)."""
    chained = cur.peek() != "e"  # e^{x}^{2}: the grammar has two readings
    base = _comp(cur)
    while cur.peek() == "^":
        if not chained:
            raise Decline("a power of e^x")
        cur.take()
        base = sympy.Pow(base, _superscript(cur), evaluate=False)
        if cur.peek() == "_":
            raise Decline("subscript after a superscript")
    return base


def _superscript(cur: Cursor) -> Any:
    """``^{expr}`` or ``^atom``: a number, a letter or Greek letter (without scripts of its own), ``\\infty``."""
    kind, text = cur.take()
    if kind == "{":
        v = _expr(cur)
        cur.expect("}")
        return v
    if kind == "num":
        return _number(text)
    if kind in ("letter", "greek") and cur.peek() not in ("^", "_"):
        return get_symbol(text, True, True)
    if kind == "inf":
        return sympy.oo
    raise Decline("unhandled superscript")


def _number(text: str) -> Any:
    """As ``parse_number``: ``sympy.Number`` of the digits is the Integer, built without SymPy's string parser."""
    if len(text) > 4000:  # beyond Python's default int() digit limit
        raise Decline("number too long")
    return sympy.Integer(int(text))


def _comp(cur: Cursor) -> Any:
    """``comp``: a group, a fraction, a binomial, a root, a matrix, ``e``, a number or a symbol."""
    kind, text = cur.take()
    if kind in ("(", "{"):
        v = _expr(cur)
        cur.expect(")" if kind == "(" else "}")
        return v
    if kind == "num":
        if cur.peek() == "_":
            raise Decline("number with a subscript")
        return _number(text)
    if kind == "inf":
        if cur.peek() == "_":
            raise Decline("\\infty with a subscript")
        return sympy.oo
    if kind in ("letter", "greek"):
        return _symbol(cur, text)
    if kind == "e":
        if cur.peek() == "_":
            raise Decline("e with a subscript")
        if cur.peek() == "^":
            cur.take()
            return sympy.exp(_superscript(cur))
        return sympy.exp(1)
    if kind in ("frac", "binom"):
        top, bottom = _braced(cur), _braced(cur)
        return sympy.binomial(top, bottom) if kind == "binom" else _fraction(top, bottom)
    if kind == "sqrt":
        root = None
        if cur.peek() == "[":
            cur.take()
            root = _expr(cur)
            cur.expect("]")
        base = _braced(cur)
        return sympy.Pow(base, sympy.S.Half if root is None else 1 / root, evaluate=False)
    if kind == "begin":
        return _matrix_rows(cur)
    if kind in ("sum", "prod"):
        return _big_operator(cur, kind)
    raise Decline(f"unexpected {kind}")


def _big_operator(cur: Cursor, kind: str) -> Any:
    """``\\sum_{k=a}^{b} term`` or ``\\prod``, limits in either order; the term is the product that
    follows (``\\sum_{k=1}^{n} k + 1`` is ``Sum(k) + 1``), as ``handle_sum_or_prod``."""
    bounds: tuple[Any, Any] | None = None
    end = None
    for _ in range(2):
        if cur.peek() == "_" and bounds is None:
            cur.take()
            cur.expect("{")
            var = _expr(cur)
            cur.expect("=")
            bounds = (var, _expr(cur))
            cur.expect("}")
        elif cur.peek() == "^" and end is None:
            cur.take()
            end = _superscript(cur)
    if bounds is None or end is None:
        raise Decline("a sum or product without both limits")
    term = _mp(cur)
    return (sympy.Sum if kind == "sum" else sympy.Product)(term, (bounds[0], bounds[1], end))


def _braced(cur: Cursor) -> Any:
    cur.expect("{")
    v = _expr(cur)
    cur.expect("}")
    return v


def _fraction(top: Any, bottom: Any) -> Any:
    """As ``convert_frac`` (its derivative forms never get here: differentials are declined)."""
    if _matrix(top) or _matrix(bottom):
        return sympy.MatMul(top, sympy.Pow(bottom, -1, evaluate=False), evaluate=False)
    if getattr(top, "is_Integer", False) and getattr(bottom, "is_Integer", False):
        return sympy.Rational(top, bottom)
    return sympy.Mul(top, sympy.Pow(bottom, -1, evaluate=False), evaluate=False)


def _symbol(cur: Cursor, name: str) -> Any:
    """A letter or Greek letter with an optional subscript, then superscript (as ``convert_atom_expr``).

    Followed by ``(`` around a single atom (``f(x)``, ``x (2)``, ``a^2(b)``) or by ``{(``, the
    grammar reads a function call: declined. Around anything larger (``m(m+1)``) it is a product.
    """
    sub = ""
    if cur.peek() == "_":
        cur.take()
        sub = _subscript(cur)
    sup = None
    if cur.peek() == "^":
        cur.take()
        sup = _superscript(cur)
    if cur.peek() == "_" or (sub and sup is not None and cur.peek() == "^"):
        raise Decline("scripts the grammar can group two ways")  # b_n^{a}^{c} is b_{n^{a}}^{c}
    if cur.peek() == "[" or (cur.peek() == "{" and cur.peek(1) in ("(", "[")):
        raise Decline("a function call")
    if cur.peek() == "(" and _atom_end(cur, cur.pos + 1) == cur.closing(cur.pos):
        raise Decline("a function call")
    symbol = get_symbol(name + sub, True, True)
    return symbol if sup is None else sympy.Pow(symbol, sup, evaluate=False)


def _subscript(cur: Cursor) -> str:
    """The subscript as the grammar spells it into the symbol's name (``x_1``, ``F_{n-1}``, ``x_{12}``)."""
    kind, text = cur.take()
    if kind in ("num", "letter"):
        inner = text
    elif kind == "{":
        end = cur.closing(cur.pos - 1)
        part = cur.toks[cur.pos:end]
        if not part or any(k not in ("num", "letter", "+", "-") for k, _ in part):
            raise Decline("unhandled subscript")
        check = Cursor(part)
        _expr(check)  # the grammar reads a subscript as an expression: it must be one
        if check.pos != len(part):
            raise Decline("subscript is not an expression")
        inner = "".join(t for _, t in part)
        cur.pos = end + 1
    else:
        raise Decline("unhandled subscript")
    return "_{" + inner + "}" if len(inner) > 1 else "_" + inner


def _atom_end(cur: Cursor, k: int) -> int:
    """Where an atom starting at token ``k`` would end (a number, ``\\infty``, a symbol with scripts); -1 if none."""
    kinds = [kind for kind, _ in cur.toks]
    if k >= len(kinds) or kinds[k] not in ("num", "inf", "letter", "greek"):
        return -1
    start, k = kinds[k], k + 1
    for _ in range(2 if start in ("letter", "greek") else 0):
        if k + 1 >= len(kinds) or kinds[k] not in ("_", "^"):
            break
        k = cur.closing(k + 1) + 1 if kinds[k + 1] == "{" else k + 2
    return k


def _matrix_rows(cur: Cursor) -> Any:
    """``\\begin{pmatrix} a & b \\\\ c & d \\end{pmatrix}``: a mutable Matrix (as ``convert_matrix``)."""
    rows: list[list[Any]] = []
    while True:
        row = [_expr(cur)]
        while cur.peek() == "&":
            cur.take()
            row.append(_expr(cur))
        rows.append(row)
        kind = cur.take()[0]
        if kind == "row" and cur.peek() == "end":
            kind = cur.take()[0]
        if kind == "end":
            return sympy.Matrix(rows)
        if kind != "row":
            raise Decline("unhandled matrix")
