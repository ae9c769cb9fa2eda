"""Lists the packages: tunewiz.* from tunewiz/, and the root folders tui/ and generators/
as tunewiz.tui.* and tunewiz.generators.* (the mapping itself is in pyproject.toml)."""

from setuptools import find_packages, setup

packages = find_packages(include=["tunewiz", "tunewiz.*"]) + [
    f"tunewiz.{name}" for name in find_packages(include=["tui", "tui.*", "generators", "generators.*"])
]
setup(packages=packages)
