"""Who is to be erased, and whether a record is theirs: the request's e-mail and phone keys.

A record belongs to the person when any of its values (any field, nested ones too) has the
same comparison key as one of the request's e-mails (:func:`crmsync.cleaning.keys.email_key`:
NFKC, trimmed, lower case) or phones (E.164, :func:`crmsync.cleaning.phones.e164` in the
request's default region), or when the request names it (``CONN:MODULE:ID``). Whole values
are compared, as the duplicate keys do; an address quoted inside a longer text (a note) does
not make that record the person's.

Scanning a million records calls :meth:`Matcher.candidate` on each record's stored JSON
bytes: a byte search for the e-mails (ASCII lower case), and for the phones a search for the
national number among the record's digits (every spelling of a number holds its national
significant number as consecutive digits once separators are dropped). Only candidates are
parsed and checked exactly (:meth:`Matcher.fields`). A record with full-width letters or
digits (U+FF10-FF5A) is NFKC-folded before the byte search, so the pre-filter never misses what
the exact check finds; other compatibility forms inside an address or number (circled or
superscript digits, ligatures) are not looked for (the exact check would fold them).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import phonenumbers

from crmsync.cleaning.keys import email_key
from crmsync.cleaning.phones import e164, region_problem, supported_region
from crmsync.errors import ConfigError

_EMAIL = re.compile(r"[^@\s]+@[^@\s.]+(\.[^@\s.]+)+")
_NON_DIGITS = bytes(b for b in range(256) if not 0x30 <= b <= 0x39)
# Full-width digits, letters and "@" (U+FF10-FF19, FF20-FF3A, FF41-FF5A) in UTF-8. Not all of
# the block: its punctuation (comma, brackets, colon) is in most Chinese records, needs no fold.
_WIDE_ALNUM = re.compile(rb"\xef(?:\xbc[\x90-\x99\xa0-\xba]|\xbd[\x81-\x9a])").search
RecordRef = tuple[str, str, str]  # (connection, module, record id)


@dataclass(frozen=True)
class Subject:
    """The person: e-mail keys, E.164 numbers, and records named outright."""

    emails: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()
    records: tuple[RecordRef, ...] = ()
    region: str | None = None

    def counts(self) -> dict[str, int]:
        """What the request consisted of, without what it said (plans and audit keep this)."""
        return {
            "emails": len(self.emails),
            "phones": len(self.phones),
            "records": len(self.records),
        }


def parse_subject(
    emails: Sequence[str],
    phones: Sequence[str],
    records: Sequence[str],
    *,
    region: str | None,
    connections: Iterable[str],
) -> Subject:
    """Check and normalise the request; bad input is a usage error (exit 2) naming the option
    (never echoing the value: it is personal data)."""
    if not (emails or phones or records):
        raise ConfigError("give at least one --email, --phone or --record", path="erase")
    if region is not None and not supported_region(region):
        raise ConfigError(region_problem(region), path="--region")
    email_keys = []
    for number, value in enumerate(emails, start=1):
        key = email_key(value)
        if key is None or not _EMAIL.fullmatch(key):
            raise ConfigError(
                f"--email number {number} is not an e-mail address (expected name@domain.tld)",
                path="--email",
            )
        email_keys.append(key)
    phone_keys = []
    for number, value in enumerate(phones, start=1):
        key = e164(value, region)
        if key is None:
            hint = "" if region else " (a number without +country code needs --region)"
            raise ConfigError(
                f"--phone number {number} is not a phone number that can be read{hint}",
                path="--phone",
            )
        phone_keys.append(key)
    known = set(connections)
    refs = []
    for value in records:
        parts = value.split(":", 2)
        if len(parts) != 3 or not all(parts):
            raise ConfigError(f"--record {value!r}: expected CONNECTION:MODULE:ID", path="--record")
        if parts[0] not in known:
            raise ConfigError(
                f"--record {value!r}: no connection named {parts[0]!r}"
                f" (configured: {', '.join(sorted(known)) or 'none'})",
                path="--record",
            )
        refs.append((parts[0], parts[1], parts[2]))
    return Subject(
        tuple(dict.fromkeys(email_keys)), tuple(dict.fromkeys(phone_keys)),
        tuple(dict.fromkeys(refs)), region,
    )  # fmt: skip


@dataclass
class Matcher:
    """The request's keys, ready to test stored records."""

    subject: Subject
    _emails: tuple[bytes, ...] = field(init=False)
    _unicode_emails: tuple[str, ...] = field(init=False)
    _national: tuple[bytes, ...] = field(init=False)

    def __post_init__(self) -> None:
        s = self.subject
        self._emails = tuple(e.encode() for e in s.emails if e.isascii())
        self._unicode_emails = tuple(e for e in s.emails if not e.isascii())
        national = []
        for key in s.phones:
            number = phonenumbers.parse(key)
            national.append(str(phonenumbers.national_significant_number(number)).encode())
        self._national = tuple(national)
        self._email_set = frozenset(s.emails)
        self._phone_set = frozenset(s.phones)

    @property
    def searches_content(self) -> bool:
        return bool(self.subject.emails or self.subject.phones)

    def candidate(self, raw: bytes | str | None) -> bool:
        """May this stored record (its JSON) hold one of the keys? Never False when
        :meth:`fields` would find one (full-width letters and digits are folded first)."""
        if raw is None:
            return False
        data = raw.encode() if isinstance(raw, str) else raw
        if self._found_in(data):
            return True
        if not data.isascii() and _WIDE_ALNUM(data):  # rare: most rows skip the NFKC
            folded = unicodedata.normalize("NFKC", data.decode("utf-8", "replace"))
            return self._found_in(folded.encode())
        return False

    def _found_in(self, data: bytes) -> bool:
        if self._emails and any(e in data.lower() for e in self._emails):
            return True
        if self._unicode_emails:
            text = data.decode("utf-8", "replace").lower()
            if any(e in text for e in self._unicode_emails):
                return True
        if self._national:
            digits = data.translate(None, _NON_DIGITS)
            return any(n in digits for n in self._national)
        return False

    def fields(self, data: Mapping[str, Any]) -> list[str]:
        """The top-level fields whose value (or a value nested in it) is the person's."""
        return [key for key, value in data.items() if self._holds(value)]

    def _holds(self, value: Any) -> bool:
        if isinstance(value, Mapping):
            return any(self._holds(v) for v in value.values())
        if isinstance(value, list):
            return any(self._holds(v) for v in value)
        if isinstance(value, bool) or not isinstance(value, str | int):
            return False
        if (
            self._email_set and isinstance(value, str)
            and ("@" in value or not value.isascii())
            and email_key(value) in self._email_set
        ):  # fmt: skip
            return True
        if self._phone_set:
            text = str(value)
            digits = text.encode().translate(None, _NON_DIGITS) if text.isascii() else None
            if digits is not None and not any(n in digits for n in self._national):
                return False
            return e164(text, self.subject.region) in self._phone_set
        return False
