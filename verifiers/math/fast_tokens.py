"""Tokens for :mod:`~starloop.verifiers.math.fast_reader`: the handled subset of the ANTLR lexer's tokens.

The reader must never read text the ANTLR lexer would cut differently, so before cutting,
texts with what that lexer treats specially are declined whole: letter runs it reads as one
keyword (``tr``, ``rows``, ``eig``...), ``d`` before a letter (a differential), ``E``
(e-notation), ``I``, ``!=`` and ``^T``; and any character or command outside the handled set.
"""

from __future__ import annotations

import re


class Decline(Exception):  # noqa: N818 - control flow, not an error
    """The text uses something this reader does not handle exactly like the ANTLR path."""


_GREEK = frozenset(
    "alpha beta delta Delta epsilon varepsilon zeta eta theta Theta vartheta iota kappa lambda Lambda mu nu "
    "xi Xi omicron pi Pi varpi rho varrho sigma Sigma varsigma tau upsilon Upsilon phi Phi varphi chi psi Psi "
    "omega Omega".split()
)
_COMMANDS = {
    "frac": "frac", "dfrac": "frac", "tfrac": "frac", "cfrac": "frac",
    "binom": "binom", "dbinom": "binom", "tbinom": "binom", "sqrt": "sqrt",
    "cdot": "mul", "times": "mul", "div": "div", "infty": "inf", "sum": "sum", "prod": "prod",
}
_SPACES = frozenset("quad qquad thinspace medspace thickspace negthinspace negmedspace negthickspace".split())
_TOKEN = re.compile(
    r"(?P<ws>[ \t\r\n]+|\\[,:;!])|(?P<row>\\\\)"
    r"|(?P<begin>\\begin\{(?:matrix|pmatrix|bmatrix)\})|(?P<end>\\end\{(?:matrix|pmatrix|bmatrix)\})"
    r"|\\(?P<cmd>[A-Za-z]+)|(?P<num>[0-9]+)|(?P<letter>[A-Za-z])|(?P<op>[-+*/^_!(){}\[\]&|=])"
)
_KEYWORDS = re.compile(
    r"arsinh|arcsinh|arcosh|arccosh|artanh|arctanh|gcd|lcm|floor|ceil|eye|zeros|ones|cols|rows|diag|norm|"
    r"rank|rref|hstack|vstack|nullspace|matrix|tr|orth|eig|svd|SVD"
)
"""Letter runs the ANTLR lexer reads as one keyword token (``tr``, ``rows``...), not as letters."""
_DIFFERENTIAL = re.compile(r"d[ \t\r\n]*[A-Za-z\\]")
"""``dx``, ``d \\theta``: one differential token for the ANTLR lexer."""
_ODD = re.compile(r"[EI]|!=|\^[ \t\r\n]*\{?[ \t\r\n]*T")
"""``E`` (e-notation), ``I`` (read as the imaginary unit before its sub/superscripts), ``!=``, ``^T``."""

Token = tuple[str, str]


def tokens(text: str) -> list[Token]:
    """The text as (kind, text) tokens; :class:`Decline` for anything outside the handled forms."""
    if not text.isascii():
        raise Decline("non-ASCII")
    bare = re.sub(r"\\(?:begin|end)\{[a-z]*\}|\\[A-Za-z]+", "\\\\", text)  # commands out, letters stay
    if _KEYWORDS.search(bare) or _DIFFERENTIAL.search(bare) or _ODD.search(bare):
        raise Decline("a keyword, differential or special letter")
    out: list[Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise Decline(f"unhandled character {text[pos]!r}")
        pos = m.end()
        kind = m.lastgroup or ""
        if kind == "ws":
            continue
        if kind == "cmd":
            name = m.group("cmd")
            if name in _SPACES:
                continue
            if name in _GREEK:
                out.append(("greek", "\\" + name))
            elif name in _COMMANDS:
                out.append((_COMMANDS[name], name))
            else:
                raise Decline(f"unhandled command \\{name}")
        elif kind == "letter":
            out.append(("e" if m.group() == "e" else "letter", m.group()))
        elif kind == "op":
            op = m.group()
            out.append(("mul" if op == "*" else "div" if op == "/" else op, op))
        else:
            out.append((kind, m.group()))
    return out


class Cursor:
    """The tokens and the reading position."""

    def __init__(self, toks: list[Token]) -> None:
        self.toks, self.pos = toks, 0

    def peek(self, ahead: int = 0) -> str:
        k = self.pos + ahead
        return self.toks[k][0] if k < len(self.toks) else ""

    def take(self) -> Token:
        if self.pos >= len(self.toks):
            raise Decline("unexpected end")
        tok = self.toks[self.pos]
        self.pos += 1
        return tok

    def expect(self, kind: str) -> None:
        if self.take()[0] != kind:
            raise Decline(f"expected {kind}")

    def closing(self, start: int) -> int:
        """Index of the token closing the bracket at ``start``."""
        opening = self.toks[start][0]
        close = {"(": ")", "{": "}", "[": "]"}[opening]
        depth = 0
        for k in range(start, len(self.toks)):
            kind = self.toks[k][0]
            depth += (kind == opening) - (kind == close)
            if depth == 0:
                return k
        raise Decline("unbalanced")
