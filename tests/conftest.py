"""Fixtures shared by every test folder."""

from __future__ import annotations

import pytest

from tunewiz.project import Project, create_project


@pytest.fixture
def project(tmp_path) -> Project:
    """A fresh project folder with default settings."""
    return create_project(tmp_path / "proj")
