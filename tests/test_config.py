from __future__ import annotations

import pytest

from crmsync.config import load_config, parse_config
from crmsync.errors import ConfigError, SecretError, UnknownConnectorError
from crmsync.hookspecs import SecretRef
from crmsync.testing.keyring_backend import MemoryKeyring

GOOD = """
[store]
path = "state/mirror.db"

[connections.sales]
connector = "memory"
url = "http://example.invalid"
[connections.sales.auth]
type = "bearer"
token = "env:SALES_TOKEN"
"""


def test_valid_config_gives_connections_and_store_path_relative_to_file(tmp_path, registry):
    path = tmp_path / "crmsync.toml"
    path.write_text(GOOD)
    config = load_config(path, registry)
    assert config.store_path == tmp_path / "state" / "mirror.db"
    conn = config.connection("sales")
    assert conn.connector == "memory"
    assert conn.settings["url"] == "http://example.invalid"


def test_secret_values_reach_connectors_as_references_not_values(registry, monkeypatch):
    monkeypatch.setenv("SALES_TOKEN", "s3cr3t-value")
    config = parse_config(GOOD, registry)
    token = config.connection("sales").settings["auth"]["token"]
    assert isinstance(token, SecretRef)
    assert token.key_path == "connections.sales.auth.token"
    assert "s3cr3t-value" not in repr(token) and "s3cr3t-value" not in str(token)
    assert token.reveal() == "s3cr3t-value"


def test_missing_env_secret_names_the_key_and_variable(registry):
    token = parse_config(GOOD, registry).connection("sales").settings["auth"]["token"]
    with pytest.raises(SecretError) as err:
        token.reveal()
    assert "connections.sales.auth.token" in str(err.value)
    assert "SALES_TOKEN" in str(err.value)
    assert err.value.exit_code == 2


def test_keyring_reference_is_resolved_from_the_keyring(registry):
    MemoryKeyring().set_password("crmsync", "sales", "from-keyring")
    text = GOOD.replace("env:SALES_TOKEN", "keyring:crmsync/sales")
    token = parse_config(text, registry).connection("sales").settings["auth"]["token"]
    assert token.reveal() == "from-keyring"


def test_missing_keyring_entry_says_how_to_store_it(registry):
    text = GOOD.replace("env:SALES_TOKEN", "keyring:crmsync/nothing-here")
    token = parse_config(text, registry).connection("sales").settings["auth"]["token"]
    with pytest.raises(SecretError, match="keyring set crmsync nothing-here"):
        token.reveal()


def test_no_keyring_backend_explains_alternatives(registry, monkeypatch):
    import keyring
    from keyring.backends import fail

    monkeypatch.setattr(keyring, "get_keyring", lambda: fail.Keyring())
    text = GOOD.replace("env:SALES_TOKEN", "keyring:crmsync/sales")
    token = parse_config(text, registry).connection("sales").settings["auth"]["token"]
    with pytest.raises(SecretError) as err:
        token.reveal()
    assert "no usable keyring backend" in str(err.value)
    assert "env:" in str(err.value)


def test_literal_secret_is_refused_without_echoing_it(registry):
    text = GOOD.replace("env:SALES_TOKEN", "hunter2-literal")
    with pytest.raises(ConfigError) as err:
        parse_config(text, registry)
    msg = str(err.value)
    assert msg.startswith("connections.sales.auth.token:")
    assert "literal secret is not allowed" in msg
    assert "hunter2-literal" not in msg
    assert err.value.exit_code == 2


def test_malformed_secret_reference_is_explained(registry):
    text = GOOD.replace("env:SALES_TOKEN", "env:not a var")
    with pytest.raises(ConfigError, match="malformed secret reference"):
        parse_config(text, registry)


def test_wrong_secret_type_does_not_echo_the_value(registry):
    text = GOOD.replace('"env:SALES_TOKEN"', "123456789")
    with pytest.raises(ConfigError) as err:
        parse_config(text, registry)
    assert "123456789" not in str(err.value)
    assert "connections.sales.auth.token" in str(err.value)


def test_bad_enum_names_key_path_and_choices(registry):
    text = GOOD + '[connections.sales.paginator]\ntype = "pages"\n'
    with pytest.raises(ConfigError) as err:
        parse_config(text, registry)
    msg = str(err.value)
    assert msg.startswith("connections.sales.paginator.type: expected one of")
    assert "'page_number'" in msg and "'pages'" in msg


def test_unknown_key_is_named_with_the_allowed_ones(registry):
    text = GOOD.replace('url = "http', 'urll = "x"\nurl = "http')
    with pytest.raises(ConfigError) as err:
        parse_config(text, registry)
    assert str(err.value).startswith("connections.sales.urll: unknown key; expected one of:")


def test_wrong_type_says_what_was_expected(registry):
    text = GOOD.replace("[connections.sales.auth]", 'page_size = "ten"\n[connections.sales.auth]')
    with pytest.raises(ConfigError, match=r"connections\.sales\.page_size: expected integer"):
        parse_config(text, registry)


def test_missing_required_key_is_named(registry):
    text = GOOD.replace('url = "http://example.invalid"\n', "")
    with pytest.raises(ConfigError, match=r"connections\.sales\.url: required key is missing"):
        parse_config(text, registry)


def test_connection_without_connector_is_named(registry):
    with pytest.raises(ConfigError, match=r"connections\.x\.connector: required key is missing"):
        parse_config('[connections.x]\nurl = "u"\n', registry)


def test_unknown_connector_lists_the_installed_ones(registry):
    with pytest.raises(UnknownConnectorError) as err:
        parse_config('[connections.x]\nconnector = "salesforce"\n', registry)
    msg = str(err.value)
    assert msg.startswith("connections.x.connector: unknown connector 'salesforce'")
    assert "memory" in msg
    assert err.value.exit_code == 2


def test_unknown_top_level_key_is_refused(registry):
    with pytest.raises(ConfigError, match="conections: unknown key"):
        parse_config("[conections.x]\nconnector = 'memory'\n", registry)


def test_bad_connection_name_is_refused(registry):
    with pytest.raises(ConfigError, match="must start with a letter"):
        parse_config('[connections."9 bad"]\nconnector = "memory"\nurl = "u"\n', registry)


def test_malformed_toml_reports_file_and_position(tmp_path, registry):
    path = tmp_path / "c.toml"
    path.write_text("[store\npath = 1\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, registry)
    assert str(path) in str(err.value)
    assert "not valid TOML" in str(err.value) and "line 1" in str(err.value)


def test_missing_config_file_suggests_init(tmp_path, registry):
    with pytest.raises(ConfigError, match="crmsync init"):
        load_config(tmp_path / "nope.toml", registry)


def test_unknown_connection_name_lists_configured(registry):
    config = parse_config(GOOD, registry)
    with pytest.raises(ConfigError, match="configured: sales"):
        config.connection("marketing")


def test_example_config_is_valid_as_shipped():
    from pathlib import Path

    from crmsync.plugins import build_registry

    example = Path(__file__).resolve().parent.parent / "config.example.toml"
    config = load_config(example, build_registry())
    assert set(config.connections) == {"sandbox", "zoho", "helpdesk"}
    assert isinstance(config.connection("zoho").settings["refresh_token"], SecretRef)
    secret = config.connection("helpdesk").settings["auth"]["refresh_token"]
    assert isinstance(secret, SecretRef) and secret.ref == "env:HELPDESK_REFRESH_TOKEN"
    # The classic policies of the policy issue, all against the sandbox connection.
    policies = {p.name: p for p in config.policies}
    assert list(policies) == [
        "stale-leads",
        "old-lost-deals",
        "duplicate-contacts",
        "restore-mistaken-archive",
    ]
    assert {p.connection for p in config.policies} == {"sandbox"}
    assert [p.action.type for p in config.policies] == ["archive", "archive", "void", "restore"]
    assert [p.module for p in config.policies] == ["Leads", "Deals", "Contacts", "Leads"]
    dups = policies["duplicate-contacts"]
    assert dups.require_approval and dups.filter.op == "duplicate_of"
    assert dups.filter.value["normalize"] == {"phone": "phone"}
    assert not policies["restore-mistaken-archive"].enabled
    assert config.plan_ttl.total_seconds() == 24 * 3600 and config.allow_self_approval is False
