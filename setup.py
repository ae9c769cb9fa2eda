"""Lists the packages: tunewiz.* from tunewiz/, and the root folders tui/, generators/ and examples/
as tunewiz.tui.*, tunewiz.generators.* and tunewiz.examples (the mapping itself is in pyproject.toml)."""

from setuptools import find_packages, setup

packages = find_packages(include=["tunewiz", "tunewiz.*"]) + [
    f"tunewiz.{name}" for name in find_packages(include=["tui", "tui.*", "generators", "generators.*", "examples"])
]
setup(packages=packages)
