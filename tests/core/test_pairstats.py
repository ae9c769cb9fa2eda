"""The counts cache agrees with the pair store after every kind of change to the journal."""

from __future__ import annotations

from tunewiz.dataset import Pair, PairStore, project_kind, project_split
from tunewiz.pairstats import STATS_FILE, pair_summary


def expected(project):
    store = PairStore(project.pairs_path)
    train, validation = project_split(project)
    kind, _why = project_kind(project, [p for p in store if p.status != "rejected"])
    return len(store), store.counts(), len(train), len(validation), kind


def summary(project):
    s = pair_summary(project)
    return s.total, s.counts, s.train, s.validation, s.kind


def test_counts_follow_appends_edits_deletes_and_a_rewrite(project):
    project.set("dataset.kind", "skill")
    project.set("dataset.validation_fraction", 0.3)
    store = PairStore(project.pairs_path)
    pairs = store.add([Pair(question=f"Q{i}?", answer=f"A{i}.") for i in range(40)])
    assert summary(project) == expected(project)
    cache = project.pairs_path.parent / STATS_FILE
    assert cache.exists()

    store.set_status([p.id for p in pairs[:10]], "accepted")
    store.set_status([p.id for p in pairs[10:15]], "rejected")
    store.delete_many([p.id for p in pairs[15:20]])
    assert summary(project) == expected(project)

    with project.pairs_path.open("a") as handle:  # a torn tail is not counted until it is whole
        handle.write('{"id": "zz", "question": "Q?", "answer": "A.", "status": "acc')
    assert summary(project) == expected(project)
    PairStore(project.pairs_path).add([Pair(question="New?", answer="Yes.")])  # sets the tail aside
    assert summary(project) == expected(project)

    store = PairStore(project.pairs_path)
    store.compact()  # rewritten, not appended to: read again from the start
    store.add([Pair(question="After compact?", answer="Counted.")])
    assert summary(project) == expected(project)
    project.set("dataset.train_on", "accepted")
    assert summary(project) == expected(project)


def test_facts_all_train_and_auto_kind_agrees(project):
    PairStore(project.pairs_path).add([Pair(question=f"Who is {i}?", answer=f"{i} is a name.") for i in range(12)])
    assert summary(project) == expected(project)
    assert summary(project)[2:] == (12, 0, "facts")


def test_a_damaged_cache_is_ignored(project):
    PairStore(project.pairs_path).add([Pair(question="Q?", answer="A.")])
    pair_summary(project)
    (project.pairs_path.parent / STATS_FILE).write_text("{not json")
    assert summary(project) == expected(project)


def test_unreadable_lines_are_counted_as_the_store_skips_them_and_status_says_so(project):
    from tunewiz.status import project_status

    store = PairStore(project.pairs_path)
    store.add([Pair(question=f"Q{i}?", answer=f"A{i}.") for i in range(3)])
    assert pair_summary(project).unreadable == 0  # cached now: the next call reads only the new tail
    with project.pairs_path.open("a") as handle:
        handle.write("not a pair\n\n")  # an unreadable line, and a blank one (skipped, as the store does)
    PairStore(project.pairs_path).add([Pair(question="New?", answer="Yes.")])
    s = pair_summary(project)
    assert (s.total, s.unreadable, s.unreadable_lines) == (4, 1, (4,))
    assert PairStore(project.pairs_path).torn_lines == [4]
    data = next(step for step in project_status(project) if step.key == "data")
    assert "1 unreadable line in data/pairs.jsonl (line 4): fix or remove it" in data.summary
