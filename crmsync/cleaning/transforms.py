"""Value transforms for normalisation policies (``action = { type = "update", normalize =
{ phone = "e164", email = ["trim", "lower"] } }``).

A transform maps a field's value to its clean form, or to None when it does not apply (not
text, or a phone number that cannot be read): the field is then left as it is. Transforms of
one field run in the order written, each on the previous one's output.

=================  ==============================================================
``trim``           leading and trailing whitespace removed
``collapse_space`` runs of whitespace become one space; trimmed
``lower``          lower-cased (``str.lower``)
``upper``          upper-cased
``title``          ``str.title`` (``"o'brien"`` -> ``"O'Brien"``); Latin text only
``nfkc``           Unicode NFKC: full-width letters, digits and punctuation to half-width
``e164``           phone as E.164 (``+8613812345678``) in the policy's ``default_region``
``national``       phone in the national format of its country (``138 1234 5678``)
``international``  phone in the international format (``+86 138 1234 5678``)
=================  ==============================================================
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Sequence
from typing import Any

from crmsync.cleaning import phones

Transform = Callable[[Any, str | None], Any]


def _text(fn: Callable[[str], str]) -> Transform:
    def apply(value: Any, region: str | None) -> Any:
        return fn(value) if isinstance(value, str) else None

    return apply


def _title(value: str) -> str:
    return value.title() if value.isascii() else value


def _phone(style: str) -> Transform:
    def apply(value: Any, region: str | None) -> Any:
        if style == "e164":
            return phones.e164(value, region)
        return phones.formatted(value, region, style)

    return apply


TRANSFORMS: dict[str, Transform] = {
    "trim": _text(str.strip),
    "collapse_space": _text(lambda s: " ".join(s.split())),
    "lower": _text(str.lower),
    "upper": _text(str.upper),
    "title": _text(_title),
    "nfkc": _text(lambda s: unicodedata.normalize("NFKC", s)),
    "e164": _phone("e164"),
    "national": _phone("national"),
    "international": _phone("international"),
}
PHONE_TRANSFORMS = frozenset({"e164", "national", "international"})


def apply_chain(names: Sequence[str], value: Any, region: str | None) -> Any:
    """``value`` through each transform in turn; None when any of them does not apply."""
    for name in names:
        value = TRANSFORMS[name](value, region)
        if value is None:
            return None
    return value
