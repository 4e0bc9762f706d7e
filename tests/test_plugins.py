"""Plugins are found through entry points, like users install them: a fake distribution on
sys.path declares entry points in the crmsync.connectors group."""

from __future__ import annotations

import json
import textwrap

import pytest
from click.testing import CliRunner

from crmsync import plugins
from crmsync.cli import cli
from crmsync.plugins import build_registry

THIRD_PARTY = """
from crmsync.hookspecs import hookimpl

class Acme:
    name = "acme"
    description = "Acme CRM"
    def settings_schema(self):
        return {"type": "object"}
    def settings(self):
        return []
    def open(self, name, settings):
        raise NotImplementedError

@hookimpl
def crmsync_register_connectors(register):
    register(Acme())
"""


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A directory on sys.path holding fake installed distributions."""

    def install(dist: str, version: str, entry_points: dict[str, str], modules: dict[str, str]):
        info = tmp_path / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        eps = "\n".join(f"{k} = {v}" for k, v in entry_points.items())
        (info / "entry_points.txt").write_text(f"[crmsync.connectors]\n{eps}\n")
        for name, source in modules.items():
            (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))

    monkeypatch.syspath_prepend(str(tmp_path))
    return install


def test_builtin_rest_connector_is_found_through_its_entry_point():
    registry = build_registry()
    rest = [c for c in registry.connectors() if c.name == "rest"]
    assert rest and rest[0].package == "crmsync" and rest[0].version


def test_third_party_connector_is_listed_with_its_package_and_version(site):
    site("crmsync-acme", "1.2.3", {"acme": "acme_plugin"}, {"acme_plugin": THIRD_PARTY})
    result = CliRunner().invoke(cli, ["connectors", "--json"])
    assert result.exit_code == 0, result.output
    listed = {c["name"]: c for c in json.loads(result.output)}
    assert listed["acme"]["package"] == "crmsync-acme"
    assert listed["acme"]["version"] == "1.2.3"
    assert "rest" in listed


def test_plugin_that_fails_to_import_is_reported_and_others_still_work(site):
    site(
        "crmsync-broken",
        "0.1",
        {"broken": "broken_plugin"},
        {"broken_plugin": "raise ImportError('needs libfoo')\n"},
    )
    result = CliRunner().invoke(cli, ["connectors", "--json"])
    assert result.exit_code == 0
    assert "rest" in {c["name"] for c in json.loads(result.stdout)}
    assert "plugin 'broken' failed to load" in result.stderr and "needs libfoo" in result.stderr
    listing = json.loads(CliRunner().invoke(cli, ["plugins", "--json"]).stdout)
    broken = next(p for p in listing if p["name"] == "broken")
    assert broken["status"] == "failed" and "needs libfoo" in broken["error"]


def test_config_naming_a_broken_plugin_explains_why(site, tmp_path):
    site(
        "crmsync-broken",
        "0.1",
        {"broken": "broken_plugin"},
        {"broken_plugin": "raise ImportError('needs libfoo')\n"},
    )
    cfg = tmp_path / "c.toml"
    cfg.write_text('[connections.x]\nconnector = "broken"\n')
    result = CliRunner().invoke(cli, ["-c", str(cfg), "check"])
    assert result.exit_code == 2
    assert "connections.x.connector: unknown connector 'broken'" in result.stderr
    assert "needs libfoo" in result.stderr


def test_environment_variable_blocks_a_named_plugin(site, monkeypatch):
    site("crmsync-acme", "1.2.3", {"acme": "acme_plugin"}, {"acme_plugin": THIRD_PARTY})
    monkeypatch.setenv(plugins.DISABLE_ENV, "acme")
    registry = build_registry()
    assert "acme" not in {c.name for c in registry.connectors()}
    assert next(p for p in registry.plugins if p.name == "acme").status == "blocked"
    assert "rest" in {c.name for c in registry.connectors()}


def test_load_allowlist_loads_only_the_named_plugins(site, monkeypatch):
    site("crmsync-acme", "1.2.3", {"acme": "acme_plugin"}, {"acme_plugin": THIRD_PARTY})
    monkeypatch.setenv(plugins.LOAD_ENV, "acme")
    names = {c.name for c in build_registry().connectors()}
    assert names == {"acme"}


def test_plugins_json_lists_hooks_each_plugin_implements():
    result = CliRunner().invoke(cli, ["plugins", "--json"])
    rest = next(p for p in json.loads(result.output) if p["name"] == "rest")
    assert rest["hooks"] == ["crmsync_register_connectors"]
    assert rest["status"] == "loaded" and rest["package"] == "crmsync"


def test_core_never_imports_a_connector_module():
    import pathlib

    core = pathlib.Path(plugins.__file__).parent
    offenders = [
        str(p) for p in core.rglob("*.py") if "crmsync_connectors" in p.read_text(encoding="utf-8")
    ]
    assert offenders == []


COMMAND_PLUGIN = '''
import click
from crmsync.hookspecs import hookimpl

@hookimpl
def crmsync_register_commands(cli):
    @cli.command()
    def hello():
        """Say hello from a plugin."""
        click.echo("hello from a plugin")
'''


def test_plugin_can_add_a_cli_command(site, capsys):
    from crmsync.cli import main

    site("crmsync-hello", "0.2", {"hello": "hello_plugin"}, {"hello_plugin": COMMAND_PLUGIN})
    with pytest.raises(SystemExit) as done:
        main(["hello"])
    assert done.value.code == 0
    assert "hello from a plugin" in capsys.readouterr().out


def test_every_hookspec_is_exercised_by_a_test():
    import pathlib

    from crmsync import hookspecs

    specs = [n for n in dir(hookspecs) if n.startswith("crmsync_")]
    tests = "".join(
        p.read_text(encoding="utf-8") for p in pathlib.Path(__file__).parent.glob("*.py")
    )
    for name in specs:
        assert f"def {name}" in tests, f"hook {name} has no test plugin implementing it"
