"""``crmsync new-connector``: the generated package passes ruff and its own contract suite
untouched, declares a working entry point, and bad names are refused before anything is
written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from crmsync import scaffold
from crmsync.cli import cli
from crmsync.errors import EXIT_USAGE
from crmsync.scaffold import FILES


def new_connector(*args: str) -> Result:
    return CliRunner().invoke(cli, ["new-connector", *args])


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """crmsync-acme, generated once for the module (its own test run is the slow part)."""
    base = tmp_path_factory.mktemp("scaffold")
    result = new_connector("acme", "--dir", str(base))
    assert result.exit_code == 0, result.output
    return base / "crmsync-acme"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CRMSYNC_CONFIG")}
    return {**env, **extra}


def test_generates_the_documented_layout(generated: Path) -> None:
    files = {str(p.relative_to(generated)) for p in generated.rglob("*") if p.is_file()}
    expected = {dest.replace("PKG", "crmsync_acme") for dest in FILES.values()}
    assert files == expected
    project = tomllib.loads((generated / "pyproject.toml").read_text())
    assert project["project"]["name"] == "crmsync-acme"
    entry = project["project"]["entry-points"]["crmsync.connectors"]
    assert entry == {"acme": "crmsync_acme.plugin"}
    assert not list(generated.parent.glob(".crmsync-acme-*")), "staging directory left behind"
    umask = os.umask(0)
    os.umask(umask)
    assert generated.stat().st_mode & 0o777 == 0o777 & ~umask  # not mkdtemp's private 0700


def test_generated_package_passes_its_contract_suite_untouched(generated: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider"],
        cwd=generated,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "Contract" in result.stdout or "passed" in result.stdout
    assert " failed" not in result.stdout and "error" not in result.stdout.lower()


def test_generated_code_is_ruff_clean_for_the_shortest_and_longest_names(
    generated: Path, tmp_path: Path
) -> None:
    # Lines grow with the names: the extremes bound every name in between.
    longest = "abcdefghijklmnopqrst"  # 20 characters
    projects = [generated]
    for index, args in enumerate(
        (["a", "--package-name", "x"], [longest, "--package-name", "p" * 30], [longest])
    ):
        where = tmp_path / str(index)
        where.mkdir()
        made = new_connector(*args, "--dir", str(where))
        assert made.exit_code == 0, made.output
        projects += list(where.iterdir())
    for project in projects:
        for command in (["check"], ["format", "--check"]):
            # in the project, with its own pyproject settings, as its author runs ruff
            result = subprocess.run(
                [sys.executable, "-m", "ruff", *command, "."],
                cwd=project,
                capture_output=True,
                text=True,
            )
            assert result.returncode == 0, f"{project}\n{result.stdout}{result.stderr}"


def test_installed_entry_point_lists_the_connector(generated: Path, tmp_path: Path) -> None:
    # What pip writes for the package (a wheel cannot be built offline here): its
    # dist-info with the entry points its pyproject declares.
    project = tomllib.loads((generated / "pyproject.toml").read_text())["project"]
    dist_info = tmp_path / "site" / "crmsync_acme-0.1.0.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n"
    )
    lines = ["[crmsync.connectors]"] + [
        f"{name} = {target}"
        for name, target in project["entry-points"]["crmsync.connectors"].items()
    ]
    (dist_info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    env = _env(PYTHONPATH=os.pathsep.join([str(generated), str(tmp_path / "site")]))
    result = subprocess.run(
        [sys.executable, "-m", "crmsync", "connectors", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    listed = {c["name"]: c for c in json.loads(result.stdout)}
    assert listed["acme"]["package"] == "crmsync-acme"
    assert listed["acme"]["version"] == "0.1.0"
    settings = {s["name"]: s for s in listed["acme"]["settings"]}
    assert settings["client_secret"]["secret"] and settings["base_url"]["required"]
    assert "warning" not in result.stderr


@pytest.mark.parametrize(
    "name, why",
    [
        ("Acme", "lowercase"),
        ("1acme", "starting with a letter"),
        ("ac-me", "lowercase letters, digits and single underscores"),
        ("acme_", "single underscores"),
        ("a__b", "single underscores"),
        ("class", "Python keyword"),
        ("a" * 21, "at most 20"),
        ("", "not usable"),
    ],
)
def test_bad_names_are_refused_with_exit_2_and_nothing_written(
    tmp_path: Path, name: str, why: str
) -> None:
    result = new_connector(name, "--dir", str(tmp_path))
    assert result.exit_code == EXIT_USAGE
    assert why in result.stderr and repr(name) in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_an_existing_project_directory_is_never_overwritten(tmp_path: Path) -> None:
    (tmp_path / "crmsync-acme").mkdir()
    (tmp_path / "crmsync-acme" / "mine.py").write_text("keep me")
    result = new_connector("acme", "--dir", str(tmp_path))
    assert result.exit_code == EXIT_USAGE
    assert "already exists" in result.stderr
    assert [p.name for p in (tmp_path / "crmsync-acme").iterdir()] == ["mine.py"]


def test_the_name_of_an_installed_connector_is_refused(tmp_path: Path) -> None:
    result = new_connector("zoho", "--dir", str(tmp_path))
    assert result.exit_code == EXIT_USAGE
    assert "already installed" in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "args, message",
    [
        (["--package-name", "my.pkg"], "not a Python identifier"),
        (["--package-name", "json"], "already importable"),
        (["--dir", "does-not-exist"], "not an existing directory"),
    ],
)
def test_bad_options_are_refused_with_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    result = new_connector("acme", *args)
    assert result.exit_code == EXIT_USAGE
    assert message in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_directory_it_cannot_write_in_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refused(**kwargs: object) -> str:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(scaffold.tempfile, "mkdtemp", refused)  # as root, chmod would not do
    result = new_connector("acme", "--dir", str(tmp_path))
    assert result.exit_code == 1
    assert "cannot write in" in result.stderr and "Permission denied" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_failed_write_leaves_nothing_half_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(source: object, target: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(scaffold.os, "rename", full)
    result = new_connector("acme", "--dir", str(tmp_path))
    assert result.exit_code == 1
    assert "No space left on device" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_registered_plugins_replaces_an_installed_copy_and_restores_the_registry() -> None:
    from crmsync import plugins
    from crmsync.testing.plugins import registered_plugins
    from crmsync_connectors.zoho import plugin as zoho_plugin

    before = plugins.get_registry()
    with registered_plugins(("zoho", zoho_plugin)) as registry:
        assert plugins.get_registry() is registry
        assert [p.name for p in registry.plugins].count("zoho") == 1
        assert registry.connector("zoho").name == "zoho"
    assert plugins.get_registry() is before
