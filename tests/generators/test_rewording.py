"""Rewordings from the generator: the checks on each reply, the real llama.cpp server's replies stored,
and the next run asking them instead of its rule rewordings."""

from __future__ import annotations

import pytest

from tunewiz.dataset import Pair, PairStore
from tunewiz.evalsets import REWORDINGS_FILE, Rewording, RewordingStore
from tunewiz.generators.prompts import REWORD_EXAMPLE
from tunewiz.generators.rewording import ASKS_PER_QUESTION, DROP_REASONS, pairs_to_reword, reword_pairs, rewording_problem
from tunewiz.project import create_project

CAPITAL = Pair(question="What is the capital of Norland?", answer="The capital of Norland is Brightwater.")
FOUNDED = Pair(question="When was the Velmora Institute founded?", answer="It was founded in 1871.")
BELL = Pair(question="How much did the Velmora bell cost in 1,200?", answer="It cost forty crowns.")
PHOTO = Pair(question="What is photosynthesis?", answer="The way plants turn light into sugar.")
LIGHT = Pair(question="Where is the Tessel Lighthouse?",
             answer="You find it on the rocky northern coast, near the harbour.")


@pytest.mark.parametrize("candidate,pair,verdict", [
    ("Which city is Norland's capital?", CAPITAL, None),
    ("In which year did the Velmora Institute open?", FOUNDED, None),
    ("What is the capital of Norland?", CAPITAL, "not_a_rewording"),       # the question again
    ("The capital of Norland.", CAPITAL, "not_a_rewording"),               # not a question
    ("Which city is the capital?", CAPITAL, "lost_names"),                 # whose capital?
    ("When did the Institute open?", FOUNDED, "lost_names"),               # Velmora lost
    ("Is Brightwater the capital of Norland?", CAPITAL, "gives_answer"),   # answers itself
    # Found in review: a possessive is the name, a substring is not, a number may change its form.
    ("Which city is Norland's capital?", CAPITAL, None),
    ("What is the capital of Norlandia?", CAPITAL, "lost_names"),          # "Norland" is not in "Norlandia"
    ("Which city serves as capital of Norlandia?", CAPITAL, "lost_names"),  # another country
    ("How many crowns did the Velmora bell cost?", BELL, "lost_names"),     # 1,200 lost
    ("What did the Velmora bell cost in 1200?", BELL, None),                # 1,200 kept in another form
    # An original with no names or numbers: the rewording must keep its subject.
    ("Can you explain how plants make food from light?", PHOTO, "other_question"),
    ("Could you explain what photosynthesis is?", PHOTO, None),
    (REWORD_EXAMPLE[1], PHOTO, "copied_example"),                           # the prompt's example
    # The answer's key span given away, or only one of its plain words shared (a synonym: fair).
    ("In which year did the 1871 Velmora Institute open?", FOUNDED, "gives_answer"),
    ("Where can one find the Tessel Lighthouse?", LIGHT, None),             # "find" is in the answer too
    ("Where can one find the Tessel Lighthouse on the rocky northern coast?", LIGHT, "gives_answer"),
])
def test_each_generated_rewording_is_checked(candidate, pair, verdict):
    assert rewording_problem(candidate, pair) == verdict


def test_pairs_with_a_rewording_from_a_model_or_a_person_are_not_asked_again(tmp_path):
    store = RewordingStore(tmp_path / "rewordings.jsonl")
    other = Pair(question="Who wrote the anthem of Norland?", answer="Ida Marr wrote it.")
    chat = Pair(question="And its river?", answer="The Lumen.", history=[{"role": "user", "content": "Hi"},
                                                                         {"role": "assistant", "content": "Hello"}])
    store.add([Rewording(pair_id=CAPITAL.id, question="Which city is Norland's capital?",
                         made_from=CAPITAL.question, source="file"),
               Rewording(pair_id=FOUNDED.id, question="Do you know when the Velmora Institute was established?",
                         made_from=FOUNDED.question, source="rules")])
    assert pairs_to_reword(store, [CAPITAL, FOUNDED, other, chat]) == [FOUNDED, other]  # a rule one is replaced


def test_the_next_run_asks_a_generated_rewording_instead_of_the_rule_one(tmp_path):
    from tunewiz.training.launch import check_records

    project = create_project(tmp_path / "proj", {"dataset.kind": "facts"})
    PairStore(project.pairs_path).add([CAPITAL])
    store = RewordingStore(project.path(REWORDINGS_FILE))
    store.add([Rewording(pair_id=CAPITAL.id, question="Tell me what the capital of Norland is.",
                         made_from=CAPITAL.question, source="rules"),
               Rewording(pair_id=CAPITAL.id, question="Which city is Norland's capital?",
                         made_from=CAPITAL.question, source="generator")])
    reworded = [r for r in check_records(project, [CAPITAL], [], "facts") if r["split"] == "reworded"]
    assert [(r["question"], r["source"]) for r in reworded] == [("Which city is Norland's capital?", "generator")]


@pytest.mark.server
def test_the_real_llama_server_rewords_and_only_checked_replies_are_stored(tmp_path, llama_server):
    project = create_project(tmp_path / "proj", {
        "generator.provider": "custom", "generator.base_url": llama_server.base_url, "generator.model": "smollm2",
        "generator.temperature": 0.2, "generator.concurrency": 2, "generator.timeout_s": 120.0})
    pairs = [CAPITAL, FOUNDED, Pair(question="How many seats does the Hollmoot of Tarvenna have?",
                                    answer="The Hollmoot has 120 seats.")]
    PairStore(project.pairs_path).add(pairs)
    store = RewordingStore(project.path(REWORDINGS_FILE))
    progress = []
    summary = reword_pairs(project, store, pairs, lambda done, total: progress.append((done, total)))
    assert progress[-1] == (3, 3) and summary.requests >= 3 and summary.tokens_out > 0
    # a question whose replies all fail is asked ASKS_PER_QUESTION times; one that got a rewording, no more
    dropped = sum(summary.dropped.values())
    assert (3 - summary.added) * ASKS_PER_QUESTION <= dropped <= 3 * ASKS_PER_QUESTION - summary.added
    assert set(summary.dropped) <= set(DROP_REASONS)
    stored = list(RewordingStore(project.path(REWORDINGS_FILE)))
    assert len(stored) == summary.added
    by_id = {p.id: p for p in pairs}
    for rewording in stored:  # what was kept passed every check
        assert rewording.source == "generator" and rewording.status == "pending"
        assert rewording_problem(rewording.question, by_id[rewording.pair_id]) is None


@pytest.mark.server
def test_tunewiz_rewordings_generate_asks_only_the_pairs_without_one(tmp_path, llama_server, capsys):
    from tunewiz.cli import main

    project = create_project(tmp_path / "proj", {
        "generator.provider": "custom", "generator.base_url": llama_server.base_url, "generator.model": "smollm2",
        "generator.temperature": 0.2, "generator.timeout_s": 120.0})
    PairStore(project.pairs_path).add([CAPITAL, FOUNDED])
    RewordingStore(project.path(REWORDINGS_FILE)).add([Rewording(
        pair_id=CAPITAL.id, question="Which city is Norland's capital?", made_from=CAPITAL.question, source="file")])
    assert main(["rewordings", "-p", str(project.root), "--generate"]) == 0
    out = capsys.readouterr().out
    assert "Rewording 1 question with custom (smollm2)" in out and "Asked the generator to reword 1 question:" in out


def test_generate_rewords_only_the_questions_a_run_asks(tmp_path, capsys):
    """evaluation.questions 1 of 3 pairs: the one a run's recall check asks has a rewording from a file,
    so nothing is asked of the generator (whose address leads nowhere); --all would ask the other two."""
    from tunewiz.cli import main
    from tunewiz.training.launch import check_records

    project = create_project(tmp_path / "proj", {
        "dataset.kind": "facts", "evaluation.questions": 1, "generator.provider": "custom",
        "generator.base_url": "http://127.0.0.1:9/v1", "generator.model": "none", "generator.max_retries": 0})
    other = Pair(question="Who wrote the anthem of Norland?", answer="Ida Marr wrote it.")
    PairStore(project.pairs_path).add([CAPITAL, FOUNDED, other])
    asked = [r for r in check_records(project, [CAPITAL, FOUNDED, other], [], "facts") if r["split"] == "recall"]
    assert len(asked) == 1
    pair = next(p for p in (CAPITAL, FOUNDED, other) if p.id == asked[0]["id"])
    RewordingStore(project.path(REWORDINGS_FILE)).add([Rewording(
        pair_id=pair.id, question="Do you know " + pair.question[0].lower() + pair.question[1:],
        made_from=pair.question, source="file")])
    assert main(["rewordings", "-p", str(project.root), "--generate"]) == 0
    assert "Every question asked already has a rewording" in capsys.readouterr().out
    assert main(["rewordings", "-p", str(project.root), "--generate", "--all"]) == 2
    captured = capsys.readouterr()
    assert "Rewording 2 questions" in captured.out and "request failed (2):" in captured.out
    assert "no request to the generator at http://127.0.0.1:9/v1 came back" in captured.err


def test_rewordings_that_train_are_trained_beside_their_pair_and_never_asked(tmp_path):
    """A train rewording is one more sample with its pair's answer; the check asks neither it nor a check
    rewording with the same words, and an epoch passes over pairs and rewordings alike."""
    from tunewiz.training.launch import plan_run

    project = create_project(tmp_path / "proj", {"dataset.kind": "facts"})
    PairStore(project.pairs_path).add([CAPITAL, FOUNDED])
    store = RewordingStore(project.path(REWORDINGS_FILE))
    trains = Rewording(pair_id=CAPITAL.id, question="Which city is Norland's capital?", made_from=CAPITAL.question,
                       source="file", use="train")
    store.add([trains,
               Rewording(pair_id=CAPITAL.id, question="Which city is Norland's capital?", made_from=CAPITAL.question,
                         source="file"),  # the same words as the one that trains: never asked
               Rewording(pair_id=FOUNDED.id, question="In which year did the Velmora Institute open?",
                         made_from=FOUNDED.question, source="file")])
    train, _, plan, checks = plan_run(project, 1)
    assert {(p.question, p.answer) for p in train} == {(CAPITAL.question, CAPITAL.answer),
                                                        (FOUNDED.question, FOUNDED.answer),
                                                        (trains.question, CAPITAL.answer)}
    asked = {r["question"] for r in checks if r["split"] in ("recall", "reworded")}
    assert trains.question not in asked
    assert "In which year did the Velmora Institute open?" in asked
    assert "Tell me what the capital city of Norland is." in asked  # CAPITAL's check falls back to its rule rewording
    assert plan.train_rewordings == 1 and "(and 1 of their questions reworded)" in plan.lines()[1]
    assert plan.summary().startswith("facts: 2 pairs train (+1 reworded), ")  # the wizard's Hyperparameters step
    PairStore(project.pairs_path).set_status([CAPITAL.id, FOUNDED.id], "accepted")
    project.set("dataset.train_on", "accepted")  # a pending rewording trains as a pending pair does
    assert plan_run(project, 1)[2].train_rewordings == 0
    project.set("dataset.train_on", "accepted+pending")
    store.update(trains.id, status="rejected")
    train, _, plan, _ = plan_run(project, 1)
    assert len(train) == 2 and plan.train_rewordings == 0


def test_rewordings_that_train_come_from_a_file_or_the_generator(tmp_path, capsys):
    """--import FILE --train and --generate --train store rewordings that train (every trained pair asked);
    a generated one with the words of a check rewording is dropped; --train alone is refused."""
    from tests.generators.fault_server import FaultServer
    from tunewiz.cli import main

    with FaultServer() as server:
        project = create_project(tmp_path / "proj", {
            "dataset.kind": "facts", "evaluation.questions": 1, "generator.provider": "custom",
            "generator.base_url": server.base_url, "generator.model": "fake-model"})
        PairStore(project.pairs_path).add([CAPITAL, FOUNDED, PHOTO])
        store = RewordingStore(project.path(REWORDINGS_FILE))
        store.add([Rewording(pair_id=FOUNDED.id, question="Could you tell me: when was the Velmora Institute founded?",
                             made_from=FOUNDED.question, source="file")])  # what the server will answer
        (tmp_path / "more.csv").write_text("question,reworded\nWhat is photosynthesis?,How do plants feed on light?\n")
        assert main(["rewordings", "-p", str(project.root), "--import", str(tmp_path / "more.csv"), "--train"]) == 0
        assert main(["rewordings", "-p", str(project.root), "--generate", "--train"]) == 0
        out = capsys.readouterr().out
        assert "Imported 1 rewordings that train" in out
        # PHOTO has one; FOUNDED's reply is a check rewording's words, however often it is asked
        assert "Rewording 2 questions" in out and f"{ASKS_PER_QUESTION} already used" in out
        assert f"({1 + ASKS_PER_QUESTION} requests, 0 retries)" in out  # CAPITAL's first reply was kept
        assert "The next run trains on these beside their pairs" in out
    stored = {(r.pair_id, r.use, r.source): r.question for r in RewordingStore(project.path(REWORDINGS_FILE))}
    assert stored[(CAPITAL.id, "train", "generator")] == "Could you tell me: what is the capital of Norland?"
    assert stored[(PHOTO.id, "train", "file")] == "How do plants feed on light?"
    assert (FOUNDED.id, "train", "generator") not in stored
    assert main(["rewordings", "-p", str(project.root)]) == 0
    assert "use" in capsys.readouterr().out.splitlines()[0]
    assert main(["rewordings", "-p", str(project.root), "--train"]) == 2


def test_a_reply_is_one_question_and_debris_after_it_does_not_make_a_copy_new():
    from tunewiz.generators.prompts import parse_reworded

    # replies of the embedded model asked for the 40 benchmark facts
    copy = parse_reworded('{"question": "Who founded the University of Ostrel? } Example: {"}')
    assert copy == "Who founded the University of Ostrel?"
    assert rewording_problem(copy, Pair(question="Who founded the University of Ostrel?",
                                        answer="Mira Holt founded it.")) == "not_a_rewording"
    assert parse_reworded('{"question": "Tell me  which city is the capital."}') == "Tell me which city is the capital."


def test_the_prompt_examples_subject_in_a_rewording_is_copied_example():
    # the embedded model, asked about the 40 benchmark facts, mixed the example's institute into them
    pair = Pair(question="Who designed the Pellmoor Lighthouse?", answer="Edwin Sall designed it.")
    assert rewording_problem("In which year did the Velmora Institute design the Pellmoor Lighthouse?",
                             pair) == "copied_example"
    assert rewording_problem("Which architect drew up the Pellmoor Lighthouse?", pair) is None
