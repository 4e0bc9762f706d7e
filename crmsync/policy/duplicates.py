"""The ``duplicate_of`` filter: records that have a kept twin in the same module.

Syntax — a condition table of its own, usable anywhere a condition is (inside ``all``,
``any``, ``not``)::

    filter = { duplicate_of = ["email"] }
    filter = { duplicate_of = ["phone"], normalize = "phone", keep = "oldest" }
    filter = { duplicate_of = ["last_name", "phone"], normalize = { phone = "phone" } }
    filter = { duplicate_of = ["email"], keep = "newest", by = "created_at" }
    filter = { duplicate_of = ["phone"], normalize = "e164", default_region = "CN" }
    filter = { duplicate_of = ["company"], normalize = "company", keep = "most_complete" }

(``{ duplicate_of = [...] }`` rather than ``{ op = "duplicate", value = ... }``: the op compares
*several* fields of *other* records, so it has no single ``field``; it reads like
``older_than = "365d"`` does.)

**Meaning.** A record matches when another record of the same connection and module has the
same *key* — the normalised values of every field in ``duplicate_of`` — and that other record is
the one the group keeps. Every record of a group except the kept one matches, so voiding what
the filter selects leaves exactly one record per key.

* **Who takes part.** Live records (not deleted in the CRM) whose status is ``active`` or
  ``archived``. Voided records are already gone: they neither keep nor count. Other conditions
  of the same filter do not narrow the group: ``all = [{ duplicate_of = ["email"] }, { field =
  "owner", op = "eq", value = "Ann" }]`` selects Ann's records that have a kept twin owned by
  anyone.
* **Which one is kept.** Active records before archived ones — a duplicates policy never leaves
  a person with no active record when there was one; an archived record is kept only when its
  whole group is archived. Among those, ``keep = "newest"`` (the default) keeps the record with
  the latest time, ``"oldest"`` the earliest, ``"most_complete"`` the one with the most
  non-empty top-level fields (not null, not ``""`` or only whitespace, not ``[]`` or ``{}``),
  equal counts decided as ``newest`` decides (blank: ``str.isspace``, so U+3000 too).
  The time is ``by`` (a field holding a time, read like ``older_than`` reads it; default
  ``@modified_at``); a record with no time counts as older than any record with one. Equal
  times are decided by record id (compared as text): the largest is kept with ``newest`` and
  ``most_complete``, the smallest with ``oldest``. The choice is total, so it never depends
  on row order.
* **Keys.** Each listed field is normalised by its mode (``normalize``: one mode for all fields,
  or a table ``{ field = mode }``, unnamed fields ``"text"``). A record with no key for *any*
  listed field — missing, null, empty after normalising, or a type the mode does not read — is
  never a duplicate and never kept.

  - ``"text"`` (default): text or integer values; Unicode NFKC (full-width letters and digits
    become ASCII), case-folded (``str.casefold``), every whitespace character removed. So
    ``" Ann.Lee@X.com"`` = ``"ann.lee@x.com"``, ``"张 伟"`` = ``"张伟"``, ``"123"`` = ``123``.
    Suits names and e-mail addresses (typos and other domains are *not* caught).
  - ``"phone"``: the national number. Text (NFKC) or integer; the number ends at the first
    letter, ``#``, ``,`` or ``;`` after a digit (extensions); only ASCII digits are kept. When a
    ``+`` comes before the first digit, or the digits begin with ``00``, the number is
    international and its country calling code is dropped (E.164 codes are prefix-free: 1 and
    7 take one digit, the two-digit codes are listed below, every other code three). Leading
    zeros (trunk prefix) are then dropped. So ``"+86 138 1234 5678"`` = ``"13812345678"`` =
    ``"138-1234-5678"``, ``"+1 (415) 555-0100"`` = ``"415-555-0100"``, ``"010-12345678"`` =
    ``"+86 10 12345678"``. Limits: a number written without ``+``/``00`` is read as national
    (``"442012345678"`` is not ``"+44 20 1234 5678"``), and equal national numbers of two
    countries are equal — pair ``phone`` with another field when a CRM spans countries.
  - ``"email"``: NFKC, trimmed, lower-cased (:func:`crmsync.cleaning.keys.email_key`; why not
    Gmail's dot folding is written there).
  - ``"e164"``: the E.164 number (``+8613812345678``), read by libphonenumber's rules
    (:mod:`crmsync.cleaning.phones`). A number written without ``+``/``00`` is read in
    ``default_region`` (ISO 3166 code such as ``"CN"``, ``"US"``; an unsupported code is a config
    error); without ``default_region`` only international numbers have a key. Unlike ``phone``,
    numbers of two countries never collide, and an impossible number (wrong length) has no key.
  - ``"company"``: :func:`crmsync.cleaning.keys.company_key` — width, case, punctuation and
    whitespace ignored, legal forms (有限公司, 股份有限公司, 集团, Co., Ltd., Inc., LLC, GmbH, ...;
    the list is :mod:`crmsync.cleaning.legal_forms`) removed.
  - ``"name"``: a person's name (:func:`crmsync.cleaning.keys.name_key`): like ``text``, and
    name dots (``·`` ``.``) removed too.
  - ``"exact"``: the JSON value as is, compared like ``eq`` (text exactly, ``1`` = ``1.0``,
    booleans as booleans; ``"1"`` != ``1``). Arrays and objects have no key; ``""`` neither.

**SQL.** One uncorrelated sub-query, computed once per statement: ``record_id IN (SELECT
record_id FROM (SELECT record_id, row_number() OVER (PARTITION BY k ORDER BY status =
'active' DESC, <time> DESC, record_id DESC) AS rn FROM (SELECT ..., <key> AS k FROM mirror
WHERE <scope> LIMIT -1 OFFSET 0) WHERE k IS NOT NULL) WHERE rn > 1)`` (:func:`window_sql`).
:func:`cluster_sql` is the same window with the cluster's key and its survivor
(``first_value(record_id)``) for every selected record; :func:`select_with_clusters` is what
``crmsync plan`` stores: the records a policy selects with their clusters, from that one
window. A record's whole key is one call of ``crmsync_dupvalues(spec, json_extract(data,
<paths>))`` — SQLite reads the key fields out of the JSON and only their values cross into
Python (``crmsync_dupkeys(spec, data)`` for field names a JSON path cannot quote); the
normalisation is :func:`dup_key`, the same Python code in SQL and in the tests' reference
(registered by :func:`crmsync.policy.sql.install_sql_functions`). ``most_complete`` counts the
filled fields (``crmsync_filled(data)``) only for records whose key is shared. The op needs
the policy's scope (connection and module), so it compiles only through
:func:`crmsync.policy.sql.compile_policy`/``select_sql``.

**Speed** (``benches/dedup.py``, 1M sandbox Leads, one core): e-mail ~8 s, E.164 phone
~12-14 s, company + name with ``most_complete`` ~17 s; ``crmsync plan`` of each 13-20 s; under
50 MB. Measured and left out: a bigger page cache or in-memory temporary files for the sort
(no faster, in-memory temporary files 8 s -> 13 s for e-mail, and more memory), sorter worker
threads (no faster on two shared cores), a memo of e-mail and phone keys (they rarely repeat:
8 s -> 9 s), an index on the key expression (SQLite 3.40 recomputes an indexed expression
rather than reading it, so no faster; and every writer of the mirror would need the Python
function).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import lru_cache, partial
from typing import Any

import orjson

from crmsync.cleaning import keys as clean_keys
from crmsync.cleaning.phones import e164, region_problem, supported_region
from crmsync.policy import filters
from crmsync.policy.filters import FieldSQL, FilterOp, Scope, SqlParams, time_key_sql
from crmsync.policy.model import DEFAULT_TIME_FIELD, PSEUDO_FIELDS, All, Condition, FieldRef, Policy
from crmsync.policy.sql import conjuncts, field_sql, json_path_sql, where_sql

OP = "duplicate_of"
MODES = ("text", "phone", "exact", "email", "e164", "company", "name")
KEEP = ("newest", "oldest", "most_complete")
PARTICIPANTS = ("active", "archived")
SQL_FUNCTION = "crmsync_dupkey"  # one field's key: (mode, json_type, value)
KEYS_FUNCTION = "crmsync_dupkeys"  # a record's whole key: (spec, data)
VALUES_FUNCTION = "crmsync_dupvalues"  # a record's whole key: (spec, its key fields' values)
FILLED_FUNCTION = "crmsync_filled"  # non-empty top-level fields: (data)


# E.164 country calling codes of two digits; 1 and 7 are one digit, all others three.
TWO_DIGIT_CODES = frozenset(
    str(code)
    for code in (20, 27, 30, 31, 32, 33, 34, 36, 39, 40, 41, 43, 44, 45, 46, 47, 48, 49,
                 51, 52, 53, 54, 55, 56, 57, 58, 60, 61, 62, 63, 64, 65, 66, 81, 82, 84, 86,
                 90, 91, 92, 93, 94, 95, 98)
)  # fmt: skip
_DIGITS = frozenset("0123456789")
_PHONE_END = frozenset("#,;")


# --------------------------------------------------------------------------- normalisation


def text_key(value: Any) -> str | None:
    """NFKC, case-folded, whitespace removed; text or integers only; None when empty."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        value = str(value)
    if not isinstance(value, str):
        return None
    key = "".join(unicodedata.normalize("NFKC", value).casefold().split())
    return key or None


def country_code_length(digits: str) -> int:
    if digits[:1] in ("1", "7"):
        return 1
    return 2 if digits[:2] in TWO_DIGIT_CODES else 3


def phone_key(value: Any) -> str | None:
    """The national number (see the module docstring); None when there are no digits."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        value = str(value)
    if not isinstance(value, str):
        return None
    text = unicodedata.normalize("NFKC", value)
    digits: list[str] = []
    international = False
    for ch in text:
        if ch in _DIGITS:
            digits.append(ch)
        elif not digits:
            international = international or ch == "+"
        elif ch.isalpha() or ch in _PHONE_END:
            break
    number = "".join(digits)
    if number.startswith("00"):
        number, international = number[2:], True
    if international and number:
        number = number[country_code_length(number) :]
    return number.lstrip("0") or None


def exact_key(value: Any) -> str | None:
    """The JSON value, tagged by type: numbers compare numerically, text exactly."""
    if isinstance(value, bool):
        return "b1" if value else "b0"
    if isinstance(value, int):
        return f"n{value}"
    if isinstance(value, float):
        return f"n{int(value)}" if value.is_integer() else f"n{value!r}"
    if isinstance(value, str):
        return f"s{value}" if value else None
    return None


_KEYS: dict[str, Callable[[Any], str | None]] = {
    "text": text_key,
    "phone": phone_key,
    "exact": exact_key,
    "email": clean_keys.email_key,
    "company": clean_keys.company_key,
    "name": clean_keys.name_key,
}


def _e164_in(region: str | None) -> Callable[[Any], str | None]:
    return partial(e164, region=region)  # clean_keys.phone_key, a call less


def key_function(mode: str) -> Callable[[Any], str | None]:
    """The key function of a mode as :func:`key_fields` spells it (``"e164:CN"`` carries its
    default region; ``"e164:"`` has none)."""
    function = _KEYS.get(mode)
    if function is None:
        name, _, region = mode.partition(":")
        if name != "e164" or (region and not supported_region(region)):
            raise ValueError(f"unknown duplicate key mode {mode!r}")
        function = _KEYS[mode] = _e164_in(region or None)
    return function


def dup_key(mode: str, value: Any) -> str | None:
    """The key of one field's value (a decoded JSON value; None for missing/null)."""
    return key_function(mode)(value)


_ARRAY_OR_OBJECT = object()
_CONTAINERS = (list, dict)  # decoded JSON: exactly these types (orjson, json_extract)


def _sql_dupkey(mode: str, json_type: str | None, value: Any) -> str | None:
    """``crmsync_dupkey(mode, json_type, value)``: :func:`dup_key` of what SQLite hands over."""
    if json_type == "true" or json_type == "false":
        value = json_type == "true"  # json_extract gives 1/0 for JSON booleans
    elif json_type == "array" or json_type == "object":
        value = _ARRAY_OR_OBJECT
    function = _KEYS.get(mode) or key_function(mode)
    return function(value)


filters.sql_functions[SQL_FUNCTION] = (3, _sql_dupkey)

_MISSING = object()


# Modes whose keys are remembered per text value, a bounded number per mode (emptied when
# full): company and person names repeat (1M sandbox Leads: 22k companies, 12k names) and a
# company key costs ~7 us. E-mail addresses and phone numbers mostly do not repeat (there, a
# memo costs more than it saves). Only text is remembered: 1 == 1.0 == True as dict keys.
CACHED_MODES = frozenset({"text", "company", "name"})
CACHE_SIZE = 1 << 16


def _remembered(function: Callable[[Any], str | None]) -> Callable[[Any], str | None]:
    cache: dict[str, str | None] = {}
    get = cache.get

    def key(value: Any) -> str | None:
        if type(value) is not str:
            return function(value)
        found = get(value, _MISSING)
        if found is not _MISSING:
            return found  # type: ignore[return-value]
        if len(cache) >= CACHE_SIZE:
            cache.clear()
        result = cache[value] = function(value)
        return result

    return key


@lru_cache(maxsize=64)
def _sql_key_function(mode: str) -> Callable[[Any], str | None]:
    function = key_function(mode)
    return _remembered(function) if mode in CACHED_MODES else function


class _Spec:
    """A compiled :func:`keys_spec`: the key fields' paths, and ``key`` — the whole key from
    their decoded values (a list in the spec's order, longer is fine; None, or ``_MISSING`` for
    a field that is not there: no key)."""

    def __init__(self, spec: str):
        fields = orjson.loads(spec)
        self.paths = tuple(tuple(path) for path, _ in fields)
        functions = tuple(_sql_key_function(mode) for _, mode in fields)
        if len(functions) == 1:
            self.key = self._one(functions[0])
        else:
            self.key = self._several(functions)

    @staticmethod
    def _one(function: Callable[[Any], str | None]) -> Callable[[list[Any]], str | None]:
        def key(values: list[Any]) -> str | None:
            value = values[0]
            if type(value) is str:
                return function(value)
            if value is None or value is _MISSING:
                return None
            return function(_ARRAY_OR_OBJECT if type(value) in _CONTAINERS else value)

        return key

    @staticmethod
    def _several(functions: tuple[Callable[[Any], str | None], ...]) -> Any:
        def key(values: list[Any]) -> str | None:
            keys = []
            for function, value in zip(functions, values, strict=False):
                if type(value) is not str:
                    if value is None or value is _MISSING:
                        return None
                    if type(value) in _CONTAINERS:
                        value = _ARRAY_OR_OBJECT
                one = function(value)
                if one is None:
                    return None
                keys.append(one)
            return orjson.dumps(keys).decode()

        return key

    def values(self, record: Any) -> list[Any]:
        """The key fields' values in a decoded record."""
        out = []
        for path in self.paths:
            value: Any = record
            for part in path:
                value = value.get(part, _MISSING) if isinstance(value, dict) else _MISSING
            out.append(value)
        return out


_SPECS: dict[str, _Spec] = {}


def _spec(spec: str) -> _Spec:
    compiled = _SPECS.get(spec)
    if compiled is None:
        if len(_SPECS) >= 256:
            _SPECS.clear()
        compiled = _SPECS[spec] = _Spec(spec)
    return compiled


def record_key(spec: str, data: str) -> str | None:
    """``crmsync_dupkeys(spec, data)``: the whole key of a record in one call (its JSON parsed
    once): one field's key, or the JSON array of several; None when any field has none.
    ``spec`` is the JSON list of [path, mode] :func:`keys_spec` writes."""
    compiled = _spec(spec)
    return compiled.key(compiled.values(orjson.loads(data)))


def values_key(spec: str, values: str | None) -> str | None:
    """``crmsync_dupvalues(spec, values)``: :func:`record_key` from the JSON array of the key
    fields' values (``json_extract(data, path, ...)``: null for a missing field), so only those
    values cross into Python, not the whole record. Extra values at the end are ignored."""
    if values is None:
        return None
    return _spec(spec).key(orjson.loads(values))


def filled(value: Any) -> bool:
    """A field value that counts for ``keep = "most_complete"``: not null, not blank text
    (``""`` or only whitespace), not ``[]`` or ``{}``."""
    if value is None or value == "" or value == [] or value == {}:
        return False
    return not (type(value) is str and value.isspace())


def filled_count(record: dict[str, Any]) -> int:
    """Top-level fields with a value (:func:`filled`) in a decoded record."""
    n = 0
    for value in record.values():
        if value:
            if type(value) is not str or not value.isspace():
                n += 1
        elif value is not None and type(value) not in (str, list, dict):
            n += 1  # 0, 0.0, false
    return n


def data_filled_count(data: str) -> int:
    """``crmsync_filled(data)``: :func:`filled_count` of a record's JSON."""
    return filled_count(orjson.loads(data))


def keys_spec(value: dict[str, Any]) -> str:
    return orjson.dumps([[list(ref.path), mode] for ref, mode in key_fields(value)]).decode()


def key_sql(value: dict[str, Any]) -> str:
    """The SQL expression of a record's whole key (one parameter: :func:`keys_spec`). SQLite
    reads the key fields out of the JSON (``json_extract`` with several paths gives the JSON
    array of their values, types intact; with one path it would give an SQL value, booleans as
    1/0 and arrays as text, so a lone path is asked for twice); fields no JSON path reaches are
    read from the whole record in Python."""
    fields = key_fields(value)
    paths = [path for ref, _ in fields if (path := json_path_sql(ref)) is not None]
    if len(paths) < len(fields):
        return f"{KEYS_FUNCTION}(?, data)"
    if len(paths) == 1:
        paths *= 2
    return f"{VALUES_FUNCTION}(?, json_extract(data, {', '.join(paths)}))"


filters.sql_functions[KEYS_FUNCTION] = (2, record_key)
filters.sql_functions[VALUES_FUNCTION] = (2, values_key)
filters.sql_functions[FILLED_FUNCTION] = (1, data_filled_count)


# --------------------------------------------------------------------------- the op


def key_fields(value: dict[str, Any]) -> list[tuple[FieldRef, str]]:
    """(field, normalisation mode) for every field of the key, in the order written; mode
    ``e164`` is spelt with the default region, ``"e164:CN"`` (see :func:`key_function`)."""
    normalize = value.get("normalize", "text")
    region = value.get("default_region") or ""
    out = []
    for name in value[OP]:
        mode = normalize if isinstance(normalize, str) else normalize.get(name, "text")
        out.append((FieldRef.parse(name), f"e164:{region}" if mode == "e164" else mode))
    return out


def time_field(value: dict[str, Any]) -> FieldRef:
    return FieldRef.parse(value.get("by", DEFAULT_TIME_FIELD))


@filters.register(OP)
class DuplicateOf(FilterOp):
    """True for every record of a duplicate group but the kept one (see the module docstring)."""

    standalone = True
    value_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": [OP],
        "properties": {
            OP: {
                "type": "array",
                "minItems": 1,
                "uniqueItems": True,
                "items": {"type": "string", "minLength": 1},
            },
            "keep": {"enum": list(KEEP)},
            "normalize": {
                "type": ["string", "object"],
                "if": {"type": "string"},
                "then": {"enum": list(MODES)},
                "else": {"additionalProperties": {"enum": list(MODES)}},
            },
            "by": {"type": "string", "minLength": 1},
            "default_region": {"type": "string", "minLength": 1},
        },
    }

    def field_specs(self, value: Any) -> dict[str, Any]:
        specs = {f"{OP}[{i}]": name for i, name in enumerate(value[OP])}
        if "by" in value:
            specs["by"] = value["by"]
        return specs

    def table_problems(self, value: Any) -> list[tuple[str, str]]:
        problems = []
        for i, name in enumerate(value[OP]):
            if name in PSEUDO_FIELDS:
                why = f"{name} is crmsync's own field; a duplicate key compares CRM fields"
                problems.append((f"{OP}[{i}]", why))
        normalize = value.get("normalize")
        if isinstance(normalize, dict):
            for name in normalize:
                if name not in value[OP]:
                    problems.append(
                        (f"normalize.{name}", f"{name!r} is not one of the {OP} fields")
                    )
        region = value.get("default_region")
        if region is not None and not supported_region(region):
            problems.append(("default_region", region_problem(region)))
        by = value.get("by")
        if by in ("@id", "@status"):
            problems.append(("by", f"{by} is not a time; use @modified_at or a CRM time field"))
        return problems

    def to_sql(self, f: FieldSQL, value: Any, now: datetime) -> SqlParams:
        return self.scoped_sql(f, value, now, None)

    def scoped_sql(self, f: FieldSQL, value: Any, now: datetime, scope: Scope | None) -> SqlParams:
        if scope is None:
            raise ValueError(
                f"{OP} compares records of the policy's connection and module: compile it"
                " through compile_policy/select_sql"
            )
        sub, params = window_sql(value, scope)
        return f"{f.v} IN (SELECT record_id FROM ({sub}) WHERE rn > 1)", params


def window_sql(
    value: dict[str, Any],
    scope: Scope,
    *,
    annotate: bool = False,
    carry: Sequence[tuple[str, str]] = (),
) -> SqlParams:
    """The ranked participants: ``record_id``, ``rn`` (1 = kept) and, with ``annotate``,
    ``cluster`` (the key as text: one field's key, or a JSON array of several) and
    ``survivor`` (the kept record's id). ``carry``: (name, expression over the ``mirror`` row,
    without parameters; ``rowid`` spelt ``mirror.rowid``) computed as each record is read and
    passed through as columns."""
    keep = value.get("keep", "newest")
    direction = "ASC" if keep == "oldest" else "DESC"
    order = f"status = 'active' DESC, tk {direction}, record_id {direction}"
    when = time_key_sql(field_sql(time_field(value)))
    statuses = ", ".join(f"'{s}'" for s in PARTICIPANTS)
    annotations = ""
    if annotate:
        # ROWS, not the default RANGE frame: the order is total (record ids are unique), so the
        # first row is the same, and SQLite need not look for peers of each row (1M: ~2x).
        annotations = (
            ", k AS cluster, first_value(record_id)"
            " OVER (w ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS survivor"
        )
    carried = "".join(f", {name}" for name, _ in carry)
    read = "".join(f", {expr} AS {name}" for name, expr in carry)
    # The keyed rows come from a sub-query SQLite neither flattens nor materialises ("LIMIT -1
    # OFFSET 0"): each record's key is computed once, in the sub-query (flattened, the function
    # call would be substituted into the WHERE, the PARTITION BY and the output: three calls a
    # record), and its rows stream into the window's sort without first being written to a
    # temporary table (a MATERIALIZED CTE: 1M records, ~30 % of the query's time).
    scoped = (
        f" FROM mirror WHERE connection = ? AND module = ? AND crm_deleted_at IS NULL"
        f" AND status IN ({statuses}) LIMIT -1 OFFSET 0"
    )
    key = key_sql(value)
    params = [keys_spec(value), scope.connection, scope.module]
    if keep == "most_complete":
        # The field count needs the whole record parsed: only for the records whose key is
        # shared (1M sandbox Leads by company and name: 26 %). A first window over just each
        # record's key and rowid counts the records of each key; the shared ones are then read
        # again by rowid for the rest.
        order = "status = 'active' DESC, filled DESC, tk DESC, record_id DESC"
        counted = (
            f"SELECT r, k, count(*) OVER (PARTITION BY k) AS n FROM"
            f" (SELECT rowid AS r, {key} AS k{scoped}) WHERE k IS NOT NULL"
        )
        keyed = (
            f"SELECT record_id, status, {when} AS tk, k{read}, {FILLED_FUNCTION}(data) AS filled"
            f" FROM ({counted}) CROSS JOIN mirror ON mirror.rowid = r WHERE n > 1"
        )
    else:
        keyed = f"SELECT record_id, status, {when} AS tk, {key} AS k{read}{scoped}"
    sub = (
        f"SELECT record_id, row_number() OVER w AS rn{annotations}{carried} FROM ({keyed})"
        f" WHERE k IS NOT NULL WINDOW w AS (PARTITION BY k ORDER BY {order})"
    )
    return sub, params


def cluster_sql(value: dict[str, Any], scope: Scope) -> SqlParams:
    """``record_id, cluster, survivor`` of every record the condition selects."""
    sub, params = window_sql(value, scope, annotate=True)
    return f"SELECT record_id, cluster, survivor FROM ({sub}) WHERE rn > 1", params


def top_level_condition(policy: Policy) -> Condition | None:
    """The policy's ``duplicate_of`` condition when it is one of the conditions that must all
    hold (the filter itself, or an item of a top-level ``all``)."""
    for item in conjuncts(policy.filter):
        if isinstance(item, Condition) and item.op == OP:
            return item
    return None


def select_with_clusters(policy: Policy, now: datetime, columns: str) -> SqlParams | None:
    """``SELECT <columns>, cluster, survivor`` of every record the policy selects (``columns``:
    of ``mirror``), by record id, for a policy with a :func:`top_level_condition` (else None).

    The duplicate query runs once: its records (looked up by rowid, carried through the window)
    are those the condition selects, and the policy's scope and the rest of its filter are
    applied to them — rather than the filter's own sub-query and then :func:`cluster_sql` again
    for the clusters. In record id order, so the plan's items go into their index in order."""
    condition = top_level_condition(policy)
    if condition is None:
        return None
    others = tuple(item for item in conjuncts(policy.filter) if item is not condition)
    where, where_params = where_sql(Policy(**{**policy.__dict__, "filter": All(others)}), now)
    sub, params = window_sql(
        condition.value,
        Scope(policy.connection, policy.module),
        annotate=True,
        carry=[("dup_rowid", "mirror.rowid")],
    )
    sql = (
        f"SELECT {columns}, dup_cluster AS cluster, dup_survivor AS survivor FROM (SELECT"
        f" dup_rowid, cluster AS dup_cluster, survivor AS dup_survivor FROM ({sub})"
        f" WHERE rn > 1) CROSS JOIN mirror ON mirror.rowid = dup_rowid WHERE {where}"
        " ORDER BY record_id"
    )
    return sql, [*params, *where_params]
