"""The pairs journal and the train/validation split."""

from __future__ import annotations

import json

from tunewiz.dataset import Pair, PairStore, is_validation, split_pairs, split_position, trainable


def test_changes_are_appended_and_survive_reload(tmp_path):
    path = tmp_path / "pairs.jsonl"
    store = PairStore(path)
    a, b = store.add([Pair("Q1", "A1"), Pair("Q2", "A2")])
    store.update(a.id, answer="A1 edited", status="accepted")
    store.delete(b.id)
    again = PairStore(path)
    assert [(p.question, p.answer, p.status) for p in again] == [("Q1", "A1 edited", "accepted")]
    assert again.superseded_lines() == 3


def test_a_torn_last_line_is_skipped_and_the_rest_kept(tmp_path):
    path = tmp_path / "pairs.jsonl"
    store = PairStore(path)
    store.add([Pair("Q1", "A1"), Pair("Q2", "A2")])
    with path.open("a") as handle:
        handle.write('{"id": "abc", "question": "cut sho')  # a crash mid-write
    again = PairStore(path)
    assert len(again) == 2
    assert again.torn_lines == [3]


def test_compact_keeps_exactly_the_live_pairs(tmp_path):
    path = tmp_path / "pairs.jsonl"
    store = PairStore(path)
    pairs = store.add([Pair(f"Q{i}", f"A{i}") for i in range(5)])
    for pair in pairs[:3]:
        store.update(pair.id, status="rejected")
    store.delete(pairs[4].id)
    store.compact()
    lines = path.read_text().splitlines()
    assert len(lines) == 4
    assert {json.loads(line)["id"] for line in lines} == {p.id for p in pairs[:4]}
    assert PairStore(path).counts() == {"pending": 1, "accepted": 0, "rejected": 3}


def test_undo_by_putting_back_an_earlier_copy(tmp_path):
    store = PairStore(tmp_path / "pairs.jsonl")
    (pair,) = store.add([Pair("Q", "A")])
    saved = Pair.from_record(pair.to_record())
    store.update(pair.id, answer="changed")
    store.put(saved)
    assert PairStore(tmp_path / "pairs.jsonl").get(pair.id).answer == "A"


def test_undo_of_a_delete_puts_the_pair_back_in_its_place(tmp_path):
    path = tmp_path / "pairs.jsonl"
    store = PairStore(path)
    pairs = store.add([Pair(f"Q{i}", f"A{i}") for i in range(4)])
    store.delete(pairs[1].id)
    store.delete_many([pairs[2].id, pairs[0].id])
    store.add([Pair("Q4", "A4")])
    store.add([Pair.from_record(pairs[2].to_record())])  # undo, as the Review step does it
    store.put(Pair.from_record(pairs[1].to_record()))
    assert [p.question for p in store] == ["Q1", "Q2", "Q3", "Q4"]
    assert [p.question for p in PairStore(path)] == ["Q1", "Q2", "Q3", "Q4"]  # read back: the same order
    assert list(PairStore(path).dataframe()["question"]) == ["Q1", "Q2", "Q3", "Q4"]


def test_dataframe_has_one_row_per_pair(tmp_path):
    store = PairStore(tmp_path / "pairs.jsonl")
    store.add([Pair("Q1", "A1"), Pair("Q2", "A2", status="accepted")])
    frame = store.dataframe()
    assert list(frame["question"]) == ["Q1", "Q2"]
    assert list(frame["status"]) == ["pending", "accepted"]


def test_split_is_stable_when_pairs_are_added_elsewhere():
    pairs = [Pair(f"Q{i}", f"A{i}") for i in range(400)]
    train, validation = split_pairs(pairs, seed=7, fraction=0.2)
    assert 40 < len(validation) < 120  # about a fifth
    more = pairs + [Pair(f"new {i}", "x") for i in range(300)]
    train2, validation2 = split_pairs(more, seed=7, fraction=0.2)
    old_ids = {p.id for p in pairs}
    assert {p.id for p in validation2 if p.id in old_ids} == {p.id for p in validation}
    assert {p.id for p in train2 if p.id in old_ids} == {p.id for p in train}


def test_a_small_set_always_holds_one_pair_out():
    # Ids whose hashes all fall above 0.2 for seed 0: the plain rule would hold out none.
    ids = [i for i in (f"pair-{n}" for n in range(200)) if not is_validation(i, 0, 0.2)][:12]
    pairs = [Pair(f"Q {i}", "A", id=i) for i in ids]
    train, validation = split_pairs(pairs, seed=0, fraction=0.2)
    nearest = min(ids, key=lambda i: split_position(i, 0))
    assert [p.id for p in validation] == [nearest] and len(train) == 11
    assert split_pairs(pairs, seed=0, fraction=0.0)[1] == []
    assert split_pairs(pairs[:1], seed=0, fraction=0.2)[1] == []  # a lone pair trains


def test_split_depends_on_the_seed():
    ids = [f"{i:012x}" for i in range(200)]
    assert [is_validation(i, 1, 0.3) for i in ids] != [is_validation(i, 2, 0.3) for i in ids]


def test_rejected_pairs_never_train():
    pairs = [Pair("a", "1", status="accepted"), Pair("b", "2"), Pair("c", "3", status="rejected")]
    assert [p.question for p in trainable(pairs, "accepted+pending")] == ["a", "b"]
    assert [p.question for p in trainable(pairs, "accepted")] == ["a"]


def test_the_store_refuses_a_text_field_that_is_not_a_string(project):
    import pytest

    from tunewiz.dataset import Pair, PairStore

    store = PairStore(project.pairs_path)
    with pytest.raises(ValueError, match="answer must be text, got list"):
        store.add([Pair(question="Q?", answer=[{"type": "text", "text": "A."}])])
    (pair,) = store.add([Pair(question="Q?", answer="A.")])
    with pytest.raises(ValueError, match="question must be text, got dict"):
        store.update(pair.id, question={"text": "Q?"})
    assert [p.answer for p in PairStore(project.pairs_path)] == ["A."]


def test_a_journal_of_the_format_before_conversations_loads_unchanged(tmp_path):
    """Lines as tunewiz wrote them before samples had turns: read as QA pairs, ids kept, written back alike."""
    from tunewiz.dataset import PairStore

    old = ('{"question": "What is X?", "answer": "X is 1.", "id": "0a1b2c3d4e5f", "system": "", "source": "qa.csv:2", '
           '"status": "accepted", "scores": {"judge": 8}, "created": "2026-01-01T00:00:00+00:00", '
           '"updated": "2026-01-01T00:00:00+00:00"}\n')
    path = tmp_path / "pairs.jsonl"
    path.write_text(old)
    store = PairStore(path)
    pair = store.get("0a1b2c3d4e5f")
    assert (pair.question, pair.status, pair.scores, pair.history, pair.turns) == ("What is X?", "accepted", {"judge": 8}, [], 1)
    store.compact()
    assert path.read_text() == old  # a QA pair is written in the old format: older versions still read it


def test_pair_ids_stay_random_after_seeding_and_forking():
    """A global random.seed (transformers' set_seed does one) or a fork must never repeat pair ids."""
    import os
    import random

    from tunewiz.dataset import new_pair_id

    random.seed(7)
    first = new_pair_id()
    random.seed(7)
    assert new_pair_id() != first
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # the child sends the id it draws and leaves at once
        os.write(write, new_pair_id().encode())
        os._exit(0)
    os.waitpid(child, 0)
    in_child = os.read(read, 12).decode()
    assert len(in_child) == 12 and in_child != new_pair_id()
