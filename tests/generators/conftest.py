"""Fixtures of the generator tests: the fault-injecting server and the real llama.cpp server."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # fault_server.py beside this file

from fault_server import FaultServer  # noqa: E402

from tunewiz.project import create_project  # noqa: E402


@pytest.fixture
def fault_server():
    with FaultServer(hang_s=4.0) as server:
        yield server


@pytest.fixture
def fault_project(tmp_path, fault_server):
    """A project whose provider is the fault server, with short timeouts for quick tests."""
    return create_project(tmp_path / "proj", {
        "generator.provider": "custom",
        "generator.base_url": fault_server.base_url,
        "generator.model": "fake-model",
        "generator.timeout_s": 1.0,
        "generator.max_retries": 4,
        "generator.concurrency": 4,
        "generator.pairs_per_chunk": 2,
        "generator.subtopics": False,
        "generator.num_pairs": 1,  # documents are read once; asking again until enough has its own tests
        # The fault server's answers are about made-up "points", not its chunks: these tests are the
        # runner's mechanics; the content checks have tests/generators/test_checks.py.
        "generator.min_support": 0.0,
        "generator.min_question_support": 0.0,
    })


@pytest.fixture(scope="session")
def llama_server():
    """llama-cpp-python's real server on loopback, serving the SmolLM2-135M GGUF."""
    from tunewiz.generators.embedded import EmbeddedServer
    from tunewiz.models import smollm2_gguf_path

    with EmbeddedServer(smollm2_gguf_path(), n_ctx=2048) as server:
        yield server
