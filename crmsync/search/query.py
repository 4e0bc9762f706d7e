"""The search query a user types, parsed into literals.

Syntax: plain words must all match, in any order; ``"a quoted phrase"`` matches as written;
``OR`` between two terms matches either (``OR`` binds its neighbours: ``acme OR globex london``
is (acme or globex) and london); ``-word`` or ``NOT word`` excludes records containing it;
``AND`` may be written but is the default. Operators are upper case; ``or`` is a word.

Every term is a **case-insensitive substring**: ``金桥`` finds 南京金桥管理咨询有限公司, ``smit``
finds Smith. Other characters (``*``, ``:``, ``^``, parentheses) are plain text. A query that
cannot be read (an unbalanced quote, an operator with nothing on one side, only excluded terms)
raises :class:`QuerySyntaxError` (exit 2).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from crmsync.errors import EXIT_USAGE, CrmsyncError

OPERATORS = ("OR", "AND", "NOT")


class QuerySyntaxError(CrmsyncError):
    """The search query cannot be read; the message says why (exit 2)."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str):
        super().__init__(f"bad search query: {message}")


@dataclass(frozen=True)
class SearchQuery:
    """``groups``: every group must match; a group matches when any of its literals does.
    ``excluded``: no literal may match. Literals are as typed (matching folds case)."""

    groups: tuple[tuple[str, ...], ...]
    excluded: tuple[str, ...] = ()

    @property
    def literals(self) -> tuple[str, ...]:
        """The literals a matching record contains (some of), for snippets."""
        return tuple(lit for group in self.groups for lit in group)

    def matches(self, texts: Iterable[str | None]) -> bool:
        """Whether a record whose indexed texts (crmsync.search.text.record_text) are
        ``texts`` matches: the same semantics as the full-text index."""
        folded = [t.lower() for t in texts if t]
        for group in self.groups:
            if not any(lit.lower() in t for lit in group for t in folded):
                return False
        return not any(lit.lower() in t for lit in self.excluded for t in folded)


@dataclass(frozen=True)
class _Token:
    text: str
    quoted: bool
    negated: bool


def _scan(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        negated = False
        if text[i] == "-":
            if i + 1 >= n or text[i + 1].isspace():
                raise QuerySyntaxError("'-' must be followed by a word or \"phrase\" to exclude")
            negated = True
            i += 1
        if text[i] == '"':
            end = text.find('"', i + 1)
            if end < 0:
                raise QuerySyntaxError('unbalanced quote: a "phrase" needs a closing "')
            literal = text[i + 1 : end]
            if not literal.strip():
                raise QuerySyntaxError('empty phrase ""')
            tokens.append(_Token(literal, True, negated))
            i = end + 1
            continue
        end = i
        while end < n and not text[end].isspace() and text[end] != '"':
            end += 1
        tokens.append(_Token(text[i:end], False, negated))
        i = end
    return tokens


def _check_length(literal: str) -> None:
    if len(literal) == 1 and literal.isascii() and literal.isalnum():
        raise QuerySyntaxError(
            f"{literal!r} is too short: search for 2 or more letters or digits"
            " (a single Chinese character is fine)"
        )


def parse_query(text: str) -> SearchQuery | None:
    """The query ``text`` means; None when it has no terms at all (search by filters only)."""
    groups: list[tuple[str, ...]] = []
    excluded: list[str] = []
    pending: str | None = None  # an operator waiting for the term after it
    last: str | None = None  # "term" | "excluded" | None (start)
    for token in _scan(text):
        if not token.quoted and not token.negated and token.text in OPERATORS:
            op = token.text
            if pending is not None:
                raise QuerySyntaxError(f"{pending} {op}: two operators in a row")
            if op != "NOT" and last is None:
                raise QuerySyntaxError(f"{op} needs a search term before it")
            if op == "OR" and last == "excluded":
                raise QuerySyntaxError("OR cannot join an excluded (-) term")
            pending = op
            continue
        _check_length(token.text)
        if token.negated or pending == "NOT":
            if pending == "OR":
                raise QuerySyntaxError("OR cannot join an excluded (-) term")
            excluded.append(token.text)
            last = "excluded"
        elif pending == "OR":
            groups[-1] = (*groups[-1], token.text)
            last = "term"
        else:
            groups.append((token.text,))
            last = "term"
        pending = None
    if pending is not None:
        raise QuerySyntaxError(f"{pending} at the end needs a search term after it")
    if not groups:
        if excluded:
            raise QuerySyntaxError("only excluded terms: say what to find too (e.g. 'acme -test')")
        return None
    return SearchQuery(tuple(groups), tuple(excluded))
