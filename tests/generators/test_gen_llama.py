"""Generation with the real SmolLM2-135M GGUF behind llama-cpp-python's real server.

SmolLM2-135M is tiny and writes poor free-form JSON; the grammar-constrained
response_format is what makes its replies parse. These tests check that pairs are
really generated, parsed and stored through that path.
"""

from __future__ import annotations

import pytest
from gen_helpers import write_chunks

from tunewiz.dataset import PairStore
from tunewiz.errors import TunewizError
from tunewiz.generators import providers
from tunewiz.generators.embedded import EmbeddedServer
from tunewiz.generators.journal import GenerationJournal, journal_path
from tunewiz.generators.runner import generate_pairs
from tunewiz.project import create_project

pytestmark = pytest.mark.server

FACTS = ["The Zorbel river is 42 kilometres long and flows through the town of Maplewick.",
         "Maplewick is famous for its blue cheese, which is aged in caves for nine months."]


def _settings(**extra):
    return {"generator.pairs_per_chunk": 1, "generator.answer_length": "short", "generator.temperature": 0.2,
            "generator.concurrency": 2, "generator.timeout_s": 120.0, "generator.max_retries": 2, **extra}


@pytest.mark.slow
def test_embedded_provider_generates_from_a_topic(tmp_path):
    project = create_project(tmp_path / "proj", _settings(**{
        "generator.topic": "the water cycle", "generator.num_pairs": 2, "generator.subtopics": False}))
    messages = []
    summary = generate_pairs(project, on_event=lambda e: e.message and messages.append(e.message))
    assert "starting the embedded llama.cpp server" in messages
    assert summary.chunks_failed == 0, summary.failures
    pairs = list(PairStore(project.pairs_path))
    # What fails a content check is stored too, as rejected with its reason.
    assert summary.pairs_added + summary.pairs_rejected == len(pairs) >= 1
    assert all(p.reason for p in pairs if p.status == "rejected")
    assert all(p.question.strip() and p.answer.strip() for p in pairs)
    assert all(p.source.startswith("topic:the water cycle#") for p in pairs)
    assert summary.tokens_in > 0 and summary.tokens_out > 0 and summary.cost == 0.0
    assert (project.root / "data" / "embedded-server.log").exists()


def test_documents_through_the_shared_llama_server(tmp_path, llama_server):
    # As a "custom" provider the runner first asks for json_schema, which llama-cpp-python
    # refuses; it must step down to the schema-constrained json_object and still parse.
    project = create_project(tmp_path / "proj", _settings(**{
        "generator.provider": "custom", "generator.base_url": llama_server.base_url,
        "generator.model": "smollm2", "generator.request_budget": 2}))  # one read of the two chunks
    write_chunks(project, FACTS)
    messages = []
    summary = generate_pairs(project, on_event=lambda e: e.message and messages.append(e.message))
    assert any("using json_object_schema" in m for m in messages)
    assert summary.chunks_total == 2 and summary.chunks_failed == 0, summary.failures
    journal = GenerationJournal(journal_path(project))
    assert sorted(r["status"] for r in journal.status.values()) == ["done", "done"]
    store = PairStore(project.pairs_path)
    # The small model's pairs that fail a content check are stored too, as rejected with the reason.
    assert len(store) == summary.pairs_added + summary.pairs_rejected >= 1
    assert all(p.reason for p in store if p.status == "rejected")
    assert {p.source.split("#")[0] for p in store} == {"doc.md"}
    first_read = sorted((p.source, p.question) for p in store)
    again = generate_pairs(project)  # a new budget: the first read is done, only a second one may be asked
    assert again.chunks_resumed == 2 and again.chunks_done - again.chunks_resumed <= 2  # within the budget
    assert sorted((p.source, p.question) for p in PairStore(project.pairs_path)
                  if "+r" not in p.source) == first_read


def test_connection_test_and_a_broken_gguf(tmp_path, llama_server):
    project = create_project(tmp_path / "proj", {
        "generator.provider": "llamacpp", "generator.base_url": llama_server.base_url})
    assert "OK, model local answered" in providers.test_connection(project)

    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"this is not a GGUF file")
    with pytest.raises(TunewizError, match="exited with code .* while starting"):
        EmbeddedServer(broken, startup_timeout_s=60).start()
    with pytest.raises(TunewizError, match="generator.embedded_gguf: .*missing.gguf does not exist"):
        EmbeddedServer(tmp_path / "missing.gguf").start()


def test_asking_again_after_a_restart_samples_anew():
    # llama-cpp-python draws each request's seed from the one before, starting at the server's seed: with
    # its default seed every new server gave the same replies in the same order, so asking again (the
    # rewordings still missing, another pass over a topic) got the replies already dropped.
    import httpx

    from tunewiz.models import smollm2_gguf_path

    body = {"messages": [{"role": "user", "content": "Write one question about the sea."}],
            "max_tokens": 24, "temperature": 1.0}
    replies = []
    for _ in range(2):
        with EmbeddedServer(smollm2_gguf_path(), n_ctx=512) as server:
            reply = httpx.post(f"{server.base_url}/chat/completions", json={"model": server.model, **body},
                               timeout=120).json()
            replies.append(reply["choices"][0]["message"]["content"])
    assert replies[0] != replies[1]
