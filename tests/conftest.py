from __future__ import annotations

import os

# Before anything imports keyring: tests (and their subprocesses) never touch a real keyring.
os.environ["PYTHON_KEYRING_BACKEND"] = "crmsync.testing.keyring_backend.MemoryKeyring"

import keyring
import pytest

from crmsync import plugins
from crmsync.plugins import build_registry
from crmsync.testing.keyring_backend import MemoryKeyring
from tests.fakes import MemoryPlugin

keyring.set_keyring(MemoryKeyring())


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory):
    for var in (plugins.DISABLE_ENV, plugins.LOAD_ENV, "CRMSYNC_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    # snapshot repositories keep a local cache: never the user's own ~/.cache in tests
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))
    plugins.reset_registry()
    MemoryKeyring.clear()
    yield
    plugins.reset_registry()


@pytest.fixture
def memory_plugin() -> MemoryPlugin:
    return MemoryPlugin()


@pytest.fixture
def registry(memory_plugin: MemoryPlugin):
    """Installed plugins plus the in-memory test connector."""
    return build_registry(extra_plugins=[("memory", memory_plugin)])


@pytest.fixture
def lc_sandbox():
    """A sandbox CRM for the lifecycle tests (plan/apply/restore)."""
    from crmsync.sandbox import SandboxCRM
    from tests.lifecycle_support import TOKEN

    with SandboxCRM(records=300, seed=11, token=TOKEN) as crm:
        crm.start()
        yield crm


@pytest.fixture
def lc_config(tmp_path, lc_sandbox, monkeypatch):
    """A config for lc_sandbox with the classic policies (tests/lifecycle_support.py)."""
    from tests.lifecycle_support import TOKEN, write_config

    monkeypatch.setenv("LC_TOKEN", TOKEN)
    return write_config(tmp_path, lc_sandbox.api_url)
