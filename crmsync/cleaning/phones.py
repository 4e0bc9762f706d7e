"""Phone numbers as E.164 (``+8613812345678``), read with Google's libphonenumber rules
(the ``phonenumbers`` package) in a default region for numbers written without ``+``/``00``.

**Reading.** The text is NFKC-normalised (full-width digits become ASCII); the number ends at
the first letter, ``#``, ``,`` or ``;`` after a digit (extensions are not part of it); only
ASCII digits are kept, and a ``+`` before the first digit marks it international. That
canonical form (``+8613812345678`` or ``01012345678``) is what ``phonenumbers.parse`` reads in
the region. A number it cannot parse, or that is not a *possible* number (wrong length for its
country), has no E.164 form: ``None``.

**Speed.** ``phonenumbers.parse`` costs ~50 us, too slow for a million records. What it does to
a canonical number depends on the region, the ``+``, the leading digits and the length (country
code, national/trunk prefix, possible lengths), so the outcome for a *shape* — (region, ``+``,
first 4 digits after any international call prefix, length) — is learnt once: "keep the last N
digits after ``+CC``". A shape whose sample is no possible number (that may hang on later
digits) or whose result is not such a suffix (a few countries rewrite digits) is always parsed
in full. ``tests/test_cleaning.py`` holds the shortcut to the library on the sandbox's numbers
(equal) and on random digit strings: where the library reads a number the shortcut reads the
same one; the one known difference is that an *impossible* number (the library: no number) of a
shape first learnt from a possible one gets a key — a trunk prefix whose removal depends on
later digits.
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache
from typing import Any

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat

DIGITS = frozenset("0123456789")
_END = frozenset("#,;")
_SHAPE_PREFIX = 4
_MAX_DIGITS = 24  # E.164's 15, an international call prefix and a carrier code; more is noise


@cache
def _idd(region: str) -> re.Pattern[str] | None:
    """The region's international call prefix (CN ``00``, US ``011``) as a regex, if any."""
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    pattern = metadata.international_prefix if metadata is not None else None
    return re.compile(f"(?:{pattern})") if pattern else None


def supported_region(code: Any) -> bool:
    """Whether ``code`` is a region phonenumbers knows (ISO 3166 alpha-2, upper case)."""
    return isinstance(code, str) and code in phonenumbers.SUPPORTED_REGIONS


def region_problem(region: Any) -> str:
    """The message for a default_region phonenumbers does not support."""
    return (
        f"unsupported phone region {region!r}; use an ISO 3166 code such as 'CN', 'US', 'GB'"
        " (upper case)"
    )


# The common spellings ("13812345678", "+86 138-1234-5678", "(415) 555.0100"): ASCII digits,
# spaces, brackets, dashes and dots after an optional "+" — read without the loop below.
_PLAIN = re.compile(r"\+?[0-9 ()\-.]*[0-9][0-9 ()\-.]*")
_NOT_DIGITS = re.compile(r"[^0-9]+")


def _read(value: Any) -> tuple[bool, str] | None:
    """:func:`canonical` as (``+`` before the first digit, the ASCII digits up to the end of
    the number); None without digits."""
    if type(value) is not str:
        if isinstance(value, bool) or not isinstance(value, int):
            return None
        value = str(value)
    if _PLAIN.fullmatch(value):
        return value[0] == "+", _NOT_DIGITS.sub("", value)
    if not value.isascii():
        value = unicodedata.normalize("NFKC", value)
    digits: list[str] = []
    plus = False
    for ch in value:
        if ch in DIGITS:
            digits.append(ch)
        elif not digits:
            plus = plus or ch == "+"
        elif ch.isalpha() or ch in _END:
            break
    return (plus, "".join(digits)) if digits else None


def canonical(value: Any) -> str | None:
    """``"+86 (138) 1234-5678 ext. 9"`` -> ``"+8613812345678"``; None without digits."""
    read = _read(value)
    if read is None:
        return None
    plus, digits = read
    return "+" + digits if plus else digits


def _parse(number: str, region: str | None) -> phonenumbers.PhoneNumber | None:
    try:
        parsed = phonenumbers.parse(number, region)
    except NumberParseException:
        return None
    return parsed if phonenumbers.is_possible_number(parsed) else None


def _e164_slow(number: str, region: str | None) -> str | None:
    parsed = _parse(number, region)
    return phonenumbers.format_number(parsed, PhoneNumberFormat.E164) if parsed else None


# shape -> ("+CC", N): the E.164 number is +CC and the last N digits; None: parse in full.
_RULES: dict[tuple[str | None, bool, str, int], tuple[str, int] | None] = {}
_MAX_RULES = 1 << 17
_UNLEARNT = ("", 0)


def _learn(sample: str, region: str | None) -> tuple[str, int] | None:
    """What a shape does, learnt from ``sample`` (one canonical number of that shape):
    ``("+CC", N)`` (E.164 is ``+CC`` and the last N digits) or None (parse each in full)."""
    parsed = _parse(sample, region)
    if parsed is None:  # not learnt: whether a number is possible may hang on later digits
        return None
    e164 = phonenumbers.format_number(parsed, PhoneNumberFormat.E164)
    digits = sample.lstrip("+")
    code = str(parsed.country_code)
    national = e164[1 + len(code) :]
    if not digits.endswith(national):
        return None
    return f"+{code}", len(national)


def e164(value: Any, region: str | None) -> str | None:
    """The E.164 form of a phone value (see the module docstring), or None."""
    read = _read(value)
    if read is None:
        return None
    plus, digits = read
    length = len(digits)
    if length < 3 or length > _MAX_DIGITS:
        return None
    if plus and digits[0] == "0":  # no country code starts with 0: odd input, parse in full
        return _e164_slow("+" + digits, region)
    prefix = _SHAPE_PREFIX
    if not plus and region is not None:  # an international call prefix (00, 011, ...)
        idd = _idd(region)
        match = idd.match(digits) if idd is not None else None
        if match:
            prefix += match.end()
    shape = (region, plus, digits[:prefix], length)
    rule = _RULES.get(shape, _UNLEARNT)
    if rule is _UNLEARNT:
        if len(_RULES) >= _MAX_RULES:
            _RULES.clear()
        rule = _RULES[shape] = _learn("+" + digits if plus else digits, region)
    if rule is None:
        return _e164_slow("+" + digits if plus else digits, region)
    return rule[0] + digits[length - rule[1] :]


def formatted(value: Any, region: str | None, style: str) -> str | None:
    """``style`` "national" (``138 1234 5678``) or "international" (``+86 138 1234 5678``)."""
    number = canonical(value)
    parsed = _parse(number, region) if number else None
    if parsed is None:
        return None
    form = PhoneNumberFormat.NATIONAL if style == "national" else PhoneNumberFormat.INTERNATIONAL
    return phonenumbers.format_number(parsed, form)
