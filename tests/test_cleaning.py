"""Cleaning keys and transforms: company/name/email keys, E.164 phones (the shape shortcut
agrees with phonenumbers itself), transforms, and the keys inside duplicate_of."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crmsync.cleaning import phones
from crmsync.cleaning.keys import company_key, email_key, name_key, phone_key
from crmsync.cleaning.transforms import TRANSFORMS, apply_chain
from crmsync.policy import check_policies
from crmsync.sandbox.data import RecordGenerator


@pytest.mark.parametrize(
    "forms",
    [
        [
            "北京华信科技有限公司",
            "北京华信科技",
            "北京华信科技股份有限公司",
            "北京华信科技集团有限公司",
        ],
        ["上海鼎盛贸易有限责任公司", "上海 鼎盛贸易", "上海鼎盛贸易公司"],
        [
            "Acme Logistics Co., Ltd.",
            "ACME LOGISTICS",
            "Acme Logistics Ltd",
            "acme logistics, inc.",
        ],
        ["Pied Piper Inc.", "Pied Piper Inc", "PIED PIPER", "Pied Piper LLC", "Pied-Piper GmbH"],
        ["\uff21\uff43\uff4d\uff45 Corp", "Acme"],  # full-width letters
        ["华信\uff08北京\uff09有限公司", "华信(北京)"],  # full-width parentheses
    ],
)
def test_company_key_ignores_legal_forms_width_case_and_punctuation(forms: list[str]) -> None:
    keys = {company_key(f) for f in forms}
    assert len(keys) == 1 and None not in keys, keys


def test_company_key_keeps_what_is_not_a_legal_form() -> None:
    assert company_key("Costco") == "costco"  # 'co' only as a whole trailing word
    assert company_key("Group Inc.") == "group"  # never stripped to nothing
    assert company_key("有限公司") is not None
    assert company_key("Acme Holdings") != company_key("Acme")
    for nothing in (None, "", "  ", "...", True, 3.5, ["Acme"]):
        assert company_key(nothing) is None


def test_name_and_email_keys() -> None:
    assert name_key("张 伟") == name_key("张伟") == name_key(" 张伟 ")
    assert name_key("JOHN  SMITH") == name_key("John Smith")
    assert name_key("阿卜杜·热合曼") == name_key("阿卜杜热合曼")
    assert name_key("Smith John") != name_key("John Smith")
    assert email_key(" Ann.Lee@Example.COM ") == "ann.lee@example.com"
    assert email_key("annlee@example.com") != email_key("ann.lee@example.com")  # no dot folding
    assert email_key("") is None and email_key(None) is None


@pytest.mark.parametrize(
    ("forms", "region"),
    [
        (["+86 138 1234 5678", "13812345678", "138-1234-5678", "0086 138 1234 5678"], "CN"),
        (
            ["010-12345678", "(010) 12345678", "+86 10 12345678", "\uff10\uff11\uff10 12345678"],
            "CN",
        ),
        (["+1 (415) 555-0100", "415-555-0100", "1 415 555 0100", "(415) 555-0100 x12"], "US"),
        (["+44 20 7946 0958", "020 7946 0958"], "GB"),
    ],
)
def test_phone_key_is_e164_in_the_default_region(forms: list[str], region: str) -> None:
    keys = {phone_key(f, region) for f in forms}
    assert len(keys) == 1 and next(iter(keys)).startswith("+"), keys


def test_phone_key_limits() -> None:
    assert phone_key("13812345678", None) is None  # national, and no region to read it in
    assert phone_key("+8613812345678", None) == "+8613812345678"
    assert phone_key("415-555-0100", "CN") != phone_key("+1 415 555 0100", "CN")
    assert phone_key("+1 415 555 0100", "CN") != phone_key("+44 415 555 0100", "CN")
    for nothing in ("", "n/a", "+", "12", "123456789012345678", None, True, 1.5):
        assert phone_key(nothing, "CN") is None
    assert phones.supported_region("CN") and not phones.supported_region("XX")


def canonical_by_the_letter(value: Any) -> str | None:
    """phones.canonical as its docstring reads, character by character."""
    import unicodedata

    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    text = unicodedata.normalize("NFKC", str(value))
    digits: list[str] = []
    plus = False
    for ch in text:
        if ch in "0123456789":
            digits.append(ch)
        elif not digits:
            plus = plus or ch == "+"
        elif ch.isalpha() or ch in "#,;":
            break
    return ("+" if plus else "") + "".join(digits) if digits else None


PHONE_CHARS = "0123456789 +-.()#,;/xX\uff10\uff19\uff0b\u3000\u0663e"


@settings(max_examples=500, deadline=None)
@given(
    st.one_of(
        st.text(st.sampled_from(PHONE_CHARS), max_size=20),
        st.text(max_size=12),
        st.integers(),
        st.booleans(),
    )
)
def test_canonical_reads_every_spelling_as_the_loop_does(value: Any) -> None:
    """The plain-spelling shortcut (digits, spaces, brackets, dashes, dots) reads as the loop."""
    assert phones.canonical(value) == canonical_by_the_letter(value)


def library_e164(value: Any, region: str | None) -> str | None:
    number = phones.canonical(value)
    return phones._e164_slow(number, region) if number else None


def test_phone_shortcut_agrees_with_the_library_on_sandbox_numbers() -> None:
    generator = RecordGenerator(seed=3, sizes={"Leads": 3000, "Accounts": 600})
    numbers = [r.data["phone"] for r in generator if r.data.get("phone")]
    assert len(numbers) > 3000
    for region in ("CN", "US", None):
        for number in numbers:
            assert phones.e164(number, region) == library_e164(number, region), number


@settings(max_examples=400, deadline=None)
@given(
    plus=st.sampled_from(["", "+", "00"]),
    digits=st.text("0123456789", min_size=3, max_size=16),
    region=st.sampled_from(["CN", "US", "GB", "DE", "SG", None]),
    seed=st.integers(0, 2**16),
)
def test_phone_shortcut_agrees_with_the_library(plus, digits, region, seed) -> None:
    """Learn a shape from one number, then ask about another of the same shape."""
    rng = random.Random(seed)
    other = digits[:4] + "".join(rng.choice("0123456789") for _ in digits[4:])
    phones.e164(plus + digits, region)
    got, want = phones.e164(plus + other, region), library_e164(plus + other, region)
    # Where the library reads a number, the shortcut reads the same one. (Where it reads none,
    # a shape learnt from a possible number may still give a key: documented in phones.py.)
    assert want is None or got == want


def test_transforms() -> None:
    assert apply_chain(["trim", "lower"], "  Ann@X.COM ", None) == "ann@x.com"
    assert apply_chain(["collapse_space"], " John   Smith ", None) == "John Smith"
    assert apply_chain(["title"], "o'brien", None) == "O'Brien"
    assert apply_chain(["title"], "张伟", None) == "张伟"
    assert apply_chain(["nfkc"], "\uff21\uff23\uff2d\uff25\uff11", None) == "ACME1"
    assert apply_chain(["e164"], "138-1234-5678", "CN") == "+8613812345678"
    assert apply_chain(["national"], "+8613812345678", "CN") == "138 1234 5678"
    assert apply_chain(["international"], "13812345678", "CN") == "+86 138 1234 5678"
    assert apply_chain(["e164"], "n/a", "CN") is None  # left as it is
    assert apply_chain(["lower"], 42, None) is None
    assert set(TRANSFORMS) >= {"trim", "lower", "upper", "e164", "national", "collapse_space"}


def problems(raw: dict[str, Any]) -> list[str]:
    base = {"name": "p", "connection": "crm", "module": "Leads"}
    return [str(p) for p in check_policies([{**base, **raw}])[1]]


def test_validation_of_cleaning_keys() -> None:
    update = {"action": "update", "filter": {"all": []}}
    assert problems({**update, "normalize": {"phone": "e164"}, "default_region": "CN"}) == []
    assert problems(
        {"action": {"type": "update", "normalize": {"email": ["trim", "lower"]}}, "filter": {}}
    )[0].startswith("policies.p.filter")
    both = problems(
        {
            **update,
            "normalize": {"a": "trim"},
            "action": {"type": "update", "normalize": {"a": "trim"}},
        }
    )
    assert both[0].startswith("policies.p.normalize: given twice")
    assert problems({"action": "update", "filter": {"all": []}})[0].startswith(
        "policies.p.action: action 'update' needs fields or normalize"
    )
    fixed = {"action": {"type": "update", "fields": {"a": 1}, "normalize": {"a": "trim"}}}
    assert problems({**fixed, "filter": {"all": []}})[0].startswith(
        "policies.p.action.normalize: use fields"
    )
    classify = {"action": "classify", "rules": [{"tags": ["x"]}]}
    assert problems(classify) == []  # no filter needed: the rules say which records
    assert problems({**classify, "rules": []})[0].startswith("policies.p.rules:")
    assert problems({**classify, "rules": [{"when": {"older_than": "1 year"}, "tags": ["x"]}]})[
        0
    ].startswith("policies.p.rules[0].when.older_than:")


def test_void_of_duplicates_requires_approval_unless_the_policy_says_otherwise() -> None:
    raw = {
        "name": "d",
        "connection": "crm",
        "module": "Leads",
        "action": "void",
        "filter": {"duplicate_of": ["phone"], "normalize": "e164", "default_region": "CN"},
    }
    [policy], _ = check_policies([raw])
    assert policy.require_approval
    [policy], _ = check_policies([{**raw, "require_approval": False}])
    assert not policy.require_approval
