"""Who an erasure request names (crmsync.compliance.erasure_match): the cleaning keys in any
field, every spelling of an e-mail and a phone, and a pre-filter that never drops a record the
exact check would find."""

from __future__ import annotations

import orjson
import pytest

from crmsync.cleaning.keys import email_key
from crmsync.cleaning.phones import e164
from crmsync.compliance.erasure_match import Matcher, parse_subject
from crmsync.errors import ConfigError
from crmsync.sandbox.data import RecordGenerator
from crmsync.store.base import canonical_record


def wide(text: str) -> str:
    """The full-width form of ASCII text, as some CJK input methods type it."""
    return "".join(chr(ord(ch) + 0xFEE0) for ch in text)


def matcher(emails=(), phones=(), region="CN") -> Matcher:
    return Matcher(parse_subject(emails, phones, [], region=region, connections=["c"]))


def check(m: Matcher, data: dict) -> list[str]:
    raw = canonical_record(data)[0].encode()
    fields = m.fields(data)
    assert not fields or m.candidate(raw), data  # the pre-filter never drops a match
    return fields


@pytest.mark.parametrize(
    "record",
    [
        {"email": "Li.Na@Example.ORG"},
        {"email": "  li.na@example.org "},
        {"email": wide("li.na@example.org")},  # full-width
        {"contact": {"emails": ["x@y.org", "li.na@example.org"]}},  # nested, any field
        {"phone": "139 0000 4321"},
        {"mobile": "+86-139-0000-4321"},
        {"tel": "008613900004321"},
        {"tel": wide("13900004321")},  # full-width digits
        {"tel": 13900004321},
        {"tel": "139-0000-4321 ext. 12"},
    ],
)
def test_every_spelling_of_the_persons_keys_matches(record):
    m = matcher(["li.na@example.org"], ["+86 139 0000 4321"])
    assert check(m, record) == list(record)


@pytest.mark.parametrize(
    "record",
    [
        {"email": "li.na@example.org.cn"},
        {"email": "xli.na@example.org"},
        {"note": "write to li.na@example.org"},  # quoted in a longer text: not the record's key
        {"phone": "139 0000 4322"},
        {"phone": "+1 139 0000 4321"},
        {"flag": True, "n": None},
    ],
)
def test_other_values_do_not_match(record):
    m = matcher(["li.na@example.org"], ["+86 139 0000 4321"])
    assert check(m, record) == []


def test_the_prefilter_keeps_every_match_on_sandbox_records():
    records = [r.data for r in RecordGenerator(seed=3, sizes={"Leads": 300, "Contacts": 300})]
    emails = [r["email"] for r in records[::37] if r.get("email")]
    phones = [r["phone"] for r in records[::41] if e164(r.get("phone"), "CN")]
    m = matcher(emails, phones)
    found = 0
    for data in records:
        raw = orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
        fields = m.fields(data)
        assert not fields or m.candidate(raw)
        found += bool(fields)
        keyed = email_key(data.get("email")) in m.subject.emails or (
            e164(data.get("phone"), "CN") in m.subject.phones
        )
        assert bool(fields) >= keyed
    assert found >= len(emails)


@pytest.mark.parametrize(
    ("args", "phrase"),
    [
        ({"emails": ["nope"]}, "--email number 1 is not an e-mail"),
        ({"emails": ["a@b"]}, "not an e-mail"),
        ({"phones": ["12"]}, "--phone number 1 is not a phone number"),
        ({"phones": ["13900004321"], "region": None}, "needs --region"),
        ({"phones": ["+8613900004321"], "region": "cn"}, "unsupported phone region"),
        ({"records": ["c:Leads"]}, "CONNECTION:MODULE:ID"),
        ({"records": ["x:Leads:1"]}, "no connection named 'x'"),
        ({}, "at least one"),
    ],
)
def test_bad_requests_are_usage_errors_that_do_not_echo_the_value(args, phrase):
    kwargs = {"emails": [], "phones": [], "records": [], "region": "CN", **args}
    with pytest.raises(ConfigError, match=phrase) as info:
        parse_subject(kwargs.pop("emails"), kwargs.pop("phones"), kwargs.pop("records"),
                      region=kwargs["region"], connections=["c"])  # fmt: skip
    assert info.value.exit_code == 2
    for value in args.get("emails", []) + args.get("phones", []):
        assert value not in str(info.value)
