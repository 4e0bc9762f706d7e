"""Comparison keys: two values that mean the same thing get the same key; None means "no key"
(the value is missing, empty, or not readable as the kind of thing the key is for).

* :func:`email_key` — NFKC, trimmed, lower-cased. Not more: dots and ``+tags`` in the local
  part are ignored by Gmail only; other providers (and company mail servers) treat
  ``a.b@x.com`` and ``ab@x.com`` as two mailboxes, so folding them would merge different people.
  A typo (``gmial.com``) or a second address is not caught either: pair ``email`` with a
  policy on phone or name for those.
* :func:`phone_key` (mode ``e164``) — the E.164 number (:mod:`crmsync.cleaning.phones`).
* :func:`company_key` — NFKC (full-width and half-width fold), case-folded, legal-form suffixes
  removed (:mod:`crmsync.cleaning.legal_forms`), then everything but letters and digits
  removed: ``"北京华信科技有限公司"`` = ``"北京华信科技"``, ``"ACME Logistics Co., Ltd."`` =
  ``"Acme Logistics"``, and full-width "Acme (中国)" = ``"acme中国"``.
* :func:`name_key` — a person's name: NFKC, case-folded, whitespace and name dots (``·``
  ``・`` ``.``) removed: ``"张 伟"`` = ``"张伟"``, ``"JOHN  SMITH"`` = ``"John Smith"``. Word order
  is kept (``"Smith John"`` is another key): CRMs write Chinese names surname first and Latin
  names given name first, and guessing which is which merges people.
"""

from __future__ import annotations

import unicodedata
from typing import Any

from crmsync.cleaning.legal_forms import CJK_SUFFIXES, LATIN_SUFFIXES
from crmsync.cleaning.phones import e164

_NAME_DOTS = str.maketrans("", "", "·・.\u00b7\u30fb")


def _text(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    return value if isinstance(value, str) else None


def email_key(value: Any) -> str | None:
    text = _text(value)
    if text is None:
        return None
    key = unicodedata.normalize("NFKC", text).strip().lower()
    return key or None


def phone_key(value: Any, region: str | None) -> str | None:
    return e164(value, region)


def name_key(value: Any) -> str | None:
    text = _text(value)
    if text is None:
        return None
    folded = unicodedata.normalize("NFKC", text).casefold().translate(_NAME_DOTS)
    return "".join(folded.split()) or None


def _words(text: str) -> list[str]:
    """Split on everything that is not a letter or digit."""
    out: list[str] = []
    word: list[str] = []
    for ch in text:
        if ch.isalnum():
            word.append(ch)
        elif word:
            out.append("".join(word))
            word = []
    if word:
        out.append("".join(word))
    return out


def company_key(value: Any) -> str | None:
    text = _text(value)
    if text is None:
        return None
    words = _words(unicodedata.normalize("NFKC", text).casefold())
    while len(words) > 1 and words[-1] in LATIN_SUFFIXES:
        words.pop()
    key = "".join(words)
    stripped = True
    while stripped:
        stripped = False
        for suffix in CJK_SUFFIXES:
            if key.endswith(suffix) and len(key) > len(suffix):
                key = key[: -len(suffix)]
                stripped = True
                break
    return key or None
