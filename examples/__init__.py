"""Example projects (installed as tunewiz.examples): each folder holds a tunewiz.toml and its data.

`tunewiz demo` copies one of them; every example's TOML is validated by the tests.
"""

from pathlib import Path

EXAMPLES_DIR = Path(__file__).parent


def example_path(name: str) -> Path:
    return EXAMPLES_DIR / name
