"""Package discovery only; everything else is in pyproject.toml.

The built-in connectors live in ./connectors but install as ``crmsync_connectors`` so that
crmsync does not claim the generic top-level import name ``connectors``. pyproject.toml
cannot express "find packages under a renamed directory", hence these few lines.
"""

from setuptools import find_packages, setup

packages = find_packages(include=["crmsync", "crmsync.*"])
packages += ["crmsync_connectors"] + [
    f"crmsync_connectors.{name}" for name in find_packages("connectors")
]

setup(packages=packages)
