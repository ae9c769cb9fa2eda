"""The runner against a real HTTP server on loopback that injects faults on demand.

Every chunk must end done, or failed with its reason; no pair is lost or
duplicated; a killed run resumes where it stopped.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections import Counter

import pytest
from gen_helpers import write_chunks
from fault_server import FaultServer

from tunewiz.dataset import PairStore
from tunewiz.errors import TunewizError
from tunewiz.generators.journal import GenerationJournal, journal_path
from tunewiz.generators import providers
from tunewiz.generators.runner import generate_pairs

NO_CONTENT_CHECKS = {"generator.min_support": 0.0, "generator.min_question_support": 0.0}
"""The fault server's answers are not about its chunks: these tests check the runner's mechanics."""


def _paragraph(i: int, faults: str = "") -> str:
    marker = f" [[faults:{faults}]]" if faults else ""
    return f"Paragraph {i} tells how plant number {i} grows in the valley of {i * 13}.{marker}"


def _check_ledger(project, expect_done: int, pairs_per_chunk: int) -> dict[str, int]:
    """Every chunk in the journal once as final state; each done chunk's pairs stored exactly once."""
    journal = GenerationJournal(journal_path(project))
    store = PairStore(project.pairs_path)
    per_source = Counter(p.source for p in store)
    done = [k for k, r in journal.status.items() if r["status"] == "done"]
    assert len(done) == expect_done
    for key in done:
        assert per_source[key] == pairs_per_chunk, key
    assert set(per_source) <= set(done)
    questions = [p.question for p in store]
    assert len(questions) == len(set(questions))
    return per_source


def test_every_fault_ends_done_or_failed_with_its_reason(fault_project, fault_server):
    texts = [_paragraph(0, "bom"), _paragraph(1, "429,500"), _paragraph(2, "hang,drop"),
             _paragraph(3, "truncated,badbody,malformed,empty"), _paragraph(4, "503"),
             _paragraph(5, "always-malformed")]
    write_chunks(fault_project, texts)
    events = []
    started = time.monotonic()
    summary = generate_pairs(fault_project, on_event=events.append)
    elapsed = time.monotonic() - started

    assert summary.chunks_total == 6
    assert (summary.chunks_done, summary.chunks_failed, summary.chunks_left) == (5, 1, 0)
    assert summary.pairs_added == 10 == summary.pairs_in_project
    (key, reason), = summary.failures.items()
    assert key.startswith("doc.md#5:") and "malformed reply: no JSON" in reason and "after 5 attempts" in reason
    assert GenerationJournal(journal_path(fault_project)).failures() == {key: reason}
    _check_ledger(fault_project, expect_done=5, pairs_per_chunk=2)
    # 429 then 500 on chunk 1: its third request is the good one, after waiting the Retry-After second.
    assert elapsed >= 1.0
    assert summary.retries == 2 + 2 + 4 + 1 + 4
    assert summary.tokens_in > 0 and summary.tokens_out > 0
    assert summary.cost is None  # a custom provider with no price set
    assert events[0].kind == "started" and events[-1].kind == "finished"
    assert events[-1].summary is summary
    progress = [e for e in events if e.kind == "progress"]
    assert progress[-1].chunks_done + progress[-1].chunks_failed == 6


def test_rerun_retries_failed_chunks_and_skips_done_ones(fault_project, fault_server):
    write_chunks(fault_project, [_paragraph(0), _paragraph(1, "500,500,500,500,500,500")])
    fault_project.set("generator.max_retries", 1)
    first = generate_pairs(fault_project)
    assert (first.chunks_done, first.chunks_failed) == (1, 1)
    assert "HTTP 500" in next(iter(first.failures.values()))
    requests_before = sum(fault_server.attempts.values())
    second = generate_pairs(fault_project)  # attempts 3 and 4 of chunk 1: still 500
    third = generate_pairs(fault_project)   # attempts 5 and 6: still 500
    fourth = generate_pairs(fault_project)  # attempt 7: served
    assert second.chunks_resumed == third.chunks_resumed == fourth.chunks_resumed == 1
    assert (fourth.chunks_done, fourth.chunks_failed, fourth.pairs_added) == (2, 0, 2)
    assert sum(fault_server.attempts.values()) == requests_before + 5
    _check_ledger(fault_project, expect_done=2, pairs_per_chunk=2)


def test_a_killed_run_resumes_with_nothing_lost_or_repeated(tmp_path):
    with FaultServer(latency_s=0.25) as server:
        from tunewiz.project import create_project

        project = create_project(tmp_path / "proj", {
            "generator.provider": "custom", "generator.base_url": server.base_url, **NO_CONTENT_CHECKS,
            "generator.model": "fake-model", "generator.concurrency": 2, "generator.pairs_per_chunk": 2,
            "generator.num_pairs": 1})
        write_chunks(project, [_paragraph(i) for i in range(16)])
        journal = journal_path(project)
        child = subprocess.Popen([sys.executable, "-m", "tunewiz", "generate", "-p", str(project.root)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if journal.exists() and journal.read_text().count('"done"') >= 3:
                break
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
        child.wait()
        done_before = journal.read_text().count('"done"')
        assert 3 <= done_before < 16, "the kill should land mid-run"

        summary = generate_pairs(project)
        assert summary.chunks_resumed >= done_before
        assert summary.chunks_done == 16 and summary.chunks_failed == 0
        _check_ledger(project, expect_done=16, pairs_per_chunk=2)
        # Chunks in flight at the kill were asked twice; no other chunk was.
        assert max(server.attempts.values()) <= 2


def test_pairs_stored_but_not_journaled_are_not_generated_again(fault_project, fault_server):
    write_chunks(fault_project, [_paragraph(i) for i in range(3)])
    generate_pairs(fault_project)
    journal_path(fault_project).unlink()  # as if the crash came between the two appends
    asked = sum(fault_server.attempts.values())
    summary = generate_pairs(fault_project)
    assert sum(fault_server.attempts.values()) == asked
    assert summary.chunks_resumed == 3 and summary.pairs_added == 0
    assert len(PairStore(fault_project.pairs_path)) == 6
    # The re-run writes the journal lines the crash lost.
    _check_ledger(fault_project, expect_done=3, pairs_per_chunk=2)


def test_stop_event_ends_cleanly_and_a_rerun_finishes(fault_project):
    with FaultServer(latency_s=0.3) as slow:
        fault_project.set("generator.base_url", slow.base_url)
        fault_project.set("generator.concurrency", 2)
        write_chunks(fault_project, [_paragraph(i) for i in range(10)])
        stop = threading.Event()

        def on_event(event):
            if event.kind == "progress" and event.chunks_done >= 2:
                stop.set()

        first = generate_pairs(fault_project, on_event=on_event, stop=stop)
        assert first.stopped and 2 <= first.chunks_done < 10 and first.chunks_left > 0
        assert any("Stopped" in line for line in first.lines())
        second = generate_pairs(fault_project)
        assert not second.stopped and second.chunks_done == 10
        _check_ledger(fault_project, expect_done=10, pairs_per_chunk=2)


def test_duplicates_and_echoes_are_dropped_and_counted(fault_project, fault_server):
    write_chunks(fault_project, [_paragraph(0), _paragraph(1), _paragraph(2, "echo,echo")])
    first = generate_pairs(fault_project)
    assert first.dropped == {"echoes_question": 2} and first.pairs_added == 4
    # Forget where the pairs came from and the journal: the same chunks come back as duplicates.
    store = PairStore(fault_project.pairs_path)
    for pair in list(store):
        store.update(pair.id, source="imported.csv")
    journal_path(fault_project).unlink()
    fault_project.set("generator.request_budget", 3)  # one read of the three chunks, not a second one
    second = generate_pairs(fault_project)
    assert second.pairs_added == 0
    assert second.dropped == {"duplicate": 4, "echoes_question": 2}
    assert second.chunks_done == 3


def test_a_server_without_json_schema_gets_the_next_structured_mode(tmp_path, fault_project):
    with FaultServer(json_schema=False) as plain:
        fault_project.set("generator.base_url", plain.base_url)
        write_chunks(fault_project, [_paragraph(i) for i in range(3)])
        messages = []
        summary = generate_pairs(fault_project, on_event=lambda e: e.message and messages.append(e.message))
        assert summary.chunks_done == 3 and summary.pairs_added == 6
        assert plain.formats == {"json_object_schema": 3}
        assert any("using json_object_schema" in m for m in messages)


def test_topic_with_subtopics_judge_and_cost(fault_project, fault_server):
    fault_project.set("generator.topic", "mountain plants")
    fault_project.set("generator.num_pairs", 5)
    fault_project.set("generator.subtopics", True)
    fault_project.set("generator.judge", True)
    fault_project.set("generator.judge_threshold", 6)
    fault_project.set("generator.price_in_per_mtok", 1.0)
    fault_project.set("generator.price_out_per_mtok", 2.0)
    summary = generate_pairs(fault_project)
    pairs = list(PairStore(fault_project.pairs_path))
    assert len(pairs) == 5 and summary.chunks_done == 3  # 2 + 2 + 1
    assert "Topic requests: 3 done (0 from earlier runs), 0 failed, 0 left of 3." in summary.lines()
    assert all(p.scores == {"judge": 8} for p in pairs)
    assert {p.source for p in pairs} == {"topic:mountain plants#0", "topic:mountain plants#1",
                                         "topic:mountain plants#2"}
    journal = GenerationJournal(journal_path(fault_project))
    assert journal.subtopics["mountain plants"] == ["aspect 0 of the matter", "aspect 1 of the matter",
                                                    "aspect 2 of the matter"]
    assert summary.cost == pytest.approx((summary.tokens_in * 1.0 + summary.tokens_out * 2.0) / 1e6)
    asked = sum(fault_server.attempts.values())
    again = generate_pairs(fault_project)
    assert again.pairs_added == 0 and sum(fault_server.attempts.values()) == asked

    fault_project.set("generator.num_pairs", 7)
    fault_project.set("generator.judge_threshold", 9)  # every pair scores 8: all dropped
    third = generate_pairs(fault_project)
    assert third.pairs_added == 0 and third.dropped["judge_low"] >= 2


def test_the_api_key_never_leaks(tmp_path, monkeypatch):
    secret = "sk-test-SECRET-0123456789"
    monkeypatch.setenv("TUNEWIZ_TEST_KEY", secret)
    from tunewiz.project import create_project

    with FaultServer(api_key="the-right-key") as server:
        project = create_project(tmp_path / "proj", {
            "generator.provider": "custom", "generator.base_url": server.base_url, **NO_CONTENT_CHECKS,
            "generator.model": "fake-model", "generator.api_key_env": "TUNEWIZ_TEST_KEY", "generator.num_pairs": 1})
        write_chunks(project, [_paragraph(0)])
        with pytest.raises(TunewizError) as raised:
            generate_pairs(project)
        assert "HTTP 401" in str(raised.value) and "***" in str(raised.value)  # the server echoed it
        with pytest.raises(TunewizError) as tested:
            providers.test_connection(project)
        for text in (str(raised.value), str(tested.value), project.file.read_text(),
                     *(p.read_text() for p in (project.root / "data").iterdir() if p.is_file())):
            assert secret not in text

        monkeypatch.setenv("TUNEWIZ_TEST_KEY", "the-right-key")
        assert generate_pairs(project).pairs_added == 3  # pairs_per_chunk defaults to 3
        monkeypatch.delenv("TUNEWIZ_TEST_KEY")
        with pytest.raises(TunewizError, match="TUNEWIZ_TEST_KEY is not set"):
            generate_pairs(project)


def test_connection_test(fault_project, fault_server):
    assert "OK, model fake-model answered" in providers.test_connection(fault_project)
    with FaultServer(no_choices=True) as empty:  # a reply with no choices was an IndexError's traceback
        fault_project.set("generator.base_url", empty.base_url)
        with pytest.raises(TunewizError, match="answered a chat request for model fake-model with no choices"):
            providers.test_connection(fault_project)
    fault_project.set("generator.base_url", "http://127.0.0.1:9/v1")  # nothing listens there
    with pytest.raises(TunewizError, match="cannot reach http://127.0.0.1:9/v1"):
        providers.test_connection(fault_project)


def test_a_server_that_is_not_running_ends_the_run_at_once_naming_it(fault_project):
    # Every chunk waited out its retries (a run of 1,000 chunks: an hour), then ended with advice
    # about models and no word of the server.
    from tunewiz.generators.runner import generate_pairs

    fault_project.set("generator.base_url", "http://127.0.0.1:9/v1")  # nothing listens there
    write_chunks(fault_project, [_paragraph(i) for i in range(6)])
    with pytest.raises(TunewizError, match=r"cannot connect to http://127.0.0.1:9/v1 .*start the server"):
        generate_pairs(fault_project)


def test_generate_command(fault_project, fault_server):
    write_chunks(fault_project, [_paragraph(0), _paragraph(1)])
    run = subprocess.run([sys.executable, "-m", "tunewiz", "generate", "-p", str(fault_project.root),
                          "--concurrency", "3"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "Finished: 4 pairs added" in run.stdout and "2 done" in run.stdout
    assert "generator.concurrency = 3" in run.stdout
    assert "concurrency = 3" in fault_project.file.read_text()
    listed = subprocess.run([sys.executable, "-m", "tunewiz", "providers", "-p", str(fault_project.root),
                             "--test"], capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0 and "*custom" in listed.stdout and "OK, model fake-model" in listed.stdout


def test_ctrl_c_stops_the_command_cleanly_with_a_summary(fault_project):
    with FaultServer(latency_s=0.3) as slow:
        fault_project.set("generator.base_url", slow.base_url)
        fault_project.set("generator.concurrency", 1)
        write_chunks(fault_project, [_paragraph(i) for i in range(12)])
        journal = journal_path(fault_project)
        child = subprocess.Popen([sys.executable, "-m", "tunewiz", "generate", "-p", str(fault_project.root)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (journal.exists() and journal.read_text().count('"done"') >= 2):
            time.sleep(0.05)
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=30)
        assert child.returncode == 130, err
        assert "Stopping" in out and "Stopped:" in out and f"Run `tunewiz generate -p {fault_project.root}` again" in out
        rerun = generate_pairs(fault_project)
        assert rerun.chunks_done == 12 and rerun.chunks_resumed >= 2
        _check_ledger(fault_project, expect_done=12, pairs_per_chunk=2)


def test_documents_are_read_again_until_enough_pairs_within_the_budget(fault_project, fault_server):
    write_chunks(fault_project, [_paragraph(0), _paragraph(1)])
    fault_project.set("generator.num_pairs", 7)  # 2 chunks x 2 pairs a read: a second read is needed
    summary = generate_pairs(fault_project)
    assert (summary.chunks_total, summary.chunks_done, summary.pairs_added, summary.kept) == (4, 4, 8, 8)
    sources = sorted(p.source for p in PairStore(fault_project.pairs_path))
    assert sum(source.endswith("+r1") for source in sources) == 4  # the second read has its own keys
    assert not summary.budget_spent and summary.budget == 3 * 4  # auto: three for each request needed
    assert summary.rounds == 2 and "2 rounds" not in "\n".join(summary.lines())  # enough: nothing to explain

    fault_project.set("generator.num_pairs", 20)
    fault_project.set("generator.request_budget", 3)
    summary = generate_pairs(fault_project)  # the earlier reads are done; 3 more requests, then it stops
    assert summary.budget_spent and summary.chunks_done - summary.chunks_resumed == 3
    assert summary.kept == 14 and summary.chunks_left == 1
    text = "\n".join(summary.lines())
    assert "The request budget is spent (3 requests for pairs) with 14 of the 20 pairs wanted" in text
    summary = generate_pairs(fault_project)  # again: a new budget, on from where it stopped
    assert summary.chunks_resumed >= 7 and summary.kept > 14


def test_pairs_from_text_that_changed_since_are_said_not_dropped(fault_project, fault_server):
    doc = write_chunks(fault_project, [_paragraph(0), _paragraph(1)])
    generate_pairs(fault_project)
    before = len(PairStore(fault_project.pairs_path))
    doc.write_text(doc.read_text(encoding="utf-8").replace("Paragraph 1 tells", "Paragraph 1 shows"),
                   encoding="utf-8")
    summary = generate_pairs(fault_project)
    assert summary.chunks_done - summary.chunks_resumed == 1  # only the edited chunk is asked again
    pairs = list(PairStore(fault_project.pairs_path))
    assert len(pairs) == before + 2  # the old chunk's pairs are kept: they are the user's to judge
    text = "\n".join(summary.lines())
    assert ("Note: 2 pairs came from text of doc.md that is no longer in the documents (edited or removed "
            "since, or generator.chunk_chars changed): Review shows them with source:doc.md") in text


def test_a_stop_while_subtopics_are_asked_ends_the_run_at_once(fault_project, fault_server):
    # The subtopics request comes before any worker: a stop used to wait out its timeouts and retries.
    fault_project.set("generator.topic", "mountain plants [[faults:hang,hang,hang,hang,hang]]")
    fault_project.set("generator.subtopics", True)
    fault_project.set("generator.timeout_s", 3.0)
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    started = time.monotonic()
    summary = generate_pairs(fault_project, stop=stop)
    assert time.monotonic() - started < 2.9  # before the first timeout (3 s); waiting out the retries took 20 s
    assert summary.stopped and summary.pairs_added == 0
    assert "mountain plants [[faults:hang,hang,hang,hang,hang]]" not in GenerationJournal(
        journal_path(fault_project)).subtopics
