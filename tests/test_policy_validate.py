"""Policy validation: key paths in every error, defaults, registries plugins can extend, and
``crmsync validate`` (structure, then meaning against the mirror, no network)."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime

import click
import pytest
from click.testing import CliRunner

from crmsync.config import parse_config
from crmsync.errors import ConfigError
from crmsync.policy import (
    DEFAULT_MAX_PERCENT,
    DEFAULT_MAX_RECORDS,
    check_policies,
    install_sql_functions,
    mirror_fields,
    parse_policies,
    select_sql,
)
from crmsync.policy import filters as policy_filters
from crmsync.policy.cli import validate_command
from crmsync.store.base import canonical_record
from crmsync.store.migrations import MIGRATIONS

BASE = {"name": "stale-leads", "connection": "crm", "module": "Leads", "action": "archive"}


def one(**overrides) -> dict:
    return {**BASE, "filter": {"field": "Lead_Status", "op": "eq", "value": "Lost"}, **overrides}


def error_of(tables, **kw) -> ConfigError:
    with pytest.raises(ConfigError) as err:
        parse_policies(tables, connections={"crm"}, **kw)
    assert err.value.exit_code == 2
    return err.value


@pytest.mark.parametrize(
    ("table", "path", "words"),
    [
        (
            one(filter={"all": [{"field": "A", "op": "equals", "value": 1}]}),
            "policies.stale-leads.filter.all[0].op",
            "unknown op 'equals'; expected one of: contains, empty, eq,",
        ),
        (
            one(filter={"field": "A", "op": "in", "value": "Lost"}),
            "policies.stale-leads.filter.value",
            "expected array",
        ),
        (
            one(filter={"field": "A", "op": "lt", "value": True}),
            "policies.stale-leads.filter.value",
            "expected number or string, got a boolean",
        ),
        (
            one(filter={"not": {"field": "A", "op": "regex", "value": "(unclosed"}}),
            "policies.stale-leads.filter.not.value",
            "not a valid regular expression",
        ),
        (
            one(filter={"any": [{"older_than": "3 months"}]}),
            "policies.stale-leads.filter.any[0].older_than",
            "expected a duration",
        ),
        (
            one(filter={"field": "A", "op": "empty", "value": 1}),
            "policies.stale-leads.filter.value",
            "takes no value",
        ),
        (
            one(filter={"field": "A", "op": "eq"}),
            "policies.stale-leads.filter.value",
            "required",
        ),
        (
            one(filter={"field": "A", "op": "eq", "vaule": 1}),
            "policies.stale-leads.filter.vaule",
            "unknown key",
        ),
        (
            one(filter={"field": "@state", "op": "eq", "value": "x"}),
            "policies.stale-leads.filter.field",
            "did you mean '@status'",
        ),
        (
            one(filter={"field": "@status", "op": "eq", "value": "deleted"}),
            "policies.stale-leads.filter.value",
            "@status is one of active, archived, voided",
        ),
        (
            one(filter={"all": [], "field": "A"}),
            "policies.stale-leads.filter",
            "cannot have other keys",
        ),
        (one(connection="nope"), "policies.stale-leads.connection", "no connection named 'nope'"),
        (one(action="delete"), "policies.stale-leads.action", "unknown action 'delete'"),
        (one(action="tag"), "policies.stale-leads.action", "needs tags"),
        (one(action={"type": "tag", "tags": []}), "policies.stale-leads.action.tags", "non-empty"),
        (
            one(max_percent=0),
            "policies.stale-leads.max_percent",
            "less than or equal to the minimum of 0",
        ),
        (one(colour="red"), "policies.stale-leads.colour", "unknown key"),
        (one(action="void", auto_apply=True), "policies.stale-leads.auto_apply", "approval"),
        (one(name="bad name!"), "policies[0].name", "must start with a letter"),
        ({k: v for k, v in one().items() if k != "filter"}, "policies.stale-leads.filter", "req"),
    ],
)
def test_each_error_names_the_policy_and_key_path(table, path, words):
    err = error_of([table])
    assert err.path == path, str(err)
    assert words in str(err)


def test_toml_datetime_value_gets_a_hint():
    err = error_of([one(filter={"field": "A", "op": "lt", "value": datetime(2024, 1, 1)})])
    assert "TOML date-time" in str(err) and "older_than" in str(err)


def test_duplicate_names_are_refused():
    err = error_of([one(), one()])
    assert err.path == "policies[1].name" and "duplicate" in str(err)


def test_unknown_field_is_checked_only_when_fields_are_known():
    table = one(filter={"field": "Lead_Stauts", "op": "eq", "value": "Lost"})
    assert parse_policies([table], known_fields={("crm", "Deals"): {"x"}})
    err = error_of([table], known_fields={("crm", "Leads"): {"Lead_Status", "Email"}})
    assert err.path == "policies.stale-leads.filter.field"
    assert "did you mean 'Lead_Status'" in str(err)
    ok = one(filter={"all": [{"field": "@status", "op": "eq", "value": "active"}]})
    assert parse_policies([ok], known_fields={("crm", "Leads"): set()})


def test_all_problems_are_collected():
    bad = one(filter={"all": [{"field": "A", "op": "nope"}, {"field": "B", "op": "lt"}]})
    _, problems = check_policies([bad, one(name="x", connection="other")], connections={"crm"})
    assert [p.path for p in problems] == [
        "policies.stale-leads.filter.all[0].op",
        "policies.stale-leads.filter.all[1].value",
        "policies.x.connection",
    ]


def test_defaults():
    (policy,) = parse_policies([one()])
    assert policy.enabled and not policy.auto_apply and not policy.require_approval
    assert (policy.max_records, policy.max_percent) == (DEFAULT_MAX_RECORDS, DEFAULT_MAX_PERCENT)
    (void,) = parse_policies([one(action="void")])
    assert void.require_approval
    (own,) = parse_policies([one(max_records=20)])
    assert (own.max_records, own.max_percent) == (20, None)  # a guard set: no default added
    (timed,) = parse_policies([one(filter={"older_than": "365d"})])
    assert timed.filter.field.column == "modified_at" and timed.filter.op == "older_than"


def test_a_plugin_can_register_its_own_op():
    @policy_filters.registry.register("longer_than")
    class LongerThan(policy_filters.FilterOp):
        value_schema = {"type": "integer", "minimum": 0}

        def to_sql(self, f, value, now):
            return f"({f.t} = 'text' AND length({f.v}) > ?)", [value]

    try:
        with pytest.raises(ConfigError, match="minimum"):
            parse_policies([one(filter={"field": "Name", "op": "longer_than", "value": -1})])
        (policy,) = parse_policies([one(filter={"field": "Name", "op": "longer_than", "value": 3})])
        db = mirror_db([("1", {"Name": "Alexandra"}), ("2", {"Name": "Al"})])
        sql, params = select_sql(policy, datetime.now(UTC))
        assert [r[0] for r in db.execute(sql, params)] == ["1"]
        with pytest.raises(ValueError, match="already registered"):
            policy_filters.registry.register("longer_than")(LongerThan)
    finally:
        policy_filters.registry.unregister("longer_than")


def mirror_db(rows, path=":memory:") -> sqlite3.Connection:
    db = sqlite3.connect(path)
    for script in MIGRATIONS:
        db.executescript(script)
    install_sql_functions(db)
    for rid, data in rows:
        text, digest = canonical_record(data)
        db.execute(
            "INSERT INTO mirror (connection, module, record_id, data, content_hash,"
            " first_seen_at, updated_at) VALUES ('crm', 'Leads', ?, ?, ?, 'x', 'x')",
            (rid, text, digest),
        )
    db.commit()
    return db


def test_mirror_fields_from_a_connection():
    db = mirror_db([("1", {"A": 1, "客户": 2}), ("2", {"B": None})])
    assert mirror_fields(db, "crm", "Leads") == {"A", "B", "客户"}
    assert mirror_fields(db, "crm", "Deals") is None


# --------------------------------------------------------------------------- config + CLI

CONFIG = """
[store]
path = "mirror.db"

[connections.crm]
connector = "memory"
url = "http://example.invalid"

[[policies]]
name = "stale-leads"
connection = "crm"
module = "Leads"
action = "archive"
description = "Leads nobody touched for a year that are Lost or Junk"
filter = { all = [
  { field = "Lead_Status", op = "in", value = ["Lost", "Junk"] },
  { older_than = "365d" },
] }
"""


def test_config_parses_policies(registry):
    config = parse_config(CONFIG, registry)
    assert [p.name for p in config.policies] == ["stale-leads"]


def test_config_policy_errors_exit_2_with_path(registry):
    text = CONFIG.replace('connection = "crm"', 'connection = "sales"')
    with pytest.raises(ConfigError) as err:
        parse_config(text, registry)
    assert err.value.path == "policies.stale-leads.connection"
    assert "no connection named 'sales'" in str(err.value)


class _App:
    def __init__(self, path, registry):
        from crmsync.config import load_config

        self.path, self.reg = path, registry
        self._load = load_config

    @property
    def config(self):
        return self._load(self.path, self.reg)


def run_validate(tmp_path, registry, text, *args):
    path = tmp_path / "crmsync.toml"
    path.write_text(text, encoding="utf-8")
    group = click.Group(commands={"validate": validate_command})
    return CliRunner().invoke(group, ["validate", *args], obj=_App(path, registry))


def test_validate_command_checks_fields_against_the_mirror(tmp_path, registry):
    result = run_validate(tmp_path, registry, CONFIG, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["fields_unchecked"] == ["crm/Leads"]
    assert not (tmp_path / "mirror.db").exists()  # validate never creates a store

    mirror_db([("1", {"Lead_Stage": "Lost"})], tmp_path / "mirror.db").close()
    result = run_validate(tmp_path, registry, CONFIG, "--json")
    assert result.exit_code == 2
    out = json.loads(result.output)
    assert out["errors"][0]["path"] == "policies.stale-leads.filter.all[0].field"
    assert "did you mean 'Lead_Stage'" in out["errors"][0]["message"]


def test_validate_command_reports_structure_errors(tmp_path, registry):
    result = run_validate(tmp_path, registry, CONFIG.replace('"in"', '"inn"'))
    assert result.exit_code == 2
    assert "policies.stale-leads.filter.all[0].op" in result.output
