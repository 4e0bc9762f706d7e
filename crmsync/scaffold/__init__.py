"""``crmsync new-connector NAME``: write a complete, installable connector package.

The package (pyproject with the ``crmsync.connectors`` entry point, plugin, connector, settings
schema, API client, a fake server of a small example API, the contract suite wired to it and an
end-to-end CLI test) is rendered from ``templates/`` by replacing a few ``{{token}}`` markers;
docs/writing-a-connector.md explains every file. It passes ruff and its own tests as generated.
"""

from __future__ import annotations

import importlib.util
import keyword
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from crmsync import __version__
from crmsync.errors import EXIT_USAGE, CrmsyncError

NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,19}$")
MAX_PACKAGE = 30
_TOKEN = re.compile(r"\{\{(name|Name|NAME|package|dist|crmsync_version)\}\}")
_LEFTOVER = re.compile(r"\{\{[A-Za-z_]+\}\}")

#: template (relative to templates/) -> path in the generated project; ``PKG`` is the package.
FILES = {
    "pyproject.toml.tmpl": "pyproject.toml",
    "README.md.tmpl": "README.md",
    "gitignore.tmpl": ".gitignore",
    "package/__init__.py.tmpl": "PKG/__init__.py",
    "package/plugin.py.tmpl": "PKG/plugin.py",
    "package/connector.py.tmpl": "PKG/connector.py",
    "package/settings.py.tmpl": "PKG/settings.py",
    "package/api.py.tmpl": "PKG/api.py",
    "package/fake.py.tmpl": "PKG/fake.py",
    "tests/__init__.py.tmpl": "tests/__init__.py",
    "tests/test_contract.py.tmpl": "tests/test_contract.py",
    "tests/test_connector.py.tmpl": "tests/test_connector.py",
    "tests/test_end_to_end.py.tmpl": "tests/test_end_to_end.py",
}


class ScaffoldError(CrmsyncError):
    """A name or place the scaffold cannot use; nothing was written."""

    exit_code = EXIT_USAGE


@dataclass(frozen=True)
class Names:
    name: str  # the connector's name: `connector = "..."` and the entry point
    package: str  # import package
    dist: str  # distribution (pip) name and the project directory

    @property
    def title(self) -> str:
        return "".join(part.capitalize() for part in self.name.split("_") if part)

    def tokens(self) -> dict[str, str]:
        return {
            "name": self.name,
            "Name": self.title,
            "NAME": self.name.upper(),
            "package": self.package,
            "dist": self.dist,
            "crmsync_version": __version__,
        }


def names_for(name: str, package_name: str | None = None) -> Names:
    """Check NAME (and --package-name) and derive the package and distribution names."""
    if not NAME_RE.match(name) or name.endswith("_") or "__" in name:
        raise ScaffoldError(
            f"connector name {name!r} is not usable: use lowercase letters, digits and single "
            "underscores, starting with a letter (at most 20 characters), e.g. 'fxiaoke'"
        )
    if keyword.iskeyword(name):
        raise ScaffoldError(f"connector name {name!r} is a Python keyword")
    package = package_name or f"crmsync_{name}"
    if not package.isidentifier() or keyword.iskeyword(package):
        raise ScaffoldError(
            f"--package-name {package!r} is not a Python identifier (one name, no dots)"
        )
    if len(package) > MAX_PACKAGE:
        raise ScaffoldError(f"--package-name {package!r} is longer than {MAX_PACKAGE} characters")
    return Names(name=name, package=package, dist="crmsync-" + name.replace("_", "-"))


def check_free(names: Names, directory: Path, installed_connectors: set[str]) -> Path:
    """The project directory to create; refuses names that clash with what exists."""
    if names.name in installed_connectors:
        raise ScaffoldError(
            f"a connector named {names.name!r} is already installed (see `crmsync connectors`); "
            "choose another name"
        )
    if not directory.is_dir():
        raise ScaffoldError(f"--dir {directory} is not an existing directory")
    target = directory / names.dist
    if target.exists():
        raise ScaffoldError(f"{target} already exists; remove it or choose another --dir")
    if importlib.util.find_spec(names.package) is not None:
        raise ScaffoldError(
            f"a module named {names.package!r} is already importable here; the new package would "
            "be shadowed or shadow it: choose another --package-name"
        )
    return target


def render(text: str, tokens: dict[str, str]) -> str:
    rendered = _TOKEN.sub(lambda m: tokens[m.group(1)], text)
    leftover = _LEFTOVER.search(rendered)
    if leftover:  # a template bug, not the user's
        raise RuntimeError(f"unknown template marker {leftover.group(0)}")
    return rendered


def generate(names: Names, target: Path) -> list[Path]:
    """Write the project into ``target`` (which must not exist); the files written.

    Everything is written into a temporary directory beside ``target`` and renamed into place,
    so a failure leaves nothing half-made.
    """
    templates = resources.files("crmsync.scaffold") / "templates"
    tokens = names.tokens()
    written: list[Path] = []
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{names.dist}-", dir=target.parent))
        umask = os.umask(0)  # mkdtemp makes it private (0700); the project is an ordinary dir
        os.umask(umask)
        staging.chmod(0o777 & ~umask)
    except OSError as exc:
        raise CrmsyncError(f"cannot write in {target.parent}: {exc.strerror or exc}") from None
    try:
        for source, dest in FILES.items():
            path = staging / dest.replace("PKG", names.package)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(render((templates / source).read_text("utf-8"), tokens), "utf-8")
            written.append(target / path.relative_to(staging))
        os.rename(staging, target)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise CrmsyncError(f"cannot write {target}: {exc.strerror or exc}") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return written
